import test from "ava";
import { trim } from "./informers.js";
import { readRollout, rolledOut, type DeploymentObject } from "./app-reconciler.js";

const deployment = (): DeploymentObject =>
  ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: "shop-web", namespace: "ns", generation: 2, labels: { "slipway.dev/process": "web" },
      managedFields: [{ manager: "slipway", operation: "Apply", fieldsV1: { "f:spec": {} } }],
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: "shop" } },
      template: { metadata: { labels: { app: "shop" } }, spec: { containers: [{ name: "web", image: "registry.example/shop@sha256:1", env: [{ name: "A", value: "1" }] }] } },
    },
    status: { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2 },
  }) as unknown as DeploymentObject;

test("a Deployment cached for its rollout keeps what the rollout is read from (replicas, selector, status), without managedFields or the pod template", (t) => {
  const full = deployment();
  const kept = trim(deployment(), "rollout");
  t.is(kept.metadata.managedFields, undefined);
  t.is((kept.spec as { template?: unknown }).template, undefined);
  const selector = (d: DeploymentObject) => (d.spec as { selector?: unknown }).selector;
  t.deepEqual(selector(kept), selector(full));
  t.true(rolledOut(kept));
  t.deepEqual(readRollout([kept], "v2"), readRollout([full], "v2"));
});
