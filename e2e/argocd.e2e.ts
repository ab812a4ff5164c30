// Slipway beside real Argo CD (v3.6.1, built from its Go module): its application controller, repo-server and
// a cmp-server with Slipway's plugin run as processes against the local control plane (harness/argocd.ts).
// Slipway runs in commit-only mode; Argo CD applies the config repository from the local Git server with the
// Application and health checks of samples/gitops/argocd as shipped. Every assertion about Argo CD reads Argo
// CD's own status (the Application's sync, health, resources, operation state and resource tree).
// Simulated: pods (kwok marks them Running and Ready, or leaves them Pending when no node matches).
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import test, { type ExecutionContext } from "ava";
import { parse, stringify } from "yaml";
import type { App, Config, Release } from "../crds/v1alpha1.js";
import type { PlatformSettings } from "../functions/render.js";
import { startGitOps, type GitOpsHandle } from "../operator/gitops/index.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import { createLogger } from "../operator/log.js";
import { startOperator } from "../operator/controller.js";
import { startArgoCd, type ArgoCd } from "./harness/argocd.js";
import { runCli } from "./cli-support.js";
import { repoRoot } from "../operator/local/controlplane.js";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";
import { git, tempDirs } from "./harness/files.js";

const run = promisify(execFile);
const V = "slipway.dev/v1alpha1";
const IMAGE_A = `registry.example/shop@sha256:${"a".repeat(64)}`;

let server: GitServer;
let argocd: ArgoCd;
const { temp, removeAll } = tempDirs("slipway-argocd-e2e-");

test.before(async () => {
  const cp = await installCrds();
  server = await startGitServer();
  argocd = await startArgoCd(cp, { namespace: `argocd-e2e-${process.pid}` });
  // The "default" AppProject argocd-server would create, here with orphaned-resource warnings on: children that
  // Argo CD did not see as their App's would show as an OrphanedResourceWarning condition.
  const project = {
    apiVersion: "argoproj.io/v1alpha1", kind: "AppProject",
    metadata: { name: "default", namespace: argocd.namespace },
    spec: {
      sourceRepos: ["*"], destinations: [{ server: "*", namespace: "*" }],
      clusterResourceWhitelist: [{ group: "*", kind: "*" }],
      orphanedResources: { warn: true },
    },
  };
  await cp.kubectlOk(["apply", "--server-side", "-f", "-"], { input: JSON.stringify(project), what: "cannot create the default AppProject" });
});

test.after.always(async () => {
  await argocd?.stop();
  await server?.stop();
  await removeAll();
});

interface ResourceStatus {
  group?: string;
  kind: string;
  namespace?: string;
  name: string;
  status?: string;
  health?: { status?: string; message?: string };
  requiresPruning?: boolean;
}

interface Application extends KubeObject {
  spec: Record<string, unknown>;
  status?: {
    sync?: { status?: string; revision?: string };
    health?: { status?: string; message?: string };
    resources?: ResourceStatus[];
    conditions?: { type: string; message: string }[];
    operationState?: { phase?: string; message?: string; syncResult?: { revision?: string; resources?: { kind: string; name: string; status?: string; message?: string }[] } };
    history?: { revision?: string }[];
  };
}

interface Env {
  ns: string;
  kube: Kube;
  url: string;
  /** The Application's name (in Argo CD's namespace). */
  application: string;
  gitops: GitOpsHandle;
  /** The user's clone of the config repository. */
  clone: string;
  /** Pulls, edits files of the user's clone with `edit`, commits and pushes, then asks Argo CD to refresh (as Argo CD's Git webhook would). */
  push(message: string, edit: () => Promise<void>): Promise<string>;
  /** The Application as Argo CD last wrote it. */
  app(): Promise<Application>;
}

/** Reads the shipped Application sample and points it at `url`, named `name`, in Argo CD's namespace. */
async function sampleApplication(name: string, url: string, overrides: { path?: string; plugin?: boolean; namespace?: string } = {}): Promise<Application> {
  const sample = parse(await readFile(join(repoRoot, "samples", "gitops", "argocd", "application.yaml"), "utf8")) as Application;
  const source: Record<string, unknown> = { ...(sample.spec.source as Record<string, unknown>), repoURL: url };
  if (overrides.path) source.path = overrides.path;
  if (overrides.plugin) source.plugin = { name: "slipway-v1alpha1" };
  // The destination is the local control plane by name (Argo CD runs outside it: see harness/argocd.ts).
  const destination = { name: argocd.cluster, ...(overrides.namespace ? { namespace: overrides.namespace } : {}) };
  return { ...sample, metadata: { ...sample.metadata, name, namespace: argocd.namespace }, spec: { ...sample.spec, source, destination } };
}

async function createApplication(application: Application): Promise<void> {
  await (await controlPlane()).kubectlOk(["apply", "--server-side", "-f", "-"], { input: JSON.stringify(application), what: `cannot create Application ${application.metadata.name}` });
}

async function getApplication(name: string): Promise<Application> {
  const r = await (await controlPlane()).kubectlOk(["get", "applications.argoproj.io", name, "-n", argocd.namespace, "-o", "json"], { what: `cannot read Application ${name}` });
  return JSON.parse(r) as Application;
}

/** Asks Argo CD to compare the Application with the branch's head now, as its Git webhook would. */
async function refresh(name: string): Promise<void> {
  await (await controlPlane()).kubectlOk(["annotate", "--overwrite", "applications.argoproj.io", name, "-n", argocd.namespace,
    "argocd.argoproj.io/refresh=normal"], { what: `cannot refresh Application ${name}` });
}

function summary(app: Application | undefined): string {
  if (!app) return "(no Application)";
  const s = app.status ?? {};
  return JSON.stringify({
    sync: s.sync, health: s.health, conditions: s.conditions, operation: s.operationState && { phase: s.operationState.phase, message: s.operationState.message },
    resources: s.resources?.map((r) => `${r.kind}/${r.name}: ${r.status} ${r.health?.status ?? ""} ${r.health?.message ?? ""}`),
  }, null, 1);
}

/** Waits until the Application satisfies `check`; on timeout says what Argo CD last said and shows its log. */
async function untilApplication(env: Env, what: string, check: (app: Application) => boolean, timeoutMs = 150_000): Promise<Application> {
  let last: Application | undefined;
  await waitFor(async () => {
    last = await env.app();
    return check(last);
  }, timeoutMs, async () => `Argo CD: timed out waiting until ${what}; the Application says:\n${summary(last)}\n` +
    `application controller log:\n${await argocd.logTail("argocd-application-controller", 15)}`);
  return last as Application;
}

const resource = (app: Application, kind: string, name: string) => app.status?.resources?.find((r) => r.kind === kind && r.name === name);

async function setup(t: ExecutionContext, opts: { platform?: Partial<PlatformSettings> } = {}): Promise<Env> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const kube = new Kube(cp.kubeConfig());
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "silent" });
  await server.createBareRepo(ns);
  const url = server.url(ns);
  const operator = await startOperator({ kube, namespace: ns, logger, concurrency: 2, platform: opts.platform });
  const gitops = await startGitOps({
    kube, cache: operator.cache, repo: { url, dir: await temp() }, mode: "commit-only",
    pollIntervalMs: 3_600_000, namespace: ns, logger,
    argocd: { application: { namespace: argocd.namespace, name: ns } },
  });
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  t.teardown(async () => {
    // The Application first, without cascading, so Argo CD does not delete what the test left behind while the
    // operator is stopping; then the Apps, so the garbage collector takes their children before the namespace.
    await cp.kubectl(["patch", "applications.argoproj.io", ns, "-n", argocd.namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
    await cp.kubectl(["delete", "applications.argoproj.io", ns, "-n", argocd.namespace, "--ignore-not-found", "--wait=false"]);
    await cp.kubectl(["delete", "apps.slipway.dev", "--all", "-n", ns, "--timeout=30s"]);
    await gitops.stop();
    await operator.stop();
  });
  return {
    ns, kube, url, application: ns, gitops, clone,
    async push(message, edit) {
      await git(clone, "pull", "-q", "--rebase", "origin", "main");
      await edit();
      await git(clone, "add", "-A");
      await git(clone, "commit", "-qm", message);
      // Slipway pushes to the same branch: a push that loses the race (non-fast-forward, or the ref locked by
      // the other push) is rebased and tried again, as a user would.
      for (let attempt = 1; ; attempt++) {
        try {
          await git(clone, "push", "-q", "origin", "HEAD:main");
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          await git(clone, "pull", "-q", "--rebase", "origin", "main");
        }
      }
      if ((await cp.kubectl(["get", "applications.argoproj.io", ns, "-n", argocd.namespace])).code === 0) await refresh(ns);
      return (await git(clone, "rev-parse", "HEAD")).trim();
    },
    app: () => getApplication(ns),
  };
}

const configYaml = (name: string, env: Record<string, string>, extra = "") =>
  `apiVersion: ${V}\nkind: Config\nmetadata:\n  name: ${name}\nspec:\n  env:\n${Object.entries(env)
    .map(([k, v]) => `    ${k}: "${v}"`)
    .join("\n")}\n${extra}`;

/** Subjects of the remote branch's commits, newest first. */
async function subjects(env: Env): Promise<string[]> {
  await git(env.clone, "fetch", "-q", "origin");
  return (await git(env.clone, "log", "--format=%H %s", "origin/main")).trim().split("\n");
}

/** Waits until the remote has a commit whose subject matches; returns its id. */
async function eventuallyCommit(env: Env, subject: RegExp, timeoutMs = 60_000): Promise<string> {
  let log: string[] = [];
  await waitFor(async () => (log = await subjects(env)).some((l) => subject.test(l.slice(41))), timeoutMs,
    () => `no commit matching ${subject}; the remote has:\n${log.join("\n")}`);
  return log.find((l) => subject.test(l.slice(41)))?.slice(0, 40) ?? "";
}

async function releaseVersions(env: Env, app: string): Promise<number[]> {
  const list = await env.kube.list<Release & KubeObject>(V, "Release", env.ns);
  return list.items.filter((r) => r.spec.app === app).map((r) => r.spec.version).sort((a, b) => a - b);
}

const getApp = (env: Env, name: string) => env.kube.getIfExists<App & KubeObject>(V, "App", env.ns, name);
const getConfig = (env: Env, name: string) => env.kube.getIfExists<Config & KubeObject>(V, "Config", env.ns, name);
const conditionMessage = (app: App | undefined, type: string) => app?.status?.conditions?.find((c) => c.type === type && c.status === "True")?.message;

/**
 * The Argo CD way to add an app: the user pushes its App and Config to the config repository (Slipway, told by
 * the push webhook, writes the kustomization.yaml files); Argo CD applies them; Slipway cuts release v1 and
 * commits it; Argo CD syncs that too.
 */
async function shopUnderArgoCd(env: Env, config: Record<string, unknown> = { env: { GREETING: "hello" } }, opts = { synced: true }): Promise<Application | undefined> {
  await env.push("shop: new app", async () => {
    const dir = join(env.clone, "apps", env.ns, "shop");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "app.yaml"), stringify({ apiVersion: V, kind: "App", metadata: { name: "shop", namespace: env.ns }, spec: { image: IMAGE_A } }));
    await writeFile(join(dir, "config.yaml"), stringify({ apiVersion: V, kind: "Config", metadata: { name: "shop", namespace: env.ns }, spec: config }));
  });
  await env.gitops.syncNow();
  await createApplication(await sampleApplication(env.application, env.url, { namespace: env.ns }));
  if (!opts.synced) return undefined;
  await eventuallyCommit(env, /: release v1: /);
  return untilApplication(env, "Argo CD has synced the repository", (a) => a.status?.sync?.status === "Synced" && !!resource(a, "Release", "shop-v1"));
}

test("Argo CD reads an App's health: Progressing while it rolls out, Degraded with its message when stalled, then Healthy and Suspended (pods simulated by kwok)", async (t) => {
  // No node has this label: the pods stay Pending, and the rollout passes its deadline after 60 s (long enough
  // for Argo CD's first look on a loaded machine; 30 s was not, once in CI).
  const env = await setup(t, { platform: { progressDeadlineSeconds: 60 } });
  await shopUnderArgoCd(env, { env: { GREETING: "hello" }, nodeSelector: { "slipway.dev/e2e-no-such-node": "true" } }, { synced: false });
  const progressing = await untilApplication(env, "the App is Progressing", (a) => resource(a, "App", "shop")?.health?.status === "Progressing", 60_000);
  t.regex(resource(progressing, "App", "shop")?.health?.message ?? "", /./);
  t.is(progressing.status?.health?.status, "Progressing", "the Application's own health follows its App");
  const degraded = await untilApplication(env, "the App is Degraded", (a) => resource(a, "App", "shop")?.health?.status === "Degraded");
  const stalled = conditionMessage(await getApp(env, "shop"), "Stalled");
  t.truthy(stalled);
  t.is(resource(degraded, "App", "shop")?.health?.message, stalled, "Argo CD shows the App's own Stalled message");
  t.is(degraded.status?.health?.status, "Degraded");

  // The fix is pushed to Git: Argo CD applies it, Slipway cuts v2, the App becomes Ready.
  await env.push("shop: schedule anywhere", async () => {
    await writeFile(join(env.clone, "apps", env.ns, "shop", "config.yaml"), stringify({
      apiVersion: V, kind: "Config", metadata: { name: "shop", namespace: env.ns }, spec: { env: { GREETING: "hello" } },
    }));
  });
  const healthy = await untilApplication(env, "the App is Healthy", (a) => resource(a, "App", "shop")?.health?.status === "Healthy" && a.status?.health?.status === "Healthy");
  t.is(resource(healthy, "App", "shop")?.health?.message, conditionMessage(await getApp(env, "shop"), "Ready"));
  t.true((await releaseVersions(env, "shop")).includes(2));

  await env.push("shop: suspend", async () => {
    const path = join(env.clone, "apps", env.ns, "shop", "app.yaml");
    const app = parse(await readFile(path, "utf8")) as App;
    await writeFile(path, stringify({ ...app, spec: { ...app.spec, suspend: true } }));
  });
  const suspended = await untilApplication(env, "the App is Suspended", (a) => resource(a, "App", "shop")?.health?.status === "Suspended");
  t.is(suspended.status?.health?.status, "Suspended");
});

test("after a sync the Application stays Synced while Slipway writes status and makes children, which Argo CD shows under their App (pods simulated by kwok)", async (t) => {
  const env = await setup(t);
  await shopUnderArgoCd(env);
  await untilApplication(env, "the App is Healthy", (a) => resource(a, "App", "shop")?.health?.status === "Healthy");
  // A minute of Slipway at work on a synced Application: every look finds it Synced, nothing out of sync.
  const until = Date.now() + 30_000;
  let looks = 0;
  while (Date.now() < until) {
    const app = await env.app();
    t.is(app.status?.sync?.status, "Synced", `look ${looks}: ${summary(app)}`);
    t.deepEqual(app.status?.resources?.filter((r) => r.status !== "Synced").map((r) => `${r.kind}/${r.name}`) ?? [], []);
    t.falsy(app.status?.conditions?.find((c) => c.type === "OrphanedResourceWarning"), "no orphaned resources in the namespace");
    looks++;
    await new Promise((r) => setTimeout(r, 2000));
  }
  // The children are in the resource tree with their App as parent, and Argo CD does not manage them itself.
  const tree = await argocd.resourceTree(env.application);
  const node = (kind: string, name: string) => tree?.nodes?.find((n) => n.kind === kind && n.name === name && n.namespace === env.ns);
  for (const [kind, name] of [["Deployment", "shop-web"], ["Service", "shop"], ["Ingress", "shop"]] as const) {
    t.deepEqual(node(kind, name)?.parentRefs?.map((p) => `${p.kind}/${p.name}`), ["App/shop"],
      `${kind} ${name} in the tree: ${JSON.stringify(tree?.nodes?.map((n) => `${n.kind}/${n.name}`))}`);
  }
  const managed = (await env.app()).status?.resources?.map((r) => r.kind).sort();
  t.deepEqual([...new Set(managed)], ["App", "Config", "Release"]);
});

test("kubectl slipway config:set with self-heal on is neither reverted by Argo CD nor released twice, and a later Git edit of the key is applied", async (t) => {
  const env = await setup(t);
  await shopUnderArgoCd(env);
  const cp = await controlPlane();
  const set = await runCli(["config:set", "shop", "GREETING=bonjour", "-n", env.ns], { KUBECONFIG: cp.kubeconfigPath }).done;
  t.is(set.code, 0, set.stderr);
  const v2 = await eventuallyCommit(env, /: release v2: set GREETING/);
  // Argo CD compares Slipway's commit (Slipway asked it to refresh) and syncs to it.
  await untilApplication(env, "Argo CD has synced Slipway's commit", (a) => a.status?.sync?.status === "Synced" && a.status?.sync?.revision === v2 || false);
  // Ten seconds later, nothing was reverted and no release churned.
  await new Promise((r) => setTimeout(r, 10_000));
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "bonjour");
  t.deepEqual(await releaseVersions(env, "shop"), [1, 2]);
  const app = await env.app();
  t.is(app.status?.sync?.status, "Synced", summary(app));
  const reverted = (app.status?.history ?? []).length;
  t.log(`Argo CD sync history: ${reverted} entries`);

  // The CLI's fields were handed over to Git: a Git edit of the same key reaches the cluster.
  await env.push("shop: greet in Spanish", async () => {
    await writeFile(join(env.clone, "apps", env.ns, "shop", "config.yaml"), stringify({
      apiVersion: V, kind: "Config", metadata: { name: "shop", namespace: env.ns }, spec: { env: { GREETING: "hola" } },
    }));
  });
  await waitFor(async () => (await getConfig(env, "shop"))?.spec.env?.GREETING === "hola", 90_000,
    async () => `the Git edit never reached the cluster; the Application says:\n${summary(await env.app())}`);
  await eventuallyCommit(env, /: release v3: set GREETING/);
  t.deepEqual(await releaseVersions(env, "shop"), [1, 2, 3]);
});

test("git revert of a release commit is synced by Argo CD, Slipway cuts the rollback release, and prune keeps the reverted Release", async (t) => {
  const env = await setup(t);
  await shopUnderArgoCd(env);
  const cp = await controlPlane();
  const set = await runCli(["config:set", "shop", "GREETING=bonjour", "-n", env.ns], { KUBECONFIG: cp.kubeconfigPath }).done;
  t.is(set.code, 0, set.stderr);
  const v2 = await eventuallyCommit(env, /: release v2: set GREETING/);
  await untilApplication(env, "Argo CD tracks release v2", (a) => !!resource(a, "Release", "shop-v2") && a.status?.sync?.status === "Synced");

  // The revert removes releases/v2.yaml and puts GREETING back: Argo CD applies it and prunes.
  await env.push(`Revert release v2`, async () => {
    await git(env.clone, "revert", "--no-edit", "--no-commit", v2);
  });
  await waitFor(async () => (await getConfig(env, "shop"))?.spec.env?.GREETING === "hello", 90_000,
    async () => `Argo CD did not apply the revert; the Application says:\n${summary(await env.app())}`);
  await eventuallyCommit(env, /: release v3: set GREETING/);
  const synced = await untilApplication(env, "Argo CD is Synced after the rollback", (a) => a.status?.sync?.status === "Synced" && !!resource(a, "Release", "shop-v3"));
  // Argo CD synced with prune and kept the reverted Release: owned by its App, it is not one of the objects
  // Argo CD manages (nor counted as out of sync).
  t.deepEqual(await releaseVersions(env, "shop"), [1, 2, 3]);
  t.is(resource(synced, "Release", "shop-v2"), undefined);
  t.true((synced.status?.history?.length ?? 0) >= 3, "Argo CD synced the revert");
  t.is((await env.kube.getIfExists<Release & KubeObject>(V, "Release", env.ns, "shop-v3"))?.spec.config.env?.GREETING, "hello");
});

test("the Slipway plugin renders an app directory in Argo CD's cmp-server and the Application syncs it; a render error fails the sync with the plugin's message", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const repo = `plugin-${ns}`;
  await server.createBareRepo(repo);
  const url = server.url(repo);
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  const appDir = join(clone, "shop");
  await run("mkdir", ["-p", appDir]);
  await writeFile(join(appDir, "app.yaml"), `apiVersion: ${V}\nkind: App\nmetadata:\n  name: shop\nspec:\n  image: ${IMAGE_A}\n`);
  await writeFile(join(appDir, "config.yaml"), configYaml("shop", { GREETING: "hello" }));
  await writeFile(join(appDir, "release.yaml"), stringify({
    apiVersion: V, kind: "Release", metadata: { name: "shop-v1" },
    spec: { app: "shop", version: 1, cause: "first", build: { image: IMAGE_A }, config: { env: { GREETING: "hello" } } },
  }));
  await git(clone, "add", "-A");
  await git(clone, "commit", "-qm", "shop");
  await git(clone, "push", "-q", "origin", "HEAD:main");
  const application = await sampleApplication(repo, url, { path: "shop", plugin: true, namespace: ns });
  await createApplication(application);
  t.teardown(async () => {
    await cp.kubectl(["patch", "applications.argoproj.io", repo, "-n", argocd.namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}']);
    await cp.kubectl(["delete", "applications.argoproj.io", repo, "-n", argocd.namespace, "--ignore-not-found", "--wait=false"]);
  });
  const env = { app: () => getApplication(repo) } as Env;
  const synced = await untilApplication(env, "the rendered Deployment is synced", (a) => a.status?.sync?.status === "Synced" && !!resource(a, "Deployment", "shop-web"));
  t.truthy(resource(synced, "Service", "shop"));
  const deployment = await cp.kubectl(["get", "deployment", "shop-web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}"]);
  t.is(deployment.stdout, IMAGE_A);

  // An App without its Config: the plugin's generate command exits non-zero with the render error.
  await git(clone, "rm", "-q", "shop/config.yaml");
  await git(clone, "commit", "-qm", "shop: drop the Config");
  await git(clone, "push", "-q", "origin", "HEAD:main");
  await refresh(repo);
  const failed = await untilApplication(env, "the render error shows", (a) => !!a.status?.conditions?.some((c) => c.type === "ComparisonError" && /has no Config/.test(c.message)));
  t.regex(failed.status?.conditions?.find((c) => c.type === "ComparisonError")?.message ?? "", /App "shop" has no Config: create a Config named "shop"/);
  t.is(failed.status?.sync?.status, "Unknown");
});

