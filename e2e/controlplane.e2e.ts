// Smoke tests for the harness itself: a real kube-apiserver, real scheduling, kwok-simulated pods.
import test from "ava";
import { controlPlane, freshNamespace, waitFor } from "./harness/suite.js";
import { AppsV1Api } from "@kubernetes/client-node";

test("kubectl talks to a real kube-apiserver built from the pinned version", async (t) => {
  const cp = await controlPlane();
  const r = await cp.kubectl(["version", "-o", "json"]);
  t.is(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { serverVersion: { gitVersion: string } };
  t.is(v.serverVersion.gitVersion, "v1.33.13");
  const rbac = await cp.kubectl(["api-versions"]);
  t.true(rbac.stdout.includes("rbac.authorization.k8s.io/v1"));
});

test("a kwok node is Ready", async (t) => {
  const cp = await controlPlane();
  const r = await cp.kubectl(["get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}"]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^True( True)*$/);
});

test("a Deployment applied with kubectl rolls out and its pods become Ready on a kwok node", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: { name: hello }
spec:
  replicas: 2
  selector: { matchLabels: { app: hello } }
  template:
    metadata: { labels: { app: hello } }
    spec:
      containers: [{ name: hello, image: "registry.example/hello@sha256:${"a".repeat(64)}" }]
`;
  const applied = await cp.kubectl(["apply", "-n", ns, "-f", "-"], { input: deployment });
  t.is(applied.code, 0, applied.stderr);
  const rollout = await cp.kubectl(["rollout", "status", "-n", ns, "deployment/hello", "--timeout=60s"]);
  t.is(rollout.code, 0, rollout.stderr);
  const apps = cp.kubeConfig().makeApiClient(AppsV1Api);
  await waitFor(async () => (await apps.readNamespacedDeployment({ name: "hello", namespace: ns })).status?.readyReplicas === 2,
    30_000, () => "deployment hello never had 2 ready replicas");
  const pods = await cp.kubectl(["get", "pods", "-n", ns, "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{\"\\n\"}{end}"]);
  t.deepEqual(pods.stdout.trim().split("\n").sort(), ["kwok-node-0 Running", "kwok-node-0 Running"]);
});

test("RBAC is enforced: a ServiceAccount without bindings cannot list pods", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const r = await cp.kubectl(["auth", "can-i", "list", "pods", "-n", ns, `--as=system:serviceaccount:${ns}:default`]);
  t.is(r.stdout.trim(), "no");
});
