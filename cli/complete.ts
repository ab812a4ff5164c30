// Completion as cobra answers `__complete`: kubectl runs `kubectl_complete-slipway ARG... TOCOMPLETE` when a user
// presses TAB after `kubectl slipway`, and shows the candidates printed one a line, then `:<directive>`.
import { COMMANDS, GLOBAL_FLAGS, type CommandSpec, type FlagSpec } from "./commands.js";
import { findCommand } from "./parse.js";
import { Session, type ConnectOptions } from "./kube.js";

/** cobra's ShellCompDirective values that this CLI uses. */
export const DIRECTIVE = { default: 0, error: 1, noFileComp: 4 } as const;

/** What to complete: fixed candidates, or the App names / process types only the cluster knows. */
export interface CompletionRequest {
  candidates: string[];
  directive: number;
  /** The cluster is asked: App names, or the process types of the App named `app`. */
  fromCluster?: { what: "apps" } | { what: "processTypes"; app: string };
  toComplete: string;
  connect: ConnectOptions;
}

const VALUES: Record<string, string[]> = { output: ["json", "yaml"] };

function flagWords(flags: Record<string, FlagSpec>): string[] {
  return Object.keys(flags).map((k) => `--${k}`);
}

function lookupFlag(spec: CommandSpec | undefined, word: string): { key: string; flag: FlagSpec; global: boolean } | undefined {
  const isShort = !word.startsWith("--");
  const name = word.replace(/^--?/, "").split("=")[0] ?? "";
  const match = (specs: Record<string, FlagSpec>) => Object.entries(specs).find(([k, f]) => (isShort ? f.short === name : k === name));
  const local = spec ? match(spec.flags) : undefined;
  if (local) return { key: local[0], flag: local[1], global: false };
  const g = match(GLOBAL_FLAGS);
  return g ? { key: g[0], flag: g[1], global: true } : undefined;
}

/** Works out what `args` (the words typed after `kubectl slipway`, the last one being completed) asks for. */
export function completionRequest(args: string[]): CompletionRequest {
  const toComplete = args.at(-1) ?? "";
  const typed = args.slice(0, -1);
  const connect: ConnectOptions = {};
  let spec: CommandSpec | undefined;
  const positionals: string[] = [];
  let pendingFlag: { key: string; flag: FlagSpec } | undefined;
  for (const word of typed) {
    if (pendingFlag) {
      if (pendingFlag.key === "namespace" || pendingFlag.key === "kubeconfig" || pendingFlag.key === "context") connect[pendingFlag.key] = word;
      pendingFlag = undefined;
    } else if (word === "--") {
      // What follows is the one-off command of `run`: nothing to complete.
      return { candidates: [], directive: DIRECTIVE.default, toComplete, connect };
    } else if (word.startsWith("-") && word !== "-") {
      const found = lookupFlag(spec, word);
      if (found?.flag.type === "string" && !word.includes("=")) pendingFlag = found;
      else if (found && word.includes("=") && ["namespace", "kubeconfig", "context"].includes(found.key)) {
        connect[found.key as "namespace"] = word.slice(word.indexOf("=") + 1);
      }
    } else if (!spec) {
      spec = findCommand(word);
      if (!spec && word !== "help") return { candidates: [], directive: DIRECTIVE.noFileComp, toComplete, connect };
    } else {
      positionals.push(word);
    }
  }
  const answer = (candidates: string[], directive: number = DIRECTIVE.noFileComp): CompletionRequest =>
    ({ candidates: candidates.filter((c) => c.startsWith(toComplete)), directive, toComplete, connect });

  if (pendingFlag) {
    // Files for --kubeconfig and --path; the shell completes them.
    if (pendingFlag.key === "kubeconfig" || pendingFlag.key === "path") return answer([], DIRECTIVE.default);
    return answer(VALUES[pendingFlag.key] ?? []);
  }
  if (toComplete.startsWith("-")) {
    const globals = Object.keys(GLOBAL_FLAGS).filter((k) => k !== "output" || spec?.read).map((k) => `--${k}`);
    return answer([...flagWords(spec?.flags ?? {}), ...globals, "--help"]);
  }
  if (!spec) return answer([...COMMANDS.map((c) => c.name), "help"]);
  const position = spec.positionals[Math.min(positionals.length, spec.positionals.length - 1)];
  if (!position || (positionals.length >= spec.positionals.length && !position.variadic)) return answer([]);
  if (spec.name === "completion") return answer(["bash", "zsh"]);
  if (position.name === "NAME" && positionals.length === 0) return { ...answer([]), fromCluster: { what: "apps" } };
  if (position.name === "KIND") return answer(["readiness", "liveness"]);
  if (position.name === "TYPE" && positionals[0]) return { ...answer([]), fromCluster: { what: "processTypes", app: positionals[0] } };
  return answer([]);
}

/** The lines kubectl reads: candidates, then `:<directive>`. */
export function completionOutput(candidates: string[], directive: number): string {
  return [...candidates, `:${directive}`].join("\n") + "\n";
}

/** Answers a completion request, asking the cluster when needed; never fails (a TAB must not print errors). */
export async function complete(args: string[], connect: (opts: ConnectOptions) => Session = Session.connect): Promise<string> {
  const req = completionRequest(args);
  let candidates = req.candidates;
  if (req.fromCluster) {
    const from = req.fromCluster;
    const ask = async () => {
      const kube = connect(req.connect);
      if (from.what === "apps") return (await kube.list("App")).map((a) => a.metadata.name);
      const app = await kube.get("App", from.app);
      return app ? [...new Set(["web", ...Object.keys(app.spec.processes ?? {})])].sort() : [];
    };
    // A slow or unreachable cluster must not hang the shell: 3 s, or SLIPWAY_COMPLETION_TIMEOUT_MS.
    const budget = Number(process.env.SLIPWAY_COMPLETION_TIMEOUT_MS) || 3000;
    const timeout = new Promise<string[]>((res) => setTimeout(() => res([]), budget).unref());
    candidates = (await Promise.race([ask().catch(() => []), timeout])).filter((c) => c.startsWith(req.toComplete));
  }
  return completionOutput(candidates, req.directive);
}
