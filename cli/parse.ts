// Command-line parsing: pure functions from argv to a ParsedCommand, and from "K=V" style words to values.
import { UsageError } from "./errors.js";
import { COMMANDS, GLOBAL_FLAGS, type CommandSpec, type FlagSpec } from "./commands.js";

export type OutputFormat = "table" | "json" | "yaml";

export interface GlobalOptions {
  namespace?: string;
  kubeconfig?: string;
  context?: string;
  as?: string;
  output: OutputFormat;
}

export type FlagValue = string | boolean | string[];

export interface ParsedCommand {
  spec: CommandSpec;
  /** Positional arguments in order (the app name first, where the command takes one). */
  args: string[];
  flags: Record<string, FlagValue>;
  /** Everything after `--` (the command of `run`). */
  rest: string[];
  global: GlobalOptions;
}

export type Invocation =
  | { kind: "help"; spec?: CommandSpec }
  | { kind: "version" }
  | { kind: "command"; command: ParsedCommand };

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Parses argv (without node and the script). Throws UsageError for anything a user could mistype. */
export function parseArgv(argv: string[]): Invocation {
  const global: GlobalOptions = { output: "table" };
  const flags: Record<string, FlagValue> = {};
  const words: string[] = [];
  let rest: string[] = [];
  let help = false;
  let spec: CommandSpec | undefined;

  const lookup = (name: string, isShort: boolean): { key: string; flag: FlagSpec; global: boolean } | undefined => {
    const match = (specs: Record<string, FlagSpec>) =>
      Object.entries(specs).find(([k, f]) => (isShort ? f.short === name : k === name));
    const local = spec ? match(spec.flags) : undefined;
    if (local) return { key: local[0], flag: local[1], global: false };
    const g = match(GLOBAL_FLAGS);
    return g ? { key: g[0], flag: g[1], global: true } : undefined;
  };

  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === "--") {
      rest = argv.slice(i + 1);
      break;
    }
    if (word === "-h" || word === "--help") {
      help = true;
      continue;
    }
    if (word.startsWith("-") && word !== "-") {
      const isShort = !word.startsWith("--");
      const body = isShort ? word.slice(1) : word.slice(2);
      const eq = body.indexOf("=");
      const name = eq >= 0 ? body.slice(0, eq) : body;
      let value: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
      const found = lookup(name, isShort);
      if (!found) {
        if (help) continue;
        throw new UsageError(`unknown flag ${isShort ? "-" : "--"}${name}${spec ? ` for "${spec.name}"` : ""} (see --help)`);
      }
      if (found.flag.type === "boolean") {
        if (value !== undefined && value !== "true" && value !== "false") throw new UsageError(`--${found.key} takes no value`);
        flags[found.key] = value !== "false";
        continue;
      }
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new UsageError(`flag --${found.key} needs a value${found.flag.valueName ? ` (${found.flag.valueName})` : ""}`);
      }
      if (found.global) {
        setGlobal(global, found.key, value);
      } else if (found.flag.multiple) {
        const prev = flags[found.key];
        flags[found.key] = [...(Array.isArray(prev) ? prev : []), value];
      } else {
        flags[found.key] = value;
      }
      continue;
    }
    if (!spec && words.length === 0) {
      if (word === "version") return { kind: "version" };
      if (word === "help") {
        help = true;
        continue;
      }
      spec = findCommand(word);
      if (!spec) {
        if (help) return { kind: "help" };
        throw new UsageError(`unknown command "${word}" (see kubectl slipway --help)`);
      }
      continue;
    }
    words.push(word);
  }

  if (help || !spec) return { kind: "help", spec };
  if (rest.length > 0 && !spec.rest) throw new UsageError(`"${spec.name}" takes no command after --`);
  if (spec.rest && spec.rest.required && rest.length === 0) throw new UsageError(`"${spec.name}" needs a command after --: ${spec.usage}`);
  const required = spec.positionals.filter((p) => !p.optional && !p.variadic).length;
  const variadicRequired = spec.positionals.some((p) => p.variadic && !p.optional);
  if (words.length < required + (variadicRequired ? 1 : 0)) {
    const missing = spec.positionals[Math.min(words.length, spec.positionals.length - 1)];
    throw new UsageError(`"${spec.name}" needs ${missing ? missing.name : "more arguments"}: ${spec.usage}`);
  }
  if (!spec.positionals.some((p) => p.variadic) && words.length > spec.positionals.length) {
    throw new UsageError(`unexpected argument "${words[spec.positionals.length]}" for "${spec.name}": ${spec.usage}`);
  }
  if (global.output !== "table" && !spec.read) throw new UsageError(`"${spec.name}" does not print objects; -o is for read commands`);
  return { kind: "command", command: { spec, args: words, flags, rest, global } };
}

function setGlobal(global: GlobalOptions, key: string, value: string): void {
  switch (key) {
    case "output":
      if (value !== "json" && value !== "yaml" && value !== "table") throw new UsageError(`-o must be json or yaml, not "${value}"`);
      global.output = value;
      return;
    case "namespace":
    case "kubeconfig":
    case "context":
    case "as":
      global[key] = value;
      return;
  }
}

/** "K=V" words to an ordered map. Keys must be valid environment variable names when `env` is true. */
export function parseAssignments(words: string[], what: { env?: boolean; noun?: string } = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of words) {
    const eq = w.indexOf("=");
    if (eq <= 0) throw new UsageError(`expected ${what.noun ?? "KEY=VALUE"}, got "${w}"`);
    const key = w.slice(0, eq);
    if (what.env) checkEnvName(key);
    out[key] = w.slice(eq + 1);
  }
  return out;
}

/** Throws a UsageError unless `key` is an environment variable name. */
export function checkEnvName(key: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
    throw new UsageError(`"${key}" is not a valid environment variable name (letters, digits and _, not starting with a digit)`);
  }
}

/** "web=3 worker=0" to replica counts per process type. */
export function parseScale(words: string[]): Record<string, number> {
  const pairs = parseAssignments(words, { noun: "TYPE=COUNT" });
  const out: Record<string, number> = {};
  for (const [type, count] of Object.entries(pairs)) {
    checkProcessType(type);
    if (!/^\d+$/.test(count)) throw new UsageError(`replicas for "${type}" must be a whole number, got "${count}"`);
    out[type] = Number(count);
  }
  return out;
}

export function checkProcessType(type: string): string {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(type) || type.length > 63) {
    throw new UsageError(`"${type}" is not a process type name (lower-case letters, digits and -)`);
  }
  return type;
}

/** "v3" or "3" to 3. */
export function parseVersion(word: string): number {
  const m = word.match(/^v?(\d+)$/);
  if (!m || Number(m[1]) < 1) throw new UsageError(`"${word}" is not a release version (v1, v2, …)`);
  return Number(m[1]);
}

export function parseInteger(name: string, value: FlagValue | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^\d+$/.test(value) || Number(value) < min) {
    throw new UsageError(`--${name} must be a whole number of at least ${min}, got "${String(value)}"`);
  }
  return Number(value);
}

export function stringFlag(flags: Record<string, FlagValue>, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

export function listFlag(flags: Record<string, FlagValue>, name: string): string[] {
  const v = flags[name];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}
