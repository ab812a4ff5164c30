// Slipway Apps that really run: the operator (`node dist/operator/main.js`) places every pod it renders on the real
// node (operator/local/realnode.ts) through the platform placement (SLIPWAY_NODE_SELECTOR, SLIPWAY_TOLERATIONS), and
// a developer drives an App built from samples/images/echo with kubectl-slipway. What is asserted comes from the
// real node's own state and from the ingress controller's: the kubelet's pod status, the container's HTTP answers
// on its pod IP and at its URL through Traefik (operator/local/ingress.ts, with Traefik's own status of the Ingress
// and of the HTTPRoute), its log lines through the kubelet, a one-off pod's exit code and environment. Nothing here
// is simulated by kwok.
//
// The tests run in order on one App. If this machine cannot run a real node the before hook fails with the
// reason and so does every test here: they are never skipped.
import type { ExecutionContext } from "ava";
import { randomBytes } from "node:crypto";
import { Watch, type V1Pod } from "@kubernetes/client-node";
import { realNodePlacement, type RealNode } from "../operator/local/realnode.js";
import type { Result } from "./cli-support.js";
import { controlPlane, realNodeTest, waitFor } from "./harness/suite.js";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { repoRoot } from "../operator/local/controlplane.js";
import { httpGet, RealNodeApp, RealNodeFixture } from "./harness/realnode-app.js";

const APP = "echo";
/** The port the App routes to: Slipway sets $PORT to it, and the echo server listens on $PORT. */
const PORT = 5000;

const GATEWAY = "slipway";
const fixture = new RealNodeFixture("realnode-apps", APP, PORT, {}, { ingress: { gateway: GATEWAY } });
/** The messages of the releases, in the order the tests set them. */
const messages = { first: `first answer ${randomBytes(3).toString("hex")}`, second: `second answer ${randomBytes(3).toString("hex")}` };

realNodeTest.before("start the real node, build and push the echo image, start the operator with the real node's placement", async (t) => {
  t.timeout(45 * 60_000, "building and starting the real node");
  await fixture.start();
});

realNodeTest.afterAlways("stop the operator and the real node", () => fixture.stop());

function echo(): RealNodeApp {
  return fixture.app;
}

function slipway(args: string[]): Promise<Result> {
  return echo().slipway(args);
}

function ok(t: ExecutionContext, r: Result, what: string): Result {
  if (r.code !== 0) t.fail(`kubectl slipway ${what} exited ${r.code}: ${r.stderr}`);
  return r;
}

function realNode(): RealNode {
  return echo().node;
}

async function liveAndReady(t: ExecutionContext, version: number): Promise<V1Pod> {
  return (await echo().liveAndReady(t, version))[0] as V1Pod;
}

let firstVersion = 0;
let secondVersion = 0;
let webPod: V1Pod | undefined;

realNodeTest.serial("an App from the echo image, created and configured with kubectl-slipway, runs on the real node, Ready by the kubelet's probe, and answers its Config's MESSAGE on its pod IP at $PORT", async (t) => {
  const n = realNode();
  ok(t, await slipway(["apps:create", APP, "--image", fixture.image]), "apps:create");
  // The port the App routes to (a developer's own field of the App); Slipway passes it to the container as $PORT.
  const patched = await (await controlPlane()).kubectl(["patch", "apps.slipway.dev", APP, "-n", fixture.namespace, "--type=merge", "-p", JSON.stringify({ spec: { routing: { port: PORT } } })]);
  t.is(patched.code, 0, patched.stderr);
  ok(t, await slipway(["healthchecks:set", APP, "readiness", "web", "--path", "/ready", "--period", "1"]), "healthchecks:set");
  ok(t, await slipway(["config:set", APP, `MESSAGE=${messages.first}`]), "config:set");
  firstVersion = (await echo().releaseBy((r) => r.spec.config.env?.MESSAGE === messages.first, "with the first MESSAGE")).spec.version;
  const pod = await liveAndReady(t, firstVersion);

  // The kubelet's own status of the pod.
  t.is(pod.spec?.nodeName, n.nodeName);
  t.is(pod.status?.phase, "Running");
  t.is(pod.status?.hostIP, n.nodeIP);
  t.true(pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"), JSON.stringify(pod.status?.conditions));
  const container = pod.status?.containerStatuses?.[0];
  t.true(container?.ready);
  t.regex(container?.containerID ?? "", /^containerd:\/\/[0-9a-f]{64}$/);
  t.truthy(container?.state?.running?.startedAt);
  t.is(container?.imageID?.split("@")[1], fixture.image.split("@")[1], "the kubelet ran the image Slipway was given, by digest");
  // What Slipway rendered: the placement from the operator's environment, $PORT and the probe on it.
  t.deepEqual(pod.spec?.nodeSelector, realNodePlacement.nodeSelector);
  t.true(pod.spec?.tolerations?.some((x) => x.key === realNodePlacement.tolerations[0].key && x.value === "true" && x.effect === "NoSchedule"), JSON.stringify(pod.spec?.tolerations));
  t.true(pod.spec?.containers[0]?.env?.some((e) => e.name === "PORT" && e.value === String(PORT)));
  t.is(pod.spec?.containers[0]?.readinessProbe?.httpGet?.port, PORT);

  t.regex(pod.status?.podIP ?? "", /^10\.88\.\d+\.\d+$/);
  t.is(await echo().answer(pod), messages.first);
  webPod = pod;

  // Its URL, through the ingress controller: Traefik serves the Ingress Slipway rendered, publishes its address in
  // the Ingress's own status, and the answer is the container's.
  const ingress = fixture.ingress;
  if (!ingress) return t.fail("Traefik did not start");
  type IngressObject = { spec: { ingressClassName?: string; rules: { host: string }[] }; status?: { loadBalancer?: { ingress?: { ip?: string }[] } } };
  const rendered = await echo().getJson<IngressObject>(["get", "ingress", APP]);
  t.is(rendered.spec.ingressClassName, ingress.ingressClassName);
  t.deepEqual(rendered.spec.rules.map((r) => r.host), [echo().host]);
  await echo().urlAnswers(messages.first);
  await waitFor(async () => (await echo().getJson<IngressObject>(["get", "ingress", APP])).status?.loadBalancer?.ingress?.[0]?.ip === "127.0.0.1", 30_000,
    () => `Traefik never published its address in Ingress ${APP}'s status`);
  const elsewhere = await ingress.get(`nothing.${fixture.namespace}.slipway.local`);
  t.is(elsewhere.status, 404, "a host no Ingress names is not routed to the App");
});

realNodeTest.serial("on the real node, config:set MESSAGE cuts a release whose pod answers the new MESSAGE, and rollback brings the old answer back", async (t) => {
  if (!firstVersion) return t.fail("the first test did not run the App");
  ok(t, await slipway(["config:set", APP, `MESSAGE=${messages.second}`]), "config:set");
  secondVersion = (await echo().releaseBy((r) => r.spec.config.env?.MESSAGE === messages.second, "with the second MESSAGE", firstVersion)).spec.version;
  t.is(secondVersion, firstVersion + 1);
  const second = await liveAndReady(t, secondVersion);
  t.is(second.spec?.nodeName, realNode().nodeName);
  t.not(second.metadata?.name, webPod?.metadata?.name);
  t.is(await echo().answer(second), messages.second);
  await echo().urlAnswers(messages.second);

  const rb = ok(t, await slipway(["rollback", APP]), "rollback");
  t.true(rb.stdout.startsWith(`Rolling back ${APP} to v${firstVersion}`), rb.stdout);
  const rolledBack = await echo().releaseBy((r) => r.spec.rollbackOf === firstVersion, `rolling back to v${firstVersion}`, secondVersion);
  t.is(rolledBack.spec.config.env?.MESSAGE, messages.first);
  const back = await liveAndReady(t, rolledBack.spec.version);
  t.is(back.spec?.nodeName, realNode().nodeName);
  t.is(await echo().answer(back), messages.first);
  await echo().urlAnswers(messages.first);
  webPod = back;
});

realNodeTest.serial("on the real node, kubectl slipway logs shows the request line the App's container logged", async (t) => {
  const pod = webPod;
  if (!pod) return t.fail("the earlier tests did not leave a running web pod");
  const path = `/logged-${randomBytes(4).toString("hex")}`;
  t.is((await httpGet(`http://${pod.status?.podIP ?? ""}:${PORT}${path}`)).status, 200);
  const expected = `web/${pod.metadata?.name ?? ""}: echo: GET ${path} from ${realNode().nodeIP}:`;
  let out = "";
  await waitFor(async () => {
    const r = await slipway(["logs", APP]);
    out = `${r.stdout}${r.stderr}`;
    return out.includes(expected);
  }, 20_000, () => `kubectl slipway logs never showed "${expected}":\n${out}`);
  t.true(out.includes(`web/${pod.metadata?.name ?? ""}: echo: listening on :${PORT}\n`), out);
});

/** Records every state of the one-off pods in `ns` (they are deleted when `run` ends). */
async function recordRunPods(t: ExecutionContext): Promise<Map<string, V1Pod>> {
  const cp = await controlPlane();
  const last = new Map<string, V1Pod>();
  const watch = await new Watch(cp.kubeConfig()).watch(`/api/v1/namespaces/${fixture.namespace}/pods`, { labelSelector: "slipway.dev/run" },
    (type: string, pod: V1Pod) => {
      if (type !== "DELETED") last.set(pod.metadata?.name ?? "", pod);
    }, () => undefined);
  t.teardown(() => watch.abort());
  return last;
}

realNodeTest.serial("on the real node, kubectl slipway run exits with its command's code and runs with the live release's env", async (t) => {
  if (!firstVersion) return t.fail("the first test did not run the App");
  const pods = await recordRunPods(t);
  const failed = await slipway(["run", APP, "--", "sh", "-c", "echo about to exit 3; exit 3"]);
  t.is(failed.code, 3, failed.stderr);
  t.is(failed.stdout, "about to exit 3\n");
  // The kubelet's own record of the one-off pod: on the real node, terminated with exit code 3.
  await waitFor(async () => [...pods.values()].some((p) => p.status?.containerStatuses?.[0]?.state?.terminated), 10_000,
    () => `no terminated one-off pod was seen: ${JSON.stringify([...pods.values()].map((p) => p.status))}`);
  const exited = [...pods.values()][0];
  t.is(exited?.spec?.nodeName, realNode().nodeName);
  t.is(exited?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 3);
  t.regex(exited?.status?.containerStatuses?.[0]?.containerID ?? "", /^containerd:\/\//);

  // The environment the container's process really got: /proc/self/environ of cat, started as the command.
  const env = ok(t, await slipway(["run", APP, "--", "cat", "/proc/self/environ"]), "run -- cat /proc/self/environ");
  const vars = env.stdout.split(/\0|\n/).filter(Boolean);
  t.true(vars.includes(`MESSAGE=${messages.first}`), `the rolled-back release's MESSAGE is not in ${JSON.stringify(vars)}`);
  t.true(vars.includes("PATH=/bin"), JSON.stringify(vars));
  t.false(vars.some((v) => v.startsWith("MESSAGE=") && v !== `MESSAGE=${messages.first}`));
  t.is(pods.size, 2);
  t.true([...pods.values()].every((p) => p.spec?.nodeName === realNode().nodeName));
});

realNodeTest.serial("the image-app sample runs on the real node: its two web pods answer its MESSAGE through Traefik, and its worker process (bin/worker from the same image) logs real jobs that kubectl slipway logs --type worker shows", async (t) => {
  const cp = await controlPlane();
  const sample = join(repoRoot, "samples", "apps", "image-app");
  // The sample's own files, as a developer applies them; only the image is the one built here, by digest.
  const docs = (await Promise.all(["config.yaml", "app.yaml"].map((f) => readFile(join(sample, f), "utf8")))).flatMap((text) => parseAllDocuments(text));
  for (const doc of docs) if (doc.get("kind") === "App") doc.setIn(["spec", "image"], fixture.image);
  const applied = await cp.kubectl(["apply", "-n", fixture.namespace, "-f", "-"], { input: docs.map((d) => d.toString()).join("---\n") });
  t.is(applied.code, 0, applied.stderr);
  const app = new RealNodeApp(realNode(), fixture.namespace, "image-app", 8080, echo().kubeconfig, fixture.ingress);

  const web = await app.liveAndReady(t, 1, 2);
  t.true(web.every((p) => p.spec?.nodeName === realNode().nodeName));
  await app.urlAnswers("hello from image-app");

  // The worker: the kubelet runs it (no restarts), and its own log lines come through kubectl slipway logs.
  let out = "";
  let worker: V1Pod | undefined;
  await waitFor(async () => {
    worker = (await app.getJson<{ items: V1Pod[] }>(["get", "pods", "-l", "slipway.dev/app=image-app,slipway.dev/process=worker"])).items[0];
    const r = await app.slipway(["logs", "image-app", "--type", "worker"]);
    out = `${r.stdout}${r.stderr}`;
    return out.includes(": worker: job 2 from queue default done\n");
  }, 60_000, () => `kubectl slipway logs image-app --type worker never showed a second job:\n${out}`);
  const name = worker?.metadata?.name ?? "";
  t.is(worker?.spec?.nodeName, realNode().nodeName);
  t.is(worker?.status?.containerStatuses?.[0]?.restartCount, 0);
  t.truthy(worker?.status?.containerStatuses?.[0]?.state?.running, JSON.stringify(worker?.status?.containerStatuses));
  t.true(out.includes(`worker/${name}: worker: taking jobs from queue default every 2s\n`), out);
  t.true(out.includes(`worker/${name}: worker: job 1 from queue default done\n`), out);
  t.false(out.includes("web/"), "--type worker shows only the worker's lines");
});

interface RouteStatus { status?: { parents?: { controllerName?: string; parentRef?: { name?: string }; conditions?: { type: string; status: string }[] }[] } }

realNodeTest.serial("with SLIPWAY_ROUTING=gateway, the App's HTTPRoute is Accepted by Traefik's Gateway and its URL answers through it", async (t) => {
  if (!firstVersion) return t.fail("the first test did not run the App");
  const gateway = fixture.ingress?.gateway;
  if (!gateway) return t.fail("Traefik serves no Gateway");
  // The platform switches its routing: the operator restarts with the Gateway's settings, as a platform team
  // would change the slipway-operator Secret.
  await fixture.restartOperator({ SLIPWAY_ROUTING: "gateway", SLIPWAY_GATEWAY_NAME: gateway.name, SLIPWAY_GATEWAY_NAMESPACE: gateway.namespace });

  // Traefik's own verdict on the route, in the HTTPRoute's status.
  let route: RouteStatus | undefined;
  await waitFor(async () => {
    route = await echo().getJson<RouteStatus>(["get", "httproutes.gateway.networking.k8s.io", APP]);
    const parent = route.status?.parents?.find((p) => p.controllerName === "traefik.io/gateway-controller");
    return ["Accepted", "ResolvedRefs"].every((type) => parent?.conditions?.some((x) => x.type === type && x.status === "True"));
  }, 60_000, () => `HTTPRoute ${APP} is not Accepted with its refs resolved by Traefik: ${JSON.stringify(route?.status)}`);
  t.is(route?.status?.parents?.find((p) => p.controllerName === "traefik.io/gateway-controller")?.parentRef?.name, gateway.name);
  // The Ingress is gone, so the answer below came through the HTTPRoute.
  await waitFor(async () => (await (await controlPlane()).kubectl(["get", "ingress", APP, "-n", fixture.namespace])).code !== 0, 30_000,
    () => `Ingress ${APP} was not removed when routing became gateway`);
  await echo().urlAnswers(messages.first);
});
