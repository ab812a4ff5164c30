// The operator as a real process (`node dist/operator/main.js`) killed mid-reconcile: SIGKILL while releases
// are being cut or a rollback is under way, then a new process — the same desired state is reached with
// release numbers 1..N, none repeated, none skipped. SIGKILL right after a build's PipelineRun is created: the
// next process still releases that build. And SIGTERM: exit 0 after the reconcile in flight finished.
import test, { type ExecutionContext } from "ava";
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import type { PipelineRun } from "../operator/builds/pipelinerun.js";
import { requireTekton, sourceRepo, stopGitServer } from "./builds-support.js";
import { Operators, type LogLine, type OperatorProcess } from "./harness/operator-process.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";

const IMAGE_A = `registry.example/shop@sha256:${"a".repeat(64)}`;
const IMAGE_B = `registry.example/shop@sha256:${"b".repeat(64)}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.before(async () => {
  await installCrds();
});
test.after.always(async () => {
  await stopGitServer();
});

interface Env {
  ns: string;
  kube: Kube;
  /**
   * Starts another operator process for the namespace; `killAtCut` n: it SIGKILLs itself right after its n-th
   * release cut. `extra`: more environment.
   */
  spawn(killAtCut?: number, extra?: NodeJS.ProcessEnv): Promise<OperatorProcess>;
  /** Starts another operator process for the namespace and waits until it has listed and started. */
  start(killAtCut?: number): Promise<OperatorProcess>;
  /** Every process started so far, oldest first. */
  processes: OperatorProcess[];
  /** The output of every process, for failure messages. */
  output(): string;
}

async function setup(t: ExecutionContext): Promise<Env> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const operators = new Operators(cp, ns);
  const env: Env = {
    ns,
    kube: new Kube(cp.kubeConfig()),
    processes: operators.processes,
    output: () => operators.output(),
    spawn: (killAtCut, extra = {}) =>
      operators.spawn(`operator #${operators.processes.length + 1}`, { ...(killAtCut ? { SLIPWAY_FAULT_KILL: `after-release-cut:${killAtCut}` } : {}), ...extra }),
    async start(killAtCut) {
      const operator = await env.spawn(killAtCut);
      // Its informers have 30 s to list before it starts without them; on 2 loaded cores, with this file's tests
      // each starting an operator at once beside cli.e2e, 40 s was not always enough (four tests failed so in CI).
      await operator.until("operator started", 120_000);
      return operator;
    },
  };
  t.teardown(async () => {
    if (!t.passed) t.log(`the operators' logs:\n${env.output()}`);
    await operators.cleanup();
  });
  return env;
}

async function kubectl(args: string[], input?: string): Promise<string> {
  return (await controlPlane()).kubectlOk(args, { input });
}

const apply = (ns: string, yaml: string) => kubectl(["apply", "--server-side", "--field-manager=e2e-user", "-n", ns, "-f", "-"], yaml);

function appYaml(image: string): string {
  return `apiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata:\n  name: shop\nspec:\n  image: ${image}\n`;
}

function configYaml(env: Record<string, string>): string {
  const lines = Object.entries(env).map(([k, v]) => `    ${k}: "${v}"`).join("\n");
  return `apiVersion: slipway.dev/v1alpha1\nkind: Config\nmetadata:\n  name: shop\nspec:\n  env:\n${lines}\n`;
}

const getApp = (env: Env) => env.kube.get<App & KubeObject>("slipway.dev/v1alpha1", "App", env.ns, "shop");
const getConfig = (env: Env) => env.kube.get<Config & KubeObject>("slipway.dev/v1alpha1", "Config", env.ns, "shop");

async function releases(env: Env): Promise<Release[]> {
  const list = await env.kube.list<Release & KubeObject>("slipway.dev/v1alpha1", "Release", env.ns);
  return list.items.filter((r) => r.spec.app === "shop").sort((a, b) => a.spec.version - b.spec.version);
}

interface Deployment extends KubeObject {
  spec: { template: { spec: { containers: { image: string; env?: { name: string; value?: string }[] }[] } } };
}

const webContainer = async (env: Env) =>
  (await env.kube.get<Deployment>("apps/v1", "Deployment", env.ns, "shop-web")).spec.template.spec.containers[0];

/** Waits until the App is Ready for its current generation with `release` live, and returns it. */
async function eventuallyReady(env: Env, release: string, timeoutMs = 60_000): Promise<App & KubeObject> {
  let last: (App & KubeObject) | undefined;
  await waitFor(
    async () => {
      last = await getApp(env);
      const ready = last.status?.conditions?.find((c) => c.type === "Ready");
      return ready?.status === "True" && ready.observedGeneration === last.metadata.generation && last.status?.currentRelease === release;
    },
    timeoutMs,
    async () => `App shop not Ready with ${release}; status: ${JSON.stringify(last?.status)}; releases: ` +
      `${(await releases(env)).map((r) => `v${r.spec.version} ${r.spec.cause}`).join(" | ")}`,
  );
  return last!;
}

/** Changes the Config's STEP `count` times, 50 ms apart, as user e2e-user; resolves with the last value. */
async function burst(env: Env, from: number, count: number): Promise<number> {
  const path = await env.kube.path("slipway.dev/v1alpha1", "Config", env.ns, "shop");
  for (let step = from; step < from + count; step++) {
    await env.kube.request("PATCH", path, {
      body: { spec: { env: { STEP: String(step) } } },
      contentType: "application/merge-patch+json",
      query: { fieldManager: "e2e-user" },
    });
    await sleep(50);
  }
  return from + count - 1;
}

const releaseCut = (l: LogLine) => l.msg === "release cut";

/**
 * Waits for `operator`, started with `killAtCut`, to SIGKILL itself right after a release cut (operator/fault.ts:
 * the Release exists, nothing after it is written) and returns the release it had just cut, after checking
 * that the App's status still names it as pending (the pass's last status write did not happen).
 */
async function killedAtCut(t: ExecutionContext, env: Env, operator: OperatorProcess): Promise<number> {
  const exit = await Promise.race([operator.exited, sleep(60_000).then(() => "still running")]);
  t.like(exit, { signal: "SIGKILL" }, `${operator.name} did not kill itself at its release cut\n${operator.tail()}`);
  // The newest Release is the one it cut (its log line may not have been flushed before the kill).
  const cut = (await releases(env)).at(-1)?.spec.version ?? 0;
  // The pass that cut it had not finished: its status still names the release as pending.
  const pending = (await getApp(env)).status?.pendingRelease?.version;
  t.is(pending, cut, `${operator.name} was killed after its reconcile finished (status names ${pending ?? "no"} pending release, the cut was v${cut})`);
  return cut;
}

test("a SIGKILLed operator, restarted three times during bursts of Config changes, releases each state once as v1..vN", async (t) => {
  const env = await setup(t);
  // 1: killed right after its first release cut during a burst (its first cut is v1). Not a later one: on a
  // loaded machine one pass may come after the whole burst, and its one release holds all of it.
  let operator = await env.start(2);
  await apply(env.ns, configYaml({ GREETING: "hello", STEP: "0" }));
  await apply(env.ns, appYaml(IMAGE_A));
  await eventuallyReady(env, "v1");
  let pending = burst(env, 1, 10);
  await killedAtCut(t, env, operator);
  await pending;
  let last = await burst(env, 11, 1); // changed while no operator runs, whenever the kill came

  // 2: the next one is killed while it cuts the release catching up with what changed while none ran, which
  // may come before it logs "operator started".
  operator = await env.spawn(1);
  await killedAtCut(t, env, operator);

  // 3: the next one catches up (the release the last one cut holds the latest Config: nothing to cut), then is
  // killed at its first release cut, during another burst.
  operator = await env.start(1);
  await eventuallyReady(env, `v${(await releases(env)).length}`);
  pending = burst(env, last + 1, 10);
  await killedAtCut(t, env, operator);
  last = await pending;

  await env.start();
  let all: Release[] = [];
  await waitFor(async () => {
    all = await releases(env);
    return all.at(-1)?.spec.config.env?.STEP === String(last);
  }, 60_000, () => `no release holds the final STEP ${last}: ${all.map((r) => `v${r.spec.version} STEP=${r.spec.config.env?.STEP}`).join(", ")}`);
  const n = all.length;
  const app = await eventuallyReady(env, `v${n}`);
  all = await releases(env);

  t.deepEqual(all.map((r) => r.metadata.name), Array.from({ length: n }, (_, i) => `shop-v${i + 1}`), "release numbers are 1..N, none skipped");
  const steps = all.map((r) => Number(r.spec.config.env?.STEP));
  t.deepEqual(steps, [...steps].sort((a, b) => a - b), "every release holds a newer Config than the one before");
  t.is(new Set(steps).size, n, `no Config is released twice: ${steps.join(", ")}`);
  // v1, then at least one release per phase: the first burst, the change made while no operator ran, the
  // last burst. A burst may be one release when a pass comes after all of it (a loaded machine), so not more.
  t.true(n >= 4, `each phase was released, none merged into another's release: ${steps.join(", ")}`);
  t.deepEqual(all.at(-1)!.spec.config, { env: { GREETING: "hello", STEP: String(last) } }, "the live release holds the final Config");
  t.deepEqual((await getConfig(env)).spec.env, { GREETING: "hello", STEP: String(last) });
  t.like(app.status, { currentRelease: `v${n}`, latestReleaseNumber: n });
  t.deepEqual((await webContainer(env))?.env?.find((e) => e.name === "STEP"), { name: "STEP", value: String(last) });
  // Settled: nothing more is released.
  await sleep(2000);
  t.is((await releases(env)).length, n);
});

test("a SIGKILL during a rollback leaves exactly one rollback release once the next operator has run", async (t) => {
  const env = await setup(t);
  // Killed right after its fourth release cut: the rollback's.
  let operator = await env.start(4);
  await apply(env.ns, configYaml({ FOO: "one" }));
  await apply(env.ns, appYaml(IMAGE_A));
  await eventuallyReady(env, "v1");
  await apply(env.ns, appYaml(IMAGE_B));
  await eventuallyReady(env, "v2");
  await apply(env.ns, configYaml({ FOO: "two" }));
  await eventuallyReady(env, "v3");

  // As carol: admission refuses a changed-by that names anyone but the requester (operator/deploy/admission.yaml).
  await kubectl(["annotate", "--as=carol", "--as-group=system:masters", "-n", env.ns, "apps.slipway.dev/shop", "slipway.dev/rollback-to=v1", "slipway.dev/changed-by=carol"]);
  t.is(await killedAtCut(t, env, operator), 4);
  t.is((await getApp(env)).metadata.annotations?.["slipway.dev/rollback-to"], "v1", "killed before the rollback was finished");

  // The next one is killed too, as soon as it has started resuming the rollback.
  operator = await env.start();
  operator.kill("SIGKILL");
  await operator.exited;

  await env.start();
  const app = await eventuallyReady(env, "v4");
  const all = await releases(env);
  t.deepEqual(all.map((r) => r.spec.version), [1, 2, 3, 4]);
  t.is(all.filter((r) => r.spec.rollbackOf !== undefined).length, 1, "exactly one rollback release");
  t.like(all[3]!.spec, { cause: "rollback to v1", rollbackOf: 1, requestedBy: "carol", build: { image: IMAGE_A } });
  t.deepEqual(all[3]!.spec.config, { env: { FOO: "one" } });
  t.is(app.spec.image, IMAGE_A, "the App's image is back at v1's");
  t.is(app.metadata.annotations?.["slipway.dev/rollback-to"], undefined, "the annotation is removed");
  t.deepEqual((await getConfig(env)).spec.env, { FOO: "one" }, "the Config is back at v1's");
  t.like(app.status, { currentRelease: "v4", latestReleaseNumber: 4 });
  t.is((await webContainer(env))?.image, IMAGE_A);
  await sleep(2000);
  t.is((await releases(env)).length, 4, "nothing more is released");
});

test("SIGTERM mid-reconcile: the operator finishes the reconcile in flight, then exits 0 within its shutdown deadline", async (t) => {
  const env = await setup(t);
  const operator = await env.start();
  await apply(env.ns, configYaml({ FOO: "one" }));
  await apply(env.ns, appYaml(IMAGE_A));
  await eventuallyReady(env, "v1");

  const from = operator.lines.length;
  await kubectl(["patch", "-n", env.ns, "configs.slipway.dev/shop", "--type=merge", "-p", '{"spec":{"env":{"FOO":"two"}}}']);
  await operator.when(releaseCut, { from, signal: "SIGTERM" });
  // The shutdown deadline is 10 s (operator/shutdown.ts); past it the process would exit 1, not 0.
  const exit = await Promise.race([operator.exited, sleep(15_000).then(() => "still running")]);
  t.deepEqual(exit, { code: 0, signal: null }, `exits 0 after SIGTERM\n${operator.tail()}`);
  t.truthy(operator.lines.find((l) => l.msg === "operator stopped"), "the operator stopped its watches and queue");

  // With no operator running, the reconcile that cut v2 has rolled it out and recorded it.
  const app = await getApp(env);
  t.like(app.status, { currentRelease: "v2", latestReleaseNumber: 2 });
  t.deepEqual((await webContainer(env))?.env?.find((e) => e.name === "FOO"), { name: "FOO", value: "two" });
  t.deepEqual((await releases(env)).map((r) => r.spec.version), [1, 2]);
});

test("SIGTERM while the operator is still starting: it stops what it started, then exits 0", async (t) => {
  const env = await setup(t);
  const first = await env.start();
  await apply(env.ns, configYaml({ FOO: "one" }));
  await apply(env.ns, appYaml(IMAGE_A));
  await eventuallyReady(env, "v1");
  first.kill("SIGKILL");
  await first.exited;
  await apply(env.ns, configYaml({ FOO: "two" }));

  // SIGTERM as soon as the health endpoints serve: the watches are still listing, the catch-up reconcile may begin.
  const operator = await env.spawn();
  await operator.when((l) => l.msg === "serving /healthz, /readyz and /metrics", { signal: "SIGTERM" });
  // Within the 10 s shutdown deadline, with room for a loaded machine; past the deadline it would exit 1.
  const exit = await Promise.race([operator.exited, sleep(15_000).then(() => "still running")]);
  t.deepEqual(exit, { code: 0, signal: null }, "exits 0 after SIGTERM");
  t.truthy(operator.lines.find((l) => l.msg === "operator stopped"), "the operator stopped its watches and queue");
  const cut = (await releases(env)).at(-1)!.spec.version;
  t.is((await getApp(env)).status?.latestReleaseNumber, cut, "a release cut before the exit is recorded in status");
});

test("a SIGKILL right after a build's PipelineRun is created loses no build: the next operator releases it, not as superseded", async (t) => {
  await requireTekton();
  const env = await setup(t);
  await kubectl(["apply", "--server-side", "-k", "samples/tekton", "-n", env.ns]);
  const src = await sourceRepo(t, `crash-build-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./server\n" });
  await apply(env.ns, configYaml({ MODE: "crash" }));
  await apply(env.ns, `apiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata:\n  name: shop\nspec:\n  source:\n    git: ${src.url}\n    branch: main\n`);
  const run = `shop-build-${commit.slice(0, 7)}`;
  // Polling the source finds the commit at once; the process kills itself right after creating its PipelineRun.
  const builds = { SLIPWAY_BUILDS: "true", SLIPWAY_SOURCE_POLL_SECONDS: "2" };
  const first = await env.spawn(0, { ...builds, SLIPWAY_FAULT_KILL: "after-pipelinerun-created" });
  const exit = await Promise.race([first.exited, sleep(90_000).then(() => "still running")]);
  t.like(exit, { signal: "SIGKILL" }, `the operator did not kill itself after creating the PipelineRun\n${first.tail()}`);
  t.truthy(await env.kube.getIfExists("tekton.dev/v1", "PipelineRun", env.ns, run), "the PipelineRun was created before the kill");

  await env.spawn(0, builds);
  // The next process records the run's outcome once Tekton's controller has finished it.
  let finished: (PipelineRun & KubeObject) | undefined;
  await waitFor(async () => (finished = await env.kube.get<PipelineRun & KubeObject>("tekton.dev/v1", "PipelineRun", env.ns, run)).metadata.annotations?.["slipway.dev/build-recorded"] !== undefined,
    120_000, () => `the build was never recorded: ${JSON.stringify(finished?.status?.conditions)}`);
  t.is(finished?.metadata.annotations?.["slipway.dev/build-recorded"], "Succeeded", "recorded as the App's build, not Superseded");
  let all: Release[] = [];
  await waitFor(async () => (all = await releases(env)).length > 0, 60_000,
    async () => `no release of the build; App status ${JSON.stringify((await getApp(env)).status)}`);
  const digest = finished?.status?.results?.find((r) => r.name === "APP_IMAGE_DIGEST")?.value ?? "";
  t.like(all[0]!.spec, { version: 1, cause: `deploy ${commit.slice(0, 7)}`, requestedBy: `build ${run}`, build: { sourceCommit: commit, pipelineRun: run } });
  t.true(all[0]!.spec.build.image.endsWith(`@${digest}`), `the release runs the build's image ${digest}: ${all[0]!.spec.build.image}`);
  const app = await eventuallyReady(env, "v1", 120_000);
  t.like(app.status?.latestBuild, { pipelineRun: run, commit, phase: "Succeeded", release: "v1" });
  t.is(all.length, 1);
});
