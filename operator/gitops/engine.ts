// The GitOps engine: keeps the config repository and the cluster's Apps, Configs and Releases in step.
// Everything runs through one serial lane (the repository is one working clone); per App, a reconcile reads
// the cluster, Git's head and each object's base (status.commit), decides with merge.ts, commits and pushes
// cluster changes (replaying them on a rejected push), then applies Git's changes and records commits in status.
import type { Logger } from "pino";
import type { App, Config, ObjectMeta, Release } from "../../crds/v1alpha1.js";
import { ANNOTATIONS, API_VERSION } from "../../crds/v1alpha1.js";
import { faultPoint } from "../fault.js";
import { isNotFound, type Kube, type KubeObject } from "../kube.js";
import { planRelease, planRollback } from "../releases.js";
import {
  APPS_DIR,
  canonical,
  cleanObject,
  parseObject,
  parsePath,
  pathOf,
  renderObject,
  type SlipwayKind,
  type StoredObject,
} from "./layout.js";
import { decide, UNKNOWN, type Base, type Decision } from "./merge.js";
import { commitMessage, conflictMessage, type ObjectChange } from "./messages.js";
import { PushRejectedError, type ConfigRepo, type FileChanges } from "./repo.js";

export const GITOPS_FIELD_MANAGER = "slipway-gitops";
const PUSH_ATTEMPTS = 5;
/** How far back a starting process looks in Git for its own last commit of an object whose record it lost. */
const HISTORY_DEPTH = 500;

export interface EngineOptions {
  kube: Kube;
  repo: ConfigRepo;
  mode: "sync" | "commit-only";
  namespace?: string;
  log: Logger;
}

type ClusterObject = KubeObject & { spec?: unknown; status?: { commit?: string } };

interface Item {
  kind: SlipwayKind;
  name: string;
  path: string;
  cluster: ClusterObject | undefined;
  clusterText: string | undefined;
  gitText: string | undefined;
  gitCanonical: string | undefined;
  base: Base;
  decision: Decision;
}

const objectKey = (kind: string, namespace: string, name: string) => `${kind}/${namespace}/${name}`;

/** One read of an App's objects in the cluster. */
interface ClusterView {
  app: (ClusterObject & { spec?: { suspend?: boolean } }) | undefined;
  config: ClusterObject | undefined;
  releases: ClusterObject[];
}

export class GitOpsEngine {
  readonly #kube: Kube;
  readonly #repo: ConfigRepo;
  readonly #mode: "sync" | "commit-only";
  readonly #namespace: string | undefined;
  readonly #log: Logger;
  /** Objects a watch saw deleted whose deletion is not yet in Git, by kind/namespace/name. */
  readonly #deleted = new Map<string, ObjectMeta>();
  /** Commits this process recorded per object, in case a status write was lost. */
  readonly #recorded = new Map<string, string>();
  /**
   * Objects this process has carried out a decision for. It knows its own commits of those; for the others a
   * crash between a push and the status write may have lost the record of the last commit (see #base).
   */
  readonly #settled = new Set<string>();
  /** Conflicts already kept on a branch (path + both sides), so a repeated reconcile does not branch again. */
  readonly #kept = new Set<string>();
  /** The head whose whole tree has been reconciled; undefined forces a full pass on the next sync. */
  #applied: string | undefined;

  constructor(options: EngineOptions) {
    this.#kube = options.kube;
    this.#repo = options.repo;
    this.#mode = options.mode;
    this.#namespace = options.namespace;
    this.#log = options.log;
  }

  /** Remembers a deletion seen by a watch, so the reconcile removes the file instead of re-creating the object. */
  noteDeleted(kind: SlipwayKind, meta: ObjectMeta): void {
    if (meta.namespace) this.#deleted.set(objectKey(kind, meta.namespace, meta.name), meta);
  }

  /** Whether the operator core is about to cut a release for this App, so its change should wait for it. */
  async releaseExpected(namespace: string, app: string): Promise<boolean> {
    return releaseComing(await this.#readCluster(namespace, app));
  }

  /**
   * Fetches the remote; when its head is not the one last reconciled, reconciles every App in Git or the
   * cluster. `force` reconciles everything regardless (on start: heals a crash between a change and its push).
   * Returns the Apps ("namespace/name") held for the release the operator is about to cut: try them again shortly.
   */
  async sync(force = false): Promise<string[]> {
    const remote = await this.#repo.fetch();
    const local = await this.#repo.head();
    if (remote && remote !== local) await this.#repo.resetTo(remote);
    const head = await this.#repo.head();
    if (!force && head && head === this.#applied) return [];
    this.#applied = head;
    await this.#fixKustomizations();
    const held: string[] = [];
    for (const [namespace, app] of await this.#allApps()) {
      try {
        // A change made while the operator was down or starting waits for its release, as a watched one does.
        if ((await this.reconcileApp(namespace, app, true)) === "held") held.push(`${namespace}/${app}`);
      } catch (err) {
        this.#applied = undefined;
        this.#log.warn({ err, app: `${namespace}/${app}` }, "cannot reconcile an App with Git; will retry on the next sync");
      }
    }
    return held;
  }

  /** A push that added or removed app files without updating kustomization.yaml files gets them regenerated. */
  async #fixKustomizations(): Promise<void> {
    const head = await this.#repo.head();
    const oid = await this.#repo.commit(new Map(), "Regenerate kustomization.yaml files for the apps in the tree");
    if (!oid) return;
    try {
      await this.#repo.push();
      if (this.#applied === head) this.#applied = oid;
    } catch (err) {
      // Someone pushed meanwhile; the next sync regenerates them on the new head.
      if (head) await this.#repo.resetTo(head);
      this.#log.info({ err }, "cannot push regenerated kustomization.yaml files yet");
    }
  }

  /** Brings one App's objects and files in step; see the file comment. */
  /**
   * With `holdForRelease`, an App/Config change is not committed while the operator is about to cut a release
   * for it (so both land in one commit); returns "held" then, and the caller tries again a little later.
   */
  async reconcileApp(namespace: string, app: string, holdForRelease = false): Promise<"done" | "held"> {
    if (this.#namespace && namespace !== this.#namespace) return "done";
    for (let attempt = 1; ; attempt++) {
      const head = await this.#repo.head();
      // The hold is judged from the same read of the cluster as the plan: judged from a later read, a release
      // cut in between would say "nothing to wait for" while the plan lacks that release.
      const { items, cluster } = await this.#plan(namespace, app, head);
      const commits = items.filter((i) => i.decision.action === "commit");
      const releaseInCommit = commits.some((i) => i.kind === "Release" && i.cluster);
      if (holdForRelease && commits.length && !releaseInCommit && releaseComing(cluster)) {
        this.#log.debug({ app: `${namespace}/${app}`, paths: commits.map((i) => i.path) }, "holding a change for the release it causes");
        return "held";
      }
      let recorded = head;
      if (commits.length) {
        this.#log.debug({ app: `${namespace}/${app}`, paths: commits.map((i) => i.path), holdForRelease, releaseInCommit }, "committing");
        const changes: FileChanges = new Map(commits.map((i) => [i.path, i.clusterText ?? null]));
        const message = commitMessage(namespace, app, commits.map((i) => this.#change(namespace, i)));
        const oid = await this.#repo.commit(changes, message);
        if (oid) {
          faultPoint("before-push");
          try {
            await this.#repo.push();
            faultPoint("after-push");
            if (this.#applied === head) this.#applied = oid;
            recorded = oid;
            this.#log.info({ app: `${namespace}/${app}`, commit: oid, subject: message.split("\n")[0] }, "committed a cluster change");
          } catch (err) {
            if (!(err instanceof PushRejectedError) || attempt >= PUSH_ATTEMPTS) {
              const remote = await this.#repo.fetch().catch(() => undefined);
              if (remote) await this.#repo.resetTo(remote);
              this.#applied = undefined;
              throw new Error(`cannot push the change to ${namespace}/${app} after ${attempt} attempt(s)`, { cause: err });
            }
            // The remote moved: take its head and replay the cluster's change on it.
            this.#log.info({ app: `${namespace}/${app}`, attempt }, "push rejected; fetching and replaying the change");
            const remote = await this.#repo.fetch();
            if (remote) await this.#repo.resetTo(remote);
            this.#applied = undefined;
            continue;
          }
        }
      }
      await this.#carryOut(namespace, app, items, recorded);
      return "done";
    }
  }

  async #plan(namespace: string, app: string, head: string | undefined): Promise<{ items: Item[]; cluster: ClusterView }> {
    const cluster = await this.#readCluster(namespace, app);
    const byPath = new Map<string, ClusterObject>();
    for (const obj of [cluster.app, cluster.config, ...cluster.releases]) {
      if (obj && !obj.metadata.deletionTimestamp) byPath.set(pathOf(obj as StoredObject), obj);
    }
    const files = await this.#repo.files(head);
    const paths = new Set(byPath.keys());
    for (const path of files.keys()) {
      const parsed = parsePath(path);
      if (parsed?.kind && parsed.namespace === namespace && parsed.app === app) paths.add(path);
    }
    for (const [key] of this.#deleted) {
      const [kind, ns, name] = key.split("/") as [SlipwayKind, string, string];
      if (ns !== namespace) continue;
      if (kind === "Release") {
        const match = /^(.*)-v([1-9][0-9]*)$/.exec(name);
        if (match?.[1] === app) paths.add(`${APPS_DIR}/${namespace}/${app}/releases/v${match[2]}.yaml`);
      } else if (name === app) {
        paths.add(`${APPS_DIR}/${namespace}/${app}/${kind === "App" ? "app" : "config"}.yaml`);
      }
    }
    const items: Item[] = [];
    for (const path of [...paths].sort()) {
      const kind = parsePath(path)?.kind;
      if (!kind) continue;
      const obj = byPath.get(path);
      const gitText = files.has(path) ? await this.#repo.readFile(path, head) : undefined;
      const gitCanonical = canonical(gitText);
      const name = obj?.metadata.name ?? this.#nameOf(kind, app, path, gitText);
      const key = objectKey(kind, namespace, name);
      const clusterText = obj ? renderObject(obj as StoredObject) : undefined;
      // When both sides agree the base only says whether status must record the head: no history walk then.
      const baseCommit = await this.#base(key, path, head, obj?.status?.commit, clusterText !== gitCanonical);
      let base: Base = UNKNOWN;
      if (baseCommit) base = canonical(await this.#repo.readFile(path, baseCommit));
      const deletedInCluster = !obj && this.#deleted.has(key);
      const decision = decide({ cluster: clusterText, git: gitCanonical, base, deletedInCluster });
      items.push({ kind, name, path, cluster: obj, clusterText, gitText, gitCanonical, base, decision });
    }
    return { items, cluster };
  }

  /**
   * The newest commit whose version of the file the cluster is known to have held: the one recorded in status
   * (or by this process). An object this process has not dealt with yet may have been committed by an earlier
   * process that crashed between its push and the status write; Slipway's own newer commit of the file, found
   * in the history, is then the newer shared state. Without it the cluster's change since would look like a
   * conflict, and Git would win over it.
   */
  async #base(key: string, path: string, head: string | undefined, statusCommit: string | undefined, walk: boolean): Promise<string | undefined> {
    const recorded = statusCommit ?? this.#recorded.get(key);
    const known = recorded && (await this.#repo.hasCommit(recorded)) ? recorded : undefined;
    if (!walk || this.#settled.has(key) || !head) return known;
    const newer = await this.#repo.lastChangeBySlipway(path, head, { stopAt: known, depth: HISTORY_DEPTH });
    if (newer) this.#log.debug({ object: key, recorded: known, commit: newer }, "a newer commit of Slipway's than the recorded one is the base");
    return newer ?? known;
  }

  #nameOf(kind: SlipwayKind, app: string, path: string, gitText: string | undefined): string {
    if (gitText) {
      try {
        return parseObject(gitText).metadata.name;
      } catch {
        // fall back to the name the layout implies
      }
    }
    if (kind !== "Release") return app;
    return `${app}-${/(v[0-9]+)\.yaml$/.exec(path)?.[1] ?? ""}`;
  }

  #change(namespace: string, item: Item): ObjectChange {
    const before = item.gitText !== undefined ? safeParse(item.gitText) : undefined;
    const after = item.cluster ? cleanObject(item.cluster as StoredObject) : undefined;
    const meta = item.cluster ? (item.cluster.metadata as ObjectMeta) : this.#deleted.get(objectKey(item.kind, namespace, item.name));
    return { kind: item.kind, path: item.path, before, after, meta };
  }

  async #carryOut(namespace: string, app: string, items: Item[], head: string | undefined): Promise<void> {
    const sync = this.#mode === "sync";
    const files = await this.#repo.files(head);
    const appRemovedFromGit = !files.has(`${APPS_DIR}/${namespace}/${app}/app.yaml`);
    const namespaceInGit = [...files.keys()].some((p) => p.startsWith(`${APPS_DIR}/${namespace}/`));
    for (const item of items) {
      const key = objectKey(item.kind, namespace, item.name);
      const { action } = item.decision;
      try {
        if (action === "commit") {
          this.#deleted.delete(key);
          if (item.cluster && head) await this.#recordCommit(item.cluster, key, head);
        } else if (action === "none") {
          if (!item.cluster) this.#deleted.delete(key);
          if (item.decision.record && item.cluster && head) await this.#recordCommit(item.cluster, key, head);
        } else if (action === "conflict") {
          await this.#keepConflict(namespace, item, head);
          this.#deleted.delete(key);
          if (sync) await this.#takeGit(namespace, item, head, appRemovedFromGit, namespaceInGit);
        } else if (sync) {
          await this.#takeGit(namespace, item, head, appRemovedFromGit, namespaceInGit);
        }
        this.#settled.add(key);
      } catch (err) {
        this.#log.warn({ err, object: key, action }, "cannot carry out a GitOps decision; will retry on the next sync");
        this.#applied = undefined;
      }
    }
  }

  /** Makes the cluster hold Git's version of an object: apply it, or delete it when Git removed it. */
  async #takeGit(namespace: string, item: Item, head: string | undefined, appRemoved: boolean, namespaceInGit: boolean) {
    const key = objectKey(item.kind, namespace, item.name);
    if (item.gitText === undefined) {
      // Releases are immutable history: a reverted release stays in the cluster (numbers are never reused);
      // they go only with their App. Nothing is deleted in a namespace the repository does not lay out.
      if (!item.cluster || !namespaceInGit) return;
      if (item.kind === "Release" && !appRemoved) return;
      await this.#kube.deleteIfExists(item.cluster);
      this.#recorded.delete(key);
      this.#log.info({ object: key, commit: head }, "deleted from the cluster: removed from Git");
      return;
    }
    const desired = cleanObject(parseObject(item.gitText));
    const applied = await this.#apply(desired);
    if (head) await this.#recordCommit(applied, key, head);
    this.#log.info({ object: key, commit: head }, "applied from Git");
  }

  /** Server-side apply as slipway-gitops, then drop fields the cluster holds that Git does not (owned by others). */
  async #apply(desired: StoredObject): Promise<ClusterObject> {
    const path = await this.#kube.path(desired.apiVersion, desired.kind, desired.metadata.namespace, desired.metadata.name);
    let live = await this.#kube.request<ClusterObject>("PATCH", path, {
      body: desired,
      contentType: "application/apply-patch+yaml",
      query: { fieldManager: GITOPS_FIELD_MANAGER, force: true, fieldValidation: "Strict" },
    });
    const removal = removals(
      { metadata: { labels: cleanObject(live as StoredObject).metadata.labels ?? {}, annotations: cleanObject(live as StoredObject).metadata.annotations ?? {} }, spec: live.spec ?? {} },
      { metadata: { labels: desired.metadata.labels ?? {}, annotations: desired.metadata.annotations ?? {} }, spec: desired.spec ?? {} },
    );
    if (removal) {
      live = await this.#kube.request<ClusterObject>("PATCH", path, {
        body: removal,
        contentType: "application/merge-patch+json",
        query: { fieldManager: GITOPS_FIELD_MANAGER },
      });
    }
    return live;
  }

  async #recordCommit(obj: KubeObject, key: string, commit: string): Promise<void> {
    this.#recorded.set(key, commit);
    if ((obj as ClusterObject).status?.commit === commit) return;
    const path = await this.#kube.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
    try {
      await this.#kube.request("PATCH", `${path}/status`, {
        body: { status: { commit } },
        contentType: "application/merge-patch+json",
        query: { fieldManager: GITOPS_FIELD_MANAGER },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Keeps the cluster's losing version on a branch `conflict/<namespace>-<kind>-<name>-<short>` and says so in an Event. */
  async #keepConflict(namespace: string, item: Item, head: string | undefined): Promise<void> {
    const seen = `${item.path}\n${item.clusterText ?? ""}\n${item.gitCanonical ?? ""}`;
    if (this.#kept.has(seen) || !head) return;
    const oid = await this.#repo.commit(
      new Map([[item.path, item.clusterText ?? null]]),
      conflictMessage(item.kind, namespace, item.name, head),
      { parent: head, ref: "refs/slipway/conflict", allowEmpty: true },
    );
    if (!oid) return;
    const branch = `conflict/${namespace}-${item.kind.toLowerCase()}-${item.name}-${oid.slice(0, 7)}`;
    await this.#repo.pushNewBranch(branch, oid);
    this.#kept.add(seen);
    this.#log.warn({ object: objectKey(item.kind, namespace, item.name), branch }, "Git and the cluster both changed an object; Git wins");
    const subject = item.cluster ?? { apiVersion: API_VERSION, kind: item.kind, metadata: { name: item.name, namespace } };
    try {
      await this.#kube.event(subject, {
        type: "Warning",
        reason: "GitConflict",
        action: "SyncFromGit",
        note: `Git and the cluster both changed ${item.kind} ${namespace}/${item.name}; Git wins (commit ${head.slice(0, 7)}). The cluster's change is kept on branch ${branch}.`,
      });
    } catch (err) {
      this.#log.warn({ err, branch }, "cannot record the conflict Event");
    }
  }

  async #readCluster(namespace: string, app: string): Promise<ClusterView> {
    const get = (kind: string) => this.#kube.getIfExists<ClusterObject>(API_VERSION, kind, namespace, app);
    const [appObj, config, releases] = await Promise.all([
      get("App"),
      get("Config"),
      this.#kube.list<ClusterObject>(API_VERSION, "Release", namespace),
    ]);
    return {
      app: appObj as (ClusterObject & { spec?: { suspend?: boolean } }) | undefined,
      config,
      releases: releases.items.filter((r) => (r.spec as { app?: string } | undefined)?.app === app),
    };
  }

  /** Every App (namespace, name) that has files in Git or objects in the cluster. */
  async #allApps(): Promise<[string, string][]> {
    const found = new Set<string>();
    for (const path of (await this.#repo.files()).keys()) {
      const parsed = parsePath(path);
      if (parsed?.kind) found.add(`${parsed.namespace}/${parsed.app}`);
    }
    for (const kind of ["App", "Config", "Release"] as const) {
      const list = await this.#kube.list<ClusterObject>(API_VERSION, kind, this.#namespace);
      for (const obj of list.items) {
        const app = kind === "Release" ? (obj.spec as { app?: string } | undefined)?.app : obj.metadata.name;
        if (app && obj.metadata.namespace) found.add(`${obj.metadata.namespace}/${app}`);
      }
    }
    for (const key of this.#deleted.keys()) {
      const [, ns = "", name = ""] = key.split("/");
      found.add(`${ns}/${name.replace(/-v[0-9]+$/, "")}`);
    }
    return [...found]
      .map((k) => k.split("/") as [string, string])
      .filter(([ns]) => !this.#namespace || ns === this.#namespace)
      .sort();
  }
}

function safeParse(text: string): StoredObject | undefined {
  try {
    return cleanObject(parseObject(text));
  } catch {
    return undefined;
  }
}

/** A JSON merge patch setting to null every field `live` has and `desired` lacks; undefined when none. */
export function removals(live: unknown, desired: unknown): Record<string, unknown> | undefined {
  const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
  if (!isMap(live) || !isMap(desired)) return undefined;
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(live)) {
    if (!(key in desired)) patch[key] = null;
    else {
      const nested = removals(value, desired[key]);
      if (nested) patch[key] = nested;
    }
  }
  return Object.keys(patch).length ? patch : undefined;
}

/** Whether the operator is about to cut a release for the App, judged from one read of the cluster. */
function releaseComing({ app: appObj, config, releases }: ClusterView): boolean {
  if (!appObj || appObj.spec?.suspend || appObj.metadata.deletionTimestamp) return false;
  const a = appObj as unknown as App;
  // The operator stalled on this generation (e.g. no Config yet): no release is coming.
  const stalled = a.status?.conditions?.find((c) => c.type === "Stalled");
  if (a.status?.observedGeneration === a.metadata.generation && stalled?.status === "True") return false;
  const rels = releases as unknown as Release[];
  const rollback = a.metadata.annotations?.[ANNOTATIONS.rollback];
  const plan = rollback ? planRollback(a, rels, rollback) : planRelease({ app: a, config: config as unknown as Config | undefined, releases: rels });
  return plan.kind === "cut";
}
