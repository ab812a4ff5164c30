// Slipway Apps that really run: the operator (`node dist/operator/main.js`) places every pod it renders on the real
// node (operator/local/realnode.ts) through the platform placement (SLIPWAY_NODE_SELECTOR, SLIPWAY_TOLERATIONS), and
// a developer drives an App built from samples/images/echo with kubectl-slipway. What is asserted comes from the
// real node's own state: the kubelet's pod status, the container's HTTP answers on its pod IP, its log lines
// through the kubelet, a one-off pod's exit code and environment. Nothing here is simulated by kwok.
//
// The tests run in order on one App. If this machine cannot run a real node the before hook fails with the
// reason and so does every test here: they are never skipped.
import type { ExecutionContext } from "ava";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Watch, type V1Pod } from "@kubernetes/client-node";
import type { App, Release } from "../crds/v1alpha1.js";
import { realNodePlacement, startRealNode, type RealNode } from "../operator/local/realnode.js";
import { installCrdsAndUserRoles, runCli, type Result } from "./cli-support.js";
import { buildEchoImage } from "./harness/echo-image.js";
import { controlPlane, realNodeTest, waitFor } from "./harness/suite.js";
import { Operators } from "./harness/operator-process.js";

const APP = "echo";
/** The port the App routes to: Slipway sets $PORT to it, and the echo server listens on $PORT. */
const PORT = 5000;

let node: RealNode | undefined;
let operators: Operators | undefined;
let image = "";
let ns = "";
let kubeconfigDir = "";
let aliceKubeconfig = "";
const started = Date.now();
/** The messages of the releases, in the order the tests set them. */
const messages = { first: `first answer ${randomBytes(3).toString("hex")}`, second: `second answer ${randomBytes(3).toString("hex")}` };

/** The placement the operator is given: exactly the real node's label and taint, as environment settings. */
const placementEnv = {
  SLIPWAY_NODE_SELECTOR: Object.entries(realNodePlacement.nodeSelector).map(([k, v]) => `${k}=${v}`).join(","),
  SLIPWAY_TOLERATIONS: realNodePlacement.tolerations.map((t) => `${t.key}=${t.value}:${t.effect}`).join(","),
};

realNodeTest.before("start the real node, build and push the echo image, start the operator with the real node's placement", async (t) => {
  t.timeout(45 * 60_000, "building and starting the real node");
  const cp = await controlPlane();
  await installCrdsAndUserRoles();
  node = await startRealNode(cp, { progress: (line) => console.log(`realnode-apps.e2e: ${line}`) });
  // No PORT in the image: the server listens where Slipway tells it to.
  image = await buildEchoImage(node, "samples/echo-app", { PATH: "/bin" });
  console.log(`realnode-apps.e2e: node ${node.nodeName} Ready and ${image} pushed in ${((Date.now() - started) / 1000).toFixed(1)}s`);

  ns = `e2e-realnode-apps-${randomBytes(3).toString("hex")}`;
  const created = await cp.kubectl(["create", "namespace", ns]);
  if (created.code !== 0) throw new Error(`cannot create namespace ${ns}: ${created.stderr}`);
  await waitFor(async () => (await cp.kubectl(["get", "serviceaccount", "default", "-n", ns])).code === 0, 30_000,
    () => `no default ServiceAccount in ${ns}`);
  // Not slipway-realnode-*: those are real nodes' directories, which a starting node may clean up.
  kubeconfigDir = await mkdtemp(join(tmpdir(), "slipway-apps-on-real-node-"));
  aliceKubeconfig = await developerKubeconfig(ns, "alice", kubeconfigDir);

  operators = new Operators(cp, ns);
  const operator = await operators.spawn("operator", placementEnv);
  await operator.until("operator started", 60_000);
});

realNodeTest.afterAlways("stop the operator and the real node", async () => {
  const cp = await controlPlane();
  await operators?.cleanup().catch((err: unknown) => console.log(`realnode-apps.e2e: cleanup: ${String(err)}`));
  if (ns) await cp.kubectl(["delete", "namespace", ns, "--wait=false"]);
  await node?.stop();
  if (kubeconfigDir) await rm(kubeconfigDir, { recursive: true, force: true });
  console.log(`realnode-apps.e2e: done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
});

/** A ServiceAccount bound to slipway-developer in `namespace`, with a token kubeconfig (as cli-support's userWith). */
async function developerKubeconfig(namespace: string, name: string, dir: string): Promise<string> {
  const cp = await controlPlane();
  const must = async (args: string[]) => {
    const r = await cp.kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}`);
    return r.stdout;
  };
  await must(["create", "serviceaccount", name, "-n", namespace]);
  await must(["create", "rolebinding", `${name}-developer`, "--clusterrole=slipway-developer", `--serviceaccount=${namespace}:${name}`, "-n", namespace]);
  const token = (await must(["create", "token", name, "-n", namespace, "--duration=2h"])).trim();
  const cluster = cp.kubeConfig().getCurrentCluster();
  const ca = cluster?.caData ?? (cluster?.caFile ? (await readFile(cluster.caFile)).toString("base64") : "");
  const path = join(dir, "kubeconfig");
  await writeFile(path, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": name,
    clusters: [{ name: "e2e", cluster: { server: cp.server, "certificate-authority-data": ca } }],
    users: [{ name, user: { token } }],
    contexts: [{ name, context: { cluster: "e2e", user: name, namespace } }],
  }));
  return path;
}

/** kubectl-slipway as alice, the developer. */
function slipway(args: string[]): Promise<Result> {
  return runCli(args, { KUBECONFIG: aliceKubeconfig }).done;
}

function ok(t: ExecutionContext, r: Result, what: string): Result {
  if (r.code !== 0) t.fail(`kubectl slipway ${what} exited ${r.code}: ${r.stderr}`);
  return r;
}

function realNode(): RealNode {
  if (!node) throw new Error("the real node did not start");
  return node;
}

async function getJson<T>(args: string[]): Promise<T> {
  const r = await (await controlPlane()).kubectl([...args, "-n", ns, "-o", "json"]);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

/** The release whose cause is `cause` (the newest such), once it is cut. */
async function releaseBy(cause: (r: Release) => boolean, what: string, after = 0): Promise<Release> {
  let found: Release | undefined;
  await waitFor(async () => {
    const list = (await getJson<{ items: Release[] }>(["get", "releases.slipway.dev", "-l", `slipway.dev/app=${APP}`])).items;
    found = list.filter((r) => r.spec.version > after && cause(r)).sort((a, b) => b.spec.version - a.spec.version)[0];
    return found !== undefined;
  }, 60_000, () => `no release ${what} was cut`);
  if (!found) throw new Error(`no release ${what}`);
  return found;
}

/**
 * Waits until `version` is live and Ready (the App's status), its Deployment rolled out and exactly one pod of
 * it runs, Ready by the kubelet's readiness probe; returns that pod.
 */
async function liveAndReady(t: ExecutionContext, version: number): Promise<V1Pod> {
  const n = realNode();
  const cp = await controlPlane();
  let app: App | undefined;
  await waitFor(async () => {
    app = await getJson<App>(["get", "apps.slipway.dev", APP]);
    return app.status?.currentRelease === `v${version}` && app.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
  }, 120_000, async () => `App ${APP} is not Ready on v${version}: ${JSON.stringify(app?.status)}\nkubelet log:\n${await n.logTail("kubelet", 20)}`);
  const rollout = await cp.kubectl(["rollout", "status", "-n", ns, `deployment/${APP}-web`, "--timeout=120s"]);
  t.is(rollout.code, 0, rollout.stderr);
  let pods: V1Pod[] = [];
  await waitFor(async () => {
    pods = (await getJson<{ items: V1Pod[] }>(["get", "pods", "-l", `slipway.dev/app=${APP},slipway.dev/process=web`])).items
      .filter((p) => !p.metadata?.deletionTimestamp);
    return pods.length === 1 && pods[0]?.metadata?.labels?.["slipway.dev/release"] === `v${version}`;
  }, 60_000, () => `expected one web pod of v${version}: ${pods.map((p) => `${p.metadata?.name} ${p.metadata?.labels?.["slipway.dev/release"]} ${p.status?.phase}`).join(", ")}`);
  const pod = pods[0] as V1Pod;
  return pod;
}

/** The web pod's answer on its pod IP at the port Slipway gave it ($PORT). */
async function answer(pod: V1Pod): Promise<string> {
  const res = await httpGet(`http://${pod.status?.podIP ?? ""}:${PORT}/`);
  if (res.status !== 200) throw new Error(`GET / answered ${res.status}: ${res.body}`);
  return res.body.trim();
}

let firstVersion = 0;
let secondVersion = 0;
let webPod: V1Pod | undefined;

realNodeTest.serial("an App from the echo image, created and configured with kubectl-slipway, runs on the real node, Ready by the kubelet's probe, and answers its Config's MESSAGE on its pod IP at $PORT", async (t) => {
  const n = realNode();
  ok(t, await slipway(["apps:create", APP, "--image", image]), "apps:create");
  // The port the App routes to (a developer's own field of the App); Slipway passes it to the container as $PORT.
  const patched = await (await controlPlane()).kubectl(["patch", "apps.slipway.dev", APP, "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { routing: { port: PORT } } })]);
  t.is(patched.code, 0, patched.stderr);
  ok(t, await slipway(["healthchecks:set", APP, "readiness", "web", "--path", "/ready", "--period", "1"]), "healthchecks:set");
  ok(t, await slipway(["config:set", APP, `MESSAGE=${messages.first}`]), "config:set");
  firstVersion = (await releaseBy((r) => r.spec.config.env?.MESSAGE === messages.first, "with the first MESSAGE")).spec.version;
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
  t.is(container?.imageID?.split("@")[1], image.split("@")[1], "the kubelet ran the image Slipway was given, by digest");
  // What Slipway rendered: the placement from the operator's environment, $PORT and the probe on it.
  t.deepEqual(pod.spec?.nodeSelector, realNodePlacement.nodeSelector);
  t.true(pod.spec?.tolerations?.some((x) => x.key === realNodePlacement.tolerations[0].key && x.value === "true" && x.effect === "NoSchedule"), JSON.stringify(pod.spec?.tolerations));
  t.true(pod.spec?.containers[0]?.env?.some((e) => e.name === "PORT" && e.value === String(PORT)));
  t.is(pod.spec?.containers[0]?.readinessProbe?.httpGet?.port, PORT);

  t.regex(pod.status?.podIP ?? "", /^10\.88\.\d+\.\d+$/);
  t.is(await answer(pod), messages.first);
  webPod = pod;
});

realNodeTest.serial("on the real node, config:set MESSAGE cuts a release whose pod answers the new MESSAGE, and rollback brings the old answer back", async (t) => {
  if (!firstVersion) return t.fail("the first test did not run the App");
  ok(t, await slipway(["config:set", APP, `MESSAGE=${messages.second}`]), "config:set");
  secondVersion = (await releaseBy((r) => r.spec.config.env?.MESSAGE === messages.second, "with the second MESSAGE", firstVersion)).spec.version;
  t.is(secondVersion, firstVersion + 1);
  const second = await liveAndReady(t, secondVersion);
  t.is(second.spec?.nodeName, realNode().nodeName);
  t.not(second.metadata?.name, webPod?.metadata?.name);
  t.is(await answer(second), messages.second);

  const rb = ok(t, await slipway(["rollback", APP]), "rollback");
  t.true(rb.stdout.startsWith(`Rolling back ${APP} to v${firstVersion}`), rb.stdout);
  const rolledBack = await releaseBy((r) => r.spec.rollbackOf === firstVersion, `rolling back to v${firstVersion}`, secondVersion);
  t.is(rolledBack.spec.config.env?.MESSAGE, messages.first);
  const back = await liveAndReady(t, rolledBack.spec.version);
  t.is(back.spec?.nodeName, realNode().nodeName);
  t.is(await answer(back), messages.first);
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
  const watch = await new Watch(cp.kubeConfig()).watch(`/api/v1/namespaces/${ns}/pods`, { labelSelector: "slipway.dev/run" },
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
