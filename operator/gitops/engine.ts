// The GitOps engine: keeps the config repository and the cluster's Apps, Configs and Releases in step.
// Per App, a reconcile reads the App's objects from the operator's watch caches, the App's directory at Git's
// head and each object's base (status.commit), decides with merge.ts, commits and pushes cluster changes
// (replaying them on a rejected push), then applies Git's changes and records commits in status. Passes for
// different Apps run concurrently; whatever moves the local branch (a commit and its push, a fetch) runs one
// at a time (#exclusive). A sync reconciles only the Apps whose directories a new head changed.
import type { Logger } from "pino";
import type { App, ObjectMeta, Release } from "../../crds/v1alpha1.js";
import { ANNOTATIONS, API_VERSION } from "../../crds/v1alpha1.js";
import { faultPoint } from "../fault.js";
import type { ClusterCache } from "../cache.js";
import { isConflict, isNotFound, isRefused, type Kube, type KubeObject } from "../kube.js";
import {
  APPS_DIR,
  appDir,
  canonical,
  cleanObject,
  parseObject,
  parsePath,
  pathMismatch,
  pathOf,
  renderObject,
  type SlipwayKind,
  type StoredObject,
} from "./layout.js";
import { decide, UNKNOWN, type Base, type Decision } from "./merge.js";
import { commitMessage, conflictMessage, gitCredit, type ObjectChange } from "./messages.js";
import type { ArgoCdLink } from "./argocd.js";
import { Lru } from "./lru.js";
import { blobId, PushRejectedError, type ConfigRepo, type FileChanges } from "./repo.js";

export const GITOPS_FIELD_MANAGER = "slipway-gitops";
const PUSH_ATTEMPTS = 5;
/** How far back a starting process looks in Git for its own last commit of an object whose record it lost. */
const HISTORY_DEPTH = 500;
/** How far back the commit that changed a file applied from Git is looked for (see #credit). */
const CREDIT_DEPTH = 200;
const CANONICAL_BYTES = 2 * 2 ** 20;

export interface EngineOptions {
  kube: Kube;
  /** The operator's watch caches: where a pass reads the cluster's side. */
  cache: ClusterCache;
  repo: ConfigRepo;
  mode: "sync" | "commit-only";
  namespace?: string;
  log: Logger;
  /** Called when a fetch made for a rejected push moved the local branch to others' commits. */
  onHeadMoved?: () => void;
  /** The Argo CD Application that applies the repository (mode "commit-only"): told of pushes, see argocd.ts. */
  argocd?: ArgoCdLink;
  /** Called after each accepted push with the commit the remote now has (Flux is asked to fetch it). */
  onPushed?: (commit: string) => void;
}

type ClusterObject = KubeObject & { spec?: unknown; status?: { commit?: string } };

interface Item {
  kind: SlipwayKind;
  name: string;
  path: string;
  cluster: ClusterObject | undefined;
  clusterText: string | undefined;
  gitText: string | undefined;
  /** The file's blob id at the plan's head; undefined when absent. */
  gitBlob: string | undefined;
  gitCanonical: string | undefined;
  base: Base;
  decision: Decision;
}

const objectKey = (kind: string, namespace: string, name: string) => `${kind}/${namespace}/${name}`;

/** One read of an App's objects in the cluster. */
export interface ClusterView {
  app: (ClusterObject & { spec?: { suspend?: boolean } }) | undefined;
  config: ClusterObject | undefined;
  releases: ClusterObject[];
}

export class GitOpsEngine {
  readonly #kube: Kube;
  readonly #cache: ClusterCache;
  /** The end of the chain of steps that move the local branch (see #exclusive). */
  #writer: Promise<unknown> = Promise.resolve();
  readonly #repo: ConfigRepo;
  readonly #mode: "sync" | "commit-only";
  readonly #namespace: string | undefined;
  readonly #log: Logger;
  readonly #onHeadMoved: () => void;
  readonly #argocd: ArgoCdLink | undefined;
  readonly #onPushed: (commit: string) => void;
  /** Objects a watch saw deleted whose deletion is not yet in Git, by kind/namespace/name. */
  readonly #deleted = new Map<string, ObjectMeta>();
  /**
   * Commits this process recorded per object, in case a status write was lost, with the blob id of the object's
   * file at that commit: the base of the object's next pass, read without the commit's trees.
   */
  readonly #recorded = new Map<string, { commit: string; blob: string | undefined }>();
  /**
   * Canonical texts of files by blob id (see canonical in layout.ts; about 2 MiB): a pass compares an object
   * with its file at the head and at its base, and re-parsing and rendering them was a tenth of the operator's
   * CPU in a push editing 100 of 1,000 apps (a CPU profile of the bench's row).
   */
  readonly #canonical = new Lru<string>(CANONICAL_BYTES, (text) => text.length + 64);
  /**
   * Objects this process has carried out a decision for. It knows its own commits of those; for the others a
   * crash between a push and the status write may have lost the record of the last commit (see #base).
   */
  readonly #settled = new Set<string>();
  /**
   * Conflicts already kept on a branch (path + both sides), and files refused for their path (path + content),
   * so a repeated reconcile does not branch or warn again.
   */
  readonly #kept = new Set<string>();
  /** The head whose whole tree has been reconciled; undefined forces a full pass on the next sync. */
  #applied: string | undefined;

  constructor(options: EngineOptions) {
    this.#kube = options.kube;
    this.#cache = options.cache;
    this.#repo = options.repo;
    this.#mode = options.mode;
    this.#namespace = options.namespace;
    this.#log = options.log;
    this.#onHeadMoved = options.onHeadMoved ?? (() => undefined);
    this.#argocd = options.argocd;
    this.#onPushed = options.onPushed ?? (() => undefined);
  }

  /** Remembers a deletion seen by a watch, so the reconcile removes the file instead of re-creating the object. */
  noteDeleted(kind: SlipwayKind, meta: ObjectMeta): void {
    if (meta.namespace) this.#deleted.set(objectKey(kind, meta.namespace, meta.name), meta);
  }

  /**
   * Notes an object whose creation this process's watch saw: no earlier process can have committed it, so its
   * base needs no search of the history (see #base). That search reads hundreds of commits' trees; without this,
   * every Release the operator cuts would pay it.
   */
  noteCreated(kind: SlipwayKind, meta: ObjectMeta): void {
    if (meta.namespace) this.#settled.add(objectKey(kind, meta.namespace, meta.name));
  }

  /** The push that will carry every commit made so far, while it has not started. */
  #nextPush: Promise<boolean> | undefined;

  /**
   * Pushes the local branch, with every commit made before the push starts: the commits of several Apps made
   * while one push is in flight go in the next one (each still a commit of its own). False when the remote had
   * moved: the local branch is then the remote's head, the commits are gone, and their Apps plan again.
   */
  async #pushed(commit: string | undefined): Promise<boolean> {
    if (!commit || commit === (await this.#repo.remoteHead())) return true;
    this.#nextPush ??= this.#exclusive(async () => {
      this.#nextPush = undefined;
      faultPoint("before-push");
      try {
        await this.#repo.push();
      } catch (err) {
        // Nothing unpushed stays on the local branch: a status must never name a commit the remote lacks.
        const back = (await this.#repo.fetch().catch(() => undefined)) ?? (await this.#repo.remoteHead());
        if (back) await this.#repo.resetTo(back);
        if (!(err instanceof PushRejectedError)) throw new Error("cannot push to the config repository", { cause: err });
        // The remote moved: the Apps its new commits changed are reconciled by a sync.
        this.#onHeadMoved();
        return false;
      }
      faultPoint("after-push");
      const pushed = await this.#repo.remoteHead();
      if (pushed) this.#onPushed(pushed);
      return true;
    });
    return this.#nextPush;
  }

  /** Runs `fn` after every earlier step that moves the local branch, and before any later one. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#writer.then(fn);
    this.#writer = run.catch(() => undefined);
    return run;
  }

  /**
   * Fetches the remote and returns the Apps ("namespace/name") to reconcile: those whose directories differ
   * between the head last reconciled and the new one (none when the head did not move). `force`, or a head
   * last reconciled that is unknown, returns every App in Git or the cluster (on start: heals a crash between a
   * change and its push).
   */
  sync(force = false): Promise<string[]> {
    return this.#exclusive(async () => {
      const remote = await this.#repo.fetch();
      const local = await this.#repo.head();
      if (remote && remote !== local) await this.#repo.resetTo(remote);
      const head = await this.#repo.head();
      if (!head || (!force && head === this.#applied)) return [];
      const from = force ? undefined : this.#applied;
      this.#applied = head;
      const dirs = from && (await this.#repo.hasCommit(from)) ? await this.#repo.changedDirs(from, head) : undefined;
      await this.#fixKustomizations(head, dirs);
      if (!dirs) return this.#allApps();
      const apps = new Set<string>();
      for (const dir of dirs) {
        const [top, namespace, app, ...rest] = dir.split("/");
        if (top === APPS_DIR && namespace && app && !rest.length) apps.add(`${namespace}/${app}`);
      }
      this.#log.debug({ from, head, apps: apps.size }, "new head: reconciling the Apps it changed");
      return [...apps].filter((key) => !this.#namespace || key.startsWith(`${this.#namespace}/`)).sort();
    });
  }

  /**
   * A push that added or removed app files without updating kustomization.yaml files gets them regenerated:
   * those of the directories it changed, or all of them when that is not known.
   */
  async #fixKustomizations(head: string, dirs: Set<string> | undefined): Promise<void> {
    if (dirs && !dirs.size) return;
    const oid = await this.#repo.commit(new Map(), "Regenerate kustomization.yaml files for the apps in the tree", dirs ? { dirs } : {});
    if (!oid) return;
    try {
      await this.#repo.push();
      if (this.#applied === head) this.#applied = oid;
    } catch (err) {
      // Someone pushed meanwhile; the next sync regenerates them on the new head.
      await this.#repo.resetTo(head);
      this.#log.info({ err }, "cannot push regenerated kustomization.yaml files yet");
    }
  }

  /**
   * Brings one App's objects and files in step; see the file comment. With `holdForRelease`, an App/Config
   * change is not committed while the operator is about to cut a release for it (so both land in one commit);
   * returns "held" then, and the caller tries again when the Release or the App's status changes.
   */
  async reconcileApp(namespace: string, app: string, holdForRelease = false): Promise<"done" | "held"> {
    if (this.#namespace && namespace !== this.#namespace) return "done";
    const dir = appDir(namespace, app);
    for (let attempt = 1; ; attempt++) {
      const head = await this.#repo.head();
      // The hold is judged from the same read of the cluster as the plan: judged from a later read, a release
      // cut in between would say "nothing to wait for" while the plan lacks that release.
      const { items, cluster } = await this.#plan(namespace, app, head);
      const commits = items.filter((i) => i.decision.action === "commit");
      const releaseInCommit = commits.some((i) => i.kind === "Release" && i.cluster);
      if (holdForRelease && commits.length && !releaseInCommit && releasePending(cluster)) {
        this.#log.debug({ app: `${namespace}/${app}`, paths: commits.map((i) => i.path) }, "holding a change for the release it causes");
        return "held";
      }
      let recorded = head;
      let subject: string | undefined;
      if (commits.length) {
        this.#log.debug({ app: `${namespace}/${app}`, paths: commits.map((i) => i.path), holdForRelease, releaseInCommit }, "committing");
        const changes: FileChanges = new Map(commits.map((i) => [i.path, i.clusterText ?? null]));
        const message = commitMessage(namespace, app, commits.map((i) => this.#change(namespace, i)));
        const outcome = await this.#exclusive(async (): Promise<{ replan: true } | { replan: false; oid: string | undefined; committed: boolean }> => {
          // Other Apps' commits since the plan do not touch this App's directory; a fetch that did means plan again.
          const now = await this.#repo.head();
          if (now !== head && (await this.#repo.idAt(dir, now)) !== (await this.#repo.idAt(dir, head))) return { replan: true };
          const oid = await this.#repo.commit(changes, message);
          if (oid && this.#applied === now) this.#applied = oid;
          return { replan: false, oid: oid ?? now, committed: !!oid };
        });
        if (outcome.replan) continue;
        if (outcome.committed) subject = message.split("\n")[0];
        recorded = outcome.oid;
      }
      // What status records must be on the remote. A pass that committed nothing records the remote's head
      // when this App's directory is the same there: it need not wait for the push of other Apps' commits.
      const remote = !subject && recorded ? await this.#repo.remoteHead() : undefined;
      if (remote && remote !== recorded && (await this.#repo.hasCommit(remote))) {
        const here = await this.#repo.idAt(dir, recorded);
        if (here && (await this.#repo.idAt(dir, remote)) === here) recorded = remote;
      }
      if (!(await this.#pushed(recorded))) {
        if (attempt >= PUSH_ATTEMPTS) throw new Error(`cannot push the change to ${namespace}/${app}: rejected ${attempt} times`);
        this.#log.info({ app: `${namespace}/${app}`, attempt }, "push rejected; fetching and replaying the change");
        continue;
      }
      if (subject) this.#log.info({ app: `${namespace}/${app}`, commit: recorded, subject }, "committed a cluster change");
      if (subject && recorded && this.#argocd) {
        const ignored = commits.flatMap((i) => (i.cluster && this.#argocd?.needsHandoff(i.cluster) ? [i.cluster] : []));
        if (ignored.length) this.#argocd.handOff(recorded, ignored);
      }
      await this.#carryOut(namespace, app, items, recorded);
      return "done";
    }
  }

  async #plan(namespace: string, app: string, head: string | undefined): Promise<{ items: Item[]; cluster: ClusterView }> {
    const cluster = this.#readCluster(namespace, app);
    const byPath = new Map<string, ClusterObject>();
    for (const obj of [cluster.app, cluster.config, ...cluster.releases]) {
      if (obj && !obj.metadata.deletionTimestamp) byPath.set(pathOf(obj as StoredObject), obj);
    }
    const files = await this.#repo.filesIn(appDir(namespace, app), head);
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
    // The Config is applied before its App: an App that a push creates or resumes together with a Config change
    // then finds the new Config when the operator cuts its release, instead of a release with the old one and
    // a second one a moment later.
    const rank = { Config: 0, App: 1, Release: 2 };
    const kinded = [...paths].sort().flatMap((path) => {
      const kind = parsePath(path)?.kind;
      return kind ? [{ path, kind }] : [];
    });
    for (const { path, kind } of kinded.sort((a, b) => rank[a.kind] - rank[b.kind])) {
      const obj = byPath.get(path);
      const file = files.get(path);
      const gitText = file ? await this.#repo.readBlob(file.oid) : undefined;
      const gitCanonical = file ? await this.#canonicalOf(file.oid) : undefined;
      const name = obj?.metadata.name ?? this.#nameOf(kind, app, path, gitText);
      const key = objectKey(kind, namespace, name);
      const clusterText = obj ? rendered(obj as StoredObject) : undefined;
      // When both sides agree the base only says whether status must record the head: no history walk then.
      const baseCommit = await this.#base(key, path, head, obj?.status?.commit, clusterText !== gitCanonical);
      let base: Base = UNKNOWN;
      if (baseCommit) base = await this.#canonicalAt(key, path, baseCommit);
      const deletedInCluster = !obj && this.#deleted.has(key);
      const decision = decide({ cluster: clusterText, git: gitCanonical, base, deletedInCluster });
      items.push({ kind, name, path, cluster: obj, clusterText, gitText, gitBlob: file?.oid, gitCanonical, base, decision });
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
    const recorded = statusCommit ?? this.#recorded.get(key)?.commit;
    const known = recorded && (await this.#repo.hasCommit(recorded)) ? recorded : undefined;
    if (!walk || this.#settled.has(key) || !head) return known;
    const newer = await this.#repo.lastChangeBySlipway(path, head, { stopAt: known, depth: HISTORY_DEPTH });
    if (newer) this.#log.debug({ object: key, recorded: known, commit: newer }, "a newer commit of Slipway's than the recorded one is the base");
    return newer ?? known;
  }

  /** The canonical text of a blob (see canonical in layout.ts). */
  async #canonicalOf(blob: string): Promise<string> {
    let text = this.#canonical.get(blob);
    if (text === undefined) {
      text = canonical(await this.#repo.readBlob(blob)) ?? "";
      this.#canonical.set(blob, text);
    }
    return text;
  }

  /**
   * The canonical text of an object's file at a commit; undefined when the file is absent there. The blob id
   * comes from what this process recorded for the object at that commit when it can, else from the commit's trees.
   */
  async #canonicalAt(key: string, path: string, commit: string): Promise<string | undefined> {
    const known = this.#recorded.get(key);
    if (known?.commit === commit) return known.blob === undefined ? undefined : this.#canonicalOf(known.blob);
    const text = await this.#repo.readFile(path, commit);
    return canonical(text);
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

  /** Carries out each object's decision; throws after trying them all when one failed (the pass is retried). */
  async #carryOut(namespace: string, app: string, items: Item[], head: string | undefined): Promise<void> {
    const sync = this.#mode === "sync";
    const appRemovedFromGit = !(await this.#repo.idAt(`${appDir(namespace, app)}/app.yaml`, head));
    const namespaceInGit = !!(await this.#repo.idAt(`${APPS_DIR}/${namespace}`, head));
    const failed: string[] = [];
    let firstError: unknown;
    for (const item of items) {
      const key = objectKey(item.kind, namespace, item.name);
      const { action } = item.decision;
      try {
        if (action === "commit") {
          this.#deleted.delete(key);
          // The commit holds the cluster's text (or held it already, when there was nothing to commit).
          if (item.cluster && head) await this.#recordCommit(item.cluster, key, head, item.clusterText && (await blobId(item.clusterText)));
        } else if (action === "none") {
          if (!item.cluster) this.#deleted.delete(key);
          if (item.decision.record && item.cluster && head) await this.#recordCommit(item.cluster, key, head, item.gitBlob);
        } else if (action === "conflict") {
          await this.#keepConflict(namespace, item, head);
          this.#deleted.delete(key);
          if (sync) await this.#takeGit(namespace, item, head, appRemovedFromGit, namespaceInGit);
        } else if (sync) {
          await this.#takeGit(namespace, item, head, appRemovedFromGit, namespaceInGit);
        }
        this.#settled.add(key);
      } catch (err) {
        // A 409: the object changed since the cache showed it; the retry plans with the change (three-way).
        if (isConflict(err)) this.#log.debug({ object: key, action }, "the object changed since it was read; planning again");
        else this.#log.warn({ err, object: key, action }, "cannot carry out a GitOps decision; retrying");
        failed.push(key);
        firstError ??= err;
      }
    }
    if (failed.length) throw new Error(`cannot carry out GitOps decisions for ${failed.join(", ")}`, { cause: firstError });
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
    const mismatch = pathMismatch(item.path, desired);
    if (mismatch) return this.#refuseFile(namespace, item, "PathMismatch", mismatch, head);
    if (item.kind !== "Release" && head) await this.#credit(desired, item.path, head);
    let applied: ClusterObject;
    try {
      applied = await this.#apply(desired, item.cluster?.metadata.resourceVersion);
    } catch (err) {
      // The API server refuses the object itself (schema, CEL, admission): sending it again cannot help.
      if (!isRefused(err)) throw err;
      return this.#refuseFile(namespace, item, "InvalidInGit", `${item.path} cannot be applied: ${err.message}`, head);
    }
    if (head) await this.#recordCommit(applied, key, head, item.gitBlob);
    this.#log.info({ object: key, commit: head }, "applied from Git");
  }

  /**
   * Server-side apply as slipway-gitops, then drop fields the cluster holds that Git does not (owned by others).
   * Both writes carry the resourceVersion the plan was made on (none for an object the plan saw missing), so a
   * change made since (a `config:set` a moment ago) fails them with 409 instead of being overwritten unseen.
   */
  async #apply(desired: StoredObject, resourceVersion: string | undefined): Promise<ClusterObject> {
    const body: KubeObject = { ...desired, metadata: { ...desired.metadata, ...(resourceVersion ? { resourceVersion } : {}) } };
    let live = await this.#kube.apply<ClusterObject>(body);
    const removal = removals(
      { metadata: { labels: cleanObject(live as StoredObject).metadata.labels ?? {}, annotations: cleanObject(live as StoredObject).metadata.annotations ?? {} }, spec: live.spec ?? {} },
      { metadata: { labels: desired.metadata.labels ?? {}, annotations: desired.metadata.annotations ?? {} }, spec: desired.spec ?? {} },
    );
    if (removal) {
      live = await this.#kube.mergePatch<ClusterObject>(live, { ...removal, metadata: { ...(removal.metadata as object | undefined), resourceVersion: live.metadata.resourceVersion } });
    }
    return live;
  }

  /**
   * Credits a change applied from Git to the commit that made it (the newest that changed the file): its author
   * in slipway.dev/changed-by, the commit (and a reverted release) in the git-commit annotations, which the
   * release the change cuts names. Written by slipway-gitops, which the admission policy lets through.
   */
  async #credit(desired: StoredObject, path: string, head: string): Promise<void> {
    const commit = await this.#repo.lastChange(path, head, CREDIT_DEPTH);
    if (!commit) return;
    const credit = gitCredit(commit);
    desired.metadata.annotations = {
      ...desired.metadata.annotations,
      [ANNOTATIONS.changedBy]: credit.by,
      [ANNOTATIONS.gitCommit]: credit.commit,
      ...(credit.revertOf ? { [ANNOTATIONS.gitRevertOf]: credit.revertOf } : {}),
    };
  }

  /** Records in status (and here) that the object holds its file at `commit`, whose blob id that file has there. */
  async #recordCommit(obj: KubeObject, key: string, commit: string, blob: string | undefined): Promise<void> {
    this.#recorded.set(key, { commit, blob });
    if ((obj as ClusterObject).status?.commit === commit) return;
    try {
      await this.#kube.patchStatus(obj, { commit });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * A file that names another namespace or object than its path, or that the API server refuses, is not applied
   * and not retried (the rest of the push is applied): a Warning Event on the path's App and a log line name the
   * file, once per content of the file. A new content of the file is tried again.
   */
  async #refuseFile(namespace: string, item: Item, reason: "PathMismatch" | "InvalidInGit", message: string, head: string | undefined): Promise<void> {
    const seen = `${item.path}\n${item.gitCanonical ?? ""}`;
    if (this.#kept.has(seen)) return;
    this.#kept.add(seen);
    const app = parsePath(item.path)?.app ?? item.name;
    this.#log.warn({ file: item.path, commit: head, app: `${namespace}/${app}` }, message);
    try {
      await this.#kube.event({ apiVersion: API_VERSION, kind: "App", metadata: { name: app, namespace } }, {
        type: "Warning",
        reason,
        action: "SyncFromGit",
        note: `${message} (commit ${head?.slice(0, 7) ?? "unknown"})`,
      });
    } catch (err) {
      this.#log.warn({ err, file: item.path }, `cannot record the ${reason} Event`);
    }
  }

  /** Keeps the cluster's losing version on a branch `conflict/<namespace>-<kind>-<name>-<short>` and says so in an Event. */
  async #keepConflict(namespace: string, item: Item, head: string | undefined): Promise<void> {
    const seen = `${item.path}\n${item.clusterText ?? ""}\n${item.gitCanonical ?? ""}`;
    if (this.#kept.has(seen) || !head) return;
    const branch = await this.#exclusive(async () => {
      const oid = await this.#repo.commit(
        new Map([[item.path, item.clusterText ?? null]]),
        conflictMessage(item.kind, namespace, item.name, head),
        { parent: head, ref: "refs/slipway/conflict", allowEmpty: true },
      );
      if (!oid) return undefined;
      const name = `conflict/${namespace}-${item.kind.toLowerCase()}-${item.name}-${oid.slice(0, 7)}`;
      await this.#repo.pushNewBranch(name, oid);
      return name;
    });
    if (!branch) return;
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

  /** The App's objects as the watch caches hold them. */
  #readCluster(namespace: string, app: string): ClusterView {
    return {
      app: this.#cache.get("App", namespace, app) as (ClusterObject & { spec?: { suspend?: boolean } }) | undefined,
      config: this.#cache.get("Config", namespace, app) as ClusterObject | undefined,
      releases: this.#cache.releasesOf(namespace, app) as ClusterObject[],
    };
  }

  /** Every App ("namespace/name") that has a directory in Git or objects in the cluster. */
  async #allApps(): Promise<string[]> {
    const found = new Set<string>();
    for (const namespace of await this.#repo.dirsIn(APPS_DIR)) {
      for (const app of await this.#repo.dirsIn(`${APPS_DIR}/${namespace}`)) found.add(`${namespace}/${app}`);
    }
    for (const kind of ["App", "Config", "Release"] as const) {
      for (const obj of this.#cache.list(kind, this.#namespace)) {
        const app = kind === "Release" ? (obj.spec as { app?: string } | undefined)?.app : obj.metadata.name;
        if (app && obj.metadata.namespace) found.add(`${obj.metadata.namespace}/${app}`);
      }
    }
    for (const key of this.#deleted.keys()) {
      const [, ns = "", name = ""] = key.split("/");
      found.add(`${ns}/${name.replace(/-v[0-9]+$/, "")}`);
    }
    return [...found].filter((key) => !this.#namespace || key.startsWith(`${this.#namespace}/`)).sort();
  }
}

/** renderObject's text of the watch caches' objects, by object (a cache replaces an object that changes). */
const renderedTexts = new WeakMap<StoredObject, { resourceVersion: string | undefined; text: string }>();

/** renderObject(obj), computed once per version of a cached object (see #canonical for what it cost). */
function rendered(obj: StoredObject): string {
  const resourceVersion = (obj.metadata as ObjectMeta).resourceVersion;
  const known = renderedTexts.get(obj);
  if (known && known.resourceVersion === resourceVersion) return known.text;
  const text = renderObject(obj);
  renderedTexts.set(obj, { resourceVersion, text });
  return text;
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

/**
 * Whether the operator is about to cut a release for the App, as the App's status says, judged from one read of
 * the cluster: the operator has yet to reconcile the App's or the Config's current generation (its first
 * status write of that pass says whether it cuts a release), or its status names a release (being cut, or cut)
 * that the Release cache does not hold yet.
 */
export function releasePending({ app, config, releases }: ClusterView): boolean {
  // No release is cut without a Config (the operator waits for it), nor for a suspended or deleted App.
  if (!app || !config || app.spec?.suspend || app.metadata.deletionTimestamp) return false;
  const status = (app as unknown as App).status;
  if (!status || status.observedGeneration !== app.metadata.generation || status.observedConfigGeneration !== config.metadata.generation) return true;
  const named = Math.max(status.pendingRelease?.version ?? 0, status.latestReleaseNumber ?? 0);
  return !releases.some((r) => ((r as unknown as Release).spec?.version ?? 0) >= named);
}
