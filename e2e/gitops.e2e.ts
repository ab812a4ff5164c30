// GitOps against a real control plane and a real Git server: every change is a commit, every push is applied,
// `git revert` is a rollback. Each test runs its own operator and GitOps, scoped to a fresh namespace, with its
// own config repository; the user's side is the real git CLI.
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import test, { type ExecutionContext } from "ava";
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { startGitOps, type GitOpsHandle } from "../operator/gitops/index.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import { createLogger } from "../operator/log.js";
import { startOperator } from "../operator/controller.js";
import { signWebhookBody } from "../operator/webhooks.js";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";
import { git, tempDirs } from "./harness/files.js";

const run = promisify(execFile);
const IMAGE_A = `registry.example/shop@sha256:${"a".repeat(64)}`;
const IMAGE_B = `registry.example/shop@sha256:${"b".repeat(64)}`;
const USER = "e2e-user";
const SECRET = "webhook-secret";
const V = "slipway.dev/v1alpha1";

let server: GitServer;
const { temp, removeAll } = tempDirs("slipway-gitops-e2e-");

test.before(async () => {
  await installCrds();
  server = await startGitServer();
});
test.after.always(async () => {
  await server?.stop();
  await removeAll();
});

interface Env {
  ns: string;
  kube: Kube;
  url: string;
  gitops: GitOpsHandle;
  /** The user's clone (git CLI), up to date after `pull()`. */
  clone: string;
  pull(): Promise<void>;
  /** Subjects of the remote branch's commits, newest first; the user's clone has fetched them. */
  subjects(): Promise<string[]>;
  /** The same, read from the server's bare repository: one git process, no fetch (for polling). */
  remoteSubjects(): Promise<string[]>;
  /** Stops GitOps, makes a change, starts GitOps again on the same clone (a crash or restart in between). */
  whileStopped(change: () => Promise<void>): Promise<void>;
  /** Posts a push webhook to the GitOps handler; returns the HTTP status. */
  webhook(headers?: Record<string, string>): Promise<number>;
  /** For a failure message: the namespace's Apps, Configs and Releases, and the operator's last log lines. */
  diagnose(): Promise<string>;
}

async function setup(t: ExecutionContext, opts: { mode?: "sync" | "commit-only" } = {}): Promise<Env> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const kube = new Kube(cp.kubeConfig());
  // The operator's debug log is kept in memory (the last 120 lines) and shown when a wait fails; LOG_LEVEL=debug
  // prints it as it happens.
  const logLines: string[] = [];
  const logger = process.env.LOG_LEVEL ? createLogger({ level: process.env.LOG_LEVEL }) : createLogger({
    level: "debug",
    destination: { write: (line: string) => void (logLines.push(line.trimEnd()) > 120 && logLines.shift()) },
  });
  const repoName = ns;
  const bare = await server.createBareRepo(repoName);
  const url = server.url(repoName);
  const operator = await startOperator({ kube, namespace: ns, logger, concurrency: 2 });
  const dir = await temp();
  const start = () =>
    startGitOps({
      kube,
      cache: operator.cache,
      repo: { url, dir },
      mode: opts.mode ?? "sync",
      // Pushes reach the cluster through webhooks or syncNow() here; polling stays out of the way of races.
      pollIntervalMs: 3_600_000,
      webhookSecret: SECRET,
      namespace: ns,
      logger,
    });
  let gitops = await start();
  const hooks: Server = createServer((req, res) => gitops.webhookHandler(req, res));
  await new Promise<void>((resolve) => hooks.listen(0, "127.0.0.1", resolve));
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  t.teardown(async () => {
    hooks.close();
    await cp.kubectl(["delete", "apps.slipway.dev", "--all", "-n", ns, "--timeout=30s"]);
    await gitops.stop();
    await operator.stop();
  });
  return {
    ns,
    kube,
    url,
    get gitops() {
      return gitops;
    },
    async whileStopped(change) {
      await gitops.stop();
      await change();
      gitops = await start();
    },
    clone,
    pull: async () => {
      await git(clone, "pull", "-q", "--rebase", "origin", "main");
    },
    subjects: async () => {
      const { stdout } = await run("git", ["ls-remote", url, "refs/heads/main"]);
      const head = stdout.split("\t")[0] ?? "";
      await git(clone, "fetch", "-q", "origin");
      return (await git(clone, "log", "--format=%s", head)).trim().split("\n");
    },
    remoteSubjects: async () => (await git(bare, "log", "--format=%s", "main")).trim().split("\n"),
    async webhook(headers) {
      const body = JSON.stringify({ ref: "refs/heads/main" });
      const { port } = hooks.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        method: "POST",
        body,
        headers: headers ?? { "content-type": "application/json", "x-slipway-signature": signWebhookBody(body, SECRET) },
      });
      return res.status;
    },
    async diagnose() {
      const state = await cp.kubectl(["get", "apps.slipway.dev,configs.slipway.dev,releases.slipway.dev", "-n", ns,
        "-o", "custom-columns=KIND:.kind,NAME:.metadata.name,GEN:.metadata.generation,STATUS:.status"]);
      return `\n--- objects in ${ns}:\n${state.stdout}${state.stderr}--- operator log (last ${logLines.length} lines):\n${logLines.join("\n")}`;
    },
  };
}

async function apply(ns: string, yaml: string, manager = USER): Promise<void> {
  await (await controlPlane()).kubectlOk(["apply", "--server-side", `--field-manager=${manager}`, "-n", ns, "-f", "-"], { input: yaml });
}

const appYaml = (name: string, image: string) => `apiVersion: ${V}\nkind: App\nmetadata:\n  name: ${name}\nspec:\n  image: ${image}\n`;
const configYaml = (name: string, env: Record<string, string>, extra = "") =>
  `apiVersion: ${V}\nkind: Config\nmetadata:\n  name: ${name}\nspec:\n  env:\n${Object.entries(env)
    .map(([k, v]) => `    ${k}: "${v}"`)
    .join("\n")}\n${extra}`;

/** Waits until the remote's newest commit subject matches; returns that commit's id. */
async function eventuallyCommit(env: Env, subject: RegExp, timeoutMs = 45_000): Promise<string> {
  let subjects: string[] = [];
  await waitFor(
    async () => {
      subjects = await env.remoteSubjects();
      return subjects.some((s) => subject.test(s));
    },
    timeoutMs,
    async () => `no commit matching ${subject}; remote has:\n${subjects.join("\n")}${await env.diagnose()}`,
  );
  await env.subjects(); // fetches
  const log = (await git(env.clone, "log", "--format=%H %s", "origin/main")).trim().split("\n");
  const line = log.find((l) => subject.test(l.slice(41)));
  return line?.slice(0, 40) ?? "";
}

async function filesOf(env: Env, commit: string): Promise<string[]> {
  return (await git(env.clone, "show", "--name-only", "--format=", commit)).trim().split("\n").sort();
}

const getConfig = (env: Env, name: string) => env.kube.getIfExists<Config & KubeObject>(V, "Config", env.ns, name);
const getApp = (env: Env, name: string) => env.kube.getIfExists<App & KubeObject>(V, "App", env.ns, name);
const getRelease = (env: Env, app: string, version: number) => env.kube.getIfExists<Release & KubeObject>(V, "Release", env.ns, `${app}-v${version}`);
/** Runs git in `cwd` as the given author. */
async function gitAs(cwd: string, name: string, email: string, ...args: string[]): Promise<string> {
  return (await run("git", ["-c", `user.name=${name}`, "-c", `user.email=${email}`, ...args], { cwd })).stdout;
}
async function releaseVersions(env: Env, app: string): Promise<number[]> {
  const list = await env.kube.list<Release & KubeObject>(V, "Release", env.ns);
  return list.items.filter((r) => r.spec.app === app).map((r) => r.spec.version).sort((a, b) => a - b);
}

async function until(env: Env, what: string, check: () => Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  await waitFor(check, timeoutMs, async () => `timed out waiting until ${what}${await env.diagnose()}`);
}

/** An App with a Config and its first release, committed. */
async function shopWithRelease(env: Env, env1: Record<string, string> = { GREETING: "hello" }): Promise<string> {
  await apply(env.ns, configYaml("shop", env1));
  await apply(env.ns, appYaml("shop", IMAGE_A));
  return eventuallyCommit(env, /: release v1: /);
}

test("an App applied with kubectl becomes one commit naming its release and who asked", async (t) => {
  const env = await setup(t);
  await apply(env.ns, `${configYaml("shop", { GREETING: "hello" })}---\n${appYaml("shop", IMAGE_A)}`);
  const commit = await eventuallyCommit(env, new RegExp(`^${env.ns}/shop: release v1: deploy .* \\(by ${USER}\\)$`));
  t.deepEqual(await filesOf(env, commit), [
    `apps/${env.ns}/kustomization.yaml`,
    `apps/${env.ns}/shop/app.yaml`,
    `apps/${env.ns}/shop/config.yaml`,
    `apps/${env.ns}/shop/kustomization.yaml`,
    `apps/${env.ns}/shop/releases/kustomization.yaml`,
    `apps/${env.ns}/shop/releases/v1.yaml`,
    "apps/kustomization.yaml",
    "kustomization.yaml",
  ]);
  await env.pull();
  const app = await readFile(join(env.clone, `apps/${env.ns}/shop/app.yaml`), "utf8");
  t.regex(app, new RegExp(`image: ${IMAGE_A.replace(/[.]/g, "\\.")}`));
  t.notRegex(app, /status:|uid:|resourceVersion:|managedFields:|generation:|creationTimestamp:/);
  await until(env, "the App records the commit in status.commit", async () => (await getApp(env, "shop"))?.status?.commit === commit);
  // The status write and the operator's own status updates do not make another commit.
  await new Promise((r) => setTimeout(r, 3_000));
  await env.gitops.idle();
  t.deepEqual((await env.subjects()).length, 2);
});

test("a config change and the release it causes land in one commit", async (t) => {
  const env = await setup(t);
  await shopWithRelease(env);
  await apply(env.ns, configYaml("shop", { GREETING: "hello", COLOR: "blue" }));
  const commit = await eventuallyCommit(env, new RegExp(`^${env.ns}/shop: release v2: set COLOR \\(by ${USER}\\)$`));
  const files = await filesOf(env, commit);
  t.true(files.includes(`apps/${env.ns}/shop/config.yaml`));
  t.true(files.includes(`apps/${env.ns}/shop/releases/v2.yaml`));
  t.false((await env.subjects()).some((s) => /update Config/.test(s)));
});

test("a pushed edit to a Config is applied to the cluster and released, credited to the commit's author, never to a changed-by the file claims", async (t) => {
  const env = await setup(t);
  await shopWithRelease(env);
  await env.pull();
  const path = join(env.clone, `apps/${env.ns}/shop/config.yaml`);
  const edited = (await readFile(path, "utf8")).replace('GREETING: "hello"', 'GREETING: "from git"').replace("GREETING: hello", "GREETING: from git");
  t.false(edited.includes("changed-by"), "who changed an object is not written to its file");
  // The file claims mallory changed it; Git says the commit's author did.
  await writeFile(path, edited.replace(/^metadata:\n/m, "metadata:\n  annotations:\n    slipway.dev/changed-by: mallory\n"));
  await gitAs(env.clone, "Alice", "alice@example.com", "commit", "-qam", "greet from git");
  const sha = (await git(env.clone, "rev-parse", "--short=7", "HEAD")).trim();
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  t.is(await env.webhook(), 202);
  await until(env, "the Config holds the pushed value", async () => (await getConfig(env, "shop"))?.spec.env?.GREETING === "from git");
  const v2 = await eventuallyCommit(env, new RegExp(`^${env.ns}/shop: release v2: set GREETING \\(git ${sha} by alice@example\\.com\\)$`));
  t.truthy(v2);
  t.is((await getRelease(env, "shop", 2))?.spec.requestedBy, "alice@example.com");

  // A later kubectl change is its own: not credited to alice, nor named after her commit.
  await apply(env.ns, configYaml("shop", { GREETING: "from git", COLOR: "blue" }));
  await eventuallyCommit(env, new RegExp(`^${env.ns}/shop: release v3: set COLOR \\(by ${USER}\\)$`));
  t.like((await getRelease(env, "shop", 3))?.spec, { cause: "set COLOR", requestedBy: USER });
});

test("deleting an app's directory in Git removes the App from the cluster", async (t) => {
  const env = await setup(t);
  await shopWithRelease(env);
  // Another app keeps the namespace in the layout.
  await apply(env.ns, `${configYaml("other", { GREETING: "hi" })}---\n${appYaml("other", IMAGE_B)}`);
  await eventuallyCommit(env, /other: release v1/);
  await env.pull();
  await git(env.clone, "rm", "-rq", `apps/${env.ns}/shop`);
  await git(env.clone, "commit", "-qm", "retire shop");
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  await env.gitops.syncNow();
  await until(env, "the App is gone", async () => (await getApp(env, "shop")) === undefined);
  // Its Config and Releases go after it (garbage collector); GitOps commits what it sees meanwhile.
  await until(env, "its Config is gone", async () => (await getConfig(env, "shop")) === undefined);
  t.truthy(await getApp(env, "other"));
  await env.gitops.idle();
  await env.pull();
  const { stdout } = await run("kubectl", ["kustomize", env.clone]);
  t.false(stdout.includes("name: shop"), `Git still holds shop after it was deleted:\n${(await env.subjects()).join("\n")}`);
  t.true(stdout.includes("name: other"));
  t.false((await env.subjects()).some((s) => /shop: create App|shop: release v2/.test(s)));
});

test("git revert of a release commit brings back the previous config and image as the next release", async (t) => {
  const env = await setup(t);
  await shopWithRelease(env, { GREETING: "hello" });
  await apply(env.ns, configYaml("shop", { GREETING: "bonjour" }));
  const v2 = await eventuallyCommit(env, /: release v2: set GREETING/);
  await env.pull();
  // alice reverts it: the rollback is hers, and names her commit and the release it reverts.
  await gitAs(env.clone, "Alice", "alice@example.com", "revert", "--no-edit", v2);
  const revert = (await git(env.clone, "rev-parse", "--short=7", "HEAD")).trim();
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  await env.gitops.syncNow();
  await until(env, "the previous config is live", async () => (await getConfig(env, "shop"))?.spec.env?.GREETING === "hello");
  await until(env, "release v3 is cut", async () => (await releaseVersions(env, "shop")).includes(3));
  t.like((await getRelease(env, "shop", 3))?.spec, { cause: `revert of v2 (git ${revert} by alice@example.com)`, requestedBy: "alice@example.com" });
  await eventuallyCommit(env, new RegExp(`^${env.ns}/shop: release v3: revert of v2 \\(git ${revert} by alice@example\\.com\\)$`));

  await apply(env.ns, appYaml("shop", IMAGE_B));
  const v4 = await eventuallyCommit(env, /: release v4: deploy /);
  await env.pull();
  await git(env.clone, "revert", "--no-edit", v4);
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  await env.gitops.syncNow();
  await until(env, "the previous image is live", async () => (await getApp(env, "shop"))?.spec.image === IMAGE_A);
  await until(env, "release v5 is cut", async () => (await releaseVersions(env, "shop")).includes(5));
  await eventuallyCommit(env, /: release v5: revert of v4 \(git [0-9a-f]{7} by dev@example\.com\)$/);
  // Releases are immutable history: the reverted ones stay, numbers are not reused.
  t.deepEqual(await releaseVersions(env, "shop"), [1, 2, 3, 4, 5]);
});

test("a cluster change racing a user's push is replayed on top of it and nothing is lost", async (t) => {
  const env = await setup(t);
  await shopWithRelease(env);
  await env.pull();
  // The user pushes a new app; GitOps does not know yet (no webhook, no poll).
  await writeFile(join(env.clone, "extra.txt"), "kept\n");
  await git(env.clone, "add", "extra.txt");
  await git(env.clone, "commit", "-qm", "user: add notes");
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  await apply(env.ns, configYaml("shop", { GREETING: "hello", RACE: "1" }));
  await eventuallyCommit(env, /: release v2: set RACE/);
  const subjects = await env.subjects();
  t.is(subjects.filter((s) => s === "user: add notes").length, 1);
  t.true(subjects.indexOf("user: add notes") > subjects.findIndex((s) => /release v2/.test(s)));
  await env.pull();
  t.is(await readFile(join(env.clone, "extra.txt"), "utf8"), "kept\n");
});

test("when Git and the cluster change the same Config, Git wins and the cluster's change is kept on a branch", async (t) => {
  const env = await setup(t);
  await shopWithRelease(env);
  await env.pull();
  const path = join(env.clone, `apps/${env.ns}/shop/config.yaml`);
  await writeFile(path, (await readFile(path, "utf8")).replace(/GREETING: .*/, "GREETING: from-git"));
  await git(env.clone, "commit", "-qam", "user: greet from git");
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  await apply(env.ns, configYaml("shop", { GREETING: "from-cluster" }));
  await until(env, "Git's value is live", async () => (await getConfig(env, "shop"))?.spec.env?.GREETING === "from-git");
  let branches = "";
  await until(env, "a conflict branch is pushed", async () => {
    branches = (await run("git", ["ls-remote", env.url, "refs/heads/conflict/*"])).stdout;
    return branches.includes(`refs/heads/conflict/${env.ns}-config-shop-`);
  });
  const branch = /refs\/heads\/(conflict\/\S+)/.exec(branches)?.[1] ?? "";
  await git(env.clone, "fetch", "-q", "origin", branch);
  t.regex(await git(env.clone, "show", `FETCH_HEAD:apps/${env.ns}/shop/config.yaml`), /GREETING: from-cluster/);
  const events = await env.kube.list<KubeObject & { reason?: string; note?: string; type?: string }>("events.k8s.io/v1", "Event", env.ns);
  const warning = events.items.find((e) => e.reason === "GitConflict");
  t.is(warning?.type, "Warning");
  t.true(warning?.note?.includes(branch));
});

test("a file whose path names another namespace or App is refused with an Event naming it, and the rest of the push is applied", async (t) => {
  const env = await setup(t);
  const other = await freshNamespace(t);
  await shopWithRelease(env);
  await env.pull();
  // A valid change, and in the same commit two forged files: one writing into another team's namespace, one
  // overwriting another App's Config from a directory of its own.
  const path = join(env.clone, `apps/${env.ns}/shop/config.yaml`);
  await writeFile(path, (await readFile(path, "utf8")).replace(/GREETING: .*/, "GREETING: from-git"));
  await mkdir(join(env.clone, `apps/${env.ns}/intruder`), { recursive: true });
  await writeFile(join(env.clone, `apps/${env.ns}/intruder/app.yaml`),
    `apiVersion: ${V}\nkind: App\nmetadata:\n  name: intruder\n  namespace: ${other}\nspec:\n  image: ${IMAGE_B}\n`);
  await mkdir(join(env.clone, `apps/${env.ns}/decoy`), { recursive: true });
  await writeFile(join(env.clone, `apps/${env.ns}/decoy/config.yaml`),
    `apiVersion: ${V}\nkind: Config\nmetadata:\n  name: shop\n  namespace: ${env.ns}\nspec:\n  env:\n    GREETING: forged\n`);
  await git(env.clone, "add", "-A");
  await git(env.clone, "commit", "-qm", "greet from git, and two forged files");
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  t.is(await env.webhook(), 202);
  await until(env, "the valid change is live", async () => (await getConfig(env, "shop"))?.spec.env?.GREETING === "from-git");
  await eventuallyCommit(env, /shop: release v2: set GREETING/);
  type Event = KubeObject & { reason?: string; note?: string; type?: string; regarding?: { name?: string } };
  let refusals: Event[] = [];
  await until(env, "both files are refused with an Event", async () => {
    refusals = (await env.kube.list<Event>("events.k8s.io/v1", "Event", env.ns)).items.filter((e) => e.reason === "PathMismatch");
    return refusals.length >= 2;
  });
  await env.gitops.idle();
  const intruder = refusals.find((e) => e.note?.includes(`apps/${env.ns}/intruder/app.yaml`));
  t.is(intruder?.type, "Warning");
  t.is(intruder?.regarding?.name, "intruder");
  t.regex(intruder?.note ?? "", new RegExp(`holds App ${other}/intruder, but a file under apps/${env.ns}/intruder/ may only hold objects of namespace ${env.ns}`));
  t.regex(refusals.find((e) => e.note?.includes(`apps/${env.ns}/decoy/config.yaml`))?.note ?? "", /may only hold the Config named decoy/);
  t.is(await env.kube.getIfExists(V, "App", other, "intruder"), undefined, "the forged App was created in the other namespace");
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "from-git", "the forged Config overwrote shop's");
  t.deepEqual(await releaseVersions(env, "shop"), [1, 2]);
});

test("a Config pushed to Git that the API server refuses (too large to release) gets an Event naming the file and is not retried; the rest of the push is applied", async (t) => {
  const env = await setup(t);
  await shopWithRelease(env);
  await env.pull();
  // 9 values of 32 KiB: each within its own limit, together beyond what a Release may hold.
  const big = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`BLOB_${i}`, "x".repeat(32768)]));
  await writeFile(join(env.clone, `apps/${env.ns}/shop/config.yaml`), configYaml("shop", big).replace("name: shop", `name: shop\n  namespace: ${env.ns}`));
  await mkdir(join(env.clone, `apps/${env.ns}/other`), { recursive: true });
  await writeFile(join(env.clone, `apps/${env.ns}/other/app.yaml`), appYaml("other", IMAGE_B).replace("name: other", `name: other\n  namespace: ${env.ns}`));
  await writeFile(join(env.clone, `apps/${env.ns}/other/config.yaml`), configYaml("other", { GREETING: "hi" }).replace("name: other", `name: other\n  namespace: ${env.ns}`));
  await git(env.clone, "add", "-A");
  await git(env.clone, "commit", "-qm", "a huge config for shop, and a new app");
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  t.is(await env.webhook(), 202);
  await until(env, "the other App is applied", async () => (await getApp(env, "other")) !== undefined);
  type Event = KubeObject & { reason?: string; note?: string; type?: string };
  let refused: Event | undefined;
  await until(env, "the refusal is an Event", async () => {
    refused = (await env.kube.list<Event>("events.k8s.io/v1", "Event", env.ns)).items.find((e) => e.reason === "InvalidInGit");
    return !!refused;
  });
  t.is(refused?.type, "Warning");
  t.true(refused?.note?.startsWith(`apps/${env.ns}/shop/config.yaml cannot be applied: `), refused?.note);
  t.true(refused?.note?.includes("env is too large; names and values together must be at most 256 KiB"), refused?.note);
  // Not retried: GitOps goes idle (a failing pass would keep a retry pending) and the Config keeps its value.
  const idle = await Promise.race([env.gitops.idle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 60_000).unref())]);
  t.true(idle, "GitOps keeps retrying the refused file");
  t.deepEqual((await getConfig(env, "shop"))?.spec.env, { GREETING: "hello" });
  t.deepEqual(await releaseVersions(env, "shop"), [1]);
});

test("secret values never enter the repository's history", async (t) => {
  const env = await setup(t);
  const value = "sup3r-s3cret-value-9d1f";
  const cp = await controlPlane();
  const r = await cp.kubectl(["create", "secret", "generic", "shop-secrets", "-n", env.ns, `--from-literal=token=${value}`]);
  t.is(r.code, 0, r.stderr);
  await shopWithRelease(env);
  await apply(env.ns, configYaml("shop", { GREETING: "hello" }, "  secretEnv:\n    TOKEN:\n      secretName: shop-secrets\n      key: token\n"));
  await eventuallyCommit(env, /: release v2: set TOKEN \(secret\)/);
  const history = await git(env.clone, "log", "-p", "--all", "--format=%H%n%B");
  t.true(history.includes("secretName: shop-secrets"));
  t.false(history.includes(value));
});

test("a webhook without a valid signature is refused with 401 and one with it is accepted", async (t) => {
  const env = await setup(t);
  t.is(await env.webhook({ "content-type": "application/json", "x-slipway-signature": "sha256=" + "0".repeat(64) }), 401);
  t.is(await env.webhook({ "content-type": "application/json", "x-hub-signature-256": signWebhookBody("other body", SECRET) }), 401);
  t.is(await env.webhook({ "content-type": "application/json" }), 401);
  t.is(await env.webhook(), 202);
});

test("in commit-only mode a push is not applied but cluster changes are still committed", async (t) => {
  const env = await setup(t, { mode: "commit-only" });
  await shopWithRelease(env);
  await env.pull();
  const path = join(env.clone, `apps/${env.ns}/shop/config.yaml`);
  await writeFile(path, (await readFile(path, "utf8")).replace(/GREETING: .*/, "GREETING: argo-will-apply"));
  await git(env.clone, "commit", "-qam", "user: edit for Argo CD");
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  t.is(await env.webhook(), 202);
  await env.gitops.syncNow();
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "hello");
  await apply(env.ns, appYaml("shop", IMAGE_B));
  await eventuallyCommit(env, /: release v2: deploy /);
});

test("a change made while GitOps was down is committed when it starts again", async (t) => {
  const env = await setup(t);
  await shopWithRelease(env);
  await env.whileStopped(async () => {
    await apply(env.ns, configYaml("shop", { GREETING: "hello", WHILE_DOWN: "yes" }));
    await until(env, "the operator cut v2", async () => (await releaseVersions(env, "shop")).includes(2));
  });
  const commit = await eventuallyCommit(env, /: release v2: set WHILE_DOWN/);
  t.true((await filesOf(env, commit)).includes(`apps/${env.ns}/shop/config.yaml`));
  await env.gitops.idle();
  t.is((await env.subjects()).filter((s) => /WHILE_DOWN/.test(s)).length, 1);
});
