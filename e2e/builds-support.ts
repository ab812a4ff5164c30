// Shared by builds.e2e.ts and previews.e2e.ts: real source repositories on the real Git server, the build
// module (and optionally the operator) running in-process against the real control plane, webhook deliveries
// over real HTTP, and Tekton Pipelines' real controller and webhook (started with the control plane), which
// run every PipelineRun with the sample Pipelines and Tasks of samples/tekton. The only simulated thing is
// the containers: kwok reports each TaskRun pod's steps as finished (e2e/controlplane/kwok/tekton.yaml).
import type { ExecutionContext } from "ava";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { App, Condition, Config, Release } from "../crds/v1alpha1.js";
import { startBuilds, type Builds } from "../operator/builds/index.js";
import type { PipelineRun, PipelineSettings } from "../operator/builds/pipelinerun.js";
import type { Delivery } from "../operator/builds/testdata/payloads.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import { createLogger } from "../operator/log.js";
import { startOperator, type OperatorHandle } from "../operator/controller.js";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";

const run = promisify(execFile);

export const SECRET = "webhook-secret-for-e2e";

/**
 * Installs Slipway's CRDs (idempotent) and checks that the control plane runs Tekton (harness/run.ts and a
 * file run on its own start it with `tekton: true`): its CRDs are served and its webhook admits a Task.
 */
export async function requireTekton(): Promise<void> {
  const cp = await installCrds();
  await cp.kubectlOk(["wait", "--for=condition=Established", "--timeout=60s",
    "crd/pipelineruns.tekton.dev", "crd/taskruns.tekton.dev", "crd/pipelines.tekton.dev", "crd/tasks.tekton.dev"], { what: "this control plane runs no Tekton (start it with tekton: true)" });
}

let gitServer: Promise<GitServer> | undefined;
/** One real Git server (git http-backend over HTTP) per test file. */
export function sharedGitServer(): Promise<GitServer> {
  gitServer ??= startGitServer();
  return gitServer;
}
export async function stopGitServer(): Promise<void> {
  if (gitServer) await (await gitServer).stop();
}

/** A working copy pushing to a bare repository on the Git server. */
export interface SourceRepo {
  name: string;
  url: string;
  /** Commits these files (path → content) on `branch` and pushes; returns the commit. */
  commit(files: Record<string, string>, branch?: string): Promise<string>;
}

export async function sourceRepo(t: ExecutionContext, name: string): Promise<SourceRepo> {
  const server = await sharedGitServer();
  await server.createBareRepo(name);
  const work = await mkdtemp(join(tmpdir(), "slipway-src-"));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const git = (...args: string[]) => run("git", ["-C", work, "-c", "user.name=Ada", "-c", "user.email=ada@example.com", ...args]);
  await git("init", "-q", "-b", "main");
  const url = server.url(name);
  let n = 0;
  return {
    name,
    url,
    async commit(files, branch = "main") {
      const branches = (await git("branch", "--list", branch)).stdout.trim();
      const hasCommits = (await git("rev-parse", "--verify", "-q", "HEAD").catch(() => ({ stdout: "" }))).stdout.trim() !== "";
      if (hasCommits) await git("checkout", "-q", ...(branches ? [branch] : ["-b", branch]));
      else if (branch !== "main") await git("checkout", "-q", "-b", branch);
      for (const [path, content] of Object.entries(files)) {
        await mkdir(dirname(join(work, path)), { recursive: true });
        await writeFile(join(work, path), content);
      }
      await git("add", "-A");
      await git("commit", "-q", "--allow-empty", "-m", `change ${++n}`);
      await git("push", "-q", url, branch);
      return (await git("rev-parse", "HEAD")).stdout.trim();
    },
  };
}

export interface Env {
  ns: string;
  kube: Kube;
  builds: Builds;
  operator?: OperatorHandle;
  /** Sends a webhook delivery to the build module's handler over real HTTP. */
  deliver(d: Delivery): Promise<{ status: number; body: Record<string, unknown> }>;
  kubectl(args: string[], input?: string): Promise<string>;
}

/** How kwok reports the steps of one Task's pods (labels and annotation Tekton copies from the Task to its pods). */
export interface SimulatedSteps {
  /** This step exits with code 1 (and the steps after it). */
  failStep?: string;
  /** The pods never finish. */
  hang?: boolean;
  /** How long the steps take, e.g. "5s"; default 1s. */
  duration?: string;
}

/**
 * A fresh namespace with the sample Pipelines and Tasks (admitted by Tekton's webhook), the build module (and,
 * when asked, the operator) scoped to it. `tasks` sets how kwok reports the pods of a sample Task, by name.
 */
export async function setup(t: ExecutionContext, opts: {
  operator?: boolean; pipeline?: PipelineSettings; pollIntervalMs?: number; tasks?: Record<string, SimulatedSteps>; gitTimeoutMs?: number;
} = {}): Promise<Env> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  await cp.kubectlOk(["apply", "--server-side", "-k", "samples/tekton", "-n", ns], { what: `cannot install samples/tekton in ${ns}` });
  for (const [task, sim] of Object.entries(opts.tasks ?? {})) {
    const labels = [...(sim.failStep ? [`kwok.slipway.dev/fail-step=${sim.failStep}`] : []), ...(sim.hang ? ["kwok.slipway.dev/hang=true"] : [])];
    if (labels.length) await cp.kubectl(["label", "-n", ns, "task.tekton.dev", task, ...labels]);
    if (sim.duration) await cp.kubectl(["annotate", "-n", ns, "task.tekton.dev", task, `kwok.slipway.dev/step-duration=${sim.duration}`]);
  }
  const kube = new Kube(cp.kubeConfig());
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "silent" });
  const operator = opts.operator ? await startOperator({ kube, namespace: ns, logger }) : undefined;
  // Polling only when a test asks for it (pollNow), so builds here are started by webhooks.
  const builds = await startBuilds({ kube, namespace: ns, pollIntervalMs: opts.pollIntervalMs ?? 3_600_000, gitTimeoutMs: opts.gitTimeoutMs, webhookSecret: SECRET, pipeline: opts.pipeline, previewDomain: "preview.example.com", logger });
  const server = createServer((req, res) => builds.webhookHandler(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  t.teardown(async () => {
    server.closeAllConnections();
    server.close();
    await builds.stop();
    if (operator) {
      // Delete the Apps first, so the garbage collector takes their Releases and children before the namespace goes.
      await cp.kubectl(["delete", "apps.slipway.dev", "--all", "-n", ns, "--timeout=30s"]);
      await operator.stop();
    }
  });
  return {
    ns,
    kube,
    builds,
    operator,
    async deliver(d) {
      const res = await fetch(`http://127.0.0.1:${port}/hooks/source`, { method: "POST", headers: d.headers, body: new Uint8Array(d.body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    kubectl: (args, input) => cp.kubectlOk(args, { input }),
  };
}

export async function applyYaml(env: Env, yaml: string): Promise<void> {
  await env.kubectl(["apply", "--server-side", "--field-manager=e2e-user", "-n", env.ns, "-f", "-"], yaml);
}

export const getApp = (env: Env, name: string) => env.kube.get<App & KubeObject>("slipway.dev/v1alpha1", "App", env.ns, name);
export const getConfig = (env: Env, name: string) => env.kube.getIfExists<Config & KubeObject>("slipway.dev/v1alpha1", "Config", env.ns, name);
export const condition = (app: App, type: string): Condition | undefined => app.status?.conditions?.find((c) => c.type === type);

export async function pipelineRuns(env: Env, app?: string): Promise<(PipelineRun & KubeObject)[]> {
  const list = await env.kube.list<PipelineRun & KubeObject>("tekton.dev/v1", "PipelineRun", env.ns, app ? `slipway.dev/app=${app}` : undefined);
  return list.items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

export async function releases(env: Env, app: string): Promise<(Release & KubeObject)[]> {
  const list = await env.kube.list<Release & KubeObject>("slipway.dev/v1alpha1", "Release", env.ns);
  return list.items.filter((r) => r.spec.app === app).sort((a, b) => a.spec.version - b.spec.version);
}

export async function eventuallyRun(env: Env, name: string, check: (r: PipelineRun) => boolean = () => true, timeoutMs = 30_000): Promise<PipelineRun & KubeObject> {
  let last: (PipelineRun & KubeObject) | undefined;
  await waitFor(async () => {
    last = await env.kube.getIfExists<PipelineRun & KubeObject>("tekton.dev/v1", "PipelineRun", env.ns, name);
    return last !== undefined && check(last);
  }, timeoutMs, async () => `PipelineRun ${name}: ${JSON.stringify(last ?? null)}; present: ${(await pipelineRuns(env)).map((r) => r.metadata.name).join(", ")}`);
  return last!;
}

export async function eventuallyApp(env: Env, name: string, check: (a: App) => boolean, what: string, timeoutMs = 30_000): Promise<App & KubeObject> {
  let last: (App & KubeObject) | undefined;
  await waitFor(async () => {
    last = await env.kube.getIfExists<App & KubeObject>("slipway.dev/v1alpha1", "App", env.ns, name);
    return last !== undefined && check(last);
  }, timeoutMs, () => `App ${name} never ${what}; it is ${JSON.stringify(last ?? null)}`);
  return last!;
}

/**
 * Waits until the App's status says its latest build became release `version` ("v2") and that Release exists,
 * and returns the App.
 */
export async function eventuallyReleased(env: Env, name: string, version: string, timeoutMs = 60_000): Promise<App & KubeObject> {
  const app = await eventuallyApp(env, name, (a) => a.status?.latestBuild?.release === version, `released its build as ${version}`, timeoutMs);
  await waitFor(async () => (await releases(env, name)).some((r) => `v${r.spec.version}` === version), 15_000, () => `no Release ${name}-${version}`);
  return app;
}

/** A finished PipelineRun's Succeeded condition, as Tekton's controller set it. */
export function succeeded(run: PipelineRun): { status: string; reason?: string; message?: string } | undefined {
  return run.status?.conditions?.find((c) => c.type === "Succeeded");
}

/** Waits until Tekton's controller finishes the PipelineRun (Succeeded is True or False). */
export function eventuallyFinished(env: Env, name: string, timeoutMs = 90_000): Promise<PipelineRun & KubeObject> {
  return eventuallyRun(env, name, (r) => ["True", "False"].includes(succeeded(r)?.status ?? ""), timeoutMs);
}

/** The TaskRuns Tekton's controller created for a PipelineRun, by pipeline task ("clone", "build"). */
export async function taskRuns(env: Env, pipelineRun: string): Promise<Record<string, KubeObject & { status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[]; results?: { name: string; value: string }[]; podName?: string } }>> {
  const list = await env.kube.list<KubeObject & { status?: { podName?: string } }>("tekton.dev/v1", "TaskRun", env.ns, `tekton.dev/pipelineRun=${pipelineRun}`);
  return Object.fromEntries(list.items.map((tr) => [tr.metadata.labels?.["tekton.dev/pipelineTask"] ?? tr.metadata.name, tr]));
}

/** The digest kwok reports for the image a TaskRun's pod built: "sha256:" + sha256 of the pod's uid. */
export async function podDigest(env: Env, podName: string): Promise<string> {
  const pod = await env.kube.get<KubeObject>("v1", "Pod", env.ns, podName);
  return `sha256:${createHash("sha256").update(pod.metadata.uid ?? "").digest("hex")}`;
}

export function sourceAppYaml(name: string, git: string, extra = ""): string {
  return `apiVersion: slipway.dev/v1alpha1
kind: App
metadata:
  name: ${name}
spec:
  source:
    git: ${git}
    branch: main
${extra}`;
}
