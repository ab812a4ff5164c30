// A reader of the Dockerfile instructions that decide how an image runs: FROM, ENV, WORKDIR, USER, EXPOSE,
// ENTRYPOINT, CMD and COPY, stage by stage. local/operator-image.ts assembles the image operator/Dockerfile
// describes without Docker, and takes the runtime configuration from the Dockerfile's final stage through this,
// so the Dockerfile stays the one place that says it. Variable substitution ($VAR) is not implemented: a value
// holding `$` is refused rather than taken literally.

/** One COPY instruction: `--from` and `--chown` as written, the sources and the destination. */
export interface DockerfileCopy {
  from?: string;
  chown?: string;
  sources: string[];
  dest: string;
}

/** One stage, from its FROM to the next: what it sets for the container it describes. */
export interface DockerfileStage {
  /** The base image as written after FROM. */
  from: string;
  /** The stage's name (`FROM … AS name`). */
  name?: string;
  /** ENV instructions of this stage, in order (a later one wins). */
  env: Record<string, string>;
  /** The working directory after the stage's WORKDIR instructions; "" when it sets none. */
  workdir: string;
  /** The USER instruction's value, as written. */
  user?: string;
  /** Exposed ports with their protocol, as `8080/tcp`. */
  expose: string[];
  /** ENTRYPOINT and CMD: the exec form as written, the shell form as Docker runs it (`/bin/sh -c …`). */
  entrypoint?: string[];
  cmd?: string[];
  copies: DockerfileCopy[];
  /** Keywords of the other instructions in the stage (RUN, ARG, …), upper-case, in order. */
  others: string[];
}

export class DockerfileError extends Error {
  constructor(readonly line: number, message: string) {
    super(`Dockerfile line ${line}: ${message}`);
    this.name = "DockerfileError";
  }
}

/** The stages of a Dockerfile, in order. Throws a DockerfileError naming the line of anything it cannot read. */
export function parseDockerfile(text: string): DockerfileStage[] {
  const stages: DockerfileStage[] = [];
  for (const { line, keyword, args } of instructions(text)) {
    if (keyword === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+as\s+(\S+))?$/i.exec(args);
      if (!m?.[1]) throw new DockerfileError(line, `cannot read FROM ${args}`);
      stages.push({ from: m[1], ...(m[2] ? { name: m[2] } : {}), env: {}, workdir: "", expose: [], copies: [], others: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) {
      // ARG may come before the first FROM; nothing else may.
      if (keyword === "ARG") continue;
      throw new DockerfileError(line, `${keyword} before the first FROM`);
    }
    switch (keyword) {
      case "ENV":
        for (const [k, v] of envPairs(line, args)) stage.env[k] = v;
        break;
      case "WORKDIR": {
        const dir = noVariables(line, unquote(args));
        stage.workdir = dir.startsWith("/") ? dir : `${stage.workdir || ""}/${dir}`.replace(/\/+/g, "/");
        break;
      }
      case "USER":
        stage.user = noVariables(line, args);
        break;
      case "EXPOSE":
        for (const p of args.split(/\s+/)) {
          if (!/^\d+(\/(tcp|udp|sctp))?$/i.test(p)) throw new DockerfileError(line, `cannot read EXPOSE ${p}`);
          stage.expose.push(p.includes("/") ? p.toLowerCase() : `${p}/tcp`);
        }
        break;
      case "ENTRYPOINT":
        stage.entrypoint = command(line, args);
        // Docker resets an inherited CMD when a stage sets its ENTRYPOINT.
        delete stage.cmd;
        break;
      case "CMD":
        stage.cmd = command(line, args);
        break;
      case "COPY":
        stage.copies.push(copy(line, args));
        break;
      default:
        stage.others.push(keyword);
    }
  }
  if (stages.length === 0) throw new DockerfileError(1, "no FROM: not a Dockerfile");
  return stages;
}

/** The last stage: the image `docker build` produces. */
export function finalStage(text: string): DockerfileStage {
  const stages = parseDockerfile(text);
  return stages[stages.length - 1] as DockerfileStage;
}

/** Logical instructions: comments and blank lines dropped, `\` continuations joined (comments inside them too). */
function instructions(text: string): Array<{ line: number; keyword: string; args: string }> {
  const out: Array<{ line: number; keyword: string; args: string }> = [];
  let pending: { line: number; text: string } | undefined;
  text.split("\n").forEach((raw, i) => {
    const l = raw.replace(/\r$/, "");
    if (/^\s*#/.test(l) || (!pending && l.trim() === "")) return;
    const continued = /\\\s*$/.test(l);
    const part = continued ? l.replace(/\\\s*$/, "") : l;
    pending = pending ? { line: pending.line, text: `${pending.text} ${part.trim()}` } : { line: i + 1, text: part.trim() };
    if (continued) return;
    const m = /^(\S+)\s*(.*)$/.exec(pending.text);
    if (m?.[1]) out.push({ line: pending.line, keyword: m[1].toUpperCase(), args: (m[2] ?? "").trim() });
    pending = undefined;
  });
  if (pending) throw new DockerfileError(pending.line, "the file ends inside a continued line");
  return out;
}

function noVariables(line: number, value: string): string {
  if (value.includes("$")) throw new DockerfileError(line, `${JSON.stringify(value)}: variable substitution is not supported here`);
  return value;
}

function unquote(value: string): string {
  return /^"(.*)"$/.test(value) || /^'(.*)'$/.test(value) ? value.slice(1, -1) : value;
}

/**
 * ENV's pairs: `KEY=value KEY2="a b"` (double quotes with backslash escapes, single quotes literal, a backslash
 * escaping the next character outside quotes) or the legacy `KEY value…`.
 */
function envPairs(line: number, args: string): Array<[string, string]> {
  const legacy = /^([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$/.exec(args);
  if (legacy && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    return [[legacy[1] as string, noVariables(line, legacy[2] ?? "")]];
  }
  const pairs: Array<[string, string]> = [];
  let i = 0;
  while (i < args.length) {
    while (args[i] === " " || args[i] === "\t") i++;
    if (i >= args.length) break;
    const key = /^[A-Za-z_][A-Za-z0-9_]*=/.exec(args.slice(i))?.[0];
    if (!key) throw new DockerfileError(line, `cannot read ENV at ${JSON.stringify(args.slice(i))}`);
    i += key.length;
    let value = "";
    let quote: string | undefined;
    for (; i < args.length; i++) {
      const c = args[i] as string;
      if (quote) {
        if (c === quote) quote = undefined;
        else if (c === "\\" && quote === '"' && i + 1 < args.length) value += args[++i];
        else if (c === "$" && quote === '"') throw new DockerfileError(line, `ENV ${key.slice(0, -1)}: variable substitution is not supported here`);
        else value += c;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === "$") throw new DockerfileError(line, `ENV ${key.slice(0, -1)}: variable substitution is not supported here`);
      else if (c === "\\" && i + 1 < args.length) value += args[++i];
      else if (c === " " || c === "\t") break;
      else value += c;
    }
    if (quote) throw new DockerfileError(line, `unterminated ${quote} in ENV`);
    pairs.push([key.slice(0, -1), value]);
  }
  return pairs;
}

/** ENTRYPOINT's or CMD's argument: a JSON array (exec form), or the shell form as `/bin/sh -c`. */
function command(line: number, args: string): string[] {
  if (!args.startsWith("[")) return ["/bin/sh", "-c", args];
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw new DockerfileError(line, `cannot read the exec form ${args}`);
  }
  if (!Array.isArray(parsed) || parsed.some((a) => typeof a !== "string")) throw new DockerfileError(line, `${args} is not an array of strings`);
  return parsed as string[];
}

function copy(line: number, args: string): DockerfileCopy {
  const flags: Record<string, string> = {};
  let rest = args;
  const flag = /^--([a-z-]+)(?:=(\S+))?\s+/;
  for (let m = flag.exec(rest); m; m = flag.exec(rest)) {
    flags[m[1] as string] = m[2] ?? "";
    rest = rest.slice(m[0].length);
  }
  const unknown = Object.keys(flags).filter((f) => f !== "from" && f !== "chown");
  if (unknown.length > 0) throw new DockerfileError(line, `COPY --${unknown.join(", --")} is not supported here`);
  const paths = rest.startsWith("[") ? command(line, rest) : rest.split(/\s+/);
  if (paths.length < 2) throw new DockerfileError(line, `COPY needs a source and a destination: ${args}`);
  paths.forEach((p) => noVariables(line, p));
  return {
    ...(flags.from ? { from: flags.from } : {}),
    ...(flags.chown ? { chown: flags.chown } : {}),
    sources: paths.slice(0, -1),
    dest: paths[paths.length - 1] as string,
  };
}
