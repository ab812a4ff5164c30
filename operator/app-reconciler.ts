// The App reconciler: from App + Config + Releases to rolled-out workloads, in Flux's fixed order —
// get → deletion → suspend → observe the new generation → rollback → cut a release → render →
// apply → prune → read the rollout — and status summarized in one place at the end.
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { App, AppStatus, Condition, Config, LatestBuild, Release } from "../crds/v1alpha1.js";
import { ANNOTATIONS, API_VERSION, LABELS } from "../crds/v1alpha1.js";
import { defaultPlatform, render, routeHosts, type KubernetesObject, type PlatformSettings, type RenderError } from "../functions/render.js";
import { builtMessage, shortSha } from "./builds/pipelinerun.js";
import { BUILT, isTrue, READY, RECONCILING, sameConditions, setCondition, STALLED, summarize, type Summary } from "./conditions.js";
import { faultPoint } from "./fault.js";
import { isConflict, isNotFound, KubeError, specFingerprint, type EventInput, type Kube, type KubeObject } from "./kube.js";
import type { HandlerResult } from "./queue.js";
import { ApiReader, type AppObject, type ConfigObject, type ObjectReader } from "./reader.js";
import { normalizeConfig, parseVersion, planRelease, planRollback, releaseObject, sameConfig, sameContent, unreleasedBuild } from "./releases.js";
import { SecretDigests } from "./secrets.js";

export const FINALIZER = "slipway.dev/finalizer";

/** Kinds the render function produces; children of these kinds that a new render lacks are pruned. */
const CHILD_KINDS: readonly { apiVersion: string; kind: string; optional?: boolean }[] = [
  { apiVersion: "apps/v1", kind: "Deployment" },
  { apiVersion: "v1", kind: "Service" },
  { apiVersion: "networking.k8s.io/v1", kind: "Ingress" },
  { apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler" },
  // Served only where Gateway API is installed.
  { apiVersion: "gateway.networking.k8s.io/v1", kind: "HTTPRoute", optional: true },
];

/**
 * How often an App Stalled by another object (HostTaken, NotOwned) is looked at again: that object's owner, not
 * this App's, may resolve it, and neither is watched for it.
 */
const BLOCKED_RECHECK_MS = 60_000;

/** How often a rollout in progress is looked at again even without a Deployment event. */
const ROLLOUT_POLL_MS = 30_000;
/**
 * A rollout's progress (the counts in status.processes and the Reconciling message) is written at most this
 * often per App; becoming Ready or Stalled is written at once.
 */
export const PROGRESS_WRITE_MS = 5_000;
/**
 * A rollout's progress is first written once it has gone on this long (since the App became Reconciling). A
 * rollout that ends sooner has nothing for a user to act on before its outcome: its status says which release is
 * being cut, then Ready (or Stalled), two writes. Under load (100 of 3,000 Apps rolling out at once) a rollout
 * takes 5 to 10 s, and writing its progress at 5 s was a third status write for most of them.
 */
export const PROGRESS_FIRST_WRITE_MS = 15_000;

export interface AppReconcilerOptions {
  kube: Kube;
  log: Logger;
  platform?: Partial<PlatformSettings>;
  /** Calls when a release was cut (metrics). */
  onReleaseCut?: (release: Release) => void;
  /** Where Apps, Configs and Releases are read; default the API server (the operator passes its watch caches). */
  reader?: ObjectReader;
  /** Reads the Secrets that secret env names, to digest their values; default straight from the API server. */
  secrets?: SecretDigests;
}

/** The result of one pass: the summary, the status fields it implies and what to tell the user. */
interface Outcome {
  summary: Summary;
  status?: Partial<AppStatus>;
  /** Recorded only when the summary is new, so a stuck App does not flood Events. */
  event?: EventInput;
  requeueAfterMs?: number;
  /** Leave status as it is: the next pass, which is sure to come soon, writes it (see #sync). */
  deferStatus?: boolean;
  /** The App's releases as the pass left them (to name the release its build became). */
  releases?: readonly Release[];
}

/** One reconcile pass's App (as its latest write returned it) and the Config it reconciles. */
interface Pass {
  app: AppObject;
  /** No operator had reconciled the App before this pass. */
  readonly fresh: boolean;
  /** The App's Config, once read (undefined when it has none). */
  config?: ConfigObject;
}

export interface DeploymentObject extends KubeObject {
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

export class AppReconciler {
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #platform: PlatformSettings;
  readonly #onReleaseCut: (release: Release) => void;
  readonly #reader: ObjectReader;
  readonly #secrets: SecretDigests;
  /**
   * What the operator last applied to each watched child, per App ("<namespace>/<app>" → "<kind>/<name>" →), and
   * the generation the server gave it then. While the cached child still has that generation (nobody changed its
   * spec since) and the render is the same, applying again would change nothing: the server-side apply is skipped.
   */
  readonly #lastApplied = new Map<string, Map<string, { hash: string; generation: number | undefined }>>();
  /** App objects the API server returned for this operator's own writes: current as of that write. */
  readonly #fromServer = new WeakSet<AppObject>();
  /** When this process last wrote each App's status ("namespace/name" → ms), to space out progress writes. */
  readonly #statusWrittenAt = new Map<string, number>();

  constructor(options: AppReconcilerOptions) {
    this.#kube = options.kube;
    this.#reader = options.reader ?? new ApiReader(options.kube);
    this.#secrets = options.secrets ?? new SecretDigests(options.kube);
    this.#log = options.log;
    this.#platform = { ...defaultPlatform, ...options.platform };
    this.#onReleaseCut = options.onReleaseCut ?? (() => undefined);
  }

  /** Brings one App (key "namespace/name") to its desired state; throws on transient failures (retried). */
  async reconcile(namespace: string, name: string): Promise<HandlerResult | void> {
    const app = await this.#reader.app(namespace, name);
    if (!app) {
      // Deleted: owner references let the garbage collector remove the Releases and children.
      this.#forget(namespace, name);
      return;
    }
    const log = this.#log.child({ app: name, namespace });

    // The App owns its Releases and children through ownerReferences, so the garbage collector deletes them with
    // it. The finalizer is only on Apps an older operator reconciled; it is honoured, never added.
    if (app.metadata.deletionTimestamp) return this.#finalize(app, log);
    if (app.spec.suspend) {
      log.debug("suspended; not reconciling");
      return;
    }

    // No operator has reconciled this App yet (its first status write is this pass's), so it has no children.
    const fresh = app.status?.observedGeneration === undefined;
    const pass: Pass = { app, fresh };
    let outcome: Outcome;
    try {
      outcome = await this.#sync(pass, log);
    } catch (err) {
      if (!isConflict(err)) {
        const message = err instanceof Error ? err.message : String(err);
        const summary: Summary = { state: "retrying", reason: "ReconcileFailed", message };
        await this.#finish(pass, { summary }, log).catch((statusErr: unknown) => log.warn({ err: statusErr }, "cannot record the failure in status"));
      }
      throw err;
    }
    if (!outcome.deferStatus) await this.#finish(pass, outcome, log);
    return outcome.requeueAfterMs === undefined ? undefined : { requeueAfterMs: outcome.requeueAfterMs };
  }

  /**
   * The pass's first status write, before its first request that changes anything (or can be slow to fail):
   * the generations it observes with the Reconciling condition, the children it may apply (listed before they
   * exist, so a crash cannot leave one unlisted), and the release it is about to cut (GitOps waits for that
   * release before committing the change that causes it). Nothing is written when all of that is in status.
   */
  async #begin(pass: Pass, config: ConfigObject, cut: Release | undefined, releases: readonly Release[], objects: readonly KubernetesObject[]): Promise<void> {
    const app = pass.app;
    const generation = app.metadata.generation;
    const next: Partial<AppStatus> = {
      observedGeneration: generation,
      observedConfigGeneration: config.metadata.generation,
      pendingRelease: cut ? { version: cut.spec.version, generation, configGeneration: config.metadata.generation } : undefined,
    };
    // The release about to be cut is the live one from now (the newest release is); its number is remembered at
    // once (rememberedNumber discounts it should the cut never happen), so the pass's final write can wait for
    // the rollout's progress without leaving status behind the releases.
    if (cut) {
      next.currentRelease = `v${cut.spec.version}`;
      next.latestReleaseNumber = Math.max(app.status?.latestReleaseNumber ?? 0, cut.spec.version);
    }
    // A pending release that has been cut is history: its readers (rememberedNumber, GitOps' releasePending)
    // count it as cut once it exists, so clearing it waits for the pass's final write (#finish) instead of costing
    // a status write of its own in the pass after the cut.
    const pending = app.status?.pendingRelease;
    if (!cut && pending && releases.some((r) => r.spec.version === pending.version)) next.pendingRelease = pending;
    const known = knownInventory(pass);
    // An App whose inventory is unknown (an older operator rolled it out) is pruned by listing its children, and
    // gets its inventory with the pass's final status.
    if (known) next.inventory = [...new Set([...known, ...inventoryOf(objects)])].sort();
    let conditions = app.status?.conditions;
    // A new generation, or a release to roll out: the App is Reconciling from now until the pass's outcome says.
    if (app.status?.observedGeneration !== generation || cut) {
      const message = cut ? `cutting release v${cut.spec.version}: ${cut.spec.cause}` : `reconciling generation ${generation}`;
      conditions = summarize(conditions, { state: "progressing", reason: "Progressing", message }, generation, new Date());
    }
    const built = releasedBuild(app, cut ? [...releases, cut] : releases);
    if (built) {
      next.latestBuild = built.latestBuild;
      conditions = setCondition(conditions, built.condition, new Date());
    }
    pass.app = await this.#writeStatus(app, { ...next, conditions });
  }

  /**
   * The ordered steps; each returns early with an outcome when the App cannot go further. What the pass will do
   * is decided before it changes anything, so that its first status write can say so (#begin).
   */
  async #sync(pass: Pass, log: Logger): Promise<Outcome> {
    const { namespace = "", name } = pass.app.metadata;
    let config = await this.#reader.config(namespace, name);
    pass.config = config;
    const releases: Release[] = [];
    const unowned: (Release & KubeObject)[] = [];
    for (const release of await this.#reader.releases(namespace, name)) {
      const owner = ownerUid(release);
      // An earlier App of this name left it; the garbage collector is deleting it. Not this App's history.
      if (owner !== undefined && owner !== pass.app.metadata.uid) continue;
      releases.push(release);
      // Made without an owner (applied from Git, or by an older operator): adopted below, so it goes with the App.
      if (owner === undefined) unowned.push(release as Release & KubeObject);
    }

    // A Config applied by Git (Slipway's sync, Argo CD, Flux) may arrive a moment after its App: wait for it
    // (Reconciling) rather than stall, so a health check does not fail on the order of two applies.
    if (!config) {
      return { summary: { state: "waiting", reason: "AwaitingConfig", message: `App "${name}" has no Config yet: create a Config named "${name}" in namespace "${namespace}"` } };
    }

    // A rollback is the release of its pass: the App and Config are pointed back at it, and that change runs the
    // next pass, which plans any further release.
    const rollbackTo = pass.app.metadata.annotations?.[ANNOTATIONS.rollback];
    // The secret env of the release to cut (a rollback's is the target's), digested from its Secrets now.
    const rollbackVersion = rollbackTo !== undefined ? parseVersion(rollbackTo) : undefined;
    const secretEnv = rollbackTo !== undefined ? releases.find((r) => r.spec.version === rollbackVersion)?.spec.config.secretEnv : config.spec.secretEnv;
    const secrets = await this.#secrets.state(namespace, secretEnv, log);
    const plan: ReturnType<typeof planRollback> = rollbackTo !== undefined ? planRollback(pass.app, releases, rollbackTo, secrets)
      : planRelease({ app: pass.app, config, releases, secrets });
    const action = rollbackTo !== undefined ? "Rollback" : "CutRelease";
    if (plan.kind === "stalled") return stalled(plan.reason, plan.message, action);
    if (plan.kind === "awaitingBuild") return { summary: { state: "waiting", reason: "AwaitingBuild", message: plan.message } };
    const candidate = plan.kind === "cut" ? releaseObject(pass.app, plan.spec, config) : undefined;
    const live = candidate ?? releases.at(-1);
    if (!live) throw new Error("no release to roll out");
    // Rendered before the cut: an invalid spec must not leave a release behind that can never run.
    const rendered = render({ app: pass.app, config, release: live }, this.#platform);
    if (rendered.errors.length) {
      const latestReleaseNumber = candidate ? undefined : Math.max(pass.app.status?.latestReleaseNumber ?? 0, live.spec.version);
      return { ...stalled("InvalidSpec", renderMessage(rendered.errors), "Render"), ...(latestReleaseNumber ? { status: { latestReleaseNumber } } : {}) };
    }
    // Checked before anything is written: an App that may not route its hosts or own its children changes nothing.
    const hostTaken = await this.#hostTaken(pass.app, rendered.objects);
    if (hostTaken) return { ...stalled("HostTaken", hostTaken, "Route"), requeueAfterMs: BLOCKED_RECHECK_MS };
    const notOwned = await this.#notOwned(pass.app, rendered.objects);
    if (notOwned) return { ...stalled("NotOwned", notOwned, "Apply"), requeueAfterMs: BLOCKED_RECHECK_MS };

    // status.inventory lists every child the App may have. A child is listed before it is first applied, so a
    // crash cannot leave one unlisted; pruning then deletes what is listed but no longer rendered, with no list
    // calls. An App without an inventory (rolled out by an operator that kept none) is pruned by listing its
    // children once; a fresh App, which no pass has reached before, lists its children from its first write.
    const known = knownInventory(pass);
    await this.#begin(pass, config, candidate, releases, rendered.objects);
    for (const release of unowned) {
      const adopted = await this.#adopt(pass.app, release);
      releases[releases.indexOf(release)] = adopted;
    }
    if (candidate) {
      // The App's build, if this release is the first to hold it.
      const build = rollbackTo === undefined ? unreleasedBuild(pass.app, releases) : undefined;
      const cut = await this.#cut(pass.app, config, candidate, log);
      releases.push(cut);
      if (build?.sourceCommit && build.pipelineRun && cut.spec.build.pipelineRun === build.pipelineRun) {
        await this.#event(pass.app, {
          type: "Normal", reason: "BuildSucceeded", action: "Build",
          note: `Built commit ${shortSha(build.sourceCommit)} in PipelineRun ${build.pipelineRun}; cut release v${cut.spec.version} (${build.image})`,
        }, log);
      }
    }
    if (plan.target) {
      ({ app: pass.app, config } = await this.#matchRelease(pass.app, config, plan.target, log));
      pass.config = config;
    }

    const version = `v${live.spec.version}`;
    const latestReleaseNumber = Math.max(pass.app.status?.latestReleaseNumber ?? 0, live.spec.version);
    const inventory = inventoryOf(rendered.objects);
    const applied = await this.#apply(pass.app, rendered.objects);
    if (known) await this.#pruneListed(pass.app, known.filter((id) => !inventory.includes(id)), log);
    else await this.#prune(pass.app, rendered.objects, log);
    const deployments = applied.filter((o): o is DeploymentObject => o.kind === "Deployment");
    const previous = releases.at(-2);
    let rollout = readRollout(deployments, version, { previous: previous ? `v${previous.spec.version}` : undefined });
    if (rollout.stalled) {
      // Only a stalled rollout reads its pods: to say why they are stuck (unschedulable, crashing, not ready, no
      // image) and which of them still serve.
      const { podProblems, serving } = await this.#podProblems(deployments, log);
      rollout = readRollout(deployments, version, { previous: previous ? `v${previous.spec.version}` : undefined, podProblems, serving });
    }
    const status: Partial<AppStatus> = {
      currentRelease: version,
      latestReleaseNumber,
      url: this.#url(pass.app),
      processes: rollout.processes,
      inventory,
    };
    if (rollout.stalled) return { ...stalled("RolloutStalled", rollout.stalled, "Rollout"), status, releases };
    if (!rollout.done) {
      const summary: Summary = { state: "progressing", reason: "RollingOut", message: rollout.message };
      // When the App already says it is reconciling this generation (this pass's first write, which also listed
      // the children), the progress can wait: a Deployment whose controller has not yet seen its new spec is
      // about to get a status update, which runs the next pass; otherwise progress is written once the rollout
      // has gone on for PROGRESS_FIRST_WRITE_MS, then at most every PROGRESS_WRITE_MS, and the pass comes back to
      // write it then. Each release thus usually costs one status write for its start (#begin, which names the
      // release being cut) and one for Ready.
      // A rollback pass that pointed the Config back at its release writes at once that it observed that Config.
      const configObserved = pass.app.status?.observedConfigGeneration === config?.metadata.generation;
      const deferral = configObserved ? deferProgress(pass.app, rollout, this.#statusWrittenAt.get(appKey(pass.app)), Date.now()) : undefined;
      return { summary, status, releases, requeueAfterMs: deferral?.requeueAfterMs ?? ROLLOUT_POLL_MS, deferStatus: deferral !== undefined };
    }
    return {
      summary: { state: "ready", reason: "RolloutComplete", message: rollout.message },
      status,
      releases,
      event: { type: "Normal", reason: "RolloutComplete", action: "Rollout", note: rollout.message },
    };
  }

  /**
   * A release is cut only from the App and Config the API server holds now. The watch caches are each up to date
   * but not with each other: a Release's deletion can arrive before its App's, and a release cut from that view
   * would outlive the App. So before a cut the App and Config are read again from the server; if they differ
   * from what the pass used, it is a conflict and the pass runs again (quietly, like any 409). The Releases are
   * not listed again (that list cost the API server more than every other read of a 1,000-App run together):
   * a release's name is its number, so creating one the cache did not show yet fails with a 409. Only what a
   * release is made from is compared, not the resourceVersion: a status write (GitOps records its commit on
   * the Config it just applied) changes nothing the release holds, and would cost a retry half a second later.
   */
  async #confirm(app: AppObject, config: ConfigObject | undefined): Promise<void> {
    if (!this.#reader.cached) return;
    const { namespace = "", name } = app.metadata;
    // An App this pass wrote (with its resourceVersion as precondition) came back from the server just now.
    const [liveApp, liveConfig] = await Promise.all([
      this.#fromServer.has(app) ? app : this.#kube.getIfExists<AppObject>(API_VERSION, "App", namespace, name),
      this.#kube.getIfExists<ConfigObject>(API_VERSION, "Config", namespace, name),
    ]);
    const changed = specFingerprint(liveApp) !== specFingerprint(app) || specFingerprint(liveConfig) !== specFingerprint(config);
    if (changed) throw new KubeError(409, "Conflict", `App ${namespace}/${name}: the watch caches were behind the API server before a release cut; reconciling again`);
  }

  /**
   * Creates a Release, owned by the App, under its deterministic name, once the App and Config it was planned
   * from are confirmed (#confirm). A 409 for the same content means it was created before a crash or restart:
   * done already. A 409 for other content means someone else took the number: retry. A 409 for a Release of an
   * earlier App of the same name waits for the garbage collector to delete it.
   */
  async #cut(app: AppObject, config: ConfigObject | undefined, release: Release, log: Logger): Promise<Release> {
    await this.#confirm(app, config);
    let created: Release;
    try {
      const owned = { ...release, metadata: { ...release.metadata, ownerReferences: [appOwner(app)] } };
      created = await this.#kube.create<Release & KubeObject>(owned as Release & KubeObject);
    } catch (err) {
      if (!isConflict(err)) throw err;
      let existing = await this.#kube.get<Release & KubeObject>(API_VERSION, "Release", release.metadata.namespace, release.metadata.name);
      const owner = ownerUid(existing);
      if (owner !== undefined && owner !== app.metadata.uid) {
        throw new KubeError(409, "Conflict", `release ${release.metadata.name} is left from an earlier App of this name; waiting for the garbage collector to delete it`, { cause: err });
      }
      if (sameContent(existing.spec, release.spec)) {
        if (owner === undefined) existing = await this.#adopt(app, existing);
        this.#reader.created(existing);
        return existing;
      }
      // Someone else took the number (or the cache had not shown that release yet): the next pass, reading it,
      // cuts the next number. A conflict, retried quietly.
      throw new KubeError(409, "Conflict", `release ${release.metadata.name} already exists with other content; cutting the next number instead`, { cause: err });
    }
    this.#reader.created(created as Release & KubeObject);
    const { version, cause, requestedBy } = release.spec;
    log.info({ release: `v${version}`, cause, requestedBy }, "release cut");
    faultPoint("after-release-cut");
    this.#onReleaseCut(created);
    await this.#event(app, {
      type: "Normal",
      reason: "ReleaseCreated",
      action: "CutRelease",
      note: `Release v${version}: ${cause}${requestedBy ? ` (requested by ${requestedBy})` : ""}`,
    }, log);
    return created;
  }

  /** Gives a Release without an owner the App as its owner, so the garbage collector deletes it with the App. */
  async #adopt(app: AppObject, release: Release & KubeObject): Promise<Release & KubeObject> {
    const ownerReferences = [...(release.metadata.ownerReferences ?? []), appOwner(app)];
    const adopted = await this.#kube.mergePatch<Release & KubeObject>(release, { metadata: { resourceVersion: release.metadata.resourceVersion, ownerReferences } });
    this.#reader.wrote(release, adopted);
    return adopted;
  }

  /**
   * After a rollback, points the App's image and the Config back at the release rolled back to, so the desired
   * state matches what runs, then removes the rollback annotation (last: a crash before it repeats this step).
   */
  async #matchRelease(app: App & KubeObject, config: (Config & KubeObject) | undefined, target: Release, log: Logger) {
    const want = normalizeConfig(target.spec.config);
    if (!sameConfig(config?.spec, want)) {
      if (config) {
        // Without managedFields in the body the server keeps tracking field owners itself.
        const metadata = { ...config.metadata };
        delete metadata.managedFields;
        const before = config;
        config = await this.#kube.replace<Config & KubeObject>({ ...config, metadata, spec: want });
        this.#reader.wrote(before, config);
      } else {
        config = await this.#kube.create<Config & KubeObject>({
          apiVersion: API_VERSION,
          kind: "Config",
          metadata: { name: app.metadata.name, namespace: app.metadata.namespace },
          spec: want,
        } as Config & KubeObject);
      }
    }
    const spec = app.spec.image && app.spec.image !== target.spec.build.image ? { image: target.spec.build.image } : undefined;
    app = await this.#patchApp(app, {
      metadata: { resourceVersion: app.metadata.resourceVersion, annotations: { [ANNOTATIONS.rollback]: null } },
      ...(spec ? { spec } : {}),
    });
    log.info({ release: `v${target.spec.version}` }, "App and Config now match the release rolled back to");
    return { app, config };
  }

  /**
   * Why the App may not route its hosts: one of them belongs to another App. A host belongs to the App whose
   * route (Ingress or HTTPRoute, controlled by it) serves it already; when neither or both do, to the App created
   * first (then the first by namespace and name). Undefined when every host is the App's.
   */
  async #hostTaken(app: AppObject, objects: readonly KubernetesObject[]): Promise<string | undefined> {
    if (!objects.some((o) => o.kind === "Ingress" || o.kind === "HTTPRoute")) return undefined;
    const mine = new Set(routeHosts(app, this.#platform));
    // Default hosts (<app>.<namespace>.<domain>) never equal one another, so another App's is only compared when
    // this App names domains of its own: a pass over every App costs a few set lookups each.
    const ownDomains = (app.spec.routing?.domains?.length ?? 0) > 0;
    for (const other of await this.#reader.apps()) {
      if (other.metadata.uid === app.metadata.uid || other.metadata.deletionTimestamp || other.spec.routing?.enabled === false) continue;
      if (!ownDomains && !other.spec.routing?.domains?.some((h) => mine.has(h))) continue;
      const shared = routeHosts(other, this.#platform).filter((h) => mine.has(h));
      for (const host of shared) {
        const [ours, theirs] = await Promise.all([this.#routes(app, host), this.#routes(other, host)]);
        const theirsFirst = ours === theirs ? claimedFirst(other, app) : theirs;
        if (!theirsFirst) continue;
        const owner = `${other.metadata.namespace}/${other.metadata.name}`;
        const why = ours === theirs ? "was created first" : "routes it already";
        return `host "${host}" belongs to App ${owner}, which ${why}: a host name belongs to one App; ` +
          `remove it from this App's spec.routing.domains (or its previews' domainTemplate), or from App ${owner}`;
      }
    }
    return undefined;
  }

  /** Whether the App's own route (Ingress or HTTPRoute named after it, controlled by it) serves `host` now. */
  async #routes(app: AppObject, host: string): Promise<boolean> {
    const gateway = this.#platform.routing === "gateway";
    const route = await this.#kube.getIfExists<KubeObject & { spec?: { rules?: { host?: string }[]; hostnames?: string[] } }>(
      gateway ? "gateway.networking.k8s.io/v1" : "networking.k8s.io/v1", gateway ? "HTTPRoute" : "Ingress", app.metadata.namespace, app.metadata.name);
    if (!route || ownerUid(route) !== app.metadata.uid) return false;
    return gateway ? (route.spec?.hostnames ?? []).includes(host) : (route.spec?.rules ?? []).some((r) => r.host === host);
  }

  /**
   * Why the App may not apply its children: one exists already and is not the App's (no controller owner
   * reference to it). Slipway never takes over an object it did not create; server-side apply would. A child
   * this process has applied before is the App's (its Deployment is checked again in the watch cache).
   * Undefined when every child is the App's or does not exist yet.
   */
  async #notOwned(app: AppObject, objects: readonly KubernetesObject[]): Promise<string | undefined> {
    const remembered = this.#lastApplied.get(appKey(app));
    const namespace = app.metadata.namespace ?? "";
    for (const object of objects) {
      const cached = this.#reader.child(object.apiVersion, object.kind, namespace, object.metadata.name);
      if (!cached && remembered?.has(`${object.kind}/${object.metadata.name}`)) continue;
      const existing = cached ?? await this.#kube.getIfExists<KubeObject>(object.apiVersion, object.kind, namespace, object.metadata.name);
      const owner = existing && ownerUid(existing);
      if (!existing || owner === app.metadata.uid) continue;
      if (owner !== undefined && existing.metadata.ownerReferences?.some((r) => r.controller && r.kind === "App" && r.name === app.metadata.name)) {
        // An earlier App of this name left it; the garbage collector is deleting it.
        throw new KubeError(409, "Conflict", `${object.kind} ${object.metadata.name} is left from an earlier App of this name; waiting for the garbage collector to delete it`);
      }
      const controller = existing.metadata.ownerReferences?.find((r) => r.controller);
      return `${object.kind} ${object.metadata.name} already exists and is not this App's ` +
        `(${controller ? `it is controlled by ${controller.kind} ${controller.name}` : "it has no controller owner reference"}): ` +
        `Slipway never takes over an object it did not create; delete or rename that ${object.kind}, or give the App another name`;
    }
    return undefined;
  }

  /** Applies every rendered object with a controller ownerReference to the App; returns what the server holds. */
  async #apply(app: App & KubeObject, objects: KubernetesObject[]): Promise<KubeObject[]> {
    const owner = appOwner(app);
    const applied: KubeObject[] = [];
    let remembered = this.#lastApplied.get(appKey(app));
    for (const object of objects) {
      const body = { ...object, metadata: { ...object.metadata, ownerReferences: [owner] } } as KubeObject;
      const key = `${object.kind}/${object.metadata.name}`;
      const hash = createHash("sha256").update(JSON.stringify(body)).digest("base64");
      const last = remembered?.get(key);
      const cached = this.#reader.child(object.apiVersion, object.kind, app.metadata.namespace ?? "", object.metadata.name);
      if (cached && last?.hash === hash && cached.metadata.generation === last.generation) {
        applied.push(cached);
        continue;
      }
      try {
        const result = await this.#kube.apply(body);
        if (!remembered) this.#lastApplied.set(appKey(app), (remembered = new Map()));
        remembered.set(key, { hash, generation: result.metadata.generation });
        applied.push(result);
      } catch (err) {
        throw new Error(`cannot apply ${object.kind} ${object.metadata.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
    return applied;
  }

  /** Deletes the App's children that the render no longer produces (a removed process type, routing turned off). */
  async #prune(app: App & KubeObject, objects: KubernetesObject[], log: Logger): Promise<void> {
    const keep = new Set(objects.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const { apiVersion, kind, optional } of CHILD_KINDS) {
      let items: KubeObject[];
      try {
        items = (await this.#kube.list<KubeObject>(apiVersion, kind, app.metadata.namespace, `${LABELS.app}=${app.metadata.name}`)).items;
      } catch (err) {
        if (optional && isNotFound(err)) continue;
        throw err;
      }
      for (const item of items) {
        if (ownerUid(item) !== app.metadata.uid || keep.has(`${kind}/${item.metadata.name}`)) continue;
        await this.#kube.deleteIfExists(item);
        log.info({ kind, name: item.metadata.name }, "pruned a child the App no longer needs");
      }
    }
  }

  /** Deletes the listed children ("<apiVersion>/<kind>/<name>") that are still there and still the App's. */
  async #pruneListed(app: App & KubeObject, ids: readonly string[], log: Logger): Promise<void> {
    for (const id of ids) {
      const match = /^(.+)\/([^/]+)\/([^/]+)$/.exec(id);
      if (!match) continue;
      const [, apiVersion = "", kind = "", name = ""] = match;
      let child: KubeObject | undefined;
      try {
        child = await this.#kube.getIfExists<KubeObject>(apiVersion, kind, app.metadata.namespace, name);
      } catch (err) {
        if (isNotFound(err)) continue; // the kind is no longer served (e.g. Gateway API removed)
        throw err;
      }
      if (!child || ownerUid(child) !== app.metadata.uid) continue;
      await this.#kube.deleteIfExists(child);
      log.info({ kind, name }, "pruned a child the App no longer needs");
    }
  }

  /**
   * An App an older operator gave its finalizer is being deleted: delete its Releases (owner references cover the
   * rest), then let it go. Apps without the finalizer have nothing to do here: the garbage collector does it all.
   */
  async #finalize(app: App & KubeObject, log: Logger): Promise<void> {
    if (!app.metadata.finalizers?.includes(FINALIZER)) return;
    for (const release of await this.#reader.releases(app.metadata.namespace ?? "", app.metadata.name)) await this.#kube.deleteIfExists(release);
    this.#forget(app.metadata.namespace ?? "", app.metadata.name);
    await this.#patchApp(app, {
      metadata: { resourceVersion: app.metadata.resourceVersion, finalizers: app.metadata.finalizers.filter((f) => f !== FINALIZER) },
    });
    log.info("App deleted; its releases are deleted and the finalizer removed");
  }

  /**
   * Drops what the operator remembers applying for a deleted App, and when it last wrote its status. (The hash
   * includes the owner's uid, so an App made again under the same name is applied anew regardless.)
   */
  #forget(namespace: string, name: string): void {
    this.#statusWrittenAt.delete(`${namespace}/${name}`);
    this.#lastApplied.delete(`${namespace}/${name}`);
  }

  /**
   * The pass's last status write, the only one after #begin's: the outcome's summary and status, the generations
   * it reconciled, and no pending release (any the pass cut exists now). Records the outcome's Event when the
   * summary is new.
   */
  async #finish(pass: Pass, outcome: Outcome, log: Logger): Promise<void> {
    const app = pass.app;
    const previous = app.status?.conditions;
    let conditions = summarize(previous, outcome.summary, app.metadata.generation, new Date());
    const changed = !sameConditions(previous, conditions);
    const next: Partial<AppStatus> = {
      ...outcome.status,
      observedGeneration: app.metadata.generation,
      observedConfigGeneration: pass.config?.metadata.generation,
      pendingRelease: undefined,
    };
    // A release cut from the App's build whose record was lost (a crash before this write) is named now.
    const built = outcome.releases ? releasedBuild(app, outcome.releases) : undefined;
    if (built) {
      next.latestBuild = built.latestBuild;
      conditions = setCondition(conditions, built.condition, new Date());
    }
    pass.app = await this.#writeStatus(app, { ...next, conditions });
    if (changed && outcome.event) await this.#event(pass.app, outcome.event, log);
    if (changed && outcome.summary.state !== "ready") {
      log.info({ state: outcome.summary.state, reason: outcome.summary.reason, message: outcome.summary.message }, "App status changed");
    }
  }

  /** Patches the status subresource with only the fields that changed; removed fields and process types become null. */
  async #writeStatus(app: App & KubeObject, next: Partial<AppStatus>): Promise<App & KubeObject> {
    const current: Partial<AppStatus> = app.status ?? {};
    const patch: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(next) as [keyof AppStatus, unknown][]) {
      if (value === undefined) {
        // Given but undefined means "no longer applies" (e.g. the url once routing is off).
        if (current[key] !== undefined) patch[key] = null;
        continue;
      }
      if (key === "conditions") {
        if (!sameConditions(current.conditions, value as AppStatus["conditions"])) patch[key] = value;
      } else if (key === "processes") {
        const want = value as NonNullable<AppStatus["processes"]>;
        if (JSON.stringify(current.processes ?? {}) !== JSON.stringify(want)) {
          const merged: Record<string, unknown> = { ...want };
          for (const old of Object.keys(current.processes ?? {})) if (!(old in want)) merged[old] = null;
          patch[key] = merged;
        }
      } else if (JSON.stringify(current[key]) !== JSON.stringify(value)) {
        patch[key] = value;
      }
    }
    if (Object.keys(patch).length === 0) return app;
    const updated = await this.#kube.patchStatus<App & KubeObject>(app, patch, app.metadata.resourceVersion);
    this.#statusWrittenAt.set(appKey(app), Date.now());
    this.#reader.wrote(app, updated);
    this.#fromServer.add(updated);
    return updated;
  }

  /** A merge patch of the App; the reader learns of it so the next pass does not read the App it replaced. */
  async #patchApp(app: AppObject, patch: Record<string, unknown>): Promise<AppObject> {
    const updated = await this.#kube.mergePatch<AppObject>(app, patch);
    this.#reader.wrote(app, updated);
    this.#fromServer.add(updated);
    return updated;
  }

  /**
   * Why each Deployment's pods are not available, and which of its pods are Ready and so still serve, from one
   * list of its pods; none when it cannot tell.
   */
  async #podProblems(deployments: readonly DeploymentObject[], log: Logger): Promise<Pick<RolloutContext, "podProblems" | "serving">> {
    const podProblems = new Map<string, string>();
    const serving = new Map<string, ServingPods>();
    for (const d of deployments) {
      const labels = (d.spec as { selector?: { matchLabels?: Record<string, string> } } | undefined)?.selector?.matchLabels;
      if (!labels || !d.metadata.namespace) continue;
      const selector = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",");
      try {
        // A pod being deleted (of a ReplicaSet the rollout already left) is neither the problem nor serving.
        const pods = (await this.#kube.list<PodObject>("v1", "Pod", d.metadata.namespace, selector)).items.filter((p) => !p.metadata.deletionTimestamp);
        const problem = pods.map(podProblem).find((p) => p !== undefined);
        if (problem) podProblems.set(d.metadata.name, problem);
        serving.set(d.metadata.name, servingPods(pods));
      } catch (err) {
        log.debug({ err, deployment: d.metadata.name }, "cannot list the pods of a stalled rollout");
      }
    }
    return { podProblems, serving };
  }

  async #event(app: App & KubeObject, event: EventInput, log: Logger): Promise<void> {
    try {
      await this.#kube.event(app, event);
    } catch (err) {
      log.warn({ err, reason: event.reason }, "cannot record an Event");
    }
  }

  /** http(s)://<app>.<namespace>.<domain>, the default host the render function routes (when routing is on). */
  #url(app: App): string | undefined {
    if (app.spec.routing?.enabled === false) return undefined;
    const scheme = app.spec.routing?.tls ? "https" : "http";
    return `${scheme}://${app.metadata.name}.${app.metadata.namespace}.${this.#platform.domain}`;
  }
}

/** The parts of a Pod that say why it is not available. */
export interface PodObject extends KubeObject {
  metadata: KubeObject["metadata"] & { deletionTimestamp?: string };
  spec?: {
    containers?: { name: string; readinessProbe?: { httpGet?: { path?: string; port?: number | string } } }[];
  };
  status?: {
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: {
      name: string;
      ready?: boolean;
      restartCount?: number;
      state?: { waiting?: { reason?: string; message?: string }; running?: { startedAt?: string }; terminated?: { exitCode?: number; reason?: string } };
      lastState?: { terminated?: { exitCode?: number; reason?: string } };
    }[];
  };
}

/**
 * Why a pod is not available, as `kubectl describe` would show it, from the kubelet's status: the scheduler's
 * reason ("Unschedulable: 0/1 nodes are available: 1 Too many pods."); a container's waiting reason with its
 * last exit code ("CrashLoopBackOff (exit code 1)"); a container that exited or was restarted, with its exit
 * code; or a running container that is not ready, with the readiness probe it has not passed. Undefined for a
 * pod that is ready or just starting.
 */
export function podProblem(pod: PodObject): string | undefined {
  const name = pod.metadata.name;
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False") return `pod ${name} is not scheduled: ${[scheduled.reason, scheduled.message].filter(Boolean).join(": ")}`;
  for (const c of pod.status?.containerStatuses ?? []) {
    if (c.ready) continue;
    const last = c.lastState?.terminated;
    const exit = (t: { exitCode?: number; reason?: string } | undefined) =>
      t ? `${t.reason ? `${t.reason} ` : ""}(exit code ${t.exitCode ?? "unknown"})` : "";
    const restarts = c.restartCount ? `, restarted ${c.restartCount} time${c.restartCount === 1 ? "" : "s"}` : "";
    const waiting = c.state?.waiting;
    if (waiting?.reason) {
      if (waiting.reason === "ContainerCreating" || waiting.reason === "PodInitializing") continue;
      const code = last?.exitCode;
      // CrashLoopBackOff's message is the kubelet's back-off of the moment ("back-off 20s restarting failed
      // container=… pod=…"), stale once written; the restarts say the same and stay true. Other reasons' messages
      // (a missing Secret, an image that cannot be pulled) are the cause itself.
      const detail = waiting.reason === "CrashLoopBackOff" ? restarts : waiting.message ? `: ${waiting.message}` : "";
      return `container ${c.name} of pod ${name} is ${waiting.reason}${code !== undefined ? ` (exit code ${code})` : ""}${detail}`;
    }
    const terminated = c.state?.terminated;
    if (terminated) return `container ${c.name} of pod ${name} exited: ${exit(terminated)}${restarts}`;
    if (!c.state?.running) continue;
    // Running again after a crash: the crash is the problem, whatever the readiness probe says yet.
    if (last && c.restartCount) return `container ${c.name} of pod ${name} is running again after it exited: ${exit(last)}${restarts}`;
    const probe = pod.spec?.containers?.find((x) => x.name === c.name)?.readinessProbe;
    if (probe) {
      const http = probe.httpGet ? ` (HTTP GET ${probe.httpGet.path ?? "/"} on port ${String(probe.httpGet.port ?? "")})` : "";
      return `container ${c.name} of pod ${name} is running but not ready: its readiness probe${http} has not passed`;
    }
  }
  return undefined;
}

/** The Ready pods of a Deployment (whatever the rollout's state), counted by the release they run. */
export type ServingPods = ReadonlyMap<string, number>;

/** Counts the Ready pods by their release label (see ServingPods). */
export function servingPods(pods: readonly PodObject[]): ServingPods {
  const byRelease = new Map<string, number>();
  for (const p of pods) {
    if (p.metadata.deletionTimestamp || !p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) continue;
    const release = p.metadata.labels?.[LABELS.release] ?? "an unknown release";
    byRelease.set(release, (byRelease.get(release) ?? 0) + 1);
  }
  return byRelease;
}

/**
 * What keeps serving while a Deployment's rollout is stuck: "the previous release v3 keeps serving" only when
 * its Ready pods are exactly that release's; otherwise what its Ready pods are (e.g. the live release's pods from
 * before an App change), or that none is Ready. Without the pods, the release before the live one is assumed.
 */
export function keepsServing(previous: string | undefined, serving: ServingPods | undefined): string {
  if (!serving) return previous ? `the previous release ${previous} keeps serving` : "there is no earlier release to keep serving";
  const total = [...serving.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return previous ? "no pod is ready to serve" : "there is no earlier release to keep serving";
  if (previous && serving.size === 1 && serving.has(previous)) return `the previous release ${previous} keeps serving`;
  const parts = [...serving.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([release, n]) => `${n} of ${release}`);
  return `${total} ready pod${total === 1 ? "" : "s"} (${parts.join(", ")}) keep${total === 1 ? "s" : ""} serving`;
}

/** The controller ownerReference to the App that its children and Releases carry. */
function appOwner(app: AppObject) {
  return { apiVersion: API_VERSION, kind: "App", name: app.metadata.name, uid: app.metadata.uid ?? "", controller: true, blockOwnerDeletion: true };
}

/** Whether `a` claimed its hosts before `b`: created first, then first by namespace and name. */
function claimedFirst(a: AppObject, b: AppObject): boolean {
  const at = (x: AppObject) => `${x.metadata.creationTimestamp ?? ""} ${x.metadata.namespace ?? ""}/${x.metadata.name}`;
  return at(a) < at(b);
}

/** The uid of the App that controls an object; undefined when no App does. */
function ownerUid(obj: { metadata: { ownerReferences?: { kind: string; uid: string; controller?: boolean }[] } }): string | undefined {
  return obj.metadata.ownerReferences?.find((r) => r.controller && r.kind === "App")?.uid;
}

/**
 * The status that says which release the App's succeeded build became: its latestBuild with the release, and
 * the Built condition naming it. Undefined when the build is in no release yet, or status says so already.
 */
export function releasedBuild(app: App, releases: readonly Release[]): { latestBuild: LatestBuild; condition: Omit<Condition, "lastTransitionTime"> } | undefined {
  const build = app.status?.latestBuild;
  if (build?.phase !== "Succeeded" || !build.image) return undefined;
  const release = releases.find((r) => r.spec.app === app.metadata.name && r.spec.build.pipelineRun === build.pipelineRun);
  if (!release) return undefined;
  const version = `v${release.spec.version}`;
  const message = builtMessage(build.commit, build.pipelineRun, build.image, version);
  const current = app.status?.conditions?.find((c) => c.type === BUILT);
  if (build.release === version && current?.status === "True" && current.message === message) return undefined;
  return {
    latestBuild: { ...build, release: version, message: `released as ${version}` },
    condition: { type: BUILT, status: "True", reason: "Succeeded", message, observedGeneration: app.metadata.generation },
  };
}

/** The children a render produces, as status.inventory lists them: "<apiVersion>/<kind>/<name>", sorted. */
export function inventoryOf(objects: readonly KubernetesObject[]): string[] {
  return objects.map((o) => `${o.apiVersion}/${o.kind}/${o.metadata.name}`).sort();
}

function stalled(reason: string, message: string, action: string): Outcome {
  return { summary: { state: "stalled", reason, message }, event: { type: "Warning", reason, action, note: message } };
}

function renderMessage(errors: readonly RenderError[]): string {
  return errors.map((e) => (e.field ? `${e.message} (${e.object ? `${e.object.kind} ` : ""}${e.field})` : e.message)).join("; ");
}

/** The children the App is known to have: its status.inventory, none for a fresh App, else unknown. */
function knownInventory(pass: Pass): readonly string[] | undefined {
  return pass.app.status?.inventory ?? (pass.fresh ? [] : undefined);
}

function appKey(app: AppObject): string {
  return `${app.metadata.namespace ?? ""}/${app.metadata.name}`;
}

/**
 * Whether a pass that found the App's rollout in progress leaves its status as it is, and when to look again;
 * undefined when it writes the progress now. `lastWrite`: when this process last wrote the App's status (ms).
 */
export function deferProgress(app: App, rollout: Pick<Rollout, "unobserved">, lastWrite: number | undefined, now: number): { requeueAfterMs: number } | undefined {
  if (!reconcilingThisGeneration(app)) return undefined;
  // The Deployment's status update is coming, and runs the next pass; the poll is only the fallback.
  if (rollout.unobserved) return { requeueAfterMs: ROLLOUT_POLL_MS };
  // Status this process never wrote (after a restart, or another replica's) is not held back.
  if (lastWrite === undefined) return undefined;
  const since = Date.parse(app.status?.conditions?.find((c) => c.type === RECONCILING)?.lastTransitionTime ?? "");
  const at = Math.max(lastWrite + PROGRESS_WRITE_MS, Number.isNaN(since) ? 0 : since + PROGRESS_FIRST_WRITE_MS);
  return at > now ? { requeueAfterMs: at - now } : undefined;
}

/** The App's status already says this generation is being reconciled (and is not Ready or Stalled). */
function reconcilingThisGeneration(app: App): boolean {
  const conditions = app.status?.conditions;
  return app.status?.observedGeneration === app.metadata.generation && isTrue(conditions, RECONCILING) &&
    !isTrue(conditions, READY) && !isTrue(conditions, STALLED);
}

export interface Rollout {
  done: boolean;
  /** Some Deployment's controller has not observed its current generation yet. */
  unobserved: boolean;
  /** Set when a Deployment passed its progress deadline: what to tell the user. */
  stalled?: string;
  message: string;
  processes: NonNullable<AppStatus["processes"]>;
}

/** What a stalled rollout's message adds: the release before the live one, and why its pods are stuck. */
export interface RolloutContext {
  /** The release that was live before this one ("v3"); undefined for an App's first release. */
  previous?: string;
  /** Why a Deployment's new pods are not available, by Deployment name (see podProblem). */
  podProblems?: ReadonlyMap<string, string>;
  /** A Deployment's Ready pods by release, by Deployment name (see servingPods). */
  serving?: ReadonlyMap<string, ServingPods>;
}

/** Whether a Deployment's rollout is done: its controller saw the spec, and every pod is updated and available. */
export function rolledOut(d: DeploymentObject): boolean {
  const desired = d.spec?.replicas ?? 1;
  const st = d.status ?? {};
  const updated = st.updatedReplicas ?? 0;
  return (st.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) && updated >= desired && (st.availableReplicas ?? 0) >= desired
    && (st.replicas ?? 0) === updated;
}

/** Reads the rollout of the live release from its Deployments as the API server returned them. */
export function readRollout(deployments: readonly DeploymentObject[], version: string, context: RolloutContext = {}): Rollout {
  const processes: Rollout["processes"] = {};
  const pending: string[] = [];
  let stalledMessage: string | undefined;
  let unobserved = false;
  for (const d of deployments) {
    const type = d.metadata.labels?.[LABELS.process] ?? d.metadata.name;
    const desired = d.spec?.replicas ?? 1;
    const st = d.status ?? {};
    const updated = st.updatedReplicas ?? 0;
    const available = st.availableReplicas ?? 0;
    processes[type] = { desired, available, updated };
    const observed = (st.observedGeneration ?? 0) >= (d.metadata.generation ?? 0);
    if (!observed) unobserved = true;
    const progressing = st.conditions?.find((c) => c.type === "Progressing");
    if (observed && progressing?.reason === "ProgressDeadlineExceeded") {
      const why = context.podProblems?.get(d.metadata.name) ?? progressing.message ?? "";
      const serving = context.serving?.get(d.metadata.name);
      // The Deployment's availableReplicas counts the previous release's pods too; with the pods read, the count
      // is of this release's own.
      const counts = serving
        ? `${updated}/${desired} pods updated, ${serving.get(version) ?? 0} of them ready`
        : `${updated}/${desired} updated, ${available}/${desired} available`;
      stalledMessage ??=
        `Deployment ${d.metadata.name} of release ${version} made no progress within its deadline (${counts}): ${why}; ` +
        keepsServing(context.previous, serving);
    }
    if (!rolledOut(d)) pending.push(`${type} ${updated}/${desired} updated, ${available}/${desired} available`);
  }
  const summary = Object.entries(processes).map(([type, p]) => `${type} ${p.available}/${p.desired}`).join(", ");
  return {
    done: pending.length === 0 && !stalledMessage,
    unobserved,
    stalled: stalledMessage,
    message: pending.length
      ? `rolling out release ${version}: ${pending.join("; ")}`
      : `release ${version} is rolled out${summary ? `: ${summary}` : ""}`,
    processes,
  };
}
