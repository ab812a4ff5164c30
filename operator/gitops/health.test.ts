// Runs the Argo CD health checks shipped in samples/gitops/argocd/argocd-cm-health.yaml with Argo CD's own
// evaluation (argocd-lua: Argo CD's util/lua VM.ExecuteHealthLua, built by e2e/controlplane/build.sh from the
// pinned Argo CD module): its gopher-lua (Lua 5.1), its sandbox (no io, no string or math library, unless
// useOpenLibs), its conversion of the object into Lua tables and its checks of the returned status,
// against statuses built by the operator's own code. One argocd-lua process evaluates every case of this file.
import test from "ava";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { LABELS, type Condition } from "../../crds/v1alpha1.js";
import { argocdLuaPath } from "../local/tools.js";
import { readRollout } from "../app-reconciler.js";
import { summarize, type Summary } from "../conditions.js";

const CONFIG_MAP = fileURLToPath(new URL("../../../samples/gitops/argocd/argocd-cm-health.yaml", import.meta.url));
// $SLIPWAY_ARGOCD_LUA, or built (once per machine) and found by build.sh --argocd-lua; throws if neither works.
const ARGOCD_LUA = argocdLuaPath();
const ARGO_HEALTH = ["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"];
const NOW = new Date("2025-01-01T00:00:00Z");
/** What Argo CD's ExecuteHealthLua puts in place of a status that is not one of ARGO_HEALTH. */
const INVALID_STATUS = "Lua returned an invalid health status";

interface Health {
  status: string;
  message: string;
}

type Kind = "App" | "Config" | "Release";

/** The Lua health script for a kind, as Argo CD reads it from argocd-cm. */
function script(kind: Kind): string {
  const data = (parse(readFileSync(CONFIG_MAP, "utf8")) as { data: Record<string, string> }).data;
  const lua = data[`resource.customizations.health.slipway.dev_${kind}`];
  if (!lua) throw new Error(`argocd-cm has no health check for slipway.dev ${kind}`);
  return lua;
}

interface Result {
  health: { status?: string; message?: string } | null;
  error?: string;
}

/** One argocd-lua process for the file: a JSON request per line in, a JSON result per line out, in order. */
const evaluator = (() => {
  const child = spawn(ARGOCD_LUA, [], { stdio: ["pipe", "pipe", "pipe"] });
  const pending: { resolve: (r: Result) => void; reject: (e: Error) => void }[] = [];
  let stderr = "";
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    for (const p of pending.splice(0)) p.reject(failure);
  };
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.on("error", (cause) => fail(new Error(`cannot run ${ARGOCD_LUA}`, { cause })));
  child.on("close", (code) => fail(new Error(`${ARGOCD_LUA} exited (${code}): ${stderr}`)));
  child.stdin.on("error", (cause) => fail(new Error(`cannot write to ${ARGOCD_LUA}: ${stderr}`, { cause })));
  createInterface({ input: child.stdout }).on("line", (line) => pending.shift()?.resolve(JSON.parse(line) as Result));
  return {
    evaluate(request: { script: string; obj: unknown }): Promise<Result> {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        pending.push({ resolve, reject });
        child.stdin.write(`${JSON.stringify(request)}\n`);
      });
    },
    close: () => child.stdin.end(),
  };
})();

test.after.always("stop argocd-lua", () => evaluator.close());

/** Runs a Lua health script on `obj` as Argo CD does; throws where Argo CD would not get a valid status. */
async function lua(source: string, obj: unknown, name: string): Promise<Health> {
  const result = await evaluator.evaluate({ script: source, obj });
  if (result.error !== undefined) throw new Error(`the Lua health check ${name} failed: ${result.error}`);
  if (result.health === null) throw new Error(`the Lua health check ${name} returned nil`);
  if (result.health.message === INVALID_STATUS) throw new Error(`the Lua health check ${name} returned an invalid status`);
  return { status: result.health.status ?? "", message: result.health.message ?? "" };
}

/** Runs a kind's script with `obj` set, as Argo CD does, and returns the status and message it returns. */
function health(kind: Kind, obj: object): Promise<Health> {
  return lua(script(kind), obj, `slipway.dev_${kind}`);
}

function app(generation: number, status?: object, spec: object = { image: "registry.example.com/web@sha256:" + "a".repeat(64) }) {
  return {
    apiVersion: "slipway.dev/v1alpha1",
    kind: "App",
    metadata: { name: "web", namespace: "team-a", generation, uid: "0d6f1c1e" },
    spec,
    ...(status ? { status } : {}),
  };
}

/** The status the operator writes for a summary at `generation` (conditions.ts decides all three conditions). */
function statusFor(summary: Summary, generation: number, extra: Condition[] = []): object {
  return { observedGeneration: generation, conditions: summarize(extra, summary, generation, NOW) };
}

function deployment(generation: number, replicas: number, available: number, progressing?: { reason: string; message: string }) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web-web", generation, labels: { [LABELS.process]: "web" } },
    spec: { replicas },
    status: {
      observedGeneration: generation,
      replicas,
      updatedReplicas: replicas,
      availableReplicas: available,
      conditions: progressing ? [{ type: "Progressing", status: "False", ...progressing }] : [],
    },
  } as unknown as Parameters<typeof readRollout>[0][number];
}

test("the checks run under Lua 5.1, as Argo CD's gopher-lua reads them", async (t) => {
  t.is((await lua(`return { status = "Healthy", message = _VERSION }`, {}, "_VERSION")).message, "Lua 5.1");
});

test("every shipped health check returns an Argo CD health status for a bare object", async (t) => {
  for (const kind of ["App", "Config", "Release"] as const) {
    const bare = { apiVersion: "slipway.dev/v1alpha1", kind, metadata: { name: "web", namespace: "team-a", generation: 1 }, spec: {} };
    t.true(ARGO_HEALTH.includes((await health(kind, bare)).status), kind);
  }
});

test("an App the operator has not written status for yet is Progressing", async (t) => {
  t.deepEqual(await health("App", app(1)), { status: "Progressing", message: "Waiting for the Slipway operator" });
});

test("an App whose new generation the operator has not observed is Progressing, whatever its old conditions say", async (t) => {
  const ready = statusFor({ state: "ready", reason: "RolloutComplete", message: "release v2 is rolled out: web 2/2" }, 2);
  t.deepEqual(await health("App", app(3, ready)), {
    status: "Progressing",
    message: "Waiting for the Slipway operator to observe generation 3",
  });
});

test("an App the operator has just picked up is Progressing with the generation it reconciles", async (t) => {
  // The first write of a reconcile: Reconciling=True and Ready=Unknown, reason Progressing.
  const status = statusFor({ state: "progressing", reason: "Progressing", message: "reconciling generation 4" }, 4);
  t.deepEqual(await health("App", app(4, status)), { status: "Progressing", message: "reconciling generation 4" });
});

test("an App rolling out a release is Progressing with the rollout message", async (t) => {
  const rollout = readRollout([deployment(1, 3, 1)], "v5");
  const status = statusFor({ state: "progressing", reason: "RollingOut", message: rollout.message }, 2);
  t.deepEqual(await health("App", app(2, status)), {
    status: "Progressing",
    message: "rolling out release v5: web 3/3 updated, 1/3 available",
  });
});

test("an App rolled out at the generation it observed is Healthy with the Ready message", async (t) => {
  const rollout = readRollout([deployment(1, 2, 2)], "v5");
  t.true(rollout.done);
  const built: Condition = { type: "Built", status: "True", reason: "Succeeded", message: "Built commit 1a2b3c4", lastTransitionTime: "2025-01-01T00:00:00Z" };
  const status = statusFor({ state: "ready", reason: "RolloutComplete", message: rollout.message }, 7, [built]);
  t.deepEqual(await health("App", app(7, status)), { status: "Healthy", message: "release v5 is rolled out: web 2/2" });
});

test("an App waiting for its first build is Progressing, not Degraded, though Ready is False", async (t) => {
  const message = "waiting for the first build of https://git.example.com/team-a/web.git";
  const status = statusFor({ state: "waiting", reason: "AwaitingBuild", message }, 1);
  t.deepEqual(await health("App", app(1, status)), { status: "Progressing", message });
});

test("an App retrying a transient failure is Progressing with the failure", async (t) => {
  const message = "cannot apply Deployment web-web: connect ECONNREFUSED 10.96.0.1:443";
  const status = statusFor({ state: "retrying", reason: "ReconcileFailed", message }, 2);
  t.deepEqual(await health("App", app(2, status)), { status: "Progressing", message });
});

test("an App with an invalid spec is Degraded with the Stalled message", async (t) => {
  const message = "the App needs spec.image or spec.source";
  const status = statusFor({ state: "stalled", reason: "InvalidSpec", message }, 3);
  t.deepEqual(await health("App", app(3, status)), { status: "Degraded", message });
});

test("an App whose rollout passed its deadline is Degraded with the Stalled message", async (t) => {
  const rollout = readRollout(
    [deployment(1, 2, 1, { reason: "ProgressDeadlineExceeded", message: 'ReplicaSet "web-web-5d8f" has timed out progressing.' })],
    "v6",
    { previous: "v5" },
  );
  t.truthy(rollout.stalled);
  const status = statusFor({ state: "stalled", reason: "RolloutStalled", message: rollout.stalled ?? "" }, 5);
  t.deepEqual(await health("App", app(5, status)), {
    status: "Degraded",
    message:
      "Deployment web-web of release v6 made no progress within its deadline (2/2 updated, 1/2 available): " +
      'ReplicaSet "web-web-5d8f" has timed out progressing.; the previous release v5 keeps serving',
  });
});

test("an App with Ready=False and neither Reconciling nor Stalled is Progressing, as kstatus reads it", async (t) => {
  const status = {
    observedGeneration: 2,
    conditions: [{ type: "Ready", status: "False", reason: "RollingOut", message: "rolling out release v3", lastTransitionTime: "2025-01-01T00:00:00Z" }],
  };
  t.deepEqual(await health("App", app(2, status)), { status: "Progressing", message: "rolling out release v3" });
});

test("a suspended App is Suspended, even with a generation the operator has not observed", async (t) => {
  const ready = statusFor({ state: "ready", reason: "RolloutComplete", message: "release v2 is rolled out: web 1/1" }, 2);
  const suspended = app(3, ready, { image: "registry.example.com/web@sha256:" + "b".repeat(64), suspend: true });
  t.is((await health("App", suspended)).status, "Suspended");
  t.is((await health("App", app(1, undefined, { image: "registry.example.com/web", suspend: true }))).status, "Suspended");
});

test("an App with suspend: false is read as any other App", async (t) => {
  t.is((await health("App", app(1, undefined, { image: "registry.example.com/web", suspend: false }))).status, "Progressing");
});

test("messages with quotes, backslashes and non-ASCII text come through unchanged", async (t) => {
  const message = 'cannot roll back to "v9": App web has no release v9 (v1–v3) \\ fix it';
  const status = statusFor({ state: "stalled", reason: "RollbackTargetNotFound", message }, 1);
  t.deepEqual(await health("App", app(1, status)), { status: "Degraded", message });
});

function release(status?: object) {
  return {
    apiVersion: "slipway.dev/v1alpha1",
    kind: "Release",
    metadata: { name: "web-v3", namespace: "team-a", generation: 1 },
    spec: { app: "web", version: 3, cause: "set FOO", build: { image: "registry.example.com/web@sha256:" + "c".repeat(64) }, config: {} },
    ...(status ? { status } : {}),
  };
}

test("a Release is Healthy once created: the operator writes no conditions on it", async (t) => {
  t.deepEqual(await health("Release", release()), { status: "Healthy", message: "" });
  t.deepEqual(await health("Release", release({ commit: "1a2b3c4d5e6f" })), { status: "Healthy", message: "" });
});

test("a Release that is not live (Ready=False) is still Healthy: it is a record", async (t) => {
  const notLive = { conditions: [{ type: "Ready", status: "False", reason: "Superseded", message: "v4 is live", lastTransitionTime: "2025-01-01T00:00:00Z" }] };
  t.is((await health("Release", release(notLive))).status, "Healthy");
});

test("a Release with Reconciling=True is Progressing, whatever Ready says", async (t) => {
  const retrying = statusFor({ state: "retrying", reason: "ReconcileFailed", message: "timeout" }, 1);
  t.deepEqual(await health("Release", release(retrying)), { status: "Progressing", message: "timeout" });
});

test("a Release with Stalled=True is Degraded", async (t) => {
  const stalled = { conditions: [{ type: "Stalled", status: "True", reason: "InvalidSpec", message: "bad", lastTransitionTime: "2025-01-01T00:00:00Z" }] };
  t.deepEqual(await health("Release", release(stalled)), { status: "Degraded", message: "bad" });
});

function config(generation: number, status?: object) {
  return {
    apiVersion: "slipway.dev/v1alpha1",
    kind: "Config",
    metadata: { name: "web", namespace: "team-a", generation },
    spec: { env: { FOO: "bar" } },
    ...(status ? { status } : {}),
  };
}

test("a Config is Healthy with no status and with the commit GitOps records", async (t) => {
  t.deepEqual(await health("Config", config(1)), { status: "Healthy", message: "" });
  t.deepEqual(await health("Config", config(2, { commit: "1a2b3c4d5e6f" })), { status: "Healthy", message: "" });
});

test("a Config is Healthy when its generation is observed, Progressing while it is not", async (t) => {
  const ready = (generation: number) => statusFor({ state: "ready", reason: "Released", message: "in release v3" }, generation);
  t.is((await health("Config", config(2, ready(2)))).status, "Healthy");
  t.deepEqual(await health("Config", config(3, ready(2))), {
    status: "Progressing",
    message: "Waiting for the Slipway operator to observe generation 3",
  });
});

test("a Config with Stalled=True is Degraded, with Reconciling=True Progressing", async (t) => {
  const stalled = statusFor({ state: "stalled", reason: "InvalidSpec", message: "FOO is set in env and secretEnv" }, 1);
  t.deepEqual(await health("Config", config(1, stalled)), { status: "Degraded", message: "FOO is set in env and secretEnv" });
  const retrying = statusFor({ state: "retrying", reason: "ReconcileFailed", message: "timeout" }, 1);
  t.deepEqual(await health("Config", config(1, retrying)), { status: "Progressing", message: "timeout" });
});

/**
 * kstatus's generic rules for a custom resource (sigs.k8s.io/cli-utils pkg/kstatus/status, which Flux uses):
 * a seen-but-stale observedGeneration is InProgress, then Reconciling=True is InProgress, Stalled=True is
 * Failed, and anything else is Current. Ready is not read.
 */
function kstatus(obj: { metadata: { generation?: number }; status?: { observedGeneration?: number; conditions?: Condition[] } }) {
  const observed = obj.status?.observedGeneration;
  if (obj.metadata.generation !== undefined && observed !== undefined && observed !== obj.metadata.generation) return "InProgress";
  for (const c of obj.status?.conditions ?? []) {
    if (c.type === "Reconciling" && c.status === "True") return "InProgress";
    if (c.type === "Stalled" && c.status === "True") return "Failed";
  }
  return "Current";
}

test("Flux's kstatus reads every state the operator writes on an App as Argo CD does", async (t) => {
  const argo = { Current: "Healthy", InProgress: "Progressing", Failed: "Degraded" } as const;
  const states: Summary[] = [
    { state: "progressing", reason: "Progressing", message: "reconciling generation 2" },
    { state: "progressing", reason: "RollingOut", message: "rolling out release v2: web 0/1 updated, 0/1 available" },
    { state: "waiting", reason: "AwaitingBuild", message: "waiting for the first build of https://git.example.com/web.git" },
    { state: "retrying", reason: "ReconcileFailed", message: "timeout" },
    { state: "stalled", reason: "InvalidSpec", message: "the App needs spec.image or spec.source" },
    { state: "ready", reason: "RolloutComplete", message: "release v2 is rolled out: web 1/1" },
  ];
  for (const summary of states) {
    for (const generation of [2, 3]) {
      const obj = app(generation, statusFor(summary, 2)) as Parameters<typeof kstatus>[0];
      t.is((await health("App", obj)).status, argo[kstatus(obj)], `${summary.state} (${summary.reason}) at generation ${generation}`);
    }
  }
});
