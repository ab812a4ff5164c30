// Flux's source-controller and kustomize-controller as real processes against a control plane: built from the
// Go module proxy by e2e/controlplane/build.sh --flux (pinned by the wrapper modules beside it), their CRDs
// installed from each controller module's config/crd/bases/ in the Go module cache, never from a copy.
// source-controller serves its artifacts on a loopback port, where kustomize-controller fetches them.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, waitFor, type ControlPlane } from "../../operator/local/controlplane.js";
import { Processes, tail as tailLines, type Process } from "../../operator/local/processes.js";
import { build, repoRoot } from "../../operator/local/tools.js";

const execFileAsync = promisify(execFile);

export const FLUX_NAMESPACE = "flux-system";
/** Set to the directory holding source-controller and kustomize-controller to use instead of build.sh's. */
export const ENV_FLUX_DIR = "SLIPWAY_FLUX_DIR";

export type FluxController = "source-controller" | "kustomize-controller";
const CONTROLLERS: readonly FluxController[] = ["source-controller", "kustomize-controller"];

/** The directory holding the built source-controller and kustomize-controller. */
export function fluxBinDir(): string {
  const given = process.env[ENV_FLUX_DIR];
  if (given) {
    for (const c of CONTROLLERS) if (!existsSync(join(given, c))) throw new Error(`${ENV_FLUX_DIR}=${given} holds no ${c}`);
    return given;
  }
  const dir = build("--flux");
  process.env[ENV_FLUX_DIR] = dir;
  return dir;
}

/** Where the Go module cache holds a controller module at the version its wrapper module pins (downloaded if missing). */
async function moduleDir(controller: FluxController): Promise<string> {
  const wrapper = join(repoRoot, "e2e", "controlplane", controller);
  const module = `github.com/fluxcd/${controller}`;
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync("go", ["mod", "download", "-json", module], {
      cwd: wrapper, env: { ...process.env, GOFLAGS: "-mod=readonly" },
    }));
  } catch (cause) {
    throw new Error(`flux: go mod download -json ${module} (in ${wrapper}) failed`, { cause });
  }
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`flux: go mod download -json ${module} named no directory: ${stdout}`);
  return dir;
}

/** The CRD files each controller ships in config/crd/bases/, from the module cache. */
export async function fluxCrdFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const controller of CONTROLLERS) {
    const dir = join(await moduleDir(controller), "config", "crd", "bases");
    files.push(...(await readdir(dir)).filter((f) => f.endsWith(".yaml")).sort().map((f) => join(dir, f)));
  }
  return files;
}

/** Installs Flux's CRDs (idempotent) and its namespace, and waits until the CRDs serve. */
export async function installFluxCrds(cp: ControlPlane): Promise<void> {
  const files = await fluxCrdFiles();
  await cp.kubectlOk(["apply", "--server-side", "--force-conflicts", ...files.flatMap((f) => ["-f", f])], { what: `flux: cannot install the CRDs from ${files.join(", ")}` });
  await cp.kubectlOk(["wait", "--for=condition=Established", "--timeout=60s",
    "crd/gitrepositories.source.toolkit.fluxcd.io", "crd/kustomizations.kustomize.toolkit.fluxcd.io"], { what: "flux: CRDs not established" });
  const ns = await cp.kubectl(["create", "namespace", FLUX_NAMESPACE]);
  if (ns.code !== 0 && !ns.stderr.includes("AlreadyExists")) throw new Error(`flux: cannot create namespace ${FLUX_NAMESPACE}: ${ns.stderr}`);
}

export interface Flux {
  /** The namespace the controllers run "in" (RUNTIME_NAMESPACE); they watch all namespaces. */
  readonly namespace: string;
  /** Process ids by controller name, for CPU and memory figures. */
  pids(): Record<FluxController, number>;
  /** The last lines of a controller's log (in the control plane's logs directory). */
  logTail(controller: FluxController, lines?: number): Promise<string>;
  /** Both controllers' log tails, for failure messages. */
  logs(lines?: number): Promise<string>;
  stop(): Promise<void>;
}

export interface FluxOptions {
  /** Concurrent reconciles per controller (Flux's --concurrent); default Flux's own. */
  concurrent?: number;
  /** Extra flags per controller. */
  args?: Partial<Record<FluxController, string[]>>;
}

/** Flux's JSON log lines can be long; error messages show the first 400 characters of each. */
const tail = (path: string, lines: number) => tailLines(path, lines, 400);

/**
 * Installs the CRDs, then starts source-controller and kustomize-controller with the control plane's admin
 * kubeconfig, logs in `<control plane dir>/logs/<controller>.log`, and waits until both answer /readyz.
 * Stops what it started if either fails, with its log tail in the error.
 */
export async function startFlux(cp: ControlPlane, options: FluxOptions = {}): Promise<Flux> {
  const bin = fluxBinDir();
  await installFluxCrds(cp);
  const logs = join(cp.dir, "logs");
  await mkdir(logs, { recursive: true });
  const storage = join(cp.dir, "flux-storage");
  await mkdir(storage, { recursive: true });
  const processes = new Processes(logs);
  const env = { ...process.env, KUBECONFIG: cp.kubeconfigPath, RUNTIME_NAMESPACE: FLUX_NAMESPACE };

  const start = async (name: FluxController, args: string[]): Promise<{ c: Process; health: number }> => {
    const [metrics, health] = [await freePort(), await freePort()];
    const c = processes.start(name, join(bin, name), [
      `--metrics-addr=127.0.0.1:${metrics}`, `--health-addr=127.0.0.1:${health}`,
      "--enable-leader-election=false", "--watch-all-namespaces=true", "--log-encoding=json", "--log-level=info",
      ...(options.concurrent ? [`--concurrent=${options.concurrent}`] : []),
      ...args, ...(options.args?.[name] ?? []),
    ], { env });
    return { c, health };
  };

  const stop = () => processes.stopAll(10_000);

  const ready = async ({ c, health }: { c: Process; health: number }) => {
    let exitCode: number | null | undefined;
    void c.exited.then((code) => (exitCode = code));
    await waitFor(async () => {
      if (exitCode !== undefined) return true;
      return (await fetch(`http://127.0.0.1:${health}/readyz`)).status === 200;
    }, 90_000, async () => `flux: ${c.name} ${exitCode !== undefined ? `exited with code ${exitCode}` : "did not answer /readyz"}; last log lines:\n${await tail(c.logPath, 30)}`);
    if (exitCode !== undefined) throw new Error(`flux: ${c.name} exited with code ${exitCode}; last log lines:\n${await tail(c.logPath, 30)}`);
  };

  try {
    const storagePort = await freePort();
    const source = await start("source-controller", [
      `--storage-path=${storage}`, `--storage-addr=127.0.0.1:${storagePort}`, `--storage-adv-addr=127.0.0.1:${storagePort}`,
    ]);
    const kustomize = await start("kustomize-controller", ["--no-remote-bases=true"]);
    await Promise.all([ready(source), ready(kustomize)]);
  } catch (err) {
    await stop();
    throw err;
  }

  const logTail = (controller: FluxController, lines = 25) => tail(join(logs, `${controller}.log`), lines);
  return {
    namespace: FLUX_NAMESPACE,
    pids: () => Object.fromEntries(processes.all.map((c) => [c.name, c.child.pid ?? 0])) as Record<FluxController, number>,
    logTail,
    logs: async (lines = 25) => (await Promise.all(CONTROLLERS.map(async (c) => `--- ${c} ---\n${await logTail(c, lines)}`))).join("\n"),
    stop,
  };
}
