// The operator's entry point: watches Apps, Configs, Releases and the Deployments it owns, maps every event to
// its App's key ("namespace/name") and reconciles Apps through one keyed work queue. startOperator() embeds it
// (tests, the local default); run as a program it adds health/metrics endpoints and Lease leader election.
import os from "node:os";
import { pathToFileURL } from "node:url";
import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject as ClientObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { API_VERSION, LABELS, type AppStatus } from "../crds/v1alpha1.js";
import type { PlatformSettings } from "../functions/render.js";
import type { Platform } from "./platform.js";
import { AppReconciler, rolledOut, type DeploymentObject } from "./app-reconciler.js";
import { ownershipOnly, type ManagedFieldsEntry } from "./releases.js";
import type { CacheEvent, CachedKind, ClusterCache } from "./cache.js";
import { ApiReader, CachedReader, type Cache } from "./reader.js";
import { isConflict, Kube, type KubeObject } from "./kube.js";
import { log as rootLog } from "./log.js";
import { queueDepth, reconcileDuration, reconcileErrors, reconcileTotal, releasesCut } from "./metrics.js";
import { WorkQueue } from "./queue.js";

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  /** Domain, routing mode and rollout deadline handed to the render function. */
  platform?: Partial<PlatformSettings>;
  /**
   * How many Apps are reconciled at once; default 16. A pass mostly waits on the API server, so a small bound
   * lets Apps queue up behind a few slow requests (1,000 new Apps queued up to 570 deep with 4).
   */
  concurrency?: number;
  /** Watch only this namespace; default all namespaces. */
  namespace?: string;
  logger?: Logger;
  /** How often every App is reconciled even without events; default 10 minutes. */
  resyncMs?: number;
}

export interface OperatorHandle {
  /** Stops the watches, then waits for the reconciles in flight to finish. */
  stop(): Promise<void>;
  /** The watch caches of Apps, Configs and Releases, for GitOps. */
  cache: ClusterCache;
  /** True once every watch has listed its objects at least once. */
  synced(): boolean;
}

interface Watched {
  name: string;
  path: string;
  apiVersion: string;
  kind: string;
  labelSelector?: string;
  /** The App key ("namespace/name") an object's event concerns, or undefined to ignore it. */
  keyOf: (obj: KubeObject) => string | undefined;
  /** Whether a changed object is worth a reconcile (filters out the App's own status writes). */
  changed?: (obj: KubeObject) => boolean;
  /** What of the objects' managedFields the cache keeps (see trim); default all. */
  trim?: Trim;
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
  /** Keep the objects' names per App key, so the reader gets one App's objects without a scan (Releases). */
  indexed?: boolean;
}

/** What of an App's status.latestBuild runs a reconcile: a succeeded build, which the reconciler releases. */
function latestBuildOf(obj: KubeObject): string | null {
  const build = (obj as { status?: AppStatus }).status?.latestBuild;
  return build?.phase === "Succeeded" ? build.pipelineRun : null;
}

/** See Watched.settle. */
const CHILD_SETTLE_MS = 1_000;
const DEFAULT_CONCURRENCY = 16;

/**
 * What the caches keep of an object's metadata.managedFields, which is a large part of an object (a third of a
 * Deployment's size). Releases and Deployments keep none: nothing reads it there. Apps and Configs keep who
 * owns their spec and the rollback annotation: the field manager of a change says who asked for the release
 * it cuts (releases.ts, ownershipOnly).
 */
type Trim = "managedFields" | "ownership";
function trim<T extends { metadata?: object }>(obj: T, how: Trim): T {
  const meta = obj.metadata as { managedFields?: ManagedFieldsEntry[] } | undefined;
  if (!meta) return obj;
  if (how === "managedFields") delete meta.managedFields;
  else meta.managedFields = ownershipOnly(meta.managedFields);
  return obj;
}

/** A Watch whose events carry trimmed objects, so the informer caches hold them trimmed. */
class TrimmingWatch extends Watch {
  constructor(config: KubeConfig, private readonly how: Trim) {
    super(config);
  }

  override watch(...[path, query, callback, done]: Parameters<Watch["watch"]>): ReturnType<Watch["watch"]> {
    return super.watch(path, query, (phase, obj: unknown, raw?: unknown) => callback(phase, trim(obj as { metadata?: object }, this.how), raw), done);
  }
}

const WATCH_RETRY_MIN_MS = 500;
const WATCH_RETRY_MAX_MS = 30_000;

/** Starts watching and reconciling; resolves once the watches have listed (or after 30 s of trying). */
export async function startOperator(options: OperatorOptions): Promise<OperatorHandle> {
  const log = options.logger ?? rootLog;
  const kube = new Kube(options.kubeConfig);
  // The reconciler reads Apps, Configs and Releases from the watches below (created further down).
  const informerOf = new Map<string, ListWatch<ClientObject>>();
  // The names of the indexed kinds' objects per App key, kept from the watch events: a pass reads its App's
  // Releases without scanning every Release of the namespace (Watched.indexed).
  const namesByApp = new Map<string, Map<string, Set<string>>>();
  const cache = (name: string): Cache<KubeObject> => ({
    get: (n, namespace) => informerOf.get(name)?.get(n, namespace) as KubeObject | undefined,
    list: (namespace) => (informerOf.get(name)?.list(namespace) ?? []) as unknown as KubeObject[],
    listOf: (namespace, app) => {
      const index = namesByApp.get(name);
      if (!index) return undefined;
      return [...(index.get(`${namespace}/${app}`) ?? [])].flatMap((n) => informerOf.get(name)?.get(n, namespace) ?? []) as unknown as KubeObject[];
    },
  });
  // Like client-go's WaitForCacheSync: no reconcile runs before every watch has listed once (an empty Release
  // cache would cut a release that exists). Should a watch still not have listed after the start's 30 s, reads
  // go to the API server until it has.
  let cachesFilled: () => void = () => undefined;
  const filled = new Promise<void>((resolve) => (cachesFilled = resolve));
  const reader = new CachedReader({
    apps: cache("apps"),
    configs: cache("configs"),
    releases: cache("releases"),
    deployments: cache("deployments"),
    synced: () => synced.size === watched.length,
    fallback: new ApiReader(kube),
  });
  const reconciler = new AppReconciler({ kube, log, platform: options.platform, reader, onReleaseCut: () => releasesCut.inc() });

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

  const ns = options.namespace;
  const inNs = ns ? `/namespaces/${encodeURIComponent(ns)}` : "";
  const byName = (obj: KubeObject) => `${obj.metadata.namespace}/${obj.metadata.name}`;
  const lastSeen = new Map<string, string>();
  const unlessOnlyStatus = (kind: string, fields: (m: KubeObject["metadata"], obj: KubeObject) => unknown[]) => (obj: KubeObject) => {
    const key = `${kind}/${byName(obj)}`;
    const fingerprint = JSON.stringify([obj.metadata.uid, ...fields(obj.metadata, obj)]);
    if (lastSeen.get(key) === fingerprint) return false;
    lastSeen.set(key, fingerprint);
    return true;
  };
  const watched: Watched[] = [
    {
      name: "apps",
      path: `/apis/${API_VERSION}${inNs}/apps`,
      apiVersion: API_VERSION,
      kind: "App",
      keyOf: byName,
      trim: "ownership",
      // Status writes (the operator's own among them) do not need a reconcile; spec, labels (copied onto the
      // children), annotations (rollback), deletion and a build's outcome (a succeeded build is released) do.
      changed: unlessOnlyStatus("App", (m, obj) => [m.generation, m.labels ?? {}, m.annotations ?? {}, m.deletionTimestamp ?? null, m.finalizers ?? [],
        latestBuildOf(obj)]),
    },
    {
      name: "configs",
      path: `/apis/${API_VERSION}${inNs}/configs`,
      apiVersion: API_VERSION,
      kind: "Config",
      keyOf: byName,
      trim: "ownership",
      changed: unlessOnlyStatus("Config", (m) => [m.generation, m.deletionTimestamp ?? null]),
    },
    {
      name: "releases",
      path: `/apis/${API_VERSION}${inNs}/releases`,
      apiVersion: API_VERSION,
      kind: "Release",
      trim: "managedFields",
      settle: true,
      indexed: true,
      keyOf: (obj) => {
        const app = (obj as { spec?: { app?: string } }).spec?.app;
        return app ? `${obj.metadata.namespace}/${app}` : undefined;
      },
    },
    {
      name: "deployments",
      path: `/apis/apps/v1${inNs}/deployments`,
      apiVersion: "apps/v1",
      kind: "Deployment",
      labelSelector: LABELS.app,
      trim: "managedFields",
      settle: true,
      finished: (obj) => rolledOut(obj as DeploymentObject),
      keyOf: (obj) => {
        const owner = obj.metadata.ownerReferences?.find((r) => r.controller && r.kind === "App" && r.apiVersion === API_VERSION);
        const app = owner?.name ?? obj.metadata.labels?.[LABELS.app];
        return app ? `${obj.metadata.namespace}/${app}` : undefined;
      },
    },
  ];

  let stopped = false;
  const listeners = new Set<(event: CacheEvent) => void>();
  const cacheOf = { App: cache("apps"), Config: cache("configs"), Release: cache("releases") };
  const clusterCache: ClusterCache = {
    get: (kind, namespace, name) => cacheOf[kind].get(name, namespace),
    releasesOf: (namespace, app) => [...(cacheOf.Release.listOf?.(namespace, app) ?? [])],
    list: (kind, namespace) => [...cacheOf[kind].list(namespace)],
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const informers: ListWatch<ClientObject>[] = [];
  const synced = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (fn: () => void, ms: number) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  // Children seen in the middle of something (a rollout) whose end runs the App's pass at once (Watched.finished).
  const unfinished = new Set<string>();
  const firstSyncs = watched.map((w) => {
    let failures = 0;
    const list = async (): Promise<KubernetesListObject<ClientObject>> => {
      const result = await kube.list<KubeObject>(w.apiVersion, w.kind, ns, w.labelSelector);
      if (w.trim) for (const item of result.items) trim(item, w.trim);
      synced.add(w.name);
      failures = 0;
      return result as unknown as KubernetesListObject<ClientObject>;
    };
    const informer = new ListWatch<ClientObject>(w.path, w.trim ? new TrimmingWatch(options.kubeConfig, w.trim) : new Watch(options.kubeConfig), list, false, w.labelSelector);
    informers.push(informer);
    informerOf.set(w.name, informer);
    const index = w.indexed ? new Map<string, Set<string>>() : undefined;
    if (index) namesByApp.set(w.name, index);
    const shared = w.kind === "App" || w.kind === "Config" || w.kind === "Release";
    const onEvent = (type: CacheEvent["type"]) => (obj: ClientObject) => {
      failures = 0; // the watch works again
      const deleted = type === "delete";
      const object = obj as unknown as KubeObject;
      const key = w.keyOf(object);
      if (key && index) {
        const names = index.get(key) ?? new Set<string>();
        if (deleted) names.delete(object.metadata.name);
        else names.add(object.metadata.name);
        if (names.size) index.set(key, names);
        else index.delete(key);
      }
      if (shared) for (const listener of listeners) listener({ kind: w.kind as CachedKind, type, object });
      if (!key) return;
      if (deleted) lastSeen.delete(`${w.kind}/${byName(object)}`);
      else if (w.changed && !w.changed(object)) return;
      let now = !w.settle || deleted;
      if (w.finished) {
        const id = `${w.kind}/${object.metadata.namespace}/${object.metadata.name}`;
        if (deleted) unfinished.delete(id);
        else if (!w.finished(object)) unfinished.add(id);
        else if (unfinished.delete(id)) now = true;
      }
      if (now) void queue.enqueue(key);
      else queue.enqueueAfter(key, CHILD_SETTLE_MS);
    };
    informer.on("add", onEvent("add"));
    informer.on("update", onEvent("update"));
    informer.on("delete", onEvent("delete"));

    // A watch that fails (API server restarting, connection dropped) is restarted with backoff. The informer
    // resumes from the last resourceVersion it saw, or relists when that is too old (410 Gone), and reports
    // objects deleted meanwhile, so no event is lost.
    const start = async (): Promise<void> => {
      if (stopped) return;
      try {
        // Failures of the list or the watch arrive through the "error" callback; a throw is reported here.
        await informer.start();
      } catch (err) {
        restart(err);
      }
    };
    const restart = (err: unknown) => {
      if (stopped) return;
      failures++;
      const delay = Math.min(WATCH_RETRY_MAX_MS, WATCH_RETRY_MIN_MS * 2 ** Math.min(failures - 1, 10));
      log.warn({ err, watch: w.name, retryInMs: delay }, "watch failed; resuming");
      later(() => void start(), delay);
    };
    informer.on("error", restart);
    return start();
  });

  const deadline = Date.now() + 30_000;
  await Promise.all(firstSyncs);
  while (synced.size < watched.length && Date.now() < deadline && !stopped) await new Promise((r) => setTimeout(r, 100));
  if (synced.size < watched.length) log.warn({ synced: [...synced] }, "not every watch has listed yet; continuing with API reads");
  cachesFilled();

  // A periodic full pass catches anything a watch could not tell (and external drift of children).
  const resync = setInterval(() => {
    const apps = informers[0]?.list() ?? [];
    for (const app of apps) void queue.enqueue(byName(app as unknown as KubeObject));
  }, options.resyncMs ?? 10 * 60_000);
  resync.unref();

  log.info({ namespace: ns ?? "(all)", concurrency: options.concurrency ?? DEFAULT_CONCURRENCY }, "operator started");
  return {
    cache: clusterCache,
    synced: () => synced.size === watched.length,
    async stop() {
      stopped = true;
      clearInterval(resync);
      for (const timer of timers) clearTimeout(timer);
      await Promise.all(informers.map((i) => i.stop()));
      await queue.stop();
      log.info("operator stopped");
    },
  };
}

/** Platform settings from the environment (the slipway-operator Secret). */
export function platformFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<PlatformSettings> {
  const platform: Partial<PlatformSettings> = {};
  if (env.SLIPWAY_DOMAIN) platform.domain = env.SLIPWAY_DOMAIN;
  if (env.SLIPWAY_ROUTING === "ingress" || env.SLIPWAY_ROUTING === "gateway") platform.routing = env.SLIPWAY_ROUTING;
  if (env.SLIPWAY_INGRESS_CLASS) platform.ingressClassName = env.SLIPWAY_INGRESS_CLASS;
  if (env.SLIPWAY_GATEWAY_NAME) platform.gateway = { name: env.SLIPWAY_GATEWAY_NAME, namespace: env.SLIPWAY_GATEWAY_NAMESPACE || undefined };
  if (env.SLIPWAY_PROGRESS_DEADLINE_SECONDS) platform.progressDeadlineSeconds = Number(env.SLIPWAY_PROGRESS_DEADLINE_SECONDS);
  return platform;
}

/** Runs the operator as a program: health/metrics server, leader election (when enabled), graceful shutdown. */
async function main(): Promise<void> {
  const { startHealthServer } = await import("./http.js");
  const { startLeaderElection } = await import("./leader.js");
  const { handleShutdown } = await import("./shutdown.js");
  const env = process.env;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const options: OperatorOptions = {
    kubeConfig,
    platform: platformFromEnv(env),
    concurrency: env.RECONCILE_CONCURRENCY ? Number(env.RECONCILE_CONCURRENCY) : undefined,
    namespace: env.WATCH_NAMESPACE || undefined,
  };
  const shutdown = handleShutdown();
  const { startPlatform, gitopsFromEnv, listenForWebhooks } = await import("./platform.js");
  let operator: Platform | undefined;
  let starting: Promise<void> | undefined;
  // Only the leader reconciles, commits and receives webhooks; a standby waits for the Lease.
  const lead = () => {
    starting ??= startPlatform({
      ...options,
      gitops: gitopsFromEnv(env),
      builds: env.SLIPWAY_BUILDS === "true" ? { pollIntervalMs: Number(env.SLIPWAY_SOURCE_POLL_SECONDS ?? 60) * 1000 } : undefined,
      webhookSecret: env.SLIPWAY_WEBHOOK_SECRET || undefined,
    }).then((handle) => {
      operator = handle;
    });
    return starting;
  };
  const follow = async () => {
    await starting?.catch(() => undefined);
    const handle = operator;
    operator = undefined;
    starting = undefined;
    await handle?.stop();
  };
  const health = await startHealthServer({
    port: Number(env.HTTP_PORT ?? 8080),
    ready: () => operator?.synced() ?? env.LEADER_ELECTION === "true",
  });
  if (env.LEADER_ELECTION === "true") {
    const election = await startLeaderElection({
      kubeConfig,
      namespace: env.POD_NAMESPACE ?? "slipway-system",
      name: env.LEADER_ELECTION_LEASE ?? "slipway-operator",
      identity: env.POD_NAME ?? os.hostname(),
      onStartedLeading: lead,
      onStoppedLeading: follow,
    });
    shutdown.add("leader election", () => election.stop());
  } else {
    // Registered first: a SIGTERM during startup waits for the start, then stops what it started.
    shutdown.add("operator", follow);
    await lead();
  }
  shutdown.add("health server", () => health.close());
  if (env.WEBHOOK_PORT) {
    const webhooks = await listenForWebhooks(Number(env.WEBHOOK_PORT), () => operator?.webhookHandler);
    shutdown.add("webhook receiver", () => webhooks.close());
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    rootLog.fatal({ err: new Error("the operator failed to start", { cause: err }) }, "exiting");
    process.exit(1);
  });
}
