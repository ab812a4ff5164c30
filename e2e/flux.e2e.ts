// Slipway beside real Flux: source-controller and kustomize-controller (built from the Go module proxy, see
// harness/flux.ts) apply the config repository from the local Git server, and Slipway runs in GitOps mode
// "commit-only", committing the changes and releases it makes and asking Flux to reconcile after each push.
// Pods are simulated by kwok: "rolled out" means the Deployments' pods are Ready on kwok's fake node.
import { execFile } from "node:child_process";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import test, { type ExecutionContext } from "ava";
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { startGitOps, type GitOpsHandle } from "../operator/gitops/index.js";
import { kustomization } from "../operator/gitops/layout.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import { createLogger } from "../operator/log.js";
import { startOperator } from "../operator/controller.js";
import { installCrdsAndUserRoles, ok, userWith, type User } from "./cli-support.js";
import { repoRoot } from "../operator/local/controlplane.js";
import { FLUX_NAMESPACE, startFlux, type Flux } from "./harness/flux.js";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { controlPlane, freshNamespace, waitFor } from "./harness/suite.js";
import { git, tempDirs } from "./harness/files.js";

const run = promisify(execFile);
const V = "slipway.dev/v1alpha1";
const SOURCE_API = "source.toolkit.fluxcd.io/v1";
const KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1";
const IMAGE_A = `registry.example/shop@sha256:${"a".repeat(64)}`;
const IMAGE_B = `registry.example/other@sha256:${"b".repeat(64)}`;
const AUTH = { username: "flux", password: "flux-e2e-password" };
/** Generous: two cores shared with other work; every wait is a poll that ends as soon as it holds. */
const LONG = 120_000;

let flux: Flux;
let server: GitServer;
const { temp, removeAll } = tempDirs("slipway-flux-e2e-");

test.before(async () => {
  await installCrdsAndUserRoles();
  // The policy that makes the hold atomic, as operator/deploy installs it (it concerns kustomize-controller's writes only).
  await (await controlPlane()).kubectlOk(["apply", "--server-side", "--force-conflicts", "-f", "operator/deploy/flux-hold.yaml"], { what: "cannot install operator/deploy/flux-hold.yaml" });
  flux = await startFlux(await controlPlane());
  server = await startGitServer({ auth: AUTH });
});
test.after.always(async () => {
  await server?.stop();
  await flux?.stop();
  await removeAll();
});

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}
type FluxObject = KubeObject & {
  spec?: Record<string, unknown>;
  status?: {
    conditions?: Condition[];
    lastAppliedRevision?: string;
    lastHandledReconcileAt?: string;
    artifact?: { revision?: string };
    inventory?: { entries?: { id: string }[] };
  };
};
const condition = (obj: { status?: { conditions?: Condition[] } } | undefined, type: string) => obj?.status?.conditions?.find((c) => c.type === type);

interface Env {
  ns: string;
  kube: Kube;
  url: string;
  /** Where the GitRepository and Kustomization live, and their names. */
  fluxNs: string;
  source: string;
  kustomization: string;
  gitops: GitOpsHandle;
  alice: User;
  /** The user's clone of the config repository (git CLI). */
  clone: string;
  /** Subjects of the remote branch, newest first. */
  subjects(): Promise<string[]>;
  remoteHead(): Promise<string>;
  /** Flux's logs and both sides' state, for failure messages. */
  explain(): Promise<string>;
}

interface FluxSetup {
  /** Kustomization's spec.interval (its drift correction period); default "1m". */
  kustomizationInterval?: string;
  /** Use these Flux objects (already applied, or applied by the test) instead of creating per-test ones. */
  existing?: { namespace: string; source: string; kustomization: string };
}

async function setup(t: ExecutionContext, opts: FluxSetup = {}): Promise<Env> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const kube = new Kube(cp.kubeConfig());
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "silent" });
  await server.createBareRepo(ns);
  const url = server.url(ns);
  const fluxNs = opts.existing?.namespace ?? ns;
  const source = opts.existing?.source ?? "config";
  const kustomizationName = opts.existing?.kustomization ?? "apps";
  const operator = await startOperator({ kube, namespace: ns, logger, concurrency: 2 });
  const gitops = await startGitOps({
    kube,
    cache: operator.cache,
    repo: { url, dir: await temp(), credentials: AUTH },
    mode: "commit-only",
    flux: { gitRepository: { namespace: fluxNs, name: source }, kustomization: { namespace: fluxNs, name: kustomizationName } },
    pollIntervalMs: 3_600_000,
    namespace: ns,
    logger,
  });
  const clone = await temp();
  const authed = url.replace("http://", `http://${AUTH.username}:${AUTH.password}@`);
  await run("git", ["clone", "-q", authed, clone]);
  const alice = await userWith(t, ns, "alice", "slipway-developer");
  t.teardown(async () => {
    // Flux prunes what it applied when its Kustomization goes; then the Apps left (not Flux's) go.
    await cp.kubectl(["delete", "kustomizations.kustomize.toolkit.fluxcd.io", kustomizationName, "-n", fluxNs, "--timeout=60s", "--ignore-not-found"]);
    await cp.kubectl(["delete", "gitrepositories.source.toolkit.fluxcd.io", source, "-n", fluxNs, "--timeout=60s", "--ignore-not-found"]);
    await cp.kubectl(["delete", "apps.slipway.dev", "--all", "-n", ns, "--timeout=30s"]);
    await gitops.stop();
    await operator.stop();
  });
  const remoteHead = async () => (await run("git", ["ls-remote", authed, "refs/heads/main"])).stdout.split("\t")[0] ?? "";
  const env: Env = {
    ns, kube, url, fluxNs, source, kustomization: kustomizationName, gitops, alice, clone,
    remoteHead,
    async subjects() {
      const head = await remoteHead();
      if (!head) return [];
      await git(clone, "fetch", "-q", "origin");
      return (await git(clone, "log", "--format=%s", head)).trim().split("\n");
    },
    async explain() {
      const k = await getFlux(env, "Kustomization");
      const s = await getFlux(env, "GitRepository");
      return [
        `Kustomization ${fluxNs}/${kustomizationName}: ${JSON.stringify(k?.status?.conditions)} lastApplied=${k?.status?.lastAppliedRevision}`,
        `GitRepository ${fluxNs}/${source}: ${JSON.stringify(s?.status?.conditions)} artifact=${s?.status?.artifact?.revision}`,
        `remote: ${(await env.subjects().catch(() => [])).join(" | ")}`,
        await flux.logs(15),
      ].join("\n");
    },
  };
  return env;
}

/** The Flux objects of a test: a GitRepository on its repository (Basic auth Secret) and a Kustomization of it. */
async function createFluxObjects(env: Env, opts: { kustomizationInterval?: string } = {}): Promise<void> {
  const cp = await controlPlane();
  const yaml = `apiVersion: v1
kind: Secret
metadata: { name: git-auth, namespace: ${env.fluxNs} }
stringData: { username: ${AUTH.username}, password: ${AUTH.password} }
---
apiVersion: ${SOURCE_API}
kind: GitRepository
metadata: { name: ${env.source}, namespace: ${env.fluxNs} }
spec:
  interval: 1m
  url: ${env.url}
  ref: { branch: main }
  secretRef: { name: git-auth }
---
apiVersion: ${KUSTOMIZE_API}
kind: Kustomization
metadata: { name: ${env.kustomization}, namespace: ${env.fluxNs} }
spec:
  interval: ${opts.kustomizationInterval ?? "1m"}
  sourceRef: { kind: GitRepository, name: ${env.source} }
  path: ./
  prune: true
  wait: true
  timeout: 2m
${await sampleHealthChecks()}`;
  await cp.kubectlOk(["apply", "-f", "-"], { input: yaml, what: "cannot create the Flux objects" });
}

/** The healthCheckExprs block of samples/gitops/flux/flux-kustomization.yaml, as it is there. */
async function sampleHealthChecks(): Promise<string> {
  const text = await readFile(join(repoRoot, "samples", "gitops", "flux", "flux-kustomization.yaml"), "utf8");
  const block = /^ {2}healthCheckExprs:\n(?: {4}.*\n)+/m.exec(text)?.[0];
  if (!block) throw new Error("samples/gitops/flux/flux-kustomization.yaml has no healthCheckExprs");
  return block;
}

const getFlux = (env: Env, kind: "GitRepository" | "Kustomization") =>
  env.kube.getIfExists<FluxObject>(kind === "GitRepository" ? SOURCE_API : KUSTOMIZE_API, kind, env.fluxNs, kind === "GitRepository" ? env.source : env.kustomization);
const getApp = (env: Env, name: string) => env.kube.getIfExists<App & KubeObject>(V, "App", env.ns, name);
const getConfig = (env: Env, name: string) => env.kube.getIfExists<Config & KubeObject>(V, "Config", env.ns, name);
async function releases(env: Env, app: string): Promise<(Release & KubeObject)[]> {
  const list = await env.kube.list<Release & KubeObject>(V, "Release", env.ns);
  return list.items.filter((r) => r.spec.app === app).sort((a, b) => a.spec.version - b.spec.version);
}
const versions = async (env: Env, app: string) => (await releases(env, app)).map((r) => r.spec.version);

async function until(env: Env, what: string, check: () => Promise<boolean>, timeoutMs = LONG): Promise<void> {
  await waitFor(check, timeoutMs, async () => `${what}\n${await env.explain()}`);
}

/** "main@sha1:<id>" → "<id>". */
const commitOf = (revision: string | undefined) => revision?.split(":").pop() ?? "";

/** Waits until the Kustomization is Ready with `commit` applied; returns it. */
async function appliedReady(env: Env, commit: () => Promise<string>, timeoutMs = LONG): Promise<FluxObject> {
  let k: FluxObject | undefined;
  await until(env, "the Kustomization is not Ready with the remote's head applied", async () => {
    k = await getFlux(env, "Kustomization");
    return condition(k, "Ready")?.status === "True" && commitOf(k?.status?.lastAppliedRevision) === (await commit());
  }, timeoutMs);
  return k!;
}

/** Asks a Flux object to reconcile now, as `flux reconcile` and Flux's webhook receiver do; waits until it has. */
async function reconcileNow(env: Env, kind: "GitRepository" | "Kustomization"): Promise<void> {
  const at = new Date().toISOString();
  const name = kind === "GitRepository" ? env.source : env.kustomization;
  const resource = kind === "GitRepository" ? "gitrepositories.source.toolkit.fluxcd.io" : "kustomizations.kustomize.toolkit.fluxcd.io";
  await (await controlPlane()).kubectlOk(["annotate", "--overwrite", resource, name, "-n", env.fluxNs, `reconcile.fluxcd.io/requestedAt=${at}`], { what: `cannot annotate ${kind}` });
  await until(env, `${kind} did not handle the reconcile request ${at}`, async () => (await getFlux(env, kind))?.status?.lastHandledReconcileAt === at);
}

/** Suspends (or resumes) the GitRepository: while suspended, Flux fetches nothing and applies the revision it has. */
async function suspendSource(env: Env, on: boolean): Promise<{ code: number; stderr: string }> {
  return (await controlPlane()).kubectl(["patch", "gitrepositories.source.toolkit.fluxcd.io", env.source, "-n", env.fluxNs,
    "--type=merge", "-p", JSON.stringify({ spec: { suspend: on } })]);
}

const appYaml = (ns: string, name: string, image: string) =>
  `apiVersion: ${V}\nkind: App\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  image: ${image}\n`;
const configYaml = (ns: string, name: string, vars: Record<string, string>) =>
  `apiVersion: ${V}\nkind: Config\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  env:\n${Object.entries(vars).map(([k, v]) => `    ${k}: "${v}"`).join("\n")}\n`;

/** Rewrites every kustomization.yaml of the clone's layout from the files it holds (the user's side). */
async function relayout(clone: string): Promise<void> {
  const dirs = async (dir: string) => (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const write = (path: string, resources: string[]) => writeFile(path, kustomization(resources));
  const namespaces = await dirs(join(clone, "apps"));
  await write(join(clone, "kustomization.yaml"), ["apps"]);
  await write(join(clone, "apps", "kustomization.yaml"), namespaces);
  for (const ns of namespaces) {
    const apps = await dirs(join(clone, "apps", ns));
    await write(join(clone, "apps", ns, "kustomization.yaml"), apps);
    for (const app of apps) {
      const dir = join(clone, "apps", ns, app);
      const files = (await readdir(dir)).filter((f) => f === "app.yaml" || f === "config.yaml").sort();
      await write(join(dir, "kustomization.yaml"), [...files, ...((await dirs(dir)).includes("releases") ? ["releases"] : [])]);
    }
  }
}

/** The user pushes an App and its Config to Git; returns the pushed commit. */
async function pushApp(env: Env, name: string, image: string, vars: Record<string, string>): Promise<string> {
  await git(env.clone, "pull", "-q", "--rebase", "origin", "main").catch(() => undefined);
  const dir = join(env.clone, "apps", env.ns, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "app.yaml"), appYaml(env.ns, name, image));
  await writeFile(join(dir, "config.yaml"), configYaml(env.ns, name, vars));
  await relayout(env.clone);
  await git(env.clone, "add", "-A");
  await git(env.clone, "commit", "-qm", `add ${name}`);
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  return (await git(env.clone, "rev-parse", "HEAD")).trim();
}

/** An App and Config pushed to Git, applied by Flux, rolled out, and its release v1 committed and applied. */
async function shopLive(t: ExecutionContext, opts: FluxSetup = {}): Promise<Env> {
  const env = await setup(t, opts);
  await pushApp(env, "shop", IMAGE_A, { GREETING: "hello" });
  if (!opts.existing) await createFluxObjects(env, opts);
  await until(env, "release v1 of shop was not committed", async () => (await env.subjects()).some((s) => /shop: release v1: /.test(s)));
  await appliedReady(env, env.remoteHead);
  return env;
}

/** Lines of a Flux controller's JSON log about one object. */
async function fluxLog(controller: "kustomize-controller", env: Env): Promise<Record<string, unknown>[]> {
  const cp = await controlPlane();
  const text = await readFile(join(cp.dir, "logs", `${controller}.log`), "utf8");
  return text.split("\n").flatMap((line) => {
    try {
      const l = JSON.parse(line) as Record<string, unknown>;
      return l.namespace === env.fluxNs && l.name === env.kustomization ? [l] : [];
    } catch {
      return [];
    }
  });
}

test("an App and Config pushed to Git are applied by Flux and rolled out by Slipway (kwok pods); the Kustomization is Ready only once the App is", async (t) => {
  const env = await setup(t);
  const pushed = await pushApp(env, "shop", IMAGE_A, { GREETING: "hello" });
  await createFluxObjects(env);
  // Sampled while it converges: Flux must never say Ready for the pushed revision while the App is not Ready.
  const early: string[] = [];
  let k: FluxObject | undefined;
  await until(env, "Flux did not apply the pushed App and become Ready", async () => {
    k = await getFlux(env, "Kustomization");
    const app = await getApp(env, "shop");
    const kReady = condition(k, "Ready")?.status === "True";
    if (kReady && condition(app, "Ready")?.status !== "True") early.push(`Kustomization Ready (${k?.status?.lastAppliedRevision}) while App: ${JSON.stringify(app?.status?.conditions)}`);
    return kReady;
  });
  t.deepEqual(early, []);
  const app = await getApp(env, "shop");
  t.is(condition(app, "Ready")?.status, "True");
  t.is(app?.status?.observedGeneration, app?.metadata.generation);
  // Flux's health check waited for the App: its Ready came after the App's.
  t.true(Date.parse(condition(k, "Ready")!.lastTransitionTime!) >= Date.parse(condition(app, "Ready")!.lastTransitionTime!));
  t.regex(condition(k, "Ready")!.message!, /^Applied revision: main@sha1:[0-9a-f]{40}$/);
  t.is(condition(await getFlux(env, "GitRepository"), "Ready")?.status, "True");
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "hello");
  // Flux applied them (its labels), Slipway rolled out the release it cut, and committed it.
  t.is(app?.metadata.labels?.["kustomize.toolkit.fluxcd.io/name"], env.kustomization);
  const deployment = await env.kube.getIfExists<KubeObject & { status?: { readyReplicas?: number } }>("apps/v1", "Deployment", env.ns, "shop-web");
  t.is(deployment?.status?.readyReplicas, 1);
  await until(env, "release v1 was not committed", async () => (await env.subjects()).some((s) => /shop: release v1: /.test(s)));
  // Slipway's commit reaches Flux without waiting for its 1m interval: Slipway asked it to reconcile.
  const applied = await appliedReady(env, env.remoteHead, 60_000);
  t.not(commitOf(applied.status?.lastAppliedRevision), pushed);
  const v1 = (await releases(env, "shop"))[0];
  t.is(v1?.metadata.labels?.["kustomize.toolkit.fluxcd.io/name"], env.kustomization, "Flux applies the committed Release");
  t.is(v1?.metadata.annotations?.["kustomize.toolkit.fluxcd.io/prune"], "disabled");
});

test("an App that stalls fails the Kustomization's health check, which names the App", async (t) => {
  const env = await setup(t);
  await pushApp(env, "shop", "registry.example/shop:1.2", { GREETING: "hello" });
  await createFluxObjects(env);
  let k: FluxObject | undefined;
  await until(env, "the Kustomization did not fail its health check", async () => {
    k = await getFlux(env, "Kustomization");
    return condition(k, "Ready")?.status === "False" && condition(k, "Ready")?.reason === "HealthCheckFailed";
  });
  // kstatus reads the App's Stalled condition as Failed; Flux names the object and that status, not its message.
  t.regex(condition(k, "Ready")!.message!, new RegExp(`App/${env.ns}/shop status: 'Failed'`));
  const app = await getApp(env, "shop");
  t.is(condition(app, "Stalled")?.reason, "ImageNotPinned");
  t.regex(condition(app, "Stalled")!.message!, /is not pinned by digest/);
  t.deepEqual(await versions(env, "shop"), []);
});

test("config:set is committed by Slipway and applied by Flux with no extra release, no revert and no drift, with a 2s Flux interval", async (t) => {
  const env = await shopLive(t, { kustomizationInterval: "2s" });
  const set = ok(t, await env.alice.slipway(["config:set", "shop", "GREETING=bonjour"]), "config:set");
  t.truthy(set.stdout);
  await until(env, "release v2 was not committed", async () => (await env.subjects()).some((s) => /shop: release v2: set GREETING/.test(s)));
  // The GitRepository polls every minute: Slipway's request after its push is what brings the commit in seconds.
  const applied = await appliedReady(env, env.remoteHead, 30_000);
  t.regex(condition(applied, "Ready")!.message!, /^Applied revision: main@sha1:/);
  await until(env, "the hold on the Config was not removed", async () => !(await getConfig(env, "shop"))?.metadata.annotations?.["kustomize.toolkit.fluxcd.io/reconcile"]);
  // Flux's first apply after the hold takes back the field the CLI wrote (the CLI's write took it from Flux's field
  // manager): a write of managedFields only, which kustomize-controller logs as "configured", with the value Git
  // and the cluster both hold.
  type Managed = { manager?: string; fieldsV1?: unknown };
  const owns = (c: KubeObject | undefined, manager: string) => ((c?.metadata as { managedFields?: Managed[] } | undefined)?.managedFields ?? [])
    .some((m) => m.manager === manager && JSON.stringify(m.fieldsV1 ?? {}).includes('"f:GREETING"'));
  await until(env, "Flux did not apply the Config once its hold was removed", async () => {
    const c = await getConfig(env, "shop");
    return owns(c, "kustomize-controller");
  });
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "bonjour");

  // Later reconciles (every 2 s) see no drift: nothing configured, the Config not written, the change kept.
  const before = await getConfig(env, "shop");
  const from = (await fluxLog("kustomize-controller", env)).length;
  await until(env, "Flux did not reconcile three more times", async () =>
    (await fluxLog("kustomize-controller", env)).slice(from).filter((l) => String(l.msg).startsWith("Reconciliation finished")).length >= 3, 60_000);
  const later = (await fluxLog("kustomize-controller", env)).slice(from);
  const changed = later.filter((l) => l.msg === "server-side apply completed")
    .flatMap((l) => Object.entries((l.output ?? {}) as Record<string, string>)).filter(([, action]) => action !== "unchanged");
  t.deepEqual(changed, [], `Flux corrected drift; its later apply logs:\n${later.filter((l) => l.msg === "server-side apply completed").map((l) => JSON.stringify(l)).join("\n")}\nremote: ${(await env.subjects()).join(" | ")}\n${await env.explain()}`);
  const after = await getConfig(env, "shop");
  t.is(after?.spec.env?.GREETING, "bonjour");
  t.is(after?.metadata.resourceVersion, before?.metadata.resourceVersion);
  t.deepEqual(await versions(env, "shop"), [1, 2]);
  const subjects = await env.subjects();
  t.is(subjects.filter((s) => /shop: release v2/.test(s)).length, 1);
  t.false(subjects.some((s) => /update Config|release v3/.test(s)), subjects.join("\n"));
});

test("a Flux reconcile of the older revision before Flux has fetched Slipway's commit does not revert a config:set", async (t) => {
  const env = await shopLive(t);
  const before = commitOf((await getFlux(env, "Kustomization"))?.status?.lastAppliedRevision);
  // Flux cannot fetch for now: any Kustomization reconcile applies the revision before the change.
  t.is((await suspendSource(env, true)).code, 0);
  ok(t, await env.alice.slipway(["config:set", "shop", "GREETING=bonjour"]), "config:set");
  // The CLI held the Config from Flux in the write that changed it: no window for a Flux reconcile.
  t.is((await getConfig(env, "shop"))?.metadata.annotations?.["kustomize.toolkit.fluxcd.io/reconcile"], "disabled");
  await reconcileNow(env, "Kustomization");
  t.is(commitOf((await getFlux(env, "Kustomization"))?.status?.lastAppliedRevision), before, "Flux applied the older revision");
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "bonjour", "Flux reverted the change");
  await until(env, "release v2 was not committed", async () => (await env.subjects()).some((s) => /shop: release v2: set GREETING/.test(s)));

  t.is((await suspendSource(env, false)).code, 0);
  await appliedReady(env, env.remoteHead);
  await until(env, "the hold was not removed once Flux had the commit", async () => !(await getConfig(env, "shop"))?.metadata.annotations?.["kustomize.toolkit.fluxcd.io/reconcile"]);
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "bonjour");
  t.deepEqual(await versions(env, "shop"), [1, 2]);
  t.false((await env.subjects()).some((s) => /update Config|release v3/.test(s)));
});

test("kustomize-controller's apply of the older revision onto a Config held since its reconcile read it is refused at admission, so the config:set is kept (the race between Flux's read and its apply)", async (t) => {
  const env = await shopLive(t);
  const cp = await controlPlane();
  t.is((await suspendSource(env, true)).code, 0);
  // What Flux applies for the older revision: the Config as Git holds it before the change.
  const older = configYaml(env.ns, "shop", { GREETING: "hello" });
  ok(t, await env.alice.slipway(["config:set", "shop", "GREETING=bonjour"]), "config:set");
  // A reconcile that read the Config before the CLI's write saw no hold and goes on to apply: its request,
  // made as kustomize-controller makes it (a forced server-side apply under its field manager).
  const stale = await cp.kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=kustomize-controller", "-f", "-"], { input: older });
  t.not(stale.code, 0, stale.stdout);
  t.regex(stale.stderr, /ValidatingAdmissionPolicy 'slipway-flux-hold'.*Config .*\/shop is held from Flux \(kustomize\.toolkit\.fluxcd\.io\/reconcile: disabled, by Slipway: kubectl-slipway\)/s);
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "bonjour");
  // The same apply is let through once Flux has the commit and the hold is gone (checked with a server-side dry run).
  t.is((await suspendSource(env, false)).code, 0);
  await appliedReady(env, env.remoteHead);
  await until(env, "the hold was not removed once Flux had the commit", async () => !(await getConfig(env, "shop"))?.metadata.annotations?.["kustomize.toolkit.fluxcd.io/reconcile"]);
  const unheld = await cp.kubectl(["apply", "--server-side", "--force-conflicts", "--dry-run=server", "--field-manager=kustomize-controller", "-f", "-"], { input: older });
  t.is(unheld.code, 0, unheld.stderr);
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "bonjour");
  t.deepEqual(await versions(env, "shop"), [1, 2]);
  t.false((await env.subjects()).some((s) => /update Config|release v3/.test(s)));
});

test("a kubectl change to a Flux-applied Config is held by Slipway as its watch sees it, and Flux's older revision does not revert it", async (t) => {
  const env = await shopLive(t);
  const cp = await controlPlane();
  t.is((await suspendSource(env, true)).code, 0);
  const patched = await cp.kubectl(["patch", "configs.slipway.dev", "shop", "-n", env.ns, "--type=merge", "-p", JSON.stringify({ spec: { env: { GREETING: "hallo" } } })]);
  t.is(patched.code, 0, patched.stderr);
  // Unlike the CLI, kubectl does not hold it in its write: GitOps does, a moment later.
  await until(env, "GitOps did not hold the Config from Flux", async () =>
    (await getConfig(env, "shop"))?.metadata.annotations?.["kustomize.toolkit.fluxcd.io/reconcile"] === "disabled", 30_000);
  await reconcileNow(env, "Kustomization");
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "hallo", "Flux reverted the change");
  await until(env, "release v2 was not committed", async () => (await env.subjects()).some((s) => /shop: release v2: set GREETING/.test(s)));
  t.is((await suspendSource(env, false)).code, 0);
  await appliedReady(env, env.remoteHead);
  await until(env, "the hold was not removed once Flux had the commit", async () => !(await getConfig(env, "shop"))?.metadata.annotations?.["slipway.dev/flux-hold"]);
  t.is((await getConfig(env, "shop"))?.spec.env?.GREETING, "hallo");
  t.deepEqual(await versions(env, "shop"), [1, 2]);
});

test("git revert of a release commit is applied by Flux and Slipway cuts the rollback release; Flux does not prune the reverted Release", async (t) => {
  const env = await shopLive(t);
  ok(t, await env.alice.slipway(["config:set", "shop", "GREETING=bonjour"]), "config:set");
  await until(env, "release v2 was not committed", async () => (await env.subjects()).some((s) => /shop: release v2: set GREETING/.test(s)));
  await appliedReady(env, env.remoteHead);
  await git(env.clone, "pull", "-q", "--rebase", "origin", "main");
  const v2 = (await git(env.clone, "log", "--format=%H", "--grep=release v2", "-1")).trim();
  await git(env.clone, "revert", "--no-edit", v2);
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  const reverted = (await git(env.clone, "rev-parse", "HEAD")).trim();
  // What Flux's webhook receiver does on a push.
  await reconcileNow(env, "GitRepository");
  await until(env, "the previous config is not live", async () => (await getConfig(env, "shop"))?.spec.env?.GREETING === "hello");
  await until(env, "release v3 was not committed", async () => (await env.subjects()).some((s) => /shop: release v3: set GREETING/.test(s)));
  const k = await appliedReady(env, env.remoteHead);
  t.not(commitOf(k.status?.lastAppliedRevision), reverted);
  // v2's file left Git, so Flux dropped it from its inventory, but kept the object: history survives prune.
  t.false((k.status?.inventory?.entries ?? []).some((e) => e.id.includes("shop-v2")));
  const kept = await releases(env, "shop");
  t.deepEqual(kept.map((r) => r.spec.version), [1, 2, 3]);
  t.is(kept[1]?.metadata.annotations?.["kustomize.toolkit.fluxcd.io/prune"], "disabled");
  t.is(kept[2]?.spec.config?.env?.GREETING, "hello");
  await until(env, "v3 is not the live release", async () => (await getApp(env, "shop"))?.status?.currentRelease === "v3");
});

test("an app removed from Git is pruned by Flux and Slipway removes its workloads (kwok pods)", async (t) => {
  const env = await shopLive(t);
  await pushApp(env, "other", IMAGE_B, { GREETING: "hi" });
  await reconcileNow(env, "GitRepository");
  await until(env, "release v1 of other was not committed", async () => (await env.subjects()).some((s) => /other: release v1: /.test(s)));
  await appliedReady(env, env.remoteHead);
  t.truthy(await env.kube.getIfExists("apps/v1", "Deployment", env.ns, "shop-web"));

  await git(env.clone, "pull", "-q", "--rebase", "origin", "main");
  await git(env.clone, "rm", "-rq", `apps/${env.ns}/shop`);
  await relayout(env.clone);
  await git(env.clone, "add", "-A");
  await git(env.clone, "commit", "-qm", "retire shop");
  await git(env.clone, "push", "-q", "origin", "HEAD:main");
  await reconcileNow(env, "GitRepository");
  await until(env, "Flux did not prune the App", async () => (await getApp(env, "shop")) === undefined);
  await until(env, "shop's Deployment was not removed", async () => (await env.kube.getIfExists("apps/v1", "Deployment", env.ns, "shop-web")) === undefined);
  await until(env, "shop's Config and Releases were not removed", async () => !(await getConfig(env, "shop")) && !(await versions(env, "shop")).length);
  t.is(condition(await getApp(env, "other"), "Ready")?.status, "True");
  await appliedReady(env, env.remoteHead);
  await env.gitops.idle();
  t.false((await env.subjects()).some((s) => /^[^ ]*\/shop: /.test(s) && !/release v1/.test(s)), "Slipway committed shop again");
});

test("samples/gitops/flux applied as shipped (only its URL pointed at the local Git server) runs Slipway's config repository", async (t) => {
  const cp = await controlPlane();
  const sample = join(repoRoot, "samples", "gitops", "flux");
  const texts = await Promise.all(["gitrepository.yaml", "flux-kustomization.yaml"].map((f) => readFile(join(sample, f), "utf8")));
  const source = /kind: GitRepository\nmetadata:\n {2}name: (\S+)\n {2}namespace: (\S+)/.exec(texts[0]!);
  const kust = /kind: Kustomization\nmetadata:\n {2}name: (\S+)\n {2}namespace: (\S+)/.exec(texts[1]!);
  t.truthy(source && kust, "the sample names its objects");
  t.is(source![2], FLUX_NAMESPACE);
  const env = await setup(t, { existing: { namespace: source![2]!, source: source![1]!, kustomization: kust![1]! } });
  await pushApp(env, "shop", IMAGE_A, { GREETING: "hello" });
  const secretRef = /secretRef:\n\s+name: (\S+)/.exec(texts[0]!)?.[1];
  t.truthy(secretRef);
  const secret = await cp.kubectl(["create", "secret", "generic", secretRef!, "-n", env.fluxNs,
    `--from-literal=username=${AUTH.username}`, `--from-literal=password=${AUTH.password}`]);
  t.is(secret.code, 0, secret.stderr);
  t.teardown(async () => void (await cp.kubectl(["delete", "secret", secretRef!, "-n", env.fluxNs, "--ignore-not-found"])));
  const pointed = texts[0]!.replace(/^( {2}url: ).*$/m, `$1${env.url}`);
  t.is(pointed.split("\n").filter((l, i) => l !== texts[0]!.split("\n")[i]).length, 1, "only the URL line differs");
  const applied = await cp.kubectl(["apply", "-f", "-"], { input: `${pointed}\n---\n${texts[1]}` });
  t.is(applied.code, 0, applied.stderr);
  await until(env, "release v1 was not committed", async () => (await env.subjects()).some((s) => /shop: release v1: /.test(s)));
  await appliedReady(env, env.remoteHead);
  t.is(condition(await getApp(env, "shop"), "Ready")?.status, "True");
  // The sample polls every minute and applies every five: a CLI change still converges in seconds.
  const started = Date.now();
  ok(t, await env.alice.slipway(["config:set", "shop", "GREETING=bonjour"]), "config:set");
  await until(env, "release v2 was not committed", async () => (await env.subjects()).some((s) => /shop: release v2: set GREETING/.test(s)));
  await appliedReady(env, env.remoteHead, 45_000);
  t.log(`config:set → applied by Flux in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  t.deepEqual(await versions(env, "shop"), [1, 2]);
});
