// The App controller: informers for Apps, Configs, Releases and the Deployments Slipway owns; every event is
// mapped to its App's key ("namespace/name") and the App is reconciled (app-reconciler.ts) through one keyed
// work queue. Its informers are the process's shared cache: GitOps reads them through `cache`, builds add
// their own kinds to `informers`.
import type { Logger } from "pino";
import { ANNOTATIONS, API_VERSION, LABELS, type AppStatus } from "../crds/v1alpha1.js";
import type { PlatformSettings } from "../functions/render.js";
import { AppReconciler, rolledOut, type DeploymentObject } from "./app-reconciler.js";
import type { CachedKind, ClusterCache } from "./cache.js";
import { Informers, type Informer, type InformerEventType, type InformerSpec } from "./informers.js";
import { digest, isConflict, type Kube, type KubeObject } from "./kube.js";
import { log as rootLog } from "./log.js";
import { queueDepth, reconcileDuration, reconcileErrors, reconcileTotal, releasesCut } from "./metrics.js";
import { ApiReader, CachedReader } from "./reader.js";
import { SecretDigests } from "./secrets.js";
import { Resync, WorkQueue } from "./queue.js";

export interface OperatorOptions {
  kube: Kube;
  /** Domain, routing mode and rollout deadline handed to the render function. */
  platform?: Partial<PlatformSettings>;
  /**
   * How many Apps are reconciled at once; default 16. A pass mostly waits on the API server, so a small bound
   * lets Apps queue up behind a few slow requests.
   */
  concurrency?: number;
  /** Watch only this namespace; default all namespaces. */
  namespace?: string;
  /** Reconcile only the Apps with these labels (a label selector, like Flux's --watch-label-selector); default all. */
  appLabelSelector?: string;
  logger?: Logger;
  /** How often every App is reconciled even without events; default 10 minutes. */
  resyncMs?: number;
  /**
   * Watch Secrets' metadata (never their values), so that a Secret changed with plain kubectl rolls its Apps out
   * at once; default false. It needs `list` and `watch` on Secrets in every watched namespace, which RBAC cannot
   * narrow to metadata. Without it a changed value is read at the App's next pass: at once after `config:set
   * --secret` (the CLI marks the Config), at the resync after any other change (sooner when the App is annotated
   * with slipway.dev/reconcile-requested-at).
   */
  watchSecrets?: boolean;
}

export interface OperatorHandle {
  /** Stops the informers, then waits for the reconciles in flight to finish. */
  stop(): Promise<void>;
  /** Apps, Configs and Releases as the informers hold them, for GitOps. */
  cache: ClusterCache;
  /** The process's informers; other loops add the kinds they watch here. */
  informers: Informers;
  /** True once every informer of the controller has listed its objects at least once. */
  synced(): boolean;
}

/** How an informer's events reach the App queue. */
interface Route {
  /** The App key ("namespace/name") an event concerns, or undefined to ignore it. */
  keyOf: (obj: KubeObject) => string | undefined;
  /** Whether a changed object is worth a reconcile (filters out the App's own status writes). */
  changed?: (obj: KubeObject) => boolean;
  /**
   * Objects the operator makes itself (Releases, Deployments): their additions and changes run the App's pass
   * CHILD_SETTLE_MS later, so the burst of status updates a rollout brings is one pass, not five. Deletions run
   * it at once.
   */
  settle?: boolean;
  /**
   * With `settle`: whether an object's change finishes what the App waits for (a rollout done), so the pass runs
   * at once. Only the first such change after one that did not: the updates after it settle again.
   */
  finished?: (obj: KubeObject) => boolean;
}

const CHILD_SETTLE_MS = 1_000;
const DEFAULT_CONCURRENCY = 16;
const CONTROLLER_INFORMERS = ["apps", "configs", "releases", "deployments"] as const;

/** What of an App's status.latestBuild runs a reconcile: a succeeded build, which the reconciler releases. */
function latestBuildOf(obj: KubeObject): string | null {
  const build = (obj as { status?: AppStatus }).status?.latestBuild;
  return build?.phase === "Succeeded" ? build.pipelineRun : null;
}

const byName = (obj: KubeObject) => `${obj.metadata.namespace}/${obj.metadata.name}`;

/** The owning App's key of a Release (spec.app) or a Deployment (owner reference, else the app label). */
function releaseApp(obj: KubeObject): string | undefined {
  const app = (obj as { spec?: { app?: string } }).spec?.app;
  return app ? `${obj.metadata.namespace}/${app}` : undefined;
}
function deploymentApp(obj: KubeObject): string | undefined {
  const owner = obj.metadata.ownerReferences?.find((r) => r.controller && r.kind === "App" && r.apiVersion === API_VERSION);
  const app = owner?.name ?? obj.metadata.labels?.[LABELS.app];
  return app ? `${obj.metadata.namespace}/${app}` : undefined;
}

/** Which Apps read each Secret through their Config's secretEnv: "namespace/secret" → App keys. */
export class SecretReaders {
  readonly #byConfig = new Map<string, readonly string[]>();
  readonly #bySecret = new Map<string, Set<string>>();

  /** Takes in a Config as its event says it is now (or deleted). */
  update(config: KubeObject, deleted = false): void {
    const app = byName(config);
    for (const secret of this.#byConfig.get(app) ?? []) {
      const apps = this.#bySecret.get(secret);
      apps?.delete(app);
      if (apps?.size === 0) this.#bySecret.delete(secret);
    }
    const refs = deleted ? [] : Object.values((config as { spec?: { secretEnv?: Record<string, { secretName?: string }> } }).spec?.secretEnv ?? {});
    const names = [...new Set(refs.flatMap((ref) => (ref.secretName ? [`${config.metadata.namespace}/${ref.secretName}`] : [])))];
    if (names.length) this.#byConfig.set(app, names);
    else this.#byConfig.delete(app);
    for (const secret of names) {
      const apps = this.#bySecret.get(secret) ?? new Set<string>();
      apps.add(app);
      this.#bySecret.set(secret, apps);
    }
  }

  /** The App keys whose Config reads the Secret. */
  of(namespace: string, name: string): readonly string[] {
    return [...(this.#bySecret.get(`${namespace}/${name}`) ?? [])];
  }
}

/** Starts the informers and the reconcile queue; resolves once the informers have listed (or after 30 s of trying). */
export async function startOperator(options: OperatorOptions): Promise<OperatorHandle> {
  const log = options.logger ?? rootLog;
  const kube = options.kube;
  const ns = options.namespace;
  const inNs = ns ? `/namespaces/${encodeURIComponent(ns)}` : "";
  const informers = new Informers(kube, log);
  const specs: InformerSpec[] = [
    { name: "apps", apiVersion: API_VERSION, kind: "App", path: `/apis/${API_VERSION}${inNs}/apps`, trim: "ownership", labelSelector: options.appLabelSelector },
    { name: "configs", apiVersion: API_VERSION, kind: "Config", path: `/apis/${API_VERSION}${inNs}/configs`, trim: "ownership" },
    { name: "releases", apiVersion: API_VERSION, kind: "Release", path: `/apis/${API_VERSION}${inNs}/releases`, trim: "managedFields", indexBy: releaseApp },
    {
      name: "deployments", apiVersion: "apps/v1", kind: "Deployment", path: `/apis/apps/v1${inNs}/deployments`,
      labelSelector: LABELS.app, trim: "rollout",
    },
  ];
  const [apps, configs, releases, deployments] = specs.map((s) => informers.add(s)) as [Informer, Informer, Informer, Informer];
  // With watchSecrets, the Secrets that secret env reads: a changed value is a new release. Metadata only, so the
  // watch never carries a value; the reconciler reads the referenced ones when their resourceVersion moves
  // (secrets.ts). Without it, each pass reads them (a GET per Secret an App's Config names).
  const secrets = options.watchSecrets ? informers.add({
    name: "secrets", apiVersion: "v1", kind: "Secret", path: `/api/v1${inNs}/secrets`, trim: "managedFields", metadataOnly: true,
  }) : undefined;
  const synced = () => informers.synced(CONTROLLER_INFORMERS);

  // Like client-go's WaitForCacheSync: no reconcile runs before every informer has listed once (an empty
  // Release cache would cut a release that exists). Should one still not have listed after the start's 30 s,
  // reads go to the API server until it has.
  let cachesFilled: () => void = () => undefined;
  const filled = new Promise<void>((resolve) => (cachesFilled = resolve));
  const reader = new CachedReader({ apps, configs, releases, deployments, synced, fallback: new ApiReader(kube) });
  for (const [informer, kind] of [[apps, "App"], [configs, "Config"], [releases, "Release"]] as const) {
    informer.on((type, obj) => reader.observed(kind, obj, type === "delete"));
  }
  const reconciler = new AppReconciler({
    kube, log, platform: options.platform, reader, secrets: new SecretDigests(kube, secrets), onReleaseCut: () => releasesCut.inc(),
  });
  const queue = new WorkQueue(
    async (key) => {
      const [namespace = "", name = ""] = key.split("/");
      await filled;
      const end = reconcileDuration.startTimer({ kind: "App" });
      try {
        const result = await reconciler.reconcile(namespace, name);
        reconcileTotal.inc({ kind: "App", result: result?.requeueAfterMs !== undefined ? "requeue" : "success" });
        return result;
      } catch (err) {
        reconcileTotal.inc({ kind: "App", result: "error" });
        reconcileErrors.inc({ kind: "App" });
        throw err;
      } finally {
        end();
      }
    },
    {
      concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
      onDepth: (depth) => queueDepth.set(depth),
      // A 409 is optimistic concurrency doing its job (the App changed while we reconciled): retry quietly.
      onError: (key, err, retryInMs) => (isConflict(err) ? log.debug({ app: key, retryInMs }, "App changed during reconcile; retrying")
        : log.warn({ err, app: key, retryInMs }, "reconcile failed; retrying")),
    },
  );

  // Status writes (the operator's own among them) need no reconcile. For an App, spec, labels (copied onto the
  // children), annotations (rollback), deletion, finalizers and a build's outcome (a succeeded build is released)
  // do; for a Config, its spec and deletion.
  const lastSeen = new Map<string, string>();
  const unlessOnlyStatus = (kind: string, fields: (m: KubeObject["metadata"], obj: KubeObject) => unknown[]) => (obj: KubeObject) => {
    const key = `${kind}/${byName(obj)}`;
    const fingerprint = digest(JSON.stringify([obj.metadata.uid, ...fields(obj.metadata, obj)]));
    if (lastSeen.get(key) === fingerprint) return false;
    lastSeen.set(key, fingerprint);
    return true;
  };
  const routes: [Informer, Route][] = [
    [apps, { keyOf: byName, changed: unlessOnlyStatus("App", (m, obj) => [m.generation, m.labels ?? {}, m.annotations ?? {}, m.deletionTimestamp ?? null, m.finalizers ?? [], latestBuildOf(obj)]) }],
    [configs, { keyOf: byName, changed: unlessOnlyStatus("Config", (m) => [m.generation, m.deletionTimestamp ?? null, m.annotations?.[ANNOTATIONS.secretVersion] ?? null]) }],
    [releases, { keyOf: releaseApp, settle: true }],
    [deployments, { keyOf: deploymentApp, settle: true, finished: (obj) => rolledOut(obj as DeploymentObject) }],
  ];

  // Children seen in the middle of something (a rollout) whose end runs the App's pass at once (Route.finished).
  const unfinished = new Set<string>();
  for (const [informer, route] of routes) {
    const kind = informer.spec.kind;
    informer.on((type: InformerEventType, object: KubeObject) => {
      const key = route.keyOf(object);
      if (!key) return;
      const deleted = type === "delete";
      if (deleted) lastSeen.delete(`${kind}/${byName(object)}`);
      else if (route.changed && !route.changed(object)) return;
      let now = !route.settle || deleted;
      if (route.finished) {
        const id = `${kind}/${byName(object)}`;
        if (deleted) unfinished.delete(id);
        else if (!route.finished(object)) unfinished.add(id);
        else if (unfinished.delete(id)) now = true;
      }
      if (now) void queue.enqueue(key);
      else queue.enqueueAfter(key, CHILD_SETTLE_MS);
    });
  }

  // A Secret's change reaches the Apps whose Configs name it in secretEnv (kept from the Config events).
  if (secrets) {
    const readers = new SecretReaders();
    configs.on((type, config) => readers.update(config, type === "delete"));
    secrets.on((_type, secret) => {
      for (const key of readers.of(secret.metadata.namespace ?? "", secret.metadata.name)) void queue.enqueue(key);
    });
  }

  const cacheOf: Record<CachedKind, Informer> = { App: apps, Config: configs, Release: releases };
  const cache: ClusterCache = {
    get: (kind, namespace, name) => cacheOf[kind].get(name, namespace),
    releasesOf: (namespace, app) => [...(releases.listOf(namespace, app) ?? [])],
    list: (kind, namespace) => [...cacheOf[kind].list(namespace)],
    subscribe(listener) {
      const offs = (Object.entries(cacheOf) as [CachedKind, Informer][]).map(([kind, informer]) =>
        informer.on((type, object) => listener({ kind, type, object })));
      return () => offs.forEach((off) => off());
    },
  };

  await informers.start();
  cachesFilled();

  // A periodic full pass catches anything an event could not tell (and external drift of children), spread
  // over the interval in one-second ticks so that it never queues ahead of an event's pass in a burst.
  const resyncMs = options.resyncMs ?? 10 * 60_000;
  const stopResync = new Resync(() => apps.list().map(byName), (key) => void queue.enqueue(key), Math.max(1, Math.round(resyncMs / 1000))).start(resyncMs);

  log.info({ namespace: ns ?? "(all)", concurrency: options.concurrency ?? DEFAULT_CONCURRENCY }, "operator started");
  return {
    cache,
    informers,
    synced,
    async stop() {
      stopResync();
      await informers.stop();
      await queue.stop();
      log.info("operator stopped");
    },
  };
}
