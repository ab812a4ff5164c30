// An App's life on the real node after its first rollout: what a developer sees when a release cannot become
// Ready (a readiness probe that never passes, a container that crashes), scaling, restarting, following logs and a
// secret in the container's environment. The operator (`node dist/operator/main.js`) places every pod on the real
// node (operator/local/realnode.ts) and gives Deployments a progress deadline of DEADLINE seconds
// (SLIPWAY_PROGRESS_DEADLINE_SECONDS). What is asserted comes from the real node's own state: the kubelet's pod
// status (Ready, restarts, exit codes, container IDs), the containers' HTTP answers on their pod IPs, their log
// lines through the kubelet, a one-off pod's environment. Nothing here is simulated by kwok.
//
// The tests run in order on one App, each from where the one before left it (a failed test leaves the next
// without its start and fails it too). If this machine cannot run a real node the before hook fails with the
// reason and so does every test here; SLIPWAY_REAL_NODE=off lists them as skipped.
import type { ExecutionContext } from "ava";
import { randomBytes } from "node:crypto";
import type { V1Pod } from "@kubernetes/client-node";
import type { App, Condition, Release } from "../crds/v1alpha1.js";
import type { Result } from "./cli-support.js";
import { httpGet, podReady, RealNodeFixture, type RealNodeApp } from "./harness/realnode-app.js";
import { realNodeTest, waitFor } from "./harness/suite.js";

const APP = "echo";
const PORT = 5000;
/** The Deployments' progress deadline the operator is given: a release that cannot become Ready stalls after it. */
const DEADLINE = 20;
const fixture = new RealNodeFixture("realnode-lifecycle", APP, PORT, { SLIPWAY_PROGRESS_DEADLINE_SECONDS: String(DEADLINE) });
const messages = { first: `first answer ${randomBytes(3).toString("hex")}`, second: `second answer ${randomBytes(3).toString("hex")}` };

realNodeTest.before("start the real node, build and push the echo image, start the operator with the real node's placement and a short progress deadline", async (t) => {
  t.timeout(45 * 60_000, "building and starting the real node");
  await fixture.start();
});

realNodeTest.afterAlways("stop the operator and the real node", () => fixture.stop());

function echo(): RealNodeApp {
  return fixture.app;
}

async function ok(t: ExecutionContext, args: string[]): Promise<Result> {
  const r = await echo().slipway(args);
  if (r.code !== 0) t.fail(`kubectl slipway ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

function condition(app: App, type: string): Condition | undefined {
  return app.status?.conditions?.find((c) => c.type === type);
}

/** Waits until the App says `version` is live and Stalled (the operator's status); returns the Stalled condition. */
async function stalledOn(version: number): Promise<Condition> {
  let app: App | undefined;
  await waitFor(async () => {
    app = await echo().app();
    return app.status?.currentRelease === `v${version}` && condition(app, "Stalled")?.status === "True";
  }, (DEADLINE + 100) * 1_000, async () => `App ${APP} did not stall on v${version}: ${JSON.stringify(app?.status)}\n${fixture.operators?.output() ?? ""}\nkubelet log:\n${await echo().node.logTail("kubelet", 20)}`);
  if (!app) throw new Error("no App");
  notReadyWhileStalled(app);
  return condition(app, "Stalled") as Condition;
}

/** A Stalled App is not Ready: checked with the same read that found it Stalled. */
function notReadyWhileStalled(app: App): void {
  if (condition(app, "Ready")?.status === "True") throw new Error(`App ${APP} is Stalled and Ready at once: ${JSON.stringify(app.status?.conditions)}`);
}

/**
 * The one web pod of release `version` (not being deleted), as the kubelet reports it now: found by its labels,
 * not from the Stalled message, so a message that names no pod fails only the assertions on the message.
 */
async function onlyPodOf(version: number): Promise<V1Pod> {
  const pods = (await echo().webPods()).filter((p) => p.metadata?.labels?.["slipway.dev/release"] === `v${version}`);
  if (pods.length !== 1) throw new Error(`expected one web pod of v${version}: ${pods.map((p) => p.metadata?.name).join(", ")}`);
  return pods[0] as V1Pod;
}

/** The one Ready web pod of release `version`, as the kubelet reports it now. */
async function readyPodOf(version: number): Promise<V1Pod[]> {
  return (await echo().webPods()).filter((p) => p.metadata?.labels?.["slipway.dev/release"] === `v${version}` && podReady(p));
}

let good = 0;
let oldPod: V1Pod | undefined;

realNodeTest.serial("on the real node, a release whose readiness probe never passes is Running but not Ready, the App goes Stalled naming the probe, and the previous release's pod keeps answering; a good probe makes it Ready", async (t) => {
  t.timeout(8 * 60_000, "a rollout on the real node");
  await ok(t, ["apps:create", APP, "--image", fixture.image]);
  const patched = await echo().getJson<App>(["patch", "apps.slipway.dev", APP, "--type=merge", "-p", JSON.stringify({ spec: { routing: { port: PORT } } })]);
  t.is(patched.spec.routing?.port, PORT);
  await ok(t, ["healthchecks:set", APP, "readiness", "web", "--path", "/ready", "--period", "1"]);
  await ok(t, ["config:set", APP, `MESSAGE=${messages.first}`]);
  const firstVersion = (await echo().releaseBy((r) => r.spec.config.env?.MESSAGE === messages.first, "with the first MESSAGE")).spec.version;
  const [first] = await echo().liveAndReady(t, firstVersion);
  if (!first) return t.fail("no pod of the first release");
  t.is(await echo().answer(first), messages.first);

  // The echo server answers /status/503 with 503: the kubelet's probe there never passes. The next release,
  // with the second MESSAGE, is rolled out with that probe.
  await ok(t, ["healthchecks:set", APP, "readiness", "web", "--path", "/status/503", "--period", "1"]);
  await ok(t, ["config:set", APP, `MESSAGE=${messages.second}`]);
  const probedVersion = (await echo().releaseBy((r) => r.spec.config.env?.MESSAGE === messages.second, "with the second MESSAGE", firstVersion)).spec.version;
  const stalled = await stalledOn(probedVersion);
  t.log(`Stalled: ${stalled.message}`);
  t.is(stalled.reason, "RolloutStalled");
  t.regex(stalled.message, new RegExp(`^Deployment ${APP}-web of release v${probedVersion} made no progress within its deadline \\(1/1 pods updated, 0 of them ready\\): `), stalled.message);
  t.regex(stalled.message, /container web of pod \S+ is running but not ready: its readiness probe \(HTTP GET \/status\/503 on port 5000\) has not passed; /);
  t.true(stalled.message.endsWith(`; the previous release v${firstVersion} keeps serving`), stalled.message);
  // Nothing the kubelet does not report: no crash, no scheduling problem, no missing image.
  t.notRegex(stalled.message, /CrashLoopBackOff|exit code|not scheduled|ImagePull|no earlier release/);

  // The kubelet's own status of the new release's pod: Running, its container up and never restarted, not Ready.
  const stuck = await onlyPodOf(probedVersion);
  t.true(stalled.message.includes(`container web of pod ${stuck.metadata?.name ?? ""} `), stalled.message);
  t.is(stuck.metadata?.labels?.["slipway.dev/release"], `v${probedVersion}`);
  t.is(stuck.spec?.nodeName, echo().node.nodeName);
  t.is(stuck.status?.phase, "Running");
  t.false(podReady(stuck), JSON.stringify(stuck.status?.conditions));
  t.is(stuck.status?.conditions?.find((c) => c.type === "Ready")?.reason, "ContainersNotReady");
  const container = stuck.status?.containerStatuses?.[0];
  t.false(container?.ready);
  t.truthy(container?.state?.running?.startedAt);
  t.is(container?.restartCount, 0);
  // It runs, with the new release's config: it answers the second MESSAGE, and its probe's path answers 503.
  t.is(await echo().answer(stuck), messages.second);
  t.is((await httpGet(`http://${stuck.status?.podIP ?? ""}:${PORT}/status/503`)).status, 503);

  // The previous release's pod: the same pod as before, still Ready, still answering the first MESSAGE.
  const serving = await readyPodOf(firstVersion);
  t.deepEqual(serving.map((p) => p.metadata?.name), [first.metadata?.name]);
  const still = serving[0] as V1Pod;
  t.is(still.status?.containerStatuses?.[0]?.restartCount, 0);
  t.is(await echo().answer(still), messages.first);

  // A probe on a path that answers 200: the same release becomes Ready, and its pod answers.
  await ok(t, ["healthchecks:set", APP, "readiness", "web", "--path", "/ready", "--period", "1"]);
  const [fixed] = await echo().liveAndReady(t, probedVersion);
  if (!fixed) return t.fail("no pod of the fixed release");
  t.is(fixed.spec?.containers[0]?.readinessProbe?.httpGet?.path, "/ready");
  t.is(await echo().answer(fixed), messages.second);
  const app = await echo().app();
  t.is(condition(app, "Stalled"), undefined, JSON.stringify(app.status?.conditions));
  good = probedVersion;
  oldPod = fixed;
});

realNodeTest.serial("on the real node, a release whose container exits 7 at start stalls with the kubelet's CrashLoopBackOff and exit code 7, while the previous release keeps answering", async (t) => {
  t.timeout(8 * 60_000, "a rollout on the real node");
  if (!good || !oldPod) return t.fail("the first test did not leave a Ready release");
  // The echo server exits at start with $EXIT_CODE.
  await ok(t, ["config:set", APP, "EXIT_CODE=7"]);
  const crashing = (await echo().releaseBy((r) => r.spec.config.env?.EXIT_CODE === "7", "with EXIT_CODE=7", good)).spec.version;
  const stalled = await stalledOn(crashing);
  t.log(`Stalled: ${stalled.message}`);
  t.is(stalled.reason, "RolloutStalled");
  t.regex(stalled.message, new RegExp(`^Deployment ${APP}-web of release v${crashing} made no progress within its deadline`), stalled.message);
  // The kubelet's words, whichever moment of the crash loop the deadline met: waiting in CrashLoopBackOff, or
  // terminated (Error), or running again after it; always with the container's real exit code.
  t.regex(stalled.message, /container web of pod \S+ (is CrashLoopBackOff \(exit code 7\)|exited: Error \(exit code 7\)|is running again after it exited: Error \(exit code 7\))/, stalled.message);
  t.true(stalled.message.endsWith(`; the previous release v${good} keeps serving`), stalled.message);
  t.notRegex(stalled.message, /timed out progressing|readiness probe/);

  // The kubelet restarted the container, and recorded that it exited with 7.
  let pod: V1Pod = await onlyPodOf(crashing);
  t.true(stalled.message.includes(`container web of pod ${pod.metadata?.name ?? ""} `), stalled.message);
  await waitFor(async () => {
    pod = await onlyPodOf(crashing);
    return (pod.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 2;
  }, 90_000, () => `the kubelet did not restart the crashing container twice: ${JSON.stringify(pod.status?.containerStatuses)}`);
  const container = pod.status?.containerStatuses?.[0];
  t.is(pod.metadata?.labels?.["slipway.dev/release"], `v${crashing}`);
  t.is(pod.spec?.nodeName, echo().node.nodeName);
  t.is(container?.lastState?.terminated?.exitCode, 7);
  t.is(container?.lastState?.terminated?.reason, "Error");
  t.false(container?.ready);
  t.false(podReady(pod));

  // The previous release's pod is untouched and answers.
  const serving = await readyPodOf(good);
  t.deepEqual(serving.map((p) => p.metadata?.name), [oldPod.metadata?.name]);
  t.is(await echo().answer(serving[0] as V1Pod), messages.second);

  // Without EXIT_CODE, the next release is Ready again.
  await ok(t, ["config:unset", APP, "EXIT_CODE"]);
  const back = (await echo().releaseBy((r) => r.spec.config.env?.EXIT_CODE === undefined && r.spec.config.env?.MESSAGE === messages.second, "without EXIT_CODE", crashing)).spec.version;
  const [pod2] = await echo().liveAndReady(t, back);
  if (!pod2) return t.fail("no pod of the release without EXIT_CODE");
  t.is(await echo().answer(pod2), messages.second);
  good = back;
});

realNodeTest.serial("on the real node, kubectl slipway scale web=2 runs two Ready pods that both answer, and web=1 goes back to one", async (t) => {
  t.timeout(8 * 60_000, "a rollout on the real node");
  if (!good) return t.fail("the earlier tests did not leave a Ready release");
  await ok(t, ["scale", APP, "web=2"]);
  const two = await echo().liveAndReady(t, good, 2);
  t.is(new Set(two.map((p) => p.status?.podIP)).size, 2, "two pods, two pod IPs");
  for (const pod of two) {
    t.is(pod.spec?.nodeName, echo().node.nodeName);
    t.is(pod.status?.phase, "Running");
    t.is(await echo().answer(pod), messages.second);
  }
  const ps = await ok(t, ["ps", APP]);
  for (const pod of two) t.true(ps.stdout.includes(pod.metadata?.name ?? "?"), ps.stdout);

  await ok(t, ["scale", APP, "web=1"]);
  const one = await echo().liveAndReady(t, good, 1);
  t.true(two.some((p) => p.metadata?.name === one[0]?.metadata?.name), "scaling down keeps one of the two pods");
  t.is(await echo().answer(one[0] as V1Pod), messages.second);
});

realNodeTest.serial("on the real node, kubectl slipway ps:restart replaces the web pod with a new one (new name, new container) that answers", async (t) => {
  t.timeout(8 * 60_000, "a rollout on the real node");
  if (!good) return t.fail("the earlier tests did not leave a Ready release");
  const before = await echo().liveAndReady(t, good, 1);
  const oldNames = new Set(before.map((p) => p.metadata?.name));
  const oldContainers = new Set(before.map((p) => p.status?.containerStatuses?.[0]?.containerID));
  await ok(t, ["ps:restart", APP]);
  let pods: V1Pod[] = [];
  await waitFor(async () => {
    pods = await echo().webPods();
    return pods.length === 1 && pods.every((p) => !oldNames.has(p.metadata?.name) && podReady(p));
  }, 120_000, () => `the web pod was not replaced by a Ready one: ${pods.map((p) => `${p.metadata?.name} ready=${podReady(p)}`).join(", ")}`);
  const pod = pods[0] as V1Pod;
  t.is(pod.metadata?.labels?.["slipway.dev/release"], `v${good}`);
  t.is(pod.spec?.nodeName, echo().node.nodeName);
  const id = pod.status?.containerStatuses?.[0]?.containerID ?? "";
  t.regex(id, /^containerd:\/\/[0-9a-f]{64}$/);
  t.false(oldContainers.has(id));
  t.is(pod.status?.containerStatuses?.[0]?.restartCount, 0);
  t.is(await echo().answer(pod), messages.second);
});

realNodeTest.serial("on the real node, kubectl slipway logs -f streams a request line the container logs after it started, and follows the pod that replaces it after ps:restart", async (t) => {
  t.timeout(8 * 60_000, "a rollout on the real node");
  if (!good) return t.fail("the earlier tests did not leave a Ready release");
  const [pod] = await echo().liveAndReady(t, good, 1);
  if (!pod) return t.fail("no web pod");
  const follow = echo().spawnSlipway(["logs", APP, "-f"]);
  let out = "";
  let exited = false;
  follow.child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  void follow.done.then(() => (exited = true));
  t.teardown(() => {
    if (!exited) follow.child.kill("SIGKILL");
  });
  // The stream is open once the pod's first line (the server's start) arrived.
  const prefix = `web/${pod.metadata?.name ?? ""}: `;
  await waitFor(async () => out.includes(`${prefix}echo: listening on :${PORT}\n`) || exited, 30_000, () => `logs -f showed nothing of ${pod.metadata?.name}:\n${out}`);
  if (exited) return t.fail(`logs -f exited before it was stopped: ${JSON.stringify(await follow.done)}`);
  const path = `/followed-${randomBytes(4).toString("hex")}`;
  t.false(out.includes(path));
  t.is((await httpGet(`http://${pod.status?.podIP ?? ""}:${PORT}${path}`)).status, 200);
  const expected = `${prefix}echo: GET ${path} from ${echo().node.nodeIP}:`;
  await waitFor(async () => out.includes(expected) || exited, 20_000, () => `logs -f never showed "${expected}":\n${out}`);
  t.true(out.includes(expected), out);
  t.false(exited, "logs -f stopped by itself");
  // A pod that starts after logs -f did (a restart, a scale, a new release) is streamed too, from its first line.
  await ok(t, ["ps:restart", APP]);
  let replacement: V1Pod | undefined;
  await waitFor(async () => {
    replacement = (await echo().webPods()).find((p) => p.metadata?.name !== pod.metadata?.name && podReady(p));
    return replacement !== undefined;
  }, 120_000, () => "no new web pod became Ready after ps:restart");
  const started = `web/${replacement?.metadata?.name ?? ""}: echo: listening on :${PORT}\n`;
  await waitFor(async () => out.includes(started) || exited, 20_000, () => `logs -f never showed the new pod's "${started.trim()}":\n${out}`);
  t.true(out.includes(started), out);
  t.false(exited, "logs -f stopped when its first pod went away");
  // Ctrl-C, as a user stops it: it aborts its streams and exits 130.
  follow.child.kill("SIGINT");
  const end = await Promise.race([follow.done, new Promise<undefined>((resolve) => setTimeout(resolve, 15_000))]);
  t.is(end?.code, 130, "logs -f did not exit 130 within 15 s of SIGINT");
});

realNodeTest.serial("on the real node, config:set --secret puts the value in the container's environment, never in the Release or the config output", async (t) => {
  t.timeout(8 * 60_000, "a rollout on the real node");
  if (!good) return t.fail("the earlier tests did not leave a Ready release");
  const secret = `s3cret-${randomBytes(8).toString("hex")}`;
  await ok(t, ["config:set", APP, "--secret", `API_TOKEN=${secret}`]);
  const release: Release = await echo().releaseBy((r) => r.spec.config.secretEnv?.API_TOKEN !== undefined, "with the secret API_TOKEN", good);
  const [pod] = await echo().liveAndReady(t, release.spec.version);
  if (!pod) return t.fail("no web pod of the secret's release");
  t.is(await echo().answer(pod), messages.second);

  // The process's real environment, read by cat from /proc in a one-off pod on the real node.
  const env = await ok(t, ["run", APP, "--", "cat", "/proc/self/environ"]);
  const vars = env.stdout.split(/\0|\n/).filter(Boolean);
  t.true(vars.includes(`API_TOKEN=${secret}`), `API_TOKEN is not in ${JSON.stringify(vars.map((v) => v.replace(secret, "<secret>")))}`);
  t.true(vars.includes(`MESSAGE=${messages.second}`));

  // Where it must not be: the Release (the record that Git keeps), the web pod's spec, and what config prints.
  const stored = await echo().getJson<Release>(["get", "releases.slipway.dev", release.metadata?.name ?? ""]);
  t.truthy(stored.spec.config.secretEnv?.API_TOKEN, JSON.stringify(stored.spec.config));
  t.false(JSON.stringify(stored).includes(secret), "the Release holds the secret's value");
  t.false(JSON.stringify(await echo().getJson<V1Pod>(["get", "pod", pod.metadata?.name ?? ""])).includes(secret), "the pod's spec holds the value");
  const config = await ok(t, ["config", APP]);
  t.true(config.stdout.includes("API_TOKEN"), config.stdout);
  t.false(config.stdout.includes(secret), config.stdout);
  const configJson = await ok(t, ["config", APP, "-o", "json"]);
  t.false(configJson.stdout.includes(secret), configJson.stdout);
  const info = await ok(t, ["releases:info", APP, `v${release.spec.version}`, "-o", "json"]);
  t.false(info.stdout.includes(secret), info.stdout);
  const app = await echo().app();
  t.false(JSON.stringify(app.status).includes(secret));
});
