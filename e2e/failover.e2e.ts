// The operator as real processes (`node dist/operator/main.js`) that die with SIGKILL: a leader replaced by its
// standby through the Lease, and a GitOps operator killed between its local commit and the push (or between the
// push and status.commit) or restarted while a change arrives — after the restart the change is in Git exactly once,
// together with its release.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import test, { type ExecutionContext } from "ava";
import { CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { isConflict, Kube, microTime, type KubeObject } from "../operator/kube.js";
import { LEASE_API_VERSION, type LeaseObject } from "../operator/leader.js";
import { Operators, type OperatorProcess } from "./harness/operator-process.js";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";

const run = promisify(execFile);
const IMAGE = `registry.example/shop@sha256:${"a".repeat(64)}`;
const V = "slipway.dev/v1alpha1";
const LEASE = "slipway-operator";
/** The operator's default lease duration (main.ts does not change it). */
const LEASE_SECONDS = 15;
const USER = "e2e-user";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let server: GitServer;
const temps: string[] = [];

test.before(async () => {
  await installCrds();
  server = await startGitServer();
});
test.after.always(async () => {
  await server?.stop();
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

interface Env {
  ns: string;
  kube: Kube;
  /** Starts `node dist/operator/main.js` for the namespace with extra environment; does not wait for it. */
  spawn(name: string, extra: NodeJS.ProcessEnv): Promise<OperatorProcess>;
  processes: OperatorProcess[];
  output(): string;
}

async function setup(t: ExecutionContext): Promise<Env> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const operators = new Operators(cp, ns);
  const env: Env = {
    ns,
    kube: new Kube(cp.kubeConfig()),
    processes: operators.processes,
    output: () => operators.output(),
    spawn: (name, extra) => operators.spawn(name, extra),
  };
  t.teardown(async () => {
    if (!t.passed) t.log(env.output());
    await operators.cleanup();
  });
  return env;
}

async function temp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "slipway-failover-e2e-"));
  temps.push(dir);
  return dir;
}

async function apply(ns: string, yaml: string): Promise<void> {
  await (await controlPlane()).kubectlOk(["apply", "--server-side", `--field-manager=${USER}`, "-n", ns, "-f", "-"], { input: yaml });
}

const appYaml = `apiVersion: ${V}\nkind: App\nmetadata:\n  name: shop\nspec:\n  image: ${IMAGE}\n`;
const configYaml = (env: Record<string, string>) =>
  `apiVersion: ${V}\nkind: Config\nmetadata:\n  name: shop\nspec:\n  env:\n${Object.entries(env).map(([k, v]) => `    ${k}: "${v}"`).join("\n")}\n`;

const getApp = (env: Env) => env.kube.get<App & KubeObject>(V, "App", env.ns, "shop");
const getConfig = (env: Env) => env.kube.get<Config & KubeObject>(V, "Config", env.ns, "shop");

async function releases(env: Env): Promise<number[]> {
  const list = await env.kube.list<Release & KubeObject>(V, "Release", env.ns);
  return list.items.filter((r) => r.spec.app === "shop").map((r) => r.spec.version).sort((a, b) => a - b);
}

async function readLease(ns: string): Promise<V1Lease> {
  const cp = await controlPlane();
  return cp.kubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE, namespace: ns });
}

/** Waits until the App is Ready for its current generation with `release` live. */
async function eventuallyReady(env: Env, release: string, timeoutMs = 60_000): Promise<void> {
  let last: (App & KubeObject) | undefined;
  await waitFor(
    async () => {
      last = await getApp(env);
      const ready = last.status?.conditions?.find((c) => c.type === "Ready");
      return ready?.status === "True" && ready.observedGeneration === last.metadata.generation && last.status?.currentRelease === release;
    },
    timeoutMs,
    async () => `App shop not Ready with ${release}; status: ${JSON.stringify(last?.status)}; releases: ${(await releases(env)).join(",")}\n${env.output()}`,
  );
}

test("two operator replicas elect one leader, and when the leader is SIGKILLed the other takes over and keeps reconciling", async (t) => {
  const env = await setup(t);
  const election = (name: string) => ({ LEADER_ELECTION: "true", POD_NAMESPACE: env.ns, POD_NAME: name });
  const a = await env.spawn("operator-a", election("operator-a"));
  await a.until("operator started");
  const b = await env.spawn("operator-b", election("operator-b"));
  await b.until("campaigning for leadership");

  await sleep(3_000); // a few of b's attempts: it must stay a standby
  t.is((await readLease(env.ns)).spec?.holderIdentity, "operator-a");
  t.false(b.logged("started leading"), `operator-b leads next to operator-a\n${b.tail()}`);

  await apply(env.ns, configYaml({ GREETING: "hello" }));
  await apply(env.ns, appYaml);
  await eventuallyReady(env, "v1");

  a.kill("SIGKILL");
  t.like(await a.exited, { signal: "SIGKILL" });
  const killed = Date.now();
  let lease: V1Lease | undefined;
  await waitFor(async () => {
    lease = await readLease(env.ns);
    return lease.spec?.holderIdentity === "operator-b";
  }, (LEASE_SECONDS + 10) * 1000, () => `operator-b did not take the Lease: ${JSON.stringify(lease?.spec)}\n${env.output()}`);
  t.true(Date.now() - killed < (LEASE_SECONDS + 5) * 1000, `takeover took ${(Date.now() - killed) / 1000}s`);
  t.is(lease?.spec?.leaseTransitions, 1);
  await b.until("operator started");

  await apply(env.ns, configYaml({ GREETING: "hello", FOO: "after-failover" }));
  await eventuallyReady(env, "v2");
  t.deepEqual(await releases(env), [1, 2]);
  t.true(b.lines.some((l) => l.msg === "release cut" && l.release === "v2"), "operator-b cut v2");
});

/** A config repository on the real Git server, and how the remote looks to a user with the git CLI. */
async function configRepo(ns: string) {
  await server.createBareRepo(ns);
  const url = server.url(ns);
  const clone = await temp();
  await run("git", ["init", "-q", clone]);
  const git = async (...args: string[]) => (await run("git", args, { cwd: clone })).stdout;
  const fetch = async () => {
    await git("fetch", "-q", url, "+refs/heads/main:refs/remotes/origin/main");
  };
  return {
    url,
    /** Subjects of the remote branch, newest first. */
    async subjects(): Promise<string[]> {
      await fetch();
      return (await git("log", "--format=%s", "origin/main")).trim().split("\n");
    },
    /** The remote head's commit id. */
    async head(): Promise<string> {
      await fetch();
      return (await git("rev-parse", "origin/main")).trim();
    },
    /** A file at the remote's head. */
    async show(path: string): Promise<string> {
      await fetch();
      return git("show", `origin/main:${path}`);
    },
  };
}

/** Starts a GitOps operator on the config repository and its clone directory (kept across restarts). */
async function gitopsOperator(env: Env, url: string, dir: string, name: string, fault?: "before-push" | "after-push"): Promise<OperatorProcess> {
  return env.spawn(name, {
    SLIPWAY_GIT_URL: url,
    SLIPWAY_GIT_DIR: dir,
    // Only the start and the watches trigger a sync here; a poll would add nothing but timing noise.
    SLIPWAY_GIT_POLL_SECONDS: "3600",
    ...(fault ? { SLIPWAY_FAULT_KILL: fault } : {}),
  });
}

/** One GitOps operator process has committed shop's release v1 to a fresh config repository. */
async function shopReleasedThroughGitOps(t: ExecutionContext) {
  const env = await setup(t);
  const repo = await configRepo(env.ns);
  const dir = await temp();
  const first = await gitopsOperator(env, repo.url, dir, "operator #1");
  await first.ready();
  await apply(env.ns, configYaml({ GREETING: "hello" }));
  await apply(env.ns, appYaml);
  const v1 = new RegExp(`^${env.ns}/shop: release v1: `);
  await waitFor(async () => (await repo.subjects()).some((s) => v1.test(s)), 45_000, () => `no v1 commit\n${env.output()}`);
  return { env, repo, dir, first };
}

/**
 * Runs GitOps with v1 committed, then a second process with the fault hook on; a Config change makes it die
 * at `fault`. Returns what the test needs to restart and check.
 */
async function killedAt(t: ExecutionContext, fault: "before-push" | "after-push") {
  const { env, repo, dir, first } = await shopReleasedThroughGitOps(t);
  const v1Commit = await repo.head();
  const getV1 = () => env.kube.get<Release & KubeObject>(V, "Release", env.ns, "shop-v1");
  await waitFor(async () => (await getV1()).status?.commit === v1Commit, 30_000, () => `Release shop-v1 does not record ${v1Commit}\n${env.output()}`);
  const configCommit = (await getConfig(env)).status?.commit;
  first.kill("SIGTERM");
  t.like(await first.exited, { code: 0 });

  const faulty = await gitopsOperator(env, repo.url, dir, `operator #2 (${fault})`, fault);
  await faulty.ready();
  await apply(env.ns, configYaml({ GREETING: "hello", FOO: "bar" }));
  const exit = await Promise.race([faulty.exited, sleep(45_000).then(() => "still running")]);
  t.like(exit, { signal: "SIGKILL" }, `the fault hook did not kill the process\n${faulty.tail()}`);
  return { env, repo, dir, v1Commit, configCommit };
}

const v2Subject = (ns: string) => new RegExp(`^${ns}/shop: release v2: set FOO \\(by ${USER}\\)$`);

/** After the restart: one v2 commit, still one a while later, and Git holds the cluster's Config. */
async function exactlyOneV2Commit(t: ExecutionContext, env: Env, repo: Awaited<ReturnType<typeof configRepo>>): Promise<void> {
  let subjects: string[] = [];
  await waitFor(async () => (subjects = await repo.subjects()).some((s) => v2Subject(env.ns).test(s)), 45_000,
    () => `no v2 commit; remote has:\n${subjects.join("\n")}\n${env.output()}`);
  const head = await repo.head();
  await waitFor(async () => (await getConfig(env)).status?.commit === head, 30_000, () => `Config does not record ${head}\n${env.output()}`);
  await sleep(5_000); // a duplicate would be pushed by now
  subjects = await repo.subjects();
  t.is(subjects.filter((s) => /release v2/.test(s)).length, 1, `one v2 commit:\n${subjects.join("\n")}`);
  t.regex(subjects[0] ?? "", v2Subject(env.ns), `nothing was committed after it:\n${subjects.join("\n")}`);
  t.deepEqual(await releases(env), [1, 2]);
  const config = await repo.show(`apps/${env.ns}/shop/config.yaml`);
  const live = (await getConfig(env)).spec.env ?? {};
  t.deepEqual(live, { GREETING: "hello", FOO: "bar" });
  for (const [key, value] of Object.entries(live)) t.regex(config, new RegExp(`^ +${key}: "?${value}"?$`, "m"));
  t.regex(await repo.show(`apps/${env.ns}/shop/releases/v2.yaml`), /FOO: "?bar"?/);
}

test("an operator SIGKILLed between its GitOps commit and the push makes exactly one commit for the change after a restart", async (t) => {
  const { env, repo, dir, v1Commit } = await killedAt(t, "before-push");
  // Killed between the two: the clone holds the commit, the remote does not.
  t.is(await repo.head(), v1Commit, "the push never happened");
  const local = (await run("git", ["-C", dir, "log", "--format=%s", "-1", "main"])).stdout.trim();
  t.regex(local, v2Subject(env.ns), "the local commit was made");

  const restarted = await gitopsOperator(env, repo.url, dir, "operator #3");
  await restarted.ready();
  await exactlyOneV2Commit(t, env, repo);
});

test("an operator SIGKILLed after its GitOps push but before status.commit makes no second commit after a restart", async (t) => {
  const { env, repo, dir, v1Commit, configCommit } = await killedAt(t, "after-push");
  const pushed = await repo.head();
  t.not(pushed, v1Commit, "the push happened");
  t.regex((await repo.subjects())[0] ?? "", v2Subject(env.ns));
  t.is((await getConfig(env)).status?.commit, configCommit, "killed before status.commit was written");
  t.is((await env.kube.get<Release & KubeObject>(V, "Release", env.ns, "shop-v2")).status?.commit, undefined);

  const restarted = await gitopsOperator(env, repo.url, dir, "operator #3");
  await restarted.ready();
  await exactlyOneV2Commit(t, env, repo);
  t.is(await repo.head(), pushed);
});

test("a Config change made while the operator is down, after it was SIGKILLed between its push and the status write, is committed and not overwritten from Git", async (t) => {
  // Status still records v1's commit; Git's newest version of config.yaml is the v2 commit nobody recorded.
  const { env, repo, dir } = await killedAt(t, "after-push");
  t.regex((await repo.subjects())[0] ?? "", v2Subject(env.ns));
  await apply(env.ns, configYaml({ GREETING: "hello", FOO: "bar", BAR: "baz" }));

  const restarted = await gitopsOperator(env, repo.url, dir, "operator #3");
  await restarted.ready();
  const v3 = new RegExp(`^${env.ns}/shop: release v3: set BAR \\(by ${USER}\\)$`);
  let subjects: string[] = [];
  await waitFor(async () => v3.test((subjects = await repo.subjects())[0] ?? ""), 45_000,
    () => `no v3 commit on top; remote has:\n${subjects.join("\n")}\n${env.output()}`);
  t.deepEqual((await getConfig(env)).spec.env, { GREETING: "hello", FOO: "bar", BAR: "baz" }, "the change made while down is kept");
  t.regex(await repo.show(`apps/${env.ns}/shop/config.yaml`), /^ +BAR: "?baz"?$/m);
  const branches = (await run("git", ["ls-remote", repo.url, "refs/heads/conflict/*"])).stdout;
  t.is(branches, "", "no conflict was seen");
  t.deepEqual(await releases(env), [1, 2, 3]);
});

test("a Config change made while a restarted operator is still starting GitOps is committed together with its release", async (t) => {
  const { env, repo, dir, first } = await shopReleasedThroughGitOps(t);
  first.kill("SIGKILL");
  await first.exited;

  const restarted = await gitopsOperator(env, repo.url, dir, "operator #2");
  // The reconcilers run; GitOps is still opening the repository and about to reconcile everything once.
  await restarted.until("operator started");
  await apply(env.ns, configYaml({ GREETING: "hello", FOO: "bar" }));
  await restarted.ready();
  await exactlyOneV2Commit(t, env, repo);
  const subjects = await repo.subjects();
  t.false(subjects.some((s) => /update Config/.test(s)), `the Config change has a commit of its own:\n${subjects.join("\n")}`);
});

/** What the process's /readyz answers. */
async function readyz(p: OperatorProcess): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${p.port}/readyz`);
  return { status: res.status, text: (await res.text()).trim() };
}

test("a standby that takes the Lease while Git is down releases it and is not ready, then leads once Git is back and commits a change made meanwhile", async (t) => {
  const env = await setup(t);
  // A Git server of this test's own, stopped and started again on the same port and directory.
  const root = await temp();
  let git = await startGitServer({ root });
  const port = git.port;
  t.teardown(() => git.stop());
  await git.createBareRepo(env.ns);
  const url = git.url(env.ns);
  const replica = async (name: string) => env.spawn(name, {
    LEADER_ELECTION: "true", POD_NAMESPACE: env.ns, POD_NAME: name,
    SLIPWAY_GIT_URL: url, SLIPWAY_GIT_DIR: await temp(), SLIPWAY_GIT_POLL_SECONDS: "3600",
  });
  const subjects = async () => (await run("git", ["log", "--format=%s", "main"], { cwd: join(root, `${env.ns}.git`) })).stdout.trim().split("\n");

  const a = await replica("operator-a");
  await a.ready();
  await apply(env.ns, configYaml({ GREETING: "hello" }));
  await apply(env.ns, appYaml);
  const v1 = new RegExp(`^${env.ns}/shop: release v1: `);
  await waitFor(async () => (await subjects()).some((s) => v1.test(s)), 45_000, () => `no v1 commit\n${env.output()}`);
  const b = await replica("operator-b");
  await b.until("campaigning for leadership");
  await waitFor(async () => (await readyz(b)).status === 200, 20_000, async () => `the standby is not ready: ${(await readyz(b)).text}\n${b.tail()}`);
  t.is((await readyz(b)).text, "standby: operator-a leads");

  await git.stop();
  a.kill("SIGKILL");
  await a.exited;
  await apply(env.ns, configYaml({ GREETING: "hello", FOO: "bar" }));

  // operator-b takes the Lease once it expired, cannot open the config repository, and gives the Lease back.
  const failed = await b.when((l) => l.msg === "could not start as the leader; releasing the Lease and campaigning again after a backoff",
    { timeoutMs: (LEASE_SECONDS + 30) * 1000 });
  t.regex(JSON.stringify(failed.err), /cannot open the config repository/);
  t.true(typeof failed.retryInMs === "number" && failed.retryInMs > 0, JSON.stringify(failed));
  const from = b.lines.indexOf(failed);
  await b.when((l) => l.msg === "released the lease", { from, timeoutMs: 10_000 });
  const notReady = await readyz(b);
  t.is(notReady.status, 503);
  t.regex(notReady.text, /^not ready: (the start as the leader failed \(.*\); campaigning again in \d+ s|starting the reconcilers and GitOps)$/);
  // After the backoff it takes the free Lease again and tries again.
  const again = await b.when((l) => l.msg === "could not start as the leader; releasing the Lease and campaigning again after a backoff",
    { from: from + 1, timeoutMs: 30_000 });
  t.true(Number(again.retryInMs) > Number(failed.retryInMs), `the backoff grows: ${failed.retryInMs} ms, then ${again.retryInMs} ms`);
  t.false(b.lines.some((l) => l.msg === "leader election lost"), "giving the Lease back is not losing it");
  t.true(b.running);

  git = await startGitServer({ root, port });
  // Ready as a standby comes first (200 "standby: …"); it leads after its backoff.
  let last = { status: 0, text: "" };
  await waitFor(async () => (last = await readyz(b)).text === "leading", 120_000, () => `operator-b does not lead: /readyz ${last.status} ${last.text}\n${env.output()}`);
  t.is((await readLease(env.ns)).spec?.holderIdentity, "operator-b");
  const v2 = new RegExp(`^${env.ns}/shop: release v2: set FOO \\(by ${USER}\\)$`);
  let found: string[] = [];
  await waitFor(async () => (found = await subjects()).some((s) => v2.test(s)), 45_000, () => `no v2 commit; remote has:\n${found.join("\n")}\n${env.output()}`);
  t.deepEqual(await releases(env), [1, 2]);
  await eventuallyReady(env, "v2");
  t.true(b.running, "operator-b never exited");
});

test("a leader that loses the Lease to another holder stops at once and exits non-zero", async (t) => {
  const env = await setup(t);
  const a = await env.spawn("operator-a", { LEADER_ELECTION: "true", POD_NAMESPACE: env.ns, POD_NAME: "operator-a" });
  await a.ready();
  // Another holder writes the Lease, as one would after a partition the leader did not notice in time.
  await waitFor(async () => {
    const lease = await env.kube.get<LeaseObject>(LEASE_API_VERSION, "Lease", env.ns, LEASE);
    try {
      await env.kube.replace<LeaseObject>({ ...lease, spec: { ...lease.spec, holderIdentity: "operator-z", renewTime: microTime(new Date()), leaseDurationSeconds: 60 } });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }, 10_000, () => "cannot take the Lease over");
  const taken = Date.now();
  const exit = await Promise.race([a.exited, sleep(30_000).then(() => "still running")]);
  t.like(exit, { code: 1 }, `operator-a did not exit\n${a.tail()}`);
  // It notices at its next renewal (2 s ± 20%), then gives its work at most 2 s to stop.
  t.true(Date.now() - taken < 15_000, `exited ${(Date.now() - taken) / 1000} s after losing the Lease`);
  const lost = a.lines.find((l) => l.msg === "leader election lost");
  t.truthy(lost, a.tail());
  t.regex(String(lost?.reason), /the lease is now held by operator-z/);
  t.is((await readLease(env.ns)).spec?.holderIdentity, "operator-z", "it did not take the Lease back");
});
