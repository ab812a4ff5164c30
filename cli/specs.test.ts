import test from "ava";
import { emptyingRemovals, pendingRemovals, removalPatch, setEnv, setLimits, setSecretEnv, unsetEnv, probeFromFlags } from "./specs.js";

test("setting a plain value moves a secret key back to plain env", (t) => {
  const spec = setEnv({ env: { A: "1" }, secretEnv: { B: { secretName: "hello-env", key: "B" } } }, { B: "2" });
  t.deepEqual(spec, { env: { A: "1", B: "2" } });
});

test("a secret value becomes a reference to <app>-env and leaves plain env", (t) => {
  const spec = setSecretEnv({ env: { A: "1", PASSWORD: "old" } }, "hello-env", ["PASSWORD"]);
  t.deepEqual(spec, { env: { A: "1" }, secretEnv: { PASSWORD: { secretName: "hello-env", key: "PASSWORD" } } });
});

test("unset removes plain and secret keys, and refuses keys that are not set at all", (t) => {
  t.deepEqual(unsetEnv({ env: { A: "1", B: "2" }, secretEnv: { S: { secretName: "x", key: "S" } } }, ["A", "S"]), { env: { B: "2" } });
  t.throws(() => unsetEnv({ env: { A: "1" } }, ["TYPO"]), { message: "not set: TYPO" });
});

test("limits set memory by position and cpu by flag, validating quantities", (t) => {
  t.deepEqual(setLimits({}, ["web=512Mi"], ["web=500m", "worker=1"]), {
    resources: { web: { limits: { memory: "512Mi", cpu: "500m" } }, worker: { limits: { cpu: "1" } } },
  });
  t.throws(() => setLimits({}, ["web=lots"], []), { message: `"lots" is not a memory quantity (e.g. 512Mi or 1Gi)` });
});

test("health check flags become an HTTP probe with only the fields given", (t) => {
  t.deepEqual(probeFromFlags({ path: "/healthz", period: "5" }), { path: "/healthz", periodSeconds: 5 });
  t.throws(() => probeFromFlags({ path: "healthz" }), { message: `--path must start with /, got "healthz"` });
});

test("the removal patch nulls exactly the keys that are gone", (t) => {
  t.deepEqual(removalPatch({ env: { A: "1" } }, { env: { A: "1", B: "2" }, nodeSelector: { disk: "ssd" } }), { env: { B: null }, nodeSelector: null });
  t.is(removalPatch({ env: { A: "1" } }, { env: { A: "1" } }), undefined);
});

test("after an apply, only removals another manager kept are patched", (t) => {
  const before = { env: { A: "1", B: "2", C: "3" } };
  const desired = { env: { A: "1" } };
  t.deepEqual(pendingRemovals(desired, before, { env: { A: "1", C: "3" }, port: 8080 }), { env: { C: null } });
  t.is(pendingRemovals(desired, before, { env: { A: "1" }, port: 8080 }), undefined);
});

test("removals that empty an object are singled out, since an apply would turn the object into null", (t) => {
  const before = { image: "x", processes: { web: { autoscale: { min: 2, max: 5 } }, worker: { replicas: 2, autoscale: { min: 1, max: 3 } } }, routing: { tls: { secretName: "s" } } };
  const desired = { image: "x", processes: { web: {}, worker: { replicas: 2 } }, routing: {} };
  t.deepEqual(emptyingRemovals(desired, before), { processes: { web: { autoscale: null } }, routing: { tls: null } });
  t.is(emptyingRemovals({ image: "x", processes: { web: { replicas: 1 } } }, { image: "x", processes: { web: { replicas: 1, autoscale: { min: 1, max: 2 } } } }), undefined);
});
