// The Dockerfile instructions that decide how an image runs (FROM, ENV, WORKDIR, USER, EXPOSE, ENTRYPOINT, CMD
// and COPY), stage by stage, read with dockerfile-ast (the parser of the Docker language server: continuation
// lines, comments, escapes, quoting, flags). local/operator-image.ts assembles the image operator/Dockerfile
// describes without Docker, and takes the runtime configuration from the Dockerfile's final stage through this,
// so the Dockerfile stays the one place that says it. Variable substitution ($VAR) is not implemented: a value
// that would be substituted is refused rather than taken literally.
import { Copy, DockerfileParser, Env, From, type Instruction } from "dockerfile-ast";

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
  const dockerfile = DockerfileParser.parse(text);
  for (const instruction of dockerfile.getInstructions()) {
    const line = instruction.getRange().start.line + 1;
    const keyword = instruction.getKeyword();
    const args = instruction.getArgumentsContent() ?? "";
    if (instruction instanceof From) {
      const image = instruction.getImage();
      if (!image) throw new DockerfileError(line, `cannot read FROM ${args}`);
      const name = instruction.getBuildStage();
      stages.push({ from: image, ...(name ? { name } : {}), env: {}, workdir: "", expose: [], copies: [], others: [] });
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
        if (!(instruction instanceof Env)) throw new DockerfileError(line, `cannot read ENV ${args}`);
        for (const property of instruction.getProperties()) {
          const raw = property.getUnescapedValue() ?? "";
          // Docker substitutes $VAR except inside single quotes.
          if (raw.includes("$") && !/^'.*'$/s.test(raw)) throw new DockerfileError(line, `ENV ${property.getName()}: variable substitution is not supported here`);
          stage.env[property.getName()] = property.getValue() ?? "";
        }
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
        if (!(instruction instanceof Copy)) throw new DockerfileError(line, `cannot read COPY ${args}`);
        stage.copies.push(copy(line, instruction));
        break;
      default:
        stage.others.push(keyword);
    }
  }
  if (stages.length === 0) throw new DockerfileError(1, "no FROM: not a Dockerfile");
  // A last line continued with the escape character: Docker refuses it, and so does this.
  const lines = text.split("\n").filter((l) => l.trim() !== "" && !/^\s*#/.test(l));
  const last = dockerfile.getInstructions().at(-1);
  if (last && /\\\s*$/.test(lines.at(-1) ?? "")) throw new DockerfileError(last.getRange().start.line + 1, "the Dockerfile ends inside a continued line");
  return stages;
}

/** The last stage: the image `docker build` produces. */
export function finalStage(text: string): DockerfileStage {
  const stages = parseDockerfile(text);
  return stages[stages.length - 1] as DockerfileStage;
}

function noVariables(line: number, value: string): string {
  if (value.includes("$")) throw new DockerfileError(line, `${JSON.stringify(value)}: variable substitution is not supported here`);
  return value;
}

function unquote(value: string): string {
  return /^"(.*)"$/.test(value) || /^'(.*)'$/.test(value) ? value.slice(1, -1) : value;
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

function copy(line: number, instruction: Copy & Instruction): DockerfileCopy {
  const flags = new Map(instruction.getFlags().map((f) => [f.getName(), f.getValue() ?? ""]));
  const unknown = [...flags.keys()].filter((f) => f !== "from" && f !== "chown");
  if (unknown.length > 0) throw new DockerfileError(line, `COPY --${unknown.join(", --")} is not supported here`);
  // The paths after the flags: a JSON array (for paths with spaces), or words.
  const rest = instruction.getArguments().map((a) => a.getValue()).join(" ");
  const paths = rest.startsWith("[") ? command(line, rest) : instruction.getArguments().map((a) => a.getValue());
  if (paths.length < 2) throw new DockerfileError(line, `COPY needs a source and a destination: ${instruction.getArgumentsContent() ?? ""}`);
  paths.forEach((p) => noVariables(line, p));
  return {
    ...(flags.get("from") ? { from: flags.get("from") } : {}),
    ...(flags.get("chown") ? { chown: flags.get("chown") } : {}),
    sources: paths.slice(0, -1),
    dest: paths[paths.length - 1] as string,
  };
}
