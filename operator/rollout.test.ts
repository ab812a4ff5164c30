import test from "ava";
import { readRollout } from "./app-reconciler.js";

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
});
