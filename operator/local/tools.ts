// The programs the tests run that no machine needs installed: kubectl and kpt (one directory, put first on
// PATH), argocd-lua (Argo CD's own Lua health-check evaluation), and Flux's controllers (harness/flux.ts),
// each built once per machine from the Go module proxy by e2e/controlplane/build.sh and cached outside the
// repository. On a machine that has built them, build.sh only checks its cache and prints the path.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, found from this file in either e2e/harness (source) or dist/e2e/harness (compiled). */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) dir = dirname(dir);
  return dir;
})();

export const buildScript = join(repoRoot, "e2e", "controlplane", "build.sh");

/** Set to the directory holding kubectl and kpt once it is known, so child processes skip build.sh. */
export const ENV_TOOLS_DIR = "SLIPWAY_TOOLS_DIR";
/** Set to the argocd-lua binary to use instead of the one build.sh builds. */
export const ENV_ARGOCD_LUA = "SLIPWAY_ARGOCD_LUA";

/** Runs build.sh with one of its single-tool flags; its progress goes to this process's stderr. Throws if it fails. */
export function build(flag: "--tools" | "--argocd-lua" | "--argocd" | "--kustomize" | "--tekton" | "--flux"): string {
  let out: string;
  try {
    out = execFileSync(buildScript, [flag], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  } catch (cause) {
    throw new Error(`${buildScript} ${flag} failed (it needs Go and the Go module proxy)`, { cause });
  }
  const path = out.trim().split("\n").pop() ?? "";
  if (!path || !existsSync(path)) throw new Error(`${buildScript} ${flag} printed no existing path: ${JSON.stringify(out)}`);
  return path;
}

/**
 * Runs build.sh (the control plane with no flag, or one single-tool flag) without blocking this process, with
 * each line of its progress passed to `progress`. Resolves to the path it prints last.
 */
export function buildInBackground(flag: "--tekton" | "--node" | "--lifecycle" | "--traefik" | undefined, progress?: (line: string) => void): Promise<string> {
  const what = flag ? `build.sh ${flag}` : "build.sh";
  return new Promise((resolvePath, reject) => {
    const child = spawn(buildScript, flag ? [flag] : [], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      for (const line of d.toString().split("\n").filter(Boolean)) progress?.(line);
    });
    child.on("error", (cause) => reject(new Error(`cannot run ${what}`, { cause })));
    child.on("close", (code) => {
      if (code === 0) resolvePath(out.trim().split("\n").pop() ?? "");
      else reject(new Error(`${what} failed with exit code ${code}:\n${err.split("\n").slice(-30).join("\n")}`));
    });
  });
}

/** The directory holding the built kubectl and kpt, and nothing else. */
export function toolsDir(): string {
  const known = process.env[ENV_TOOLS_DIR];
  if (known && existsSync(join(known, "kubectl")) && existsSync(join(known, "kpt"))) return known;
  const dir = build("--tools");
  process.env[ENV_TOOLS_DIR] = dir;
  return dir;
}

/** The built kubectl. */
export function kubectlPath(): string {
  return join(toolsDir(), "kubectl");
}

/** `path` (by default this process's PATH) with the tools directory first. */
export function pathWithTools(path = process.env.PATH ?? ""): string {
  const dir = toolsDir();
  return [dir, ...path.split(delimiter).filter((p) => p && p !== dir)].join(delimiter);
}

/**
 * Puts the tools directory first on this process's PATH, so this process and every child it starts run the
 * built kubectl and kpt, never whatever the machine has installed (or lacks). Returns the directory.
 */
export function putToolsOnPath(): string {
  process.env.PATH = pathWithTools();
  return toolsDir();
}

/** The argocd-lua binary: $SLIPWAY_ARGOCD_LUA, or the one build.sh builds. */
export function argocdLuaPath(): string {
  const given = process.env[ENV_ARGOCD_LUA];
  if (given) {
    if (!existsSync(given)) throw new Error(`${ENV_ARGOCD_LUA}=${given} does not exist`);
    return given;
  }
  return build("--argocd-lua");
}
