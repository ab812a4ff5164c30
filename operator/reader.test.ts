import test from "ava";
import { API_VERSION } from "../crds/v1alpha1.js";
import type { KubeObject } from "./kube.js";
import { CachedReader, type Cache, type ReleaseObject } from "./reader.js";

/** A watch cache as the informer keeps it: objects by namespace/name, replaced when an event arrives. */
class FakeCache implements Cache<KubeObject> {
  readonly objects = new Map<string, KubeObject>();
  put(obj: KubeObject): void {
    this.objects.set(`${obj.metadata.namespace}/${obj.metadata.name}`, obj);
  }
  remove(obj: KubeObject): void {
    this.objects.delete(`${obj.metadata.namespace}/${obj.metadata.name}`);
  }
  get(name: string, namespace?: string) {
    return this.objects.get(`${namespace}/${name}`);
  }
  list(namespace?: string) {
    return [...this.objects.values()].filter((o) => o.metadata.namespace === namespace);
  }
}

const app = (rv: string, extra: Record<string, unknown> = {}): KubeObject =>
  ({ apiVersion: API_VERSION, kind: "App", metadata: { name: "shop", namespace: "ns", resourceVersion: rv }, spec: {}, ...extra }) as KubeObject;
const release = (version: number, rv = "1"): ReleaseObject =>
  ({
    apiVersion: API_VERSION,
    kind: "Release",
    metadata: { name: `shop-v${version}`, namespace: "ns", resourceVersion: rv },
    spec: { app: "shop", version, cause: "deploy", build: { image: "img" }, config: {} },
  }) as unknown as ReleaseObject;

function setup() {
  const caches = { apps: new FakeCache(), configs: new FakeCache(), releases: new FakeCache() };
  return { caches, reader: new CachedReader(caches) };
}

test("an App the operator just wrote is read back as written while the cache still holds the version it replaced", async (t) => {
  const { caches, reader } = setup();
  caches.apps.put(app("10"));
  const written = app("11", { status: { observedGeneration: 1 } });
  reader.wrote(app("10"), written);
  t.is((await reader.app("ns", "shop"))?.metadata.resourceVersion, "11");

  // A second write in the same pass: the cache may still show the first version of all.
  const second = app("12", { status: { observedGeneration: 1, currentRelease: "v1" } });
  reader.wrote(written, second);
  t.is((await reader.app("ns", "shop"))?.metadata.resourceVersion, "12");
});

test("once the cache moves past the operator's write, the cache is read again, also for someone else's newer write", async (t) => {
  const { caches, reader } = setup();
  caches.apps.put(app("10"));
  reader.wrote(app("10"), app("11"));
  caches.apps.put(app("13", { spec: { image: "new" } }));
  const read = await reader.app("ns", "shop");
  t.is(read?.metadata.resourceVersion, "13");
  // The note is gone: a later cache update is read as it is.
  caches.apps.put(app("14"));
  t.is((await reader.app("ns", "shop"))?.metadata.resourceVersion, "14");
});

test("an App gone from the cache reads as deleted even after the operator wrote it", async (t) => {
  const { caches, reader } = setup();
  caches.apps.put(app("10"));
  reader.wrote(app("10"), app("11"));
  caches.apps.remove(app("10"));
  t.is(await reader.app("ns", "shop"), undefined);
});

test("what the reader keeps of a write goes when the cache takes in the written version or a later one, not a stale one", async (t) => {
  const { caches, reader } = setup();
  caches.apps.put(app("10"));
  reader.wrote(app("10"), app("11"));
  reader.wrote(app("11"), app("12"));
  // Events of the versions the writes replaced arrive late: the writes are still newer.
  reader.observed("App", app("10"), false);
  reader.observed("App", app("11"), false);
  t.is(reader.remembered, 1);
  t.is((await reader.app("ns", "shop"))?.metadata.resourceVersion, "12");
  // The cache holds the written version: nothing is kept, though nobody reads the App again.
  caches.apps.put(app("12"));
  reader.observed("App", app("12"), false);
  t.is(reader.remembered, 0);
  t.is((await reader.app("ns", "shop"))?.metadata.resourceVersion, "12");

  // Someone else's later write, and a deletion, also end what is kept; so does a created Release's arrival.
  reader.wrote(app("12"), app("13"));
  reader.observed("App", app("14"), false);
  reader.wrote(app("14"), app("15"));
  reader.observed("App", app("14"), true);
  reader.created(release(2, "5"));
  t.is(reader.remembered, 1);
  reader.observed("Release", release(2, "5"), false);
  t.is(reader.remembered, 0);

  // A write's watch event that came before its answer: the cache holds the write already, so nothing is kept.
  caches.apps.put(app("17"));
  reader.observed("App", app("17"), false);
  reader.wrote(app("16"), app("17"));
  caches.releases.put(release(3, "8"));
  reader.created(release(3, "8"));
  t.is(reader.remembered, 0);
  t.is((await reader.app("ns", "shop"))?.metadata.resourceVersion, "17");
});

test("a Release the operator created is listed, in version order, until the cache holds it", async (t) => {
  const { caches, reader } = setup();
  caches.releases.put(release(1));
  caches.releases.put({ ...release(7), spec: { ...release(7).spec, app: "other" }, metadata: { ...release(7).metadata, name: "other-v7" } } as ReleaseObject);
  reader.created(release(2, "5"));
  t.deepEqual((await reader.releases("ns", "shop")).map((r) => r.spec.version), [1, 2]);
  t.deepEqual(await reader.releases("other-ns", "shop"), []);
  caches.releases.put(release(2, "6"));
  const listed = await reader.releases("ns", "shop");
  t.deepEqual(listed.map((r) => `${r.spec.version}@${r.metadata.resourceVersion}`), ["1@1", "2@6"]);
});

test("where the cache keeps the Releases per App, a pass reads its App's from there, without scanning the namespace", async (t) => {
  class IndexedCache extends FakeCache {
    override list(): KubeObject[] {
      throw new Error("scanned the namespace");
    }
    listOf(namespace: string, app: string) {
      return [...this.objects.values()].filter((o) => o.metadata.namespace === namespace && (o as ReleaseObject).spec.app === app);
    }
  }
  const releases = new IndexedCache();
  const reader = new CachedReader({ apps: new FakeCache(), configs: new FakeCache(), releases });
  releases.put(release(2));
  releases.put(release(1));
  reader.created(release(3));
  t.deepEqual((await reader.releases("ns", "shop")).map((r) => r.spec.version), [1, 2, 3]);
  t.deepEqual(await reader.releases("ns", "other"), []);
});

test("children are read from the cache only where one is kept (Deployments)", (t) => {
  const deployments = new FakeCache();
  const reader = new CachedReader({ apps: new FakeCache(), configs: new FakeCache(), releases: new FakeCache(), deployments });
  deployments.put({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "shop-web", namespace: "ns", generation: 3 } });
  t.is(reader.child("apps/v1", "Deployment", "ns", "shop-web")?.metadata.generation, 3);
  t.is(reader.child("apps/v1", "Deployment", "ns", "other"), undefined);
  t.is(reader.child("v1", "Service", "ns", "shop-web"), undefined);
});

test("until every cache has listed, reads go to the fallback reader, so an empty Release cache cannot cut a release twice", async (t) => {
  const caches = { apps: new FakeCache(), configs: new FakeCache(), releases: new FakeCache() };
  let synced = false;
  const fallback = new CachedReader({ apps: new FakeCache(), configs: new FakeCache(), releases: new FakeCache() });
  fallback.created(release(1));
  const reader = new CachedReader({ ...caches, synced: () => synced, fallback });
  t.deepEqual((await reader.releases("ns", "shop")).map((r) => r.spec.version), [1]);
  synced = true;
  caches.releases.put(release(1));
  caches.releases.put(release(2));
  t.deepEqual((await reader.releases("ns", "shop")).map((r) => r.spec.version), [1, 2]);
});
