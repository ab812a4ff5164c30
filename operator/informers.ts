// The operator's one informer layer: a list-and-watch cache per kind (client-node's ListWatch), shared by the
// App reconciler, GitOps and builds, so the process holds one watch per kind. Each informer can keep an index
// (for example the Releases of each App), trims what no reader needs from the objects it caches, and restarts a
// failed watch with backoff; the ListWatch resumes from the last resourceVersion, or relists after 410 Gone and
// reports what was deleted meanwhile, so no event is lost.
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { METADATA_ONLY, type Kube, type KubeObject } from "./kube.js";
import type { Cache } from "./reader.js";
import { ownershipOnly, type ManagedFieldsEntry } from "./releases.js";

export type InformerEventType = "add" | "update" | "delete";

/**
 * What a cache leaves out of the objects it keeps. metadata.managedFields is a large part of an object (a third
 * of a Deployment's size): "managedFields" drops it; "ownership" keeps who owns the spec and the rollback
 * annotation, which say who asked for a release (releases.ts, ownershipOnly). "rollout" drops managedFields and
 * a Deployment's pod template, keeping what its rollout is read from (replicas, selector, status): the operator
 * renders the template itself and never reads it back.
 */
export type Trim = "managedFields" | "ownership" | "rollout";

export interface InformerSpec {
  /** A name for logs ("apps", "pipelineruns"). */
  name: string;
  apiVersion: string;
  kind: string;
  /** The collection's REST path, e.g. /apis/slipway.dev/v1alpha1/namespaces/demo/releases. */
  path: string;
  labelSelector?: string;
  trim?: Trim;
  /** Keeps the objects' names by this key ("namespace/app"), so listOf() finds one App's objects without a scan. */
  indexBy?: (obj: KubeObject) => string | undefined;
  /** List and watch only the objects' metadata (PartialObjectMetadata): for Secrets, whose values it must not hold. */
  metadataOnly?: boolean;
}

export type InformerHandler = (type: InformerEventType, obj: KubeObject) => void;

/** Leaves out of `obj` (in place) what `how` says the cache does not keep; returns it. */
export function trim<T extends { metadata?: object }>(obj: T, how: Trim): T {
  const meta = obj.metadata as { managedFields?: ManagedFieldsEntry[] } | undefined;
  if (!meta) return obj;
  if (how === "ownership") meta.managedFields = ownershipOnly(meta.managedFields);
  else delete meta.managedFields;
  if (how === "rollout") delete (obj as { spec?: { template?: unknown } }).spec?.template;
  return obj;
}

/** A Watch whose events carry trimmed objects, so the cache holds them trimmed. */
class TrimmingWatch extends Watch {
  constructor(config: KubeConfig, private readonly how: Trim) {
    super(config);
  }

  override watch(...[path, query, callback, done]: Parameters<Watch["watch"]>): ReturnType<Watch["watch"]> {
    return super.watch(path, query, (phase, obj: unknown, raw?: unknown) => callback(phase, trim(obj as { metadata?: object }, this.how), raw), done);
  }
}

/** The KubeConfig whose requests (client-node's Watch) ask for metadata only. */
function metadataOnlyConfig(config: KubeConfig): KubeConfig {
  const wrapped = Object.create(config) as KubeConfig;
  wrapped.applyToFetchOptions = (opts) => config.applyToFetchOptions({ ...opts, headers: { ...opts.headers, accept: METADATA_ONLY.watch } });
  return wrapped;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

/** One kind's cache. Handlers run after the cache (and the index) has taken the event in. */
export class Informer implements Cache<KubeObject> {
  readonly spec: InformerSpec;
  readonly #listWatch: ListWatch<KubernetesObject>;
  readonly #index: Map<string, Set<string>> | undefined;
  readonly #handlers = new Set<InformerHandler>();
  readonly #log: Logger;
  #listed = false;
  #failures = 0;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(kube: Kube, spec: InformerSpec, log: Logger) {
    this.spec = spec;
    this.#log = log;
    this.#index = spec.indexBy ? new Map() : undefined;
    const list = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      const result = await kube.list<KubeObject>(spec.apiVersion, spec.kind, namespaceOf(spec.path), spec.labelSelector, undefined, { metadataOnly: spec.metadataOnly });
      if (spec.trim) for (const item of result.items) trim(item, spec.trim);
      this.#listed = true;
      this.#failures = 0;
      return result as unknown as KubernetesListObject<KubernetesObject>;
    };
    const config = spec.metadataOnly ? metadataOnlyConfig(kube.kubeConfig) : kube.kubeConfig;
    const watch = spec.trim ? new TrimmingWatch(config, spec.trim) : new Watch(config);
    this.#listWatch = new ListWatch<KubernetesObject>(spec.path, watch, list, false, spec.labelSelector);
    for (const type of ["add", "update", "delete"] as const) this.#listWatch.on(type, (obj) => this.#event(type, obj as unknown as KubeObject));
    this.#listWatch.on("error", (err: unknown) => this.#restart(err));
  }

  /** True once the first list has succeeded. */
  get listed(): boolean {
    return this.#listed;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return this.#listWatch.get(name, namespace) as KubeObject | undefined;
  }

  list(namespace?: string): readonly KubeObject[] {
    return this.#listWatch.list(namespace) as unknown as KubeObject[];
  }

  /** The objects whose index key is "namespace/app"; undefined when this informer keeps no index. */
  listOf(namespace: string, app: string): readonly KubeObject[] | undefined {
    if (!this.#index) return undefined;
    return [...(this.#index.get(`${namespace}/${app}`) ?? [])].flatMap((n) => this.get(n, namespace) ?? []);
  }

  /** Calls `handler` with every event from now on; returns the unsubscribe. */
  on(handler: InformerHandler): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  async start(): Promise<void> {
    if (this.#stopped) return;
    try {
      // Failures of the list or the watch arrive through the "error" callback; a throw is reported here.
      await this.#listWatch.start();
    } catch (err) {
      this.#restart(err);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#listWatch.stop();
  }

  #event(type: InformerEventType, obj: KubeObject): void {
    this.#failures = 0; // the watch works again
    const key = this.#index && this.spec.indexBy?.(obj);
    if (this.#index && key) {
      const names = this.#index.get(key) ?? new Set<string>();
      if (type === "delete") names.delete(obj.metadata.name);
      else names.add(obj.metadata.name);
      if (names.size) this.#index.set(key, names);
      else this.#index.delete(key);
    }
    for (const handler of this.#handlers) handler(type, obj);
  }

  /** A watch that fails (API server restarting, connection dropped) is restarted with backoff. */
  #restart(err: unknown): void {
    if (this.#stopped) return;
    this.#failures++;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.#failures - 1, 10));
    this.#log.warn({ err, watch: this.spec.name, retryInMs: delay }, "watch failed; resuming");
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.start(), delay);
  }
}

/** The namespace a collection path is scoped to (/…/namespaces/<ns>/<plural>), or undefined for all. */
function namespaceOf(path: string): string | undefined {
  const match = /\/namespaces\/([^/]+)\/[^/]+$/.exec(path);
  return match ? decodeURIComponent(match[1] ?? "") : undefined;
}

/** The process's informers, by name. */
export class Informers {
  readonly #kube: Kube;
  readonly #log: Logger;
  readonly #byName = new Map<string, Informer>();
  #started = false;

  constructor(kube: Kube, log: Logger) {
    this.#kube = kube;
    this.#log = log;
  }

  /** The informer named `spec.name`, made on first use; one added after start() starts at once. */
  add(spec: InformerSpec): Informer {
    const known = this.#byName.get(spec.name);
    if (known) return known;
    const informer = new Informer(this.#kube, spec, this.#log);
    this.#byName.set(spec.name, informer);
    if (this.#started) void informer.start();
    return informer;
  }

  get(name: string): Informer | undefined {
    return this.#byName.get(name);
  }

  /**
   * Starts every informer; resolves once each has listed, or after `deadlineMs` (then reads of a kind not yet
   * listed must go to the API server: see synced()).
   */
  async start(deadlineMs = 30_000): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const informers = [...this.#byName.values()];
    await Promise.all(informers.map((i) => i.start()));
    const deadline = Date.now() + deadlineMs;
    while (!informers.every((i) => i.listed || i.stopped) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const pending = informers.filter((i) => !i.listed).map((i) => i.spec.name);
    if (pending.length) this.#log.warn({ pending }, "not every watch has listed yet; continuing with API reads");
  }

  /** True once each informer named (default: every one added so far) has listed at least once. */
  synced(names?: readonly string[]): boolean {
    return (names ?? [...this.#byName.keys()]).every((n) => this.#byName.get(n)?.listed === true);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#byName.values()].map((i) => i.stop()));
  }
}
