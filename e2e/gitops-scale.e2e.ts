// GitOps with a config repository of hundreds of apps, against a real control plane and a real Git server: a
// push reconciles only the apps whose directories it changed. In a file of its own (its own process), so its
// 300 apps do not hold up the timers of the other GitOps tests.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import type { Config, Release } from "../crds/v1alpha1.js";
import { startGitOps } from "../operator/gitops/index.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import { createLogger } from "../operator/log.js";
import { startOperator } from "../operator/controller.js";
import { signWebhookBody } from "../operator/webhooks.js";
import { startGitServer } from "../operator/local/gitserver.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";

const run = promisify(execFile);
const V = "slipway.dev/v1alpha1";
const IMAGE = `registry.example/shop@sha256:${"a".repeat(64)}`;
const SECRET = "webhook-secret";

test.before(installCrds);

test("a push to a config repository of 300 apps reconciles only the app it changed (passes counted)", async (t) => {
  t.timeout(240_000);
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const kube = new Kube(cp.kubeConfig());
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "silent" });
  const server = await startGitServer();
  const work = await mkdtemp(join(tmpdir(), "slipway-gitops-scale-e2e-"));
  await server.createBareRepo(ns);
  const url = server.url(ns);
  const operator = await startOperator({ kube, namespace: ns, logger, concurrency: 2 });
  const passes: string[] = [];
  const gitops = await startGitOps({
    kube, cache: operator.cache, repo: { url, dir: join(work, "operator") }, mode: "sync",
    pollIntervalMs: 3_600_000, webhookSecret: SECRET, namespace: ns, logger, onPass: (app) => passes.push(app),
    // Gentler than the default 8: the suite runs two files at once on two cores, and the other file's timers
    // should not wait behind a burst of 300 apps.
    concurrency: 2,
  });
  const hooks = createServer((req, res) => gitops.webhookHandler(req, res));
  await new Promise<void>((resolve) => hooks.listen(0, "127.0.0.1", resolve));
  t.teardown(async () => {
    hooks.close();
    await gitops.stop();
    await operator.stop();
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });
  const clone = join(work, "user");
  await run("git", ["clone", "-q", url, clone]);
  const git = (...args: string[]) => run("git", ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", ...args], { cwd: clone });
  const webhook = async () => {
    const body = JSON.stringify({ ref: "refs/heads/main" });
    const { port } = hooks.address() as AddressInfo;
    return (await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body, headers: { "x-slipway-signature": signWebhookBody(body, SECRET) } })).status;
  };

  const count = 300;
  const t0 = Date.now();
  // Suspended, so the test is about GitOps (the operator leaves them be) and the shared kwok node keeps its
  // room; the one app the second push edits is resumed by it.
  const app = (name: string, suspend: boolean) => `apiVersion: ${V}\nkind: App\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  image: ${IMAGE}\n  processes:\n    web:\n      replicas: 0\n  routing:\n    enabled: false\n${suspend ? "  suspend: true\n" : ""}`;
  const config = (name: string, greeting: string) => `apiVersion: ${V}\nkind: Config\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  env:\n    GREETING: ${greeting}\n`;
  for (let i = 0; i < count; i++) {
    const dir = join(clone, "apps", ns, `app-${i}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "app.yaml"), app(`app-${i}`, true));
    await writeFile(join(dir, "config.yaml"), config(`app-${i}`, "hello"));
  }
  await git("add", "-A");
  await git("commit", "-qm", `${count} apps`);
  await git("push", "-q", "origin", "HEAD:main");
  t.is(await webhook(), 202);
  await waitFor(async () => {
    const [apps, configs] = await Promise.all([kube.list(V, "App", ns), kube.list(V, "Config", ns)]);
    return apps.items.length === count && configs.items.length === count;
  }, 180_000, () => `not all ${count} Apps and Configs were applied`);
  await gitops.idle();
  t.log(`${count} apps applied in ${Math.round((Date.now() - t0) / 1000)} s`);
  t.true(new Set(passes).size >= count, "the first push reconciled every app");

  passes.length = 0;
  const t1 = Date.now();
  await git("pull", "-q", "--rebase", "origin", "main");
  await writeFile(join(clone, "apps", ns, "app-123", "app.yaml"), app("app-123", false));
  await writeFile(join(clone, "apps", ns, "app-123", "config.yaml"), config("app-123", "bonjour"));
  await git("commit", "-qam", "app-123: resume, and say bonjour");
  await git("push", "-q", "origin", "HEAD:main");
  t.is(await webhook(), 202);
  let subjects: string[] = [];
  await waitFor(async () => {
    await git("fetch", "-q", "origin");
    subjects = (await git("log", "--format=%s", "origin/main")).stdout.split("\n");
    return subjects.some((s) => s.startsWith(`${ns}/app-123: release v1: deploy `));
  }, 60_000, () => `no release commit for app-123; the remote has:\n${subjects.slice(0, 5).join("\n")}`);
  await gitops.idle();
  t.log(`app-123's release committed ${Math.round((Date.now() - t1) / 1000)} s after the push`);
  t.deepEqual([...new Set(passes)], [`${ns}/app-123`], "only the changed app was reconciled");
  // The push, the App and Config applied, the release cut, its commit: a handful of passes, not one per app.
  t.true(passes.length <= 8, `${passes.length} passes`);
  const greeting = async (name: string) => (await kube.get<Config & KubeObject>(V, "Config", ns, name)).spec.env?.GREETING;
  t.is(await greeting("app-123"), "bonjour");
  t.is(await greeting("app-124"), "hello");
  const releases = await kube.list<Release & KubeObject>(V, "Release", ns);
  t.deepEqual(releases.items.map((r) => r.metadata.name), ["app-123-v1"], "no other app was released");
});
