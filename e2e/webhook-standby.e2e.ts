// Webhooks reach whichever replica the Service picks. Two operator processes elect a leader; deliveries sent to
// the standby's port are verified there and handed to the leader through the cluster (operator/receiver.ts):
// a signed one is accepted and the leader acts on it, an unsigned one is refused and nothing happens.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import test, { type ExecutionContext } from "ava";
import { parse, stringify } from "yaml";
import { ANNOTATIONS, type App, type Config } from "../crds/v1alpha1.js";
import { githubPush } from "../operator/builds/testdata/payloads.js";
import { pipelineRunName, type PipelineRun } from "../operator/builds/pipelinerun.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import { LEASE_API_VERSION, type LeaseObject } from "../operator/leader.js";
import { signWebhookBody } from "../operator/webhooks.js";
import { requireTekton, sharedGitServer, sourceRepo, stopGitServer } from "./builds-support.js";
import { freePort } from "../operator/local/controlplane.js";
import { Operators, type OperatorProcess } from "./harness/operator-process.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";

const run = promisify(execFile);
const SECRET = "standby-webhook-secret";
const V = "slipway.dev/v1alpha1";
const LEASE = "slipway-operator";
const IMAGE = `registry.example/shop@sha256:${"a".repeat(64)}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const temps: string[] = [];

test.before(async () => {
  await installCrds();
});
test.after.always(async () => {
  await stopGitServer();
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

async function temp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "slipway-standby-e2e-"));
  temps.push(dir);
  return dir;
}

interface Replica {
  process: OperatorProcess;
  webhookPort: number;
}

/** Two operator processes with leader election and webhooks: operator-a leads, operator-b is a ready standby. */
async function twoReplicas(t: ExecutionContext, ns: string, extra: NodeJS.ProcessEnv): Promise<{ kube: Kube; leader: Replica; standby: Replica }> {
  const cp = await controlPlane();
  const operators = new Operators(cp, ns);
  t.teardown(async () => {
    if (!t.passed) t.log(operators.output());
    await operators.cleanup();
  });
  const replica = async (name: string): Promise<Replica> => {
    const webhookPort = await freePort();
    const process = await operators.spawn(name, {
      LEADER_ELECTION: "true", POD_NAMESPACE: ns, POD_NAME: name, WEBHOOK_PORT: String(webhookPort), SLIPWAY_CONFIG_WEBHOOK_SECRET: SECRET,
      ...extra, ...(extra.SLIPWAY_GIT_URL ? { SLIPWAY_GIT_DIR: await temp() } : {}),
    });
    return { process, webhookPort };
  };
  const leader = await replica("operator-a");
  await leader.process.ready();
  const standby = await replica("operator-b");
  let text = "";
  await waitFor(async () => {
    const res = await fetch(`http://127.0.0.1:${standby.process.port}/readyz`);
    text = (await res.text()).trim();
    return res.status === 200;
  }, 30_000, () => `operator-b is not a ready standby: ${text}\n${standby.process.tail()}`);
  t.is(text, "standby: operator-a leads");
  return { kube: new Kube(cp.kubeConfig()), leader, standby };
}

async function post(port: number, path: string, body: string | Buffer, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body: new Uint8Array(Buffer.from(body)), headers: { "content-type": "application/json", ...headers } });
  return { status: res.status, body: await res.text() };
}

async function apply(ns: string, yaml: string): Promise<void> {
  await (await controlPlane()).kubectlOk(["apply", "--server-side", "--field-manager=e2e-user", "-n", ns, "-f", "-"], { input: yaml });
}

test("a config repository push delivered to the standby is verified there and synced by the leader; an unsigned one is refused and changes nothing", async (t) => {
  const ns = await freshNamespace(t);
  const server = await sharedGitServer();
  await server.createBareRepo(ns);
  const url = server.url(ns);
  const { kube, leader, standby } = await twoReplicas(t, ns, { SLIPWAY_GIT_URL: url, SLIPWAY_GIT_POLL_SECONDS: "3600" });
  await apply(ns, `apiVersion: ${V}\nkind: Config\nmetadata:\n  name: shop\nspec:\n  env:\n    GREETING: hello\n`);
  await apply(ns, `apiVersion: ${V}\nkind: App\nmetadata:\n  name: shop\nspec:\n  image: ${IMAGE}\n`);

  // A user pushes a change of the Config to the config repository, once operator-a has committed v1.
  const clone = await temp();
  const git = async (...args: string[]) => (await run("git", ["-C", clone, "-c", "user.name=Alice", "-c", "user.email=alice@example.com", ...args])).stdout;
  await waitFor(async () => {
    await rm(clone, { recursive: true, force: true });
    await run("git", ["clone", "-q", url, clone]);
    return (await git("log", "--format=%s")).includes("release v1");
  }, 45_000, () => `operator-a committed no v1\n${leader.process.tail()}`);
  const path = join(clone, "apps", ns, "shop", "config.yaml");
  const config = parse(await readFile(path, "utf8")) as Config;
  config.spec.env = { ...config.spec.env, FOO: "from-git" };
  await writeFile(path, stringify(config));
  await git("commit", "-q", "-am", "Set FOO");
  await git("push", "-q", "origin", "HEAD:main");
  const env = async () => (await kube.get<Config & KubeObject>(V, "Config", ns, "shop")).spec.env ?? {};
  const syncRequested = async () => (await kube.get<LeaseObject>(LEASE_API_VERSION, "Lease", ns, LEASE)).metadata.annotations?.[ANNOTATIONS.syncRequestedAt];

  const body = JSON.stringify({ ref: "refs/heads/main" });
  const unsigned = await post(standby.webhookPort, "/webhooks/config", body, {});
  t.is(unsigned.status, 401, unsigned.body);
  const forged = await post(standby.webhookPort, "/webhooks/config", body, { "x-hub-signature-256": signWebhookBody(body, "a guess") });
  t.is(forged.status, 401, forged.body);
  await sleep(5_000); // the leader would have synced by now
  t.deepEqual(await env(), { GREETING: "hello" }, "nothing was synced");
  t.is(await syncRequested(), undefined, "the standby asked the leader for nothing");

  const signed = await post(standby.webhookPort, "/webhooks/config", body, { "x-hub-signature-256": signWebhookBody(body, SECRET) });
  t.is(signed.status, 202, signed.body);
  t.truthy(await syncRequested());
  await waitFor(async () => (await env()).FOO === "from-git", 30_000, async () => `the leader did not sync: ${JSON.stringify(await env())}\n${leader.process.tail()}`);
  t.true(leader.process.logged("another replica received a config repository webhook: syncing"));
  t.true(standby.process.logged("config repository webhook: asked the leader to sync"));
  t.false(standby.process.logged("started leading"), "operator-b stayed a standby");
});

test("a source push delivered to the standby makes the leader build the branch head; an unsigned one, or one signed with the config repository's secret, builds nothing", async (t) => {
  await requireTekton();
  const ns = await freshNamespace(t);
  const cp = await controlPlane();
  await cp.kubectlOk(["apply", "--server-side", "-k", "samples/tekton", "-n", ns], { what: `cannot install samples/tekton in ${ns}` });
  const src = await sourceRepo(t, `web-${ns}`);
  const commit = await src.commit({ Procfile: "web: node server.js\n", "server.js": "// v1\n" });
  const { kube, leader, standby } = await twoReplicas(t, ns, { SLIPWAY_BUILDS: "true", SLIPWAY_SOURCE_POLL_SECONDS: "3600" });
  // The App's own webhook secret, read by whichever replica takes the delivery.
  await cp.kubectlOk(["create", "secret", "generic", "web-hooks", "-n", ns, "--from-literal=secret=web-team-secret"]);
  await apply(ns, `apiVersion: ${V}\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    git: ${src.url}\n    branch: main\n    webhookSecret: { name: web-hooks }\n`);
  const runs = async () => (await kube.list<PipelineRun & KubeObject>("tekton.dev/v1", "PipelineRun", ns)).items.map((r) => r.metadata.name);
  const requested = async () => (await kube.get<App & KubeObject>(V, "App", ns, "web")).metadata.annotations?.[ANNOTATIONS.requestedAt];

  const signedWith = (secret: string) => githubPush({ repo: { url: src.url, fullName: `acme/${src.name}`, id: 4242 }, branch: "main", before: "0".repeat(40), after: commit, secret });
  const push = signedWith("web-team-secret");
  const unsigned = Object.fromEntries(Object.entries(push.headers).filter(([k]) => !/signature/i.test(k)));
  const refused = await post(standby.webhookPort, "/webhooks/source", push.body, unsigned);
  t.is(refused.status, 401, refused.body);
  const platformSigned = signedWith(SECRET);
  const wrongSecret = await post(standby.webhookPort, "/webhooks/source", platformSigned.body, platformSigned.headers);
  t.is(wrongSecret.status, 401, wrongSecret.body);
  await sleep(5_000); // a build would have been started by now
  t.deepEqual(await runs(), [], "nothing was built");
  t.is(await requested(), undefined, "the standby asked the leader for nothing");

  const accepted = await post(standby.webhookPort, "/webhooks/source", push.body, push.headers);
  t.is(accepted.status, 202, accepted.body);
  t.truthy(await requested());
  const name = pipelineRunName("web", commit);
  await waitFor(async () => (await runs()).includes(name), 30_000, async () => `the leader started no build ${name}: ${(await runs()).join(", ")}\n${leader.process.tail()}`);
  t.true(leader.process.logged("a build was asked for through the cluster: polling the App's source"));
  t.true(standby.process.logged("asked the leader for a build"));
  t.false(standby.process.logged("build started"), "the standby built nothing itself");
});
