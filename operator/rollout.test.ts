import test from "ava";
import type { App } from "../crds/v1alpha1.js";
import { deferProgress, keepsServing, podProblem, PROGRESS_FIRST_WRITE_MS, PROGRESS_WRITE_MS, readRollout, servingPods, type PodObject } from "./app-reconciler.js";

const deployment = (generation: number, status: Record<string, unknown>) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "shop-web", namespace: "team-a", generation, labels: { "slipway.dev/process": "web" } },
  spec: { replicas: 2 },
  status,
});

test("a Deployment whose controller has not seen its new spec is not rolled out, whatever its old status says", (t) => {
  const r = readRollout([deployment(3, { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2 })], "v4");
  t.false(r.done);
  t.is(r.message, "rolling out release v4: web 2/2 updated, 2/2 available");
});

test("an observed Deployment with every replica updated and available is rolled out", (t) => {
  const r = readRollout([deployment(3, { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 })], "v4");
  t.true(r.done);
  t.deepEqual(r.processes, { web: { desired: 2, available: 2, updated: 2 } });
  t.is(r.message, "release v4 is rolled out: web 2/2");
});

test("a brand-new Deployment without status is not rolled out; one past its deadline stalls with the reason", (t) => {
  const fresh = readRollout([deployment(1, {})], "v1");
  t.false(fresh.done);
  t.is(fresh.stalled, undefined);
  const stuck = readRollout([deployment(1, {
    observedGeneration: 1, replicas: 2, updatedReplicas: 1, availableReplicas: 0,
    conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded", message: 'ReplicaSet "shop-web-1" has timed out progressing.' }],
  })], "v1");
  t.false(stuck.done);
  t.regex(stuck.stalled ?? "", /^Deployment shop-web of release v1 made no progress within its deadline \(1\/2 updated, 0\/2 available\)/);
  t.regex(stuck.stalled ?? "", /timed out progressing\.; there is no earlier release to keep serving$/);
});

test("a stalled rollout names the pods' reason and the release that keeps serving", (t) => {
  const status = {
    observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 0,
    conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded", message: "timed out" }],
  };
  const unschedulable = podProblem({
    apiVersion: "v1", kind: "Pod", metadata: { name: "shop-web-abc" },
    status: { conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes are available: 1 Too many pods." }] },
  });
  t.is(unschedulable, "pod shop-web-abc is not scheduled: Unschedulable: 0/1 nodes are available: 1 Too many pods.");
  const stuck = readRollout([deployment(1, status)], "v4", { previous: "v3", podProblems: new Map([["shop-web", unschedulable ?? ""]]) });
  t.is(stuck.stalled, "Deployment shop-web of release v4 made no progress within its deadline (1/2 updated, 0/2 available): " +
    "pod shop-web-abc is not scheduled: Unschedulable: 0/1 nodes are available: 1 Too many pods.; the previous release v3 keeps serving");
  // With the pods read, the counts are of the stalled release's own pods: the Deployment's availableReplicas (1
  // here) counts the previous release's pod that keeps serving.
  const withPods = readRollout([deployment(1, { ...status, availableReplicas: 1 })], "v4",
    { previous: "v3", podProblems: new Map([["shop-web", "container web of pod shop-web-abc is running but not ready"]]), serving: new Map([["shop-web", new Map([["v3", 1]])]]) });
  t.is(withPods.stalled, "Deployment shop-web of release v4 made no progress within its deadline (1/2 pods updated, 0 of them ready): " +
    "container web of pod shop-web-abc is running but not ready; the previous release v3 keeps serving");
  t.is(podProblem({
    apiVersion: "v1", kind: "Pod", metadata: { name: "p" },
    status: { containerStatuses: [{ name: "web", restartCount: 2, state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 10s restarting failed container=web pod=p_ns(uid)" } }, lastState: { terminated: { exitCode: 3 } } }] },
  }), "container web of pod p is CrashLoopBackOff (exit code 3), restarted 2 times", "the kubelet's back-off of the moment is left out");
  t.is(podProblem({
    apiVersion: "v1", kind: "Pod", metadata: { name: "p" },
    status: { containerStatuses: [{ name: "web", state: { waiting: { reason: "CreateContainerConfigError", message: 'secret "db" not found' } } }] },
  }), 'container web of pod p is CreateContainerConfigError: secret "db" not found');
  t.is(podProblem({ apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, status: { containerStatuses: [{ name: "web", state: { waiting: { reason: "ContainerCreating" } } }] } }), undefined);
});

const pod = (name: string, release: string, status: PodObject["status"], spec?: PodObject["spec"]): PodObject =>
  ({ apiVersion: "v1", kind: "Pod", metadata: { name, labels: { "slipway.dev/release": release } }, spec, status });

test("a running container that is not ready is named with the readiness probe it has not passed (the kubelet's status)", (t) => {
  const spec = { containers: [{ name: "web", readinessProbe: { httpGet: { path: "/status/503", port: 5000 } } }] };
  const status = {
    conditions: [{ type: "Ready", status: "False", reason: "ContainersNotReady", message: "containers with unready status: [web]" }],
    containerStatuses: [{ name: "web", ready: false, restartCount: 0, state: { running: { startedAt: "2026-12-03T00:00:00Z" } } }],
  };
  t.is(podProblem(pod("shop-web-abc", "v2", status, spec)),
    "container web of pod shop-web-abc is running but not ready: its readiness probe (HTTP GET /status/503 on port 5000) has not passed");
  // Without a readiness probe a running container is ready at once: nothing to say.
  t.is(podProblem(pod("shop-web-abc", "v2", status, { containers: [{ name: "web" }] })), undefined);
});

test("a crashing container is named with its exit code whether the kubelet shows it waiting, exited or running again", (t) => {
  const crashed = { exitCode: 7, reason: "Error" };
  t.is(podProblem(pod("p", "v3", { containerStatuses: [{ name: "web", restartCount: 2, state: { terminated: crashed }, lastState: { terminated: crashed } }] })),
    "container web of pod p exited: Error (exit code 7), restarted 2 times");
  t.is(podProblem(pod("p", "v3", { containerStatuses: [{ name: "web", restartCount: 1, state: { running: {} }, lastState: { terminated: crashed } }] }, {
    containers: [{ name: "web", readinessProbe: { httpGet: { path: "/ready", port: 5000 } } }],
  })), "container web of pod p is running again after it exited: Error (exit code 7), restarted 1 time");
  t.is(podProblem(pod("p", "v3", { containerStatuses: [{ name: "web", restartCount: 2, state: { waiting: { reason: "CrashLoopBackOff" } }, lastState: { terminated: crashed } }] })),
    "container web of pod p is CrashLoopBackOff (exit code 7), restarted 2 times");
});

test("a stalled rollout says which pods keep serving from their Ready condition, not from the release numbers", (t) => {
  const ready = { conditions: [{ type: "Ready", status: "True" }] };
  const notReady = { conditions: [{ type: "Ready", status: "False" }] };
  // A new release whose pods are not ready: the previous release's Ready pod serves.
  t.is(keepsServing("v1", servingPods([pod("a", "v1", ready), pod("b", "v2", notReady)])), "the previous release v1 keeps serving");
  // An App change (a health check) that rolls the live release v2's pods: v2's old pod serves, not v1.
  t.is(keepsServing("v1", servingPods([pod("a", "v2", ready), pod("b", "v2", notReady)])), "1 ready pod (1 of v2) keeps serving");
  // A release cut while the one before it was still stuck: v1's pods serve, not v2's.
  t.is(keepsServing("v2", servingPods([pod("a", "v1", ready), pod("c", "v1", ready), pod("b", "v3", notReady)])), "2 ready pods (2 of v1) keep serving");
  t.is(keepsServing("v2", servingPods([pod("b", "v3", notReady)])), "no pod is ready to serve");
  t.is(keepsServing(undefined, servingPods([pod("b", "v1", notReady)])), "there is no earlier release to keep serving");
  const deleting = { ...pod("a", "v1", ready), metadata: { name: "a", labels: { "slipway.dev/release": "v1" }, deletionTimestamp: "2026-12-03T00:00:00Z" } };
  t.is(keepsServing("v1", servingPods([deleting])), "no pod is ready to serve");
  // Without the pods (they could not be listed), the release before the live one is assumed, as before.
  t.is(keepsServing("v1", undefined), "the previous release v1 keeps serving");
});

const app = (conditions: { type: string; status: "True" | "False" }[], observedGeneration = 2): App => ({
  apiVersion: "slipway.dev/v1alpha1",
  kind: "App",
  metadata: { name: "shop", namespace: "team-a", generation: 2 },
  spec: { image: "registry.example/shop@sha256:" + "a".repeat(64) },
  status: {
    observedGeneration,
    conditions: conditions.map((c) => ({ ...c, reason: "R", message: "m", lastTransitionTime: "2026-12-01T00:00:00Z", observedGeneration })),
  },
});
const reconciling = app([{ type: "Reconciling", status: "True" }, { type: "Ready", status: "False" }]);

test("a rollout that found the App Ready (a Config change) says at once that it is rolling out", (t) => {
  t.is(deferProgress(app([{ type: "Ready", status: "True" }]), { unobserved: true }, 1_000, 2_000), undefined);
});

test("while the App says it reconciles this generation, progress waits for the Deployment's status update", (t) => {
  t.deepEqual(deferProgress(reconciling, { unobserved: true }, undefined, 2_000), { requeueAfterMs: 30_000 });
});

test("rollout progress is first written PROGRESS_FIRST_WRITE_MS after the App became Reconciling, then at most every PROGRESS_WRITE_MS; the pass comes back to write it then", (t) => {
  const began = Date.parse("2026-12-01T00:00:00Z"); // the Reconciling condition's lastTransitionTime above
  // #begin wrote at `began`: a rollout still going 1 s later waits for the first progress write.
  t.deepEqual(deferProgress(reconciling, { unobserved: false }, began, began + 1_000), { requeueAfterMs: PROGRESS_FIRST_WRITE_MS - 1_000 });
  t.deepEqual(deferProgress(reconciling, { unobserved: false }, began, began + PROGRESS_WRITE_MS), { requeueAfterMs: PROGRESS_FIRST_WRITE_MS - PROGRESS_WRITE_MS });
  t.is(deferProgress(reconciling, { unobserved: false }, began, began + PROGRESS_FIRST_WRITE_MS), undefined);
  // After the first progress write, the next waits PROGRESS_WRITE_MS.
  const wrote = began + PROGRESS_FIRST_WRITE_MS;
  t.deepEqual(deferProgress(reconciling, { unobserved: false }, wrote, wrote + 1_000), { requeueAfterMs: PROGRESS_WRITE_MS - 1_000 });
  t.is(deferProgress(reconciling, { unobserved: false }, wrote, wrote + PROGRESS_WRITE_MS), undefined);
  // Status this process never wrote (after a restart, or another replica's) is not held back.
  t.is(deferProgress(reconciling, { unobserved: false }, undefined, began + 1_000), undefined);
});

test("an App that says it reconciles an older generation, or is Stalled, gets its status written now", (t) => {
  t.is(deferProgress(app([{ type: "Reconciling", status: "True" }], 1), { unobserved: true }, undefined, 0), undefined);
  t.is(deferProgress(app([{ type: "Reconciling", status: "True" }, { type: "Stalled", status: "True" }]), { unobserved: true }, undefined, 0), undefined);
});
