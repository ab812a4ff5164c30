// Where the App reconciler reads Apps, Configs and Releases. The operator already watches all three, so it reads
// them from its watch caches (no API call per reconcile, which is what lets it keep up with 1,000 Apps); a
// reconciler on its own (tests) reads them from the API server.
//
// A cache lags the operator's own writes by one watch event. Reading an App older than the one the operator has
// just written would cost a 409 and a retry for every write, so the cached reader remembers what it wrote: while
// the cache still shows the object a write replaced, it answers with the written one. Resource versions are only
// compared for equality, as the API asks. Likewise a Release the operator has just created is listed until the
// cache holds it.
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { API_VERSION } from "../crds/v1alpha1.js";
import type { Kube, KubeObject } from "./kube.js";
import { releasesOf } from "./releases.js";

export type AppObject = App & KubeObject;
export type ConfigObject = Config & KubeObject;
export type ReleaseObject = Release & KubeObject;

export interface ObjectReader {
  /** True when reads come from watch caches (which may lag the API server), false when from the API server. */
  readonly cached: boolean;
  app(namespace: string, name: string): Promise<AppObject | undefined>;
  config(namespace: string, name: string): Promise<ConfigObject | undefined>;
  /** The App's Releases, oldest first. */
  releases(namespace: string, app: string): Promise<ReleaseObject[]>;
  /** The reconciler wrote `after` over `before` (same object); later reads must not return `before` again. */
  wrote(before: KubeObject, after: KubeObject): void;
  /** The reconciler created a Release. */
  created(release: ReleaseObject): void;
  /** A child as the watch cache holds it (only Deployments are watched); undefined when not cached. */
  child(apiVersion: string, kind: string, namespace: string, name: string): KubeObject | undefined;
  /** Every App (in every namespace the operator watches): who else claims a host. */
  apps(): Promise<readonly AppObject[]>;
}

/** Reads every object from the API server. */
export class ApiReader implements ObjectReader {
  readonly cached = false;
  constructor(private readonly kube: Kube) {}
  app(namespace: string, name: string) {
    return this.kube.getIfExists<AppObject>(API_VERSION, "App", namespace, name);
  }
  config(namespace: string, name: string) {
    return this.kube.getIfExists<ConfigObject>(API_VERSION, "Config", namespace, name);
  }
  async releases(namespace: string, app: string) {
    const all = await this.kube.list<ReleaseObject>(API_VERSION, "Release", namespace, undefined, `spec.app=${app}`);
    return releasesOf(app, all.items) as ReleaseObject[];
  }
  async apps() {
    return (await this.kube.list<AppObject>(API_VERSION, "App", undefined)).items;
  }
  wrote(): void {}
  created(): void {}
  child(): undefined {
    return undefined;
  }
}

/** The part of a watch cache the reader uses (client-node's ListWatch is one). */
export interface Cache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  /** The objects that concern one App (its Releases); undefined where the cache keeps no such index. */
  listOf?(namespace: string, app: string): readonly T[] | undefined;
}

interface Written {
  /** Resource versions the operator's writes replaced: the cache is stale while it shows one of them. */
  replaced: Set<string>;
  latest: KubeObject;
}

/** Reads Apps, Configs and Releases from the operator's watch caches. */
export class CachedReader implements ObjectReader {
  readonly cached = true;
  readonly #apps: Cache<KubeObject>;
  readonly #configs: Cache<KubeObject>;
  readonly #releases: Cache<KubeObject>;
  readonly #deployments: Cache<KubeObject> | undefined;
  readonly #synced: () => boolean;
  readonly #fallback: ObjectReader | undefined;
  readonly #written = new Map<string, Written>();
  readonly #created = new Map<string, ReleaseObject>();

  constructor(caches: {
    apps: Cache<KubeObject>;
    configs: Cache<KubeObject>;
    releases: Cache<KubeObject>;
    deployments?: Cache<KubeObject>;
    /** Whether every cache has listed; until then reads go to `fallback` (when given). */
    synced?: () => boolean;
    fallback?: ObjectReader;
  }) {
    this.#apps = caches.apps;
    this.#configs = caches.configs;
    this.#releases = caches.releases;
    this.#deployments = caches.deployments;
    this.#synced = caches.synced ?? (() => true);
    this.#fallback = caches.fallback;
  }

  /** The reader to use instead of the caches while they are not filled yet. */
  get #instead(): ObjectReader | undefined {
    return this.#synced() ? undefined : this.#fallback;
  }

  child(apiVersion: string, kind: string, namespace: string, name: string): KubeObject | undefined {
    if (apiVersion !== "apps/v1" || kind !== "Deployment" || !this.#synced()) return undefined;
    return this.#deployments?.get(name, namespace);
  }

  async app(namespace: string, name: string) {
    if (this.#instead) return this.#instead.app(namespace, name);
    return this.#fresh("App", this.#apps.get(name, namespace), namespace, name) as AppObject | undefined;
  }

  async apps() {
    if (this.#instead) return this.#instead.apps();
    return this.#apps.list() as unknown as AppObject[];
  }

  async config(namespace: string, name: string) {
    if (this.#instead) return this.#instead.config(namespace, name);
    return this.#fresh("Config", this.#configs.get(name, namespace), namespace, name) as ConfigObject | undefined;
  }

  async releases(namespace: string, app: string) {
    if (this.#instead) return this.#instead.releases(namespace, app);
    const cached = (this.#releases.listOf?.(namespace, app) ?? this.#releases.list(namespace)) as unknown as ReleaseObject[];
    const byName = new Map(releasesOf(app, cached).map((r) => [r.metadata.name, r as ReleaseObject]));
    for (const [key, release] of this.#created) {
      if (release.metadata.namespace !== namespace || release.spec.app !== app) continue;
      if (byName.has(release.metadata.name)) this.#created.delete(key);
      else byName.set(release.metadata.name, release);
    }
    return [...byName.values()].sort((a, b) => a.spec.version - b.spec.version);
  }

  wrote(before: KubeObject, after: KubeObject): void {
    const key = keyOf(after.kind, after.metadata.namespace, after.metadata.name);
    // The watch event of a write often comes before its answer: then the cache holds the write already.
    if (this.#cacheOf(after.kind)?.get(after.metadata.name, after.metadata.namespace)?.metadata.resourceVersion === after.metadata.resourceVersion) {
      this.#written.delete(key);
      return;
    }
    const entry = this.#written.get(key) ?? { replaced: new Set<string>(), latest: after };
    if (before.metadata.resourceVersion) entry.replaced.add(before.metadata.resourceVersion);
    entry.latest = after;
    this.#written.set(key, entry);
  }

  created(release: ReleaseObject): void {
    if (this.#releases.get(release.metadata.name, release.metadata.namespace)) return;
    this.#created.set(keyOf("Release", release.metadata.namespace, release.metadata.name), release);
  }

  /** How many written and created objects the reader holds on to (until the caches catch up). */
  get remembered(): number {
    return this.#written.size + this.#created.size;
  }

  /**
   * A cache took in an event for `obj` (its handlers run after it did): once the cache holds a version no write
   * of ours replaced, or holds the object no more, what the reader remembers of it goes. Without this, an object
   * written and not read again (an App between edits) was kept whole, managedFields and all: 12.5 MiB of the
   * heap with 3,000 Apps (a heap snapshot of the bench's operator).
   */
  observed(kind: "App" | "Config" | "Release", obj: KubeObject, deleted: boolean): void {
    const key = keyOf(kind, obj.metadata.namespace, obj.metadata.name);
    const written = this.#written.get(key);
    const rv = obj.metadata.resourceVersion;
    if (written && (deleted || !rv || !written.replaced.has(rv))) this.#written.delete(key);
    if (kind === "Release") this.#created.delete(key);
  }

  #cacheOf(kind: string): Cache<KubeObject> | undefined {
    return kind === "App" ? this.#apps : kind === "Config" ? this.#configs : kind === "Release" ? this.#releases : undefined;
  }

  #fresh(kind: string, cached: KubeObject | undefined, namespace: string, name: string): KubeObject | undefined {
    const key = keyOf(kind, namespace, name);
    const written = this.#written.get(key);
    if (!written) return cached;
    // Still the version a write replaced: the written one is newer. (Gone from the cache means deleted: the
    // operator only writes objects it read from the cache.)
    const rv = cached?.metadata.resourceVersion;
    if (rv && written.replaced.has(rv)) return written.latest;
    this.#written.delete(key);
    return cached;
  }
}

const keyOf = (kind: string, namespace: string | undefined, name: string) => `${kind}/${namespace ?? ""}/${name}`;
