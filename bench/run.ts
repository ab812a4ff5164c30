// `npm run bench`: speed and memory figures, printed as a table. Targets live here, never in timed tests.
// Everything is measured for real: the render function in-process and as its executable, the work queue, and
// the operator and GitOps against a real local control plane and a real Git server. Targets are generous:
// they flag regressions on a 2-core machine, they are not promises.
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { App, Condition } from "../crds/v1alpha1.js";
import { collectInputs, slipwayObjects } from "../functions/inputs.js";
import { readManifests } from "../functions/manifests.js";
import { render } from "../functions/render.js";
import { startGitOps } from "../operator/gitops/index.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import { createLogger } from "../operator/log.js";
import { startOperator } from "../operator/main.js";
import { WorkQueue } from "../operator/queue.js";
import { repoRoot, startControlPlane, waitFor, type ControlPlane } from "../e2e/harness/controlplane.js";
import { startGitServer } from "../e2e/harness/gitserver.js";

// ------------------------------------------------------------------------------------------ the table

interface Row { benchmark: string; value: string; target: string; ok: boolean }
const rows: Row[] = [];
const record = (benchmark: string, value: number, unit: string, target: number, lowerIsBetter = true) =>
  rows.push({ benchmark, value: `${value.toFixed(value < 10 ? 2 : 0)} ${unit}`, target: `${lowerIsBetter ? "≤" : "≥"} ${target} ${unit}`,
    ok: lowerIsBetter ? value <= target : value >= target });

function printTable(): void {
  const width = (col: keyof Omit<Row, "ok">) => Math.max(col.length, ...rows.map((r) => r[col].length));
  const [b, v, t] = [width("benchmark"), width("value"), width("target")];
  console.log(`${"benchmark".padEnd(b)}  ${"value".padStart(v)}  ${"target".padStart(t)}  ok`);
  for (const r of rows) console.log(`${r.benchmark.padEnd(b)}  ${r.value.padStart(v)}  ${r.target.padStart(t)}  ${r.ok ? "yes" : "NO"}`);
}

const since = (t0: number) => performance.now() - t0;
const MiB = 1024 * 1024;
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}
const median = (values: number[]) => percentile(values, 50);
/** The fastest of `rounds` runs of `fn`, in ms: CPU-bound figures should not count other load on the machine. */
async function fastest(rounds: number, fn: () => unknown): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, since(t0));
  }
  return best;
}
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

// ------------------------------------------------------------------------------- the render function

const samplesDir = join(repoRoot, "samples", "apps");

/** In-process render() of every sample: renders per second and µs per render. */
async function renderFunction(): Promise<void> {
  for (const sample of (await readdir(samplesDir)).sort()) {
    // Samples leave the namespace to kubectl; render() needs one, as the function's namespace setting gives.
    const [input] = collectInputs(slipwayObjects(readManifests(join(samplesDir, sample)) as KubeObject[], "default"));
    if (!input || render(input).errors.length > 0) throw new Error(`sample ${sample} does not render`);
    for (let i = 0; i < 1000; i++) render(input); // warm up the JIT
    const ms = await fastest(20, () => {
      for (let i = 0; i < 200; i++) render(input);
    }) / 200;
    record(`render() ${sample}: renders per second`, 1000 / ms, "/s", 2000, false);
    record(`render() ${sample}: time per render`, ms * 1000, "µs", 500);
  }
}

/** `node dist/functions/main.js` over a ResourceList of every sample, process start included (median of 10). */
async function renderExecutable(): Promise<void> {
  const items = (await readdir(samplesDir)).sort().flatMap((s) => readManifests(join(samplesDir, s)));
  const functionConfig = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "slipway-render" }, data: { namespace: "default" } };
  const resourceList = JSON.stringify({ apiVersion: "config.kubernetes.io/v1", kind: "ResourceList", items, functionConfig });
  const main = join(repoRoot, "dist", "functions", "main.js");
  const once = () => new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [main], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => code === 0 && out.includes("kind: Deployment") ? resolve(since(t0))
      : reject(new Error(`slipway-render exited with ${code}:\n${out.slice(0, 2000)}`)));
    child.stdin.end(resourceList);
  });
  await once();
  const times: number[] = [];
  for (let i = 0; i < 10; i++) times.push(await once());
  record(`slipway-render executable, ${items.length} objects (median of 10)`, median(times), "ms", 1500);
}

// ----------------------------------------------------------------------------------------- work queue

/** Distinct keys enqueued at once (a resync of that many Apps) through a no-op handler at concurrency 4. */
async function queueThroughput(): Promise<void> {
  for (const items of [10_000, 100_000]) {
    const ms = await fastest(3, async () => {
      const queue = new WorkQueue(async () => undefined, { concurrency: 4 });
      await Promise.all(Array.from({ length: items }, (_, i) => queue.enqueue(`ns/app-${i}`)));
      await queue.stop();
    });
    record(`work queue: ${items} distinct keys at once, no-op handler`, (items / ms) * 1000, "items/s", 50_000, false);
  }
}

/** 10 000 events for 100 keys, in 100 bursts of 100, while each handler run takes about a millisecond. */
async function queueCoalescing(): Promise<void> {
  let calls = 0;
  const queue = new WorkQueue(async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 1));
  }, { concurrency: 4 });
  const settled: Promise<void>[] = [];
  for (let burst = 0; burst < 100; burst++) {
    for (let i = 0; i < 100; i++) settled.push(queue.enqueue(`ns/app-${(burst * 37 + i * 13) % 100}`));
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(settled);
  record("work queue: handler runs for 10 000 events on 100 keys", calls, "runs", 1000);
  await queue.stop();
}

// ---------------------------------------------------------------------------------- control plane

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? undefined : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

async function createNamespace(cp: ControlPlane, ns: string): Promise<void> {
  await kubectl(cp, ["create", "namespace", ns]);
  await waitFor(async () => (await cp.kubectl(["get", "serviceaccount", "default", "-n", ns])).code === 0, 30_000,
    () => `no default ServiceAccount in ${ns}`);
}

async function deploymentRollout(cp: ControlPlane): Promise<void> {
  const ns = "bench";
  await createNamespace(cp, ns);
  const dep = (i: number) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: d${i} }
spec:
  replicas: 3
  selector: { matchLabels: { app: d${i} } }
  template:
    metadata: { labels: { app: d${i} } }
    spec: { containers: [{ name: c, image: "registry.example/x@sha256:${"b".repeat(64)}" }] }
`;
  const t0 = performance.now();
  await kubectl(cp, ["apply", "-n", ns, "-f", "-"], Array.from({ length: 10 }, (_, i) => dep(i)).join("---\n"));
  for (let i = 0; i < 10; i++) await kubectl(cp, ["rollout", "status", "-n", ns, `deployment/d${i}`, "--timeout=120s"]);
  record("10 Deployments × 3 replicas rolled out (kwok pods)", since(t0) / 1000, "s", 30);
}

async function controlPlaneRss(cp: ControlPlane): Promise<void> {
  const pids = execFileSync("pgrep", ["-f", cp.dir]).toString().trim().split("\n").map(Number);
  let total = 0;
  for (const pid of pids) {
    const cmd = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0")[0]?.split("/").pop() ?? String(pid);
    const mib = await rssMiB(pid);
    total += mib;
    record(`RSS ${cmd}`, mib, "MiB", cmd === "kube-apiserver" ? 600 : 300);
  }
  record("RSS control plane total", total, "MiB", 1200);
}

// --------------------------------------------------------------------------------------- the operator

const V = "slipway.dev/v1alpha1";
const IMAGE = `registry.example/bench@sha256:${"c".repeat(64)}`;
const silent = createLogger({ level: "silent" });
const appYaml = (name: string) => `apiVersion: ${V}\nkind: App\nmetadata:\n  name: ${name}\nspec:\n  image: ${IMAGE}\n`;
const configYaml = (name: string, value: string) => `apiVersion: ${V}\nkind: Config\nmetadata:\n  name: ${name}\nspec:\n  env:\n    GREETING: "${value}"\n`;
const appsYaml = (names: string[]) => names.map((n) => `${configYaml(n, "hello")}---\n${appYaml(n)}`).join("---\n");
const apply = (cp: ControlPlane, ns: string, yaml: string) => kubectl(cp, ["apply", "--server-side", "--field-manager=bench", "-n", ns, "-f", "-"], yaml);

/** True when the App's release `release` is rolled out and Ready for its current generation. */
function isReady(app: App & KubeObject, release: string): boolean {
  const ready = app.status?.conditions?.find((c: Condition) => c.type === "Ready");
  return ready?.status === "True" && ready.observedGeneration === app.metadata.generation && app.status?.currentRelease === release;
}

/** Polls the namespace's Apps every 100 ms; returns ms from `t0` until each named App was Ready with `release`. */
async function timeUntilReady(kube: Kube, ns: string, names: string[], release: string, t0: number): Promise<number[]> {
  const readyAt = new Map<string, number>();
  await waitFor(async () => {
    const apps = await kube.list<App & KubeObject>(V, "App", ns);
    for (const app of apps.items) if (!readyAt.has(app.metadata.name) && isReady(app, release)) readyAt.set(app.metadata.name, since(t0));
    return names.every((n) => readyAt.has(n));
  }, 180_000, () => `Apps not Ready with ${release}: ${names.filter((n) => !readyAt.has(n)).join(", ")}`);
  return names.map((n) => readyAt.get(n)!);
}

async function installCrds(cp: ControlPlane): Promise<void> {
  await kubectl(cp, ["apply", "--server-side", "-f", "crds/"]);
  await kubectl(cp, ["wait", "--for=condition=Established", "--timeout=60s", "crd/apps.slipway.dev", "crd/configs.slipway.dev", "crd/releases.slipway.dev"]);
}

/** 20 Apps created at once → Ready; Config changes → new release Ready; the process's memory with 50 Apps. */
async function operatorEndToEnd(cp: ControlPlane): Promise<void> {
  const ns = "bench-operator";
  await createNamespace(cp, ns);
  const kube = new Kube(cp.kubeConfig());
  const operator = await startOperator({ kubeConfig: cp.kubeConfig(), namespace: ns, logger: silent });
  try {
    const first = Array.from({ length: 20 }, (_, i) => `app-${i}`);
    let t0 = performance.now();
    await apply(cp, ns, appsYaml(first));
    const created = await timeUntilReady(kube, ns, first, "v1", t0);
    record("operator: App+Config applied → Ready, 20 at once (median)", median(created) / 1000, "s", 15);
    record("operator: App+Config applied → Ready, 20 at once (p95)", percentile(created, 95) / 1000, "s", 30);

    const changed: number[] = [];
    for (const name of first.slice(0, 5)) {
      t0 = performance.now();
      await apply(cp, ns, configYaml(name, "changed"));
      changed.push(...(await timeUntilReady(kube, ns, [name], "v2", t0)));
    }
    record("operator: Config change → new release Ready (median of 5)", median(changed) / 1000, "s", 10);

    const more = Array.from({ length: 30 }, (_, i) => `app-${20 + i}`);
    await apply(cp, ns, appsYaml(more));
    await timeUntilReady(kube, ns, more, "v1", performance.now());
    collectGarbage(); // so the heap is what the operator holds, not garbage not yet collected
    const { heapUsed, rss } = process.memoryUsage();
    record("operator process heap used with 50 Apps (in-process)", heapUsed / MiB, "MiB", 200);
    record("operator process RSS with 50 Apps (in-process)", rss / MiB, "MiB", 400);
  } finally {
    await operator.stop();
  }
}

// -------------------------------------------------------------------------------------------- GitOps

/** Config changes → their commit on the remote, with the operator cutting a release for each (median of 10). */
async function gitOpsCommit(cp: ControlPlane): Promise<void> {
  const ns = "bench-gitops";
  await createNamespace(cp, ns);
  const server = await startGitServer();
  const clone = await mkdtemp(join(tmpdir(), "slipway-bench-gitops-"));
  const operator = await startOperator({ kubeConfig: cp.kubeConfig(), namespace: ns, logger: silent });
  await server.createBareRepo(ns);
  const url = server.url(ns);
  const gitops = await startGitOps({ kubeConfig: cp.kubeConfig(), repo: { url, dir: clone }, mode: "sync", pollIntervalMs: 3_600_000, namespace: ns, logger: silent });
  const remoteHead = async () => (await promisify(execFile)("git", ["ls-remote", url, "refs/heads/main"])).stdout.split("\t")[0] ?? "";
  try {
    await apply(cp, ns, appsYaml(["shop"]));
    await timeUntilReady(new Kube(cp.kubeConfig()), ns, ["shop"], "v1", performance.now());
    await gitops.idle();
    const times: number[] = [];
    for (let i = 1; i <= 10; i++) {
      const before = await remoteHead();
      const t0 = performance.now();
      await apply(cp, ns, configYaml("shop", `change-${i}`));
      await waitFor(async () => (await remoteHead()) !== before, 60_000, () => `change ${i} was not committed`);
      times.push(since(t0));
      await gitops.idle();
    }
    record("GitOps: Config change → commit on the remote (median of 10)", median(times) / 1000, "s", 5);
  } finally {
    await gitops.stop();
    await operator.stop();
    await server.stop();
    await rm(clone, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------------ run

await renderFunction();
await renderExecutable();
await queueThroughput();
await queueCoalescing();

const t0 = performance.now();
const cp = await startControlPlane();
record("control plane warm start (binaries cached)", since(t0) / 1000, "s", 20);
try {
  await new Promise((r) => setTimeout(r, 1000));
  await deploymentRollout(cp);
  await controlPlaneRss(cp);
  await installCrds(cp);
  await operatorEndToEnd(cp);
  await gitOpsCommit(cp);
} finally {
  await cp.stop();
}

printTable();
process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
