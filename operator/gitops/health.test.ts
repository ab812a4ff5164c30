// Runs the Argo CD health checks shipped in samples/gitops/argocd/argocd-cm-health.yaml under a real Lua 5.1
// (Argo CD's gopher-lua has Lua 5.1 semantics), against statuses built by the operator's own code.
import test from "ava";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { LABELS, type Condition } from "../../crds/v1alpha1.js";
import { readRollout } from "../app-reconciler.js";
import { summarize, type Summary } from "../conditions.js";

const CONFIG_MAP = fileURLToPath(new URL("../../../samples/gitops/argocd/argocd-cm-health.yaml", import.meta.url));
const LUA = process.env.LUA ?? "lua5.1";
const ARGO_HEALTH = ["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"];
const NOW = new Date("2025-01-01T00:00:00Z");

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

/** A Lua table literal for a JSON value; strings are escaped byte by byte, as Lua 5.1 has no \u escapes. */
function luaValue(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "boolean" || typeof value === "number") return String(value);
  if (typeof value === "string") {
    let out = '"';
    for (const byte of Buffer.from(value, "utf8")) {
      out += byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c ? String.fromCharCode(byte) : `\\${byte}`;
    }
    return `${out}"`;
  }
  if (Array.isArray(value)) return `{${value.map(luaValue).join(", ")}}`;
  return `{${Object.entries(value as object).map(([k, v]) => `[${luaValue(k)}] = ${luaValue(v)}`).join(", ")}}`;
}

function lua(program: string): string {
  try {
    return execFileSync(LUA, ["-"], { input: program, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  } catch (err) {
    const cause = err as NodeJS.ErrnoException & { stderr?: string };
    if (cause.code === "ENOENT") throw new Error(`${LUA} is not installed (apt-get install -y lua5.1)`, { cause });
    throw new Error(`the Lua health check failed: ${cause.stderr ?? cause.message}`, { cause });
  }
}

/** Runs a kind's script with `obj` set, as Argo CD does, and returns the table it returns. */
function health(kind: Kind, obj: object): Health {
  const source = script(kind);
  let level = "";
  while (source.includes(`]${level}]`)) level += "=";
  const harness = [
    `obj = ${luaValue(obj)}`,
    `local chunk = assert(loadstring([${level}[${source}]${level}], "slipway.dev_${kind}"))`,
    `local hs = chunk()`,
    `assert(type(hs) == "table", "the health check returned " .. type(hs))`,
    `assert(type(hs.status) == "string", "hs.status is " .. type(hs.status))`,
    `io.write(hs.status, "\\n", tostring(hs.message or ""))`,
  ].join("\n");
  const out = lua(harness);
  const newline = out.indexOf("\n");
  return { status: out.slice(0, newline), message: out.slice(newline + 1) };
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

test("the checks run under Lua 5.1, as Argo CD's gopher-lua reads them", (t) => {
  t.is(lua(`io.write(_VERSION)`), "Lua 5.1");
});

test("every shipped health check returns an Argo CD health status for a bare object", (t) => {
  for (const kind of ["App", "Config", "Release"] as const) {
    const bare = { apiVersion: "slipway.dev/v1alpha1", kind, metadata: { name: "web", namespace: "team-a", generation: 1 }, spec: {} };
    t.true(ARGO_HEALTH.includes(health(kind, bare).status), kind);
  }
});

test("an App the operator has not written status for yet is Progressing", (t) => {
  t.deepEqual(health("App", app(1)), { status: "Progressing", message: "Waiting for the Slipway operator" });
});

test("an App whose new generation the operator has not observed is Progressing, whatever its old conditions say", (t) => {
  const ready = statusFor({ state: "ready", reason: "RolloutComplete", message: "release v2 is rolled out: web 2/2" }, 2);
  t.deepEqual(health("App", app(3, ready)), {
    status: "Progressing",
    message: "Waiting for the Slipway operator to observe generation 3",
  });
});

test("an App the operator has just picked up is Progressing with the generation it reconciles", (t) => {
  // The first write of a reconcile: Reconciling=True and Ready=Unknown, reason Progressing.
  const status = statusFor({ state: "progressing", reason: "Progressing", message: "reconciling generation 4" }, 4);
  t.deepEqual(health("App", app(4, status)), { status: "Progressing", message: "reconciling generation 4" });
});

test("an App rolling out a release is Progressing with the rollout message", (t) => {
  const rollout = readRollout([deployment(1, 3, 1)], "v5");
  const status = statusFor({ state: "progressing", reason: "RollingOut", message: rollout.message }, 2);
  t.deepEqual(health("App", app(2, status)), {
    status: "Progressing",
    message: "rolling out release v5: web 3/3 updated, 1/3 available",
  });
});

test("an App rolled out at the generation it observed is Healthy with the Ready message", (t) => {
  const rollout = readRollout([deployment(1, 2, 2)], "v5");
  t.true(rollout.done);
  const built: Condition = { type: "Built", status: "True", reason: "Succeeded", message: "Built commit 1a2b3c4", lastTransitionTime: "2025-01-01T00:00:00Z" };
  const status = statusFor({ state: "ready", reason: "RolloutComplete", message: rollout.message }, 7, [built]);
  t.deepEqual(health("App", app(7, status)), { status: "Healthy", message: "release v5 is rolled out: web 2/2" });
});

test("an App waiting for its first build is Progressing, not Degraded, though Ready is False", (t) => {
  const message = "waiting for the first build of https://git.example.com/team-a/web.git";
  const status = statusFor({ state: "waiting", reason: "AwaitingBuild", message }, 1);
  t.deepEqual(health("App", app(1, status)), { status: "Progressing", message });
});

test("an App retrying a transient failure is Progressing with the failure", (t) => {
  const message = "cannot apply Deployment web-web: connect ECONNREFUSED 10.96.0.1:443";
  const status = statusFor({ state: "retrying", reason: "ReconcileFailed", message }, 2);
  t.deepEqual(health("App", app(2, status)), { status: "Progressing", message });
});

test("an App with an invalid spec is Degraded with the Stalled message", (t) => {
  const message = "the App needs spec.image or spec.source";
  const status = statusFor({ state: "stalled", reason: "InvalidSpec", message }, 3);
  t.deepEqual(health("App", app(3, status)), { status: "Degraded", message });
});

test("an App whose rollout passed its deadline is Degraded with the Stalled message", (t) => {
  const rollout = readRollout(
    [deployment(1, 2, 1, { reason: "ProgressDeadlineExceeded", message: 'ReplicaSet "web-web-5d8f" has timed out progressing.' })],
    "v6",
  );
  t.truthy(rollout.stalled);
  const status = statusFor({ state: "stalled", reason: "RolloutStalled", message: rollout.stalled ?? "" }, 5);
  t.deepEqual(health("App", app(5, status)), {
    status: "Degraded",
    message:
      "Deployment web-web of release v6 made no progress within its deadline (2/2 updated, 1/2 available): " +
      'ReplicaSet "web-web-5d8f" has timed out progressing.; the previous release keeps serving',
  });
});

test("an App with Ready=False and neither Reconciling nor Stalled is Progressing, as kstatus reads it", (t) => {
  const status = {
    observedGeneration: 2,
    conditions: [{ type: "Ready", status: "False", reason: "RollingOut", message: "rolling out release v3", lastTransitionTime: "2025-01-01T00:00:00Z" }],
  };
  t.deepEqual(health("App", app(2, status)), { status: "Progressing", message: "rolling out release v3" });
});

test("a suspended App is Suspended, even with a generation the operator has not observed", (t) => {
  const ready = statusFor({ state: "ready", reason: "RolloutComplete", message: "release v2 is rolled out: web 1/1" }, 2);
  const suspended = app(3, ready, { image: "registry.example.com/web@sha256:" + "b".repeat(64), suspend: true });
  t.is(health("App", suspended).status, "Suspended");
  t.is(health("App", app(1, undefined, { image: "registry.example.com/web", suspend: true })).status, "Suspended");
});

test("an App with suspend: false is read as any other App", (t) => {
  t.is(health("App", app(1, undefined, { image: "registry.example.com/web", suspend: false })).status, "Progressing");
});

test("messages with quotes, backslashes and non-ASCII text come through unchanged", (t) => {
  const message = 'cannot roll back to "v9": App web has no release v9 (v1–v3) \\ fix it';
  const status = statusFor({ state: "stalled", reason: "RollbackTargetNotFound", message }, 1);
  t.deepEqual(health("App", app(1, status)), { status: "Degraded", message });
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

test("a Release is Healthy once created: the operator writes no conditions on it", (t) => {
  t.deepEqual(health("Release", release()), { status: "Healthy", message: "" });
  t.deepEqual(health("Release", release({ commit: "1a2b3c4d5e6f" })), { status: "Healthy", message: "" });
});

test("a Release that is not live (Ready=False) is still Healthy: it is a record", (t) => {
  const notLive = { conditions: [{ type: "Ready", status: "False", reason: "Superseded", message: "v4 is live", lastTransitionTime: "2025-01-01T00:00:00Z" }] };
  t.is(health("Release", release(notLive)).status, "Healthy");
});

test("a Release with Reconciling=True is Progressing, whatever Ready says", (t) => {
  const retrying = statusFor({ state: "retrying", reason: "ReconcileFailed", message: "timeout" }, 1);
  t.deepEqual(health("Release", release(retrying)), { status: "Progressing", message: "timeout" });
});

test("a Release with Stalled=True is Degraded", (t) => {
  const stalled = { conditions: [{ type: "Stalled", status: "True", reason: "InvalidSpec", message: "bad", lastTransitionTime: "2025-01-01T00:00:00Z" }] };
  t.deepEqual(health("Release", release(stalled)), { status: "Degraded", message: "bad" });
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

test("a Config is Healthy with no status and with the commit GitOps records", (t) => {
  t.deepEqual(health("Config", config(1)), { status: "Healthy", message: "" });
  t.deepEqual(health("Config", config(2, { commit: "1a2b3c4d5e6f" })), { status: "Healthy", message: "" });
});

test("a Config is Healthy when its generation is observed, Progressing while it is not", (t) => {
  const ready = (generation: number) => statusFor({ state: "ready", reason: "Released", message: "in release v3" }, generation);
  t.is(health("Config", config(2, ready(2))).status, "Healthy");
  t.deepEqual(health("Config", config(3, ready(2))), {
    status: "Progressing",
    message: "Waiting for the Slipway operator to observe generation 3",
  });
});

test("a Config with Stalled=True is Degraded, with Reconciling=True Progressing", (t) => {
  const stalled = statusFor({ state: "stalled", reason: "InvalidSpec", message: "FOO is set in env and secretEnv" }, 1);
  t.deepEqual(health("Config", config(1, stalled)), { status: "Degraded", message: "FOO is set in env and secretEnv" });
  const retrying = statusFor({ state: "retrying", reason: "ReconcileFailed", message: "timeout" }, 1);
  t.deepEqual(health("Config", config(1, retrying)), { status: "Progressing", message: "timeout" });
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

test("Flux's kstatus reads every state the operator writes on an App as Argo CD does", (t) => {
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
      t.is(health("App", obj).status, argo[kstatus(obj)], `${summary.state} (${summary.reason}) at generation ${generation}`);
    }
  }
});
