// The one Git wrapper of GitOps: a clone of the config repository kept in a directory, written without a
// working tree (commits are built from blobs and trees, rewriting only the changed paths), fetched over smart
// HTTP by isomorphic-git, and pushed with its discovery, pack writer and HTTP client (see push()); every request has a
// timeout (git-http.ts).
import fsp, { mkdir } from "node:fs/promises";
import git, { type HttpClient } from "isomorphic-git";
import { gitHttp } from "../git-http.js";
import { Lru } from "./lru.js";
import {
  APPS_DIR,
  KUSTOMIZATION,
  appResources,
  isManagedKustomization,
  isReleaseFile,
  kustomization,
  kustomizations,
  releaseOrder,
} from "./layout.js";

export interface RepoOptions {
  /** Smart-HTTP URL of the config repository. */
  url: string;
  /** Branch that holds the desired state; default "main". */
  branch?: string;
  credentials?: { username: string; password: string } | undefined;
  /** Directory of the local clone (created when missing; reused across restarts). */
  dir: string;
  /** How long a fetch or push may wait for the server without a byte; default SLIPWAY_GIT_TIMEOUT_SECONDS (git-http.ts). */
  timeoutMs?: number;
}

/** Files to write (content) or remove (null), by path. */
export type FileChanges = Map<string, string | null>;

export const AUTHOR = { name: "Slipway", email: "slipway@slipway.dev" };

/** A commit as lastChange() finds it. */
export interface CommitInfo {
  oid: string;
  author: { name: string; email: string };
  message: string;
  /** Made by Slipway (AUTHOR): its message's Changed-by trailer says who asked. */
  bySlipway: boolean;
}

/** What the commit cache keeps of a commit: its tree and parents, and whether Slipway committed it. */
interface CachedCommit {
  tree: string;
  parent: string[];
  bySlipway: boolean;
}

type TreeEntry = Awaited<ReturnType<typeof git.readTree>>["tree"][number];

interface TreeFile {
  oid: string;
  mode: string;
}

/**
 * A tree entry; `node` once the subtree is loaded to be changed by a commit. A tree read from the cache has
 * the cache's own entry objects (TreeEntry) as its entries, shared with every other commit that reads it:
 * they are never changed; an entry that changes is replaced by an object of its own (#child).
 */
interface Entry {
  mode: string;
  oid: string;
  type: "blob" | "tree" | "commit";
  node?: TreeNode;
}

/** A tree being changed: its entries, and the tree it was read from (none when new) with its entries then. */
interface TreeNode {
  base: string | undefined;
  original: Map<string, Entry>;
  entries: Map<string, Entry>;
  dirty: boolean;
}

/** The directories of the layout (see layout.ts) that get a generated kustomization.yaml, below the root. */
type Level = "apps" | "namespace" | "app" | "releases";

const ZERO = "0".repeat(40);
/**
 * Bounds of the object caches: about 8 MiB of tree entries (the trees a pass of every App reads at one head are
 * about 25,000 entries with 3,000 Apps, and each commit writes a namespace tree of one entry per App), 8 MiB of
 * file text (every file of 3,000 Apps with two releases each is about 5 MiB), and commits (history walks go back
 * at most 1,000). Halved, with the commits a quarter, to bring the operator under 300 MiB RSS with 3,000 Apps.
 */
const TREE_ENTRIES = 50_000;
const BLOB_BYTES = 8 * 2 ** 20;
const COMMITS = 5_000;

const AGENT = "git/isomorphic-git (slipway)";

/** What a readFile without a path is refused with: an object without a stack (see gitFs). */
const NO_PATH = Object.freeze({ code: "ERR_INVALID_ARG_TYPE" });

/**
 * node:fs's promise API, for isomorphic-git. Every isomorphic-git command wraps the fs it is given anew and tells
 * a promise-based one by calling readFile() without a path, twice. node:fs answers that with an
 * ERR_INVALID_ARG_TYPE error, and capturing its stack was 6 % of the operator's CPU during a push editing 100
 * of 1,000 apps (a CPU profile of the bench's row). Here a readFile without a path is refused with NO_PATH.
 */
const gitFs = {
  promises: {
    readFile: (path?: string, options?: Parameters<typeof fsp.readFile>[1]) => (path === undefined ? Promise.reject(NO_PATH) : fsp.readFile(path, options)),
    writeFile: fsp.writeFile,
    unlink: fsp.unlink,
    readdir: fsp.readdir,
    mkdir: fsp.mkdir,
    rmdir: fsp.rmdir,
    rm: fsp.rm,
    stat: fsp.stat,
    lstat: fsp.lstat,
    readlink: fsp.readlink,
    symlink: fsp.symlink,
    chmod: fsp.chmod,
  },
};

/**
 * An object id in a string of its own, for ids kept for long (caches, status records). isomorphic-git builds the
 * ids it hashes two hex digits at a time, a chain of about 40 string pieces (over 1 KB where a flat id takes 56
 * bytes), and the ids it parses out of a commit are slices that keep the commit's whole text alive. With 3,000
 * Apps those were 3 MiB of the operator's heap (a heap snapshot of the bench's operator).
 */
function ownId(oid: string): string {
  return Buffer.from(oid, "latin1").toString("latin1");
}

/** The blob id of a file's content (nothing written), in a string of its own (ownId). */
export async function blobId(content: string): Promise<string> {
  return ownId((await git.hashBlob({ object: content })).oid);
}

export class PushRejectedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PushRejectedError";
  }
}

export class ConfigRepo {
  readonly url: string;
  readonly branch: string;
  readonly dir: string;
  #onAuth: (() => { username: string; password: string }) | undefined;
  readonly #http: HttpClient;
  #cache = {};
  /** Whether HEAD is known to name the branch (written once, not with every commit). */
  #headOnBranch = false;
  /**
   * Trees read or written lately, by id, up to TREE_ENTRIES entries in all. Git objects never change, so a
   * pass that reads an App's directory at a head reads its trees from memory, not from loose objects or packs
   * (isomorphic-git looks for every object as a loose file first, and throws on a miss).
   */
  #trees = new Lru<TreeEntry[]>(TREE_ENTRIES, (tree) => tree.length + 1);
  /** Blob texts read lately, by id, up to BLOB_BYTES characters in all. */
  #blobs = new Lru<string>(BLOB_BYTES, (text) => text.length + 64);
  /** Commits known to be in the clone, with their tree. */
  #commits = new Lru<CachedCommit>(COMMITS, () => 1);

  private constructor(options: RepoOptions) {
    this.url = options.url;
    this.branch = options.branch ?? "main";
    this.dir = options.dir;
    this.#http = gitHttp(options.timeoutMs);
    const creds = options.credentials;
    this.#onAuth = creds ? () => ({ username: creds.username, password: creds.password }) : undefined;
  }

  /** Opens (or creates) the local clone and brings it to the remote's head; seeds an empty remote. */
  static async open(options: RepoOptions): Promise<ConfigRepo> {
    const repo = new ConfigRepo(options);
    await mkdir(repo.dir, { recursive: true });
    await git.init({ fs: gitFs, dir: repo.dir, defaultBranch: repo.branch });
    await git.addRemote({ fs: gitFs, dir: repo.dir, remote: "origin", url: repo.url, force: true });
    const remoteHead = await repo.fetch();
    if (remoteHead) {
      await repo.resetTo(remoteHead);
    } else {
      // An empty repository: give it the root kustomization so tools can point at it right away.
      const oid = await repo.commit(new Map(), "Initialize the Slipway config repository", { allowEmpty: true });
      if (!oid) throw new Error("could not create the first commit");
      try {
        await repo.push();
      } catch (err) {
        if (!(err instanceof PushRejectedError)) throw err;
        const head = await repo.fetch();
        if (head) await repo.resetTo(head);
      }
    }
    return repo;
  }

  get #ref(): string {
    return `refs/heads/${this.branch}`;
  }

  /** The local branch's commit, as this process last wrote it (a read never sees a ref file half written). */
  #head: string | undefined;

  /** The local branch's commit. */
  async head(): Promise<string | undefined> {
    if (this.#head) return this.#head;
    try {
      return (this.#head = await git.resolveRef({ fs: gitFs, dir: this.dir, ref: this.#ref }));
    } catch {
      return undefined;
    }
  }

  /**
   * Fetches the branch; returns the remote's head commit, or undefined when the remote has no such branch.
   * Nothing is downloaded when the clone has that commit already (say, we pushed it); otherwise what we last
   * fetched or pushed is what we tell the remote we have, so it sends only the commits above it (the local
   * branch may hold a commit the remote refused, and a remote that knows no common commit sends everything).
   */
  async fetch(): Promise<string | undefined> {
    const refs = await git.listServerRefs({ http: this.#http, url: this.url, onAuth: this.#onAuth, prefix: this.#ref });
    const remote = refs.find((r) => r.ref === this.#ref);
    if (!remote) return undefined;
    const tracking = `refs/remotes/origin/${this.branch}`;
    if (await this.hasCommit(remote.oid)) {
      await git.writeRef({ fs: gitFs, dir: this.dir, ref: tracking, value: remote.oid, force: true });
      this.#remoteHeads.set(this.branch, remote.oid);
      return remote.oid;
    }
    await git.fetch({
      fs: gitFs,
      http: this.#http,
      dir: this.dir,
      remote: "origin",
      ref: tracking,
      remoteRef: this.branch,
      singleBranch: true,
      tags: false,
      onAuth: this.#onAuth,
      cache: this.#cache,
    });
    this.#remoteHeads.delete(this.branch);
    return this.#tracking(this.branch);
  }

  /** Moves the local branch to a commit (after a fetch: the remote's head). */
  async resetTo(oid: string): Promise<void> {
    await git.writeRef({ fs: gitFs, dir: this.dir, ref: this.#ref, value: oid, force: true });
    this.#head = oid;
    await git.writeRef({ fs: gitFs, dir: this.dir, ref: "HEAD", value: this.#ref, symbolic: true, force: true });
    this.#headOnBranch = true;
  }

  /** Every file of a commit's tree (default: the local head) with its blob id. */
  async files(commit?: string): Promise<Map<string, TreeFile>> {
    const out = new Map<string, TreeFile>();
    const oid = commit ?? (await this.head());
    if (!oid) return out;
    await this.#filesBelow(await this.#treeOf(oid), "", out);
    return out;
  }

  /** `remember` false for a walk of the whole tree, which would push out the trees passes read again. */
  async #filesBelow(tree: string, prefix: string, out: Map<string, TreeFile>, remember = false): Promise<void> {
    for (const entry of await this.#readTree(tree, remember)) {
      const path = prefix ? `${prefix}/${entry.path}` : entry.path;
      if (entry.type === "tree") await this.#filesBelow(entry.oid, path, out, remember);
      else out.set(path, { oid: entry.oid, mode: entry.mode });
    }
  }

  /**
   * The files below one directory of a commit (default: the local head), by path from the root: what a pass
   * for one App reads (apps/<namespace>/<app>), without reading the rest of the tree.
   */
  async filesIn(dir: string, commit?: string): Promise<Map<string, TreeFile>> {
    const out = new Map<string, TreeFile>();
    const oid = commit ?? (await this.head());
    if (!oid) return out;
    const entry = await this.#entryAt(await this.#treeOf(oid), dir);
    if (entry?.type === "tree") await this.#filesBelow(entry.oid, dir, out, true);
    return out;
  }

  /** The id of the tree or blob at `path` in a commit (default: the local head); undefined when absent. */
  async idAt(path: string, commit?: string): Promise<string | undefined> {
    const oid = commit ?? (await this.head());
    if (!oid) return undefined;
    return (await this.#entryAt(await this.#treeOf(oid), path))?.oid;
  }

  /** The names of the subdirectories of a directory of a commit (default: the local head). */
  async dirsIn(dir: string, commit?: string): Promise<string[]> {
    const oid = commit ?? (await this.head());
    if (!oid) return [];
    const entry = await this.#entryAt(await this.#treeOf(oid), dir);
    if (entry?.type !== "tree") return [];
    return (await this.#readTree(entry.oid)).filter((e) => e.type === "tree").map((e) => e.path);
  }

  /** The entry at `path` below a tree ("" is the tree itself). */
  async #entryAt(tree: string, path: string): Promise<{ oid: string; type: string } | undefined> {
    let entry: { oid: string; type: string } = { oid: tree, type: "tree" };
    for (const part of path ? path.split("/") : []) {
      if (entry.type !== "tree") return undefined;
      const next = (await this.#readTree(entry.oid)).find((e) => e.path === part);
      if (!next) return undefined;
      entry = next;
    }
    return entry;
  }

  /**
   * The directories whose files differ between two commits, at the depth of an App (apps/<namespace>/<app>)
   * or above it for files outside apps: only the trees on changed paths are read. A changed directory's parent
   * is named too when the parent's kustomization.yaml list can have changed: the directory appeared or went,
   * or an App's directory gained its first object file or lost its last. A push editing files of existing Apps
   * names their directories alone, so regenerating what it can have left stale never lists a namespace of
   * thousands of Apps.
   */
  async changedDirs(from: string, to: string): Promise<Set<string>> {
    const out = new Set<string>();
    const parentOf = (path: string) => path.split("/").slice(0, -1).join("/");
    const diff = async (a: string | undefined, b: string | undefined, prefix: string, depth: number): Promise<void> => {
      if (a === b) return;
      if (depth === 3 || a === undefined || b === undefined) {
        // An App's directory (or a whole directory that appeared or went): everything below is one change.
        out.add(prefix);
        if (a === undefined || b === undefined || (await this.#treeHasObjects("app", a)) !== (await this.#treeHasObjects("app", b))) out.add(parentOf(prefix));
        if (depth < 3) for (const tree of [a, b]) if (tree) await this.#dirsBelow(tree, prefix, depth, out);
        return;
      }
      const before = await this.#readTree(a);
      const after = await this.#readTree(b);
      // The usual push changes entries but adds or removes none: both lists then pair up by position.
      const paired = before.length === after.length && before.every((e, i) => e.path === after[i]?.path);
      const pairs: [string, TreeEntry | undefined, TreeEntry | undefined][] = [];
      if (paired) {
        before.forEach((x, i) => x.oid !== after[i]?.oid && pairs.push([x.path, x, after[i]]));
      } else {
        const x = new Map(before.map((e) => [e.path, e]));
        const y = new Map(after.map((e) => [e.path, e]));
        for (const name of new Set([...x.keys(), ...y.keys()])) if (x.get(name)?.oid !== y.get(name)?.oid) pairs.push([name, x.get(name), y.get(name)]);
      }
      for (const [name, x, y] of pairs) {
        const path = prefix ? `${prefix}/${name}` : name;
        const below = depth > 0 || name === APPS_DIR;
        if (below && (x?.type ?? "tree") === "tree" && (y?.type ?? "tree") === "tree") await diff(x?.oid, y?.oid, path, depth + 1);
        else out.add(prefix);
      }
    };
    await diff(await this.#treeOf(from), await this.#treeOf(to), "", 0);
    return out;
  }

  /** Adds the directories below a tree at `depth` down to the App directories (depth 3) to `out`. */
  async #dirsBelow(tree: string, prefix: string, depth: number, out: Set<string>): Promise<void> {
    for (const entry of await this.#readTree(tree)) {
      if (entry.type !== "tree") continue;
      const path = prefix ? `${prefix}/${entry.path}` : entry.path;
      if (depth === 0 && entry.path !== APPS_DIR) continue;
      out.add(path);
      if (depth + 1 < 3) await this.#dirsBelow(entry.oid, path, depth + 1, out);
    }
  }

  /** A file's text at a commit (default: the local head); undefined when absent or the commit is unknown. */
  async readFile(path: string, commit?: string): Promise<string | undefined> {
    const oid = commit ?? (await this.head());
    if (!oid) return undefined;
    try {
      const entry = await this.#entryAt(await this.#treeOf(oid), path);
      return entry?.type === "blob" ? await this.readBlob(entry.oid) : undefined;
    } catch {
      return undefined;
    }
  }

  /** A blob's text by id. */
  async readBlob(oid: string): Promise<string> {
    let text = this.#blobs.get(oid);
    if (text === undefined) {
      const { blob } = await git.readBlob({ fs: gitFs, dir: this.dir, oid, cache: this.#cache });
      text = Buffer.from(blob).toString("utf8");
      this.#blobs.set(oid, text);
    }
    return text;
  }

  /** Whether a commit is in the local clone. */
  async hasCommit(oid: string): Promise<boolean> {
    try {
      await this.#readCommit(oid);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Whether `commit` is `tip` or one of its ancestors, walking back at most `depth` commits. A tip the clone
   * does not hold counts as containing it: the remote can only have moved past what this clone pushed.
   */
  async contains(tip: string, commit: string, depth = 1000): Promise<boolean> {
    if (tip === commit) return true;
    if (!(await this.hasCommit(tip))) return true;
    const seen = new Set<string>([tip]);
    let frontier = [tip];
    for (let step = 0; frontier.length && step < depth; step++) {
      const next: string[] = [];
      for (const oid of frontier) {
        const parents = (await this.hasCommit(oid)) ? (await this.#readCommit(oid)).parent : [];
        for (const parent of parents) {
          if (parent === commit) return true;
          if (!seen.has(parent)) {
            seen.add(parent);
            next.push(parent);
          }
        }
      }
      frontier = next;
    }
    return false;
  }

  async #readCommit(oid: string): Promise<CachedCommit> {
    let commit = this.#commits.get(oid);
    if (!commit) {
      const read = (await git.readCommit({ fs: gitFs, dir: this.dir, oid, cache: this.#cache })).commit;
      commit = { tree: ownId(read.tree), parent: read.parent.map(ownId), bySlipway: read.committer.email === AUTHOR.email };
      this.#commits.set(oid, commit);
    }
    return commit;
  }

  /**
   * The newest commit made by Slipway that changed `path`, walking the first-parent history back from `from`:
   * the cluster held that file's content when Slipway committed it, so it is a state both sides shared. Commits
   * made by others are walked past. Stops (undefined) at `stopAt`, after `depth` commits, or at the end of the
   * history the clone has.
   */
  async lastChangeBySlipway(path: string, from: string, options: { stopAt?: string; depth: number }): Promise<string | undefined> {
    try {
      let oid: string | undefined = from;
      let commit = await this.#readCommit(from);
      let blob = await this.#blobIn(commit.tree, path);
      for (let i = 0; i < options.depth && oid && oid !== options.stopAt; i++) {
        const parentOid: string | undefined = commit.parent[0];
        const parent = parentOid ? await this.#readCommit(parentOid) : undefined;
        const parentBlob = parent ? await this.#blobIn(parent.tree, path) : undefined;
        if (parentBlob !== blob && commit.bySlipway) return oid;
        oid = parentOid;
        if (!parent) break;
        commit = parent;
        blob = parentBlob;
      }
    } catch {
      // A commit the clone lacks (a shallow history): nothing more to learn from it.
    }
    return undefined;
  }

  /**
   * The newest commit that changed `path`, walking the first-parent history back from `from` at most `depth`
   * commits: its id, author and message. Undefined when none is found that far (or the clone lacks a commit).
   */
  async lastChange(path: string, from: string, depth: number): Promise<CommitInfo | undefined> {
    try {
      let oid: string | undefined = from;
      let read = await this.#readCommit(from);
      let blob = await this.#blobIn(read.tree, path);
      for (let i = 0; i < depth && oid; i++) {
        const parentOid: string | undefined = read.parent[0];
        const parent = parentOid ? await this.#readCommit(parentOid) : undefined;
        const parentBlob = parent ? await this.#blobIn(parent.tree, path) : undefined;
        if (parentBlob !== blob) {
          const { author, message } = (await git.readCommit({ fs: gitFs, dir: this.dir, oid, cache: this.#cache })).commit;
          return { oid, author: { name: author.name, email: author.email }, message, bySlipway: author.email === AUTHOR.email };
        }
        if (!parent || !parentOid) break;
        oid = parentOid;
        read = parent;
        blob = parentBlob;
      }
    } catch {
      // A commit the clone lacks (a shallow history): nothing more to learn from it.
    }
    return undefined;
  }

  /** The blob id of `path` in a tree; undefined when the path is absent. */
  async #blobIn(tree: string, path: string): Promise<string | undefined> {
    const parts = path.split("/");
    for (const [i, part] of parts.entries()) {
      const entry = (await this.#readTree(tree, false)).find((e) => e.path === part);
      if (!entry) return undefined;
      if (i === parts.length - 1) return entry.type === "blob" ? entry.oid : undefined;
      if (entry.type !== "tree") return undefined;
      tree = entry.oid;
    }
    return undefined;
  }

  /**
   * Commits `changes` on top of `parent` (default: the local head) with regenerated kustomization.yaml files,
   * and moves the local branch there unless `ref` names another. Returns undefined when the tree would not
   * change (nothing to commit), so the same change is never committed twice.
   *
   * Only the trees on the changed paths are read and rewritten, and only the kustomization.yaml files that can
   * change are regenerated: those of the changed directories, and a parent's when the set of children it lists
   * changes. On a tree whose kustomization.yaml files are right (every tree this class writes) that is the same
   * tree a regeneration of them all gives. No changes (or `regenerateAll`) regenerates every kustomization.yaml
   * of the tree from scratch, which also repairs a tree someone else broke. `dirs` regenerates those of the
   * given directories instead, and their parents' when the directories' own lists gain their first entry or
   * lose their last: with `changedDirs()` of a push, what that push can have left wrong.
   */
  async commit(
    changes: FileChanges,
    message: string,
    options: { allowEmpty?: boolean; parent?: string; ref?: string; regenerateAll?: boolean; dirs?: Iterable<string> } = {},
  ): Promise<string | undefined> {
    const parent = options.parent ?? (await this.head());
    const allowEmpty = options.allowEmpty ?? false;
    const tree =
      parent && (changes.size > 0 || options.dirs) && !options.regenerateAll
        ? await this.#changedTree(parent, changes, allowEmpty, options.dirs ?? [])
        : await this.#regeneratedTree(parent, changes, allowEmpty);
    if (tree === undefined) return undefined;
    const now = { timestamp: Math.floor(Date.now() / 1000), timezoneOffset: 0 };
    const oid = ownId(await git.writeCommit({
      fs: gitFs,
      dir: this.dir,
      commit: {
        message: message.endsWith("\n") ? message : `${message}\n`,
        tree,
        parent: parent ? [parent] : [],
        author: { ...AUTHOR, ...now },
        committer: { ...AUTHOR, ...now },
      },
    }));
    await git.writeRef({ fs: gitFs, dir: this.dir, ref: options.ref ?? this.#ref, value: oid, force: true });
    if (!options.ref || options.ref === this.#ref) this.#head = oid;
    if (!options.ref && !this.#headOnBranch) {
      await git.writeRef({ fs: gitFs, dir: this.dir, ref: "HEAD", value: this.#ref, symbolic: true, force: true });
      this.#headOnBranch = true;
    }
    return oid;
  }

  /**
   * The whole tree of `parent` with `changes` and every kustomization.yaml regenerated; undefined when that
   * changes no file and `allowEmpty` is not set.
   */
  async #regeneratedTree(parent: string | undefined, changes: FileChanges, allowEmpty: boolean): Promise<string | undefined> {
    const before = await this.files(parent);
    const after = new Map(before);
    for (const [path, content] of changes) {
      if (content === null) after.delete(path);
      else after.set(path, { mode: "100644", oid: await this.#storeBlob(content) });
    }
    for (const path of [...after.keys()]) if (isManagedKustomization(path)) after.delete(path);
    for (const [path, content] of kustomizations(after.keys())) {
      // Written only when new: a tree whose kustomization.yaml files are right costs no writes.
      const oid = await blobId(content);
      if (before.get(path)?.oid !== oid) await this.#storeBlob(content);
      after.set(path, { mode: "100644", oid });
    }
    const unchanged =
      before.size === after.size && [...after].every(([path, file]) => before.get(path)?.oid === file.oid);
    if (unchanged && parent && !allowEmpty) return undefined;
    return this.#writeTree(after);
  }

  /**
   * `parent`'s tree with `changes`, reading and writing only the trees on the changed paths; undefined when
   * that is `parent`'s tree and `allowEmpty` is not set.
   */
  async #changedTree(parent: string, changes: FileChanges, allowEmpty: boolean, extra: Iterable<string>): Promise<string | undefined> {
    const base = await this.#treeOf(parent);
    const root = await this.#load(base);
    // changedDirs() names the parents whose lists a push may have left stale; the other parents' lists are
    // regenerated only when a regeneration below makes them change (#regenerate).
    const dirs = new Set<string>(extra);
    for (const [path, content] of changes) {
      const parts = path.split("/");
      const name = parts.pop() ?? path;
      dirs.add(parts.join("/"));
      // What a change writes to a generated kustomization.yaml does not matter: it is regenerated below.
      if (isManagedKustomization(path)) continue;
      if (content === null) {
        const node = await this.#walk(root, parts, false);
        if (node && node.entries.get(name)?.type !== "tree" && node.entries.delete(name)) node.dirty = true;
      } else {
        const node = await this.#walk(root, parts, true);
        const oid = await this.#storeBlob(content);
        node?.entries.set(name, { mode: "100644", oid, type: "blob" });
        if (node) node.dirty = true;
      }
    }
    await this.#regenerate(root, dirs);
    const tree = (await this.#writeNode(root)) ?? (await this.#storeTree([]));
    return tree === base && !allowEmpty ? undefined : tree;
  }

  /**
   * Regenerates the kustomization.yaml files that changes in `dirs` can change, as `kustomizations()` would:
   * each changed app's and its releases/; a namespace's when one of its apps gained its first object file or
   * lost its last (or a file right in it changed); apps/ likewise for namespaces; the root's when apps/ did.
   */
  async #regenerate(root: TreeNode, dirs: Set<string>): Promise<void> {
    const apps = new Set<string>();
    const namespaces = new Set<string>();
    let appsDir = false;
    let rootDir = false;
    for (const dir of dirs) {
      const parts = dir ? dir.split("/") : [];
      const [top, namespace = "", app = "", sub] = parts;
      if (!parts.length) rootDir = true;
      else if (top !== APPS_DIR) continue;
      else if (parts.length === 1) appsDir = true;
      else if (parts.length === 2) namespaces.add(namespace);
      else {
        apps.add(`${namespace}/${app}`);
        // Below an app, only releases/ has a kustomization.yaml; any other one under apps/ is removed.
        if (parts.length > 4 || (parts.length === 4 && sub !== "releases")) {
          const node = await this.#walk(root, parts, false);
          if (node?.entries.delete(KUSTOMIZATION)) node.dirty = true;
        }
      }
    }
    for (const key of apps) {
      const [namespace = "", app = ""] = key.split("/");
      const node = await this.#walk(root, [APPS_DIR, namespace, app], false);
      if (!node) continue;
      const before = await this.#hadObjects("app", node);
      const releasesEntry = node.entries.get("releases");
      const releases: string[] = [];
      if (releasesEntry?.type === "tree") {
        const dir = await this.#child(node, "releases", releasesEntry);
        for (const [name, entry] of dir.entries) if (entry.type !== "tree" && isReleaseFile(name)) releases.push(name);
        await this.#setKustomization(dir, releases.length ? kustomization(releases.sort(releaseOrder)) : undefined);
      }
      const isFile = (name: string) => node.entries.has(name) && node.entries.get(name)?.type !== "tree";
      const resources = appResources({ app: isFile("app.yaml"), config: isFile("config.yaml"), releases: releases.length > 0 });
      await this.#setKustomization(node, resources.length ? kustomization(resources) : undefined);
      if (before !== resources.length > 0) namespaces.add(namespace);
    }
    for (const namespace of namespaces) {
      const node = await this.#walk(root, [APPS_DIR, namespace], false);
      if (node && (await this.#list(node, "app"))) appsDir = true;
    }
    if (appsDir) {
      const node = await this.#walk(root, [APPS_DIR], false);
      if (node && (await this.#list(node, "namespace"))) rootDir = true;
    }
    if (rootDir) {
      const apps = root.entries.get(APPS_DIR);
      const listed = apps?.type === "tree" && (await this.#entryHasObjects("apps", apps));
      await this.#setKustomization(root, kustomization(listed ? [APPS_DIR] : []));
    }
  }

  /**
   * Regenerates the kustomization.yaml of apps/ or a namespace: the children (at `level`) that hold an object
   * file, sorted. Returns whether the directory itself gained its first such child or lost its last.
   */
  async #list(node: TreeNode, level: "namespace" | "app"): Promise<boolean> {
    const listed: string[] = [];
    let before = false;
    // Children not seen yet are read a few at a time (the first commit after a start in a namespace of
    // 1,000 apps reads them all); then their ids are known and they are not read again until they change.
    const unknown = [...node.entries.values()].filter((e) => e.type === "tree" && !e.node && !this.#hasObjects.has(`${level}:${e.oid}`));
    for (let i = 0; i < unknown.length; i += 32) {
      await Promise.all(unknown.slice(i, i + 32).map((e) => this.#treeHasObjects(level, e.oid)));
    }
    for (const [name, entry] of node.entries) {
      if (entry.type !== "tree") continue;
      const has = await this.#entryHasObjects(level, entry);
      if (has) listed.push(name);
      // The child as it was: the same unless it is loaded (changed).
      if (!before) before = entry.node ? await this.#hadObjects(level, entry.node) : has;
    }
    await this.#setKustomization(node, listed.length ? kustomization(listed.sort()) : undefined);
    return before !== listed.length > 0;
  }

  /** Sets (or with undefined, removes) a directory's kustomization.yaml; writes the blob only when new. */
  async #setKustomization(node: TreeNode, content: string | undefined): Promise<void> {
    const current = node.entries.get(KUSTOMIZATION);
    if (content === undefined) {
      if (current && node.entries.delete(KUSTOMIZATION)) node.dirty = true;
      return;
    }
    const oid = await blobId(content);
    if (current?.oid === oid && current.mode === "100644") return;
    if (current?.oid !== oid) await this.#storeBlob(content);
    node.entries.set(KUSTOMIZATION, { mode: "100644", oid, type: "blob" });
    node.dirty = true;
  }

  /** Tree ids by level known to hold an object file (or not), so unchanged siblings are not read again. */
  #hasObjects = new Map<string, boolean>();

  /** Whether a directory at `level` holds an object file (see layout.ts `kustomizations()`). */
  async #entryHasObjects(level: Level, entry: Entry): Promise<boolean> {
    return entry.node ? this.#nodeHasObjects(level, entry.node.entries) : this.#treeHasObjects(level, entry.oid);
  }

  /** Whether a directory being changed held an object file before. */
  async #hadObjects(level: Level, node: TreeNode): Promise<boolean> {
    return node.base ? this.#treeHasObjects(level, node.base, node.original) : false;
  }

  async #treeHasObjects(level: Level, oid: string, entries?: Map<string, Entry>): Promise<boolean> {
    const key = `${level}:${oid}`;
    let has = this.#hasObjects.get(key);
    if (has === undefined) {
      // Not remembered: a namespace's apps, read once each, would push out the trees commits use.
      has = await this.#nodeHasObjects(level, entries ?? (await this.#load(oid, false)).entries);
      if (this.#hasObjects.size >= 100_000) this.#hasObjects.clear();
      this.#hasObjects.set(key, has);
    }
    return has;
  }

  async #nodeHasObjects(level: Level, entries: Map<string, Entry>): Promise<boolean> {
    for (const [name, entry] of entries) {
      const tree = entry.type === "tree";
      switch (level) {
        case "apps":
          if (tree && (await this.#entryHasObjects("namespace", entry))) return true;
          break;
        case "namespace":
          if (tree && (await this.#entryHasObjects("app", entry))) return true;
          break;
        case "app":
          if (!tree && (name === "app.yaml" || name === "config.yaml")) return true;
          if (tree && name === "releases" && (await this.#entryHasObjects("releases", entry))) return true;
          break;
        case "releases":
          if (!tree && isReleaseFile(name)) return true;
          break;
      }
    }
    return false;
  }

  /** Writes a blob; its id in a string of its own (ownId). */
  async #storeBlob(content: string): Promise<string> {
    return ownId(await git.writeBlob({ fs: gitFs, dir: this.dir, blob: Buffer.from(content) }));
  }

  /** Writes a tree; its id in a string of its own (ownId). */
  async #storeTree(tree: TreeEntry[]): Promise<string> {
    return ownId(await git.writeTree({ fs: gitFs, dir: this.dir, tree }));
  }

  async #treeOf(commit: string): Promise<string> {
    return (await this.#readCommit(commit)).tree;
  }

  /** A tree's entries, from memory when read lately; `remember` false for one-off reads (history walks). */
  async #readTree(oid: string, remember = true): Promise<TreeEntry[]> {
    let tree = this.#trees.get(oid);
    if (!tree) {
      tree = (await git.readTree({ fs: gitFs, dir: this.dir, oid, cache: this.#cache })).tree;
      if (remember) this.#remember(oid, tree);
    }
    return tree;
  }

  #remember(oid: string, tree: TreeEntry[]): void {
    this.#trees.set(oid, tree);
  }

  async #load(oid: string, remember = true): Promise<TreeNode> {
    const tree = await this.#readTree(oid, remember);
    const entries = () => new Map<string, Entry>(tree.map((e) => [e.path, e]));
    return { base: oid, original: entries(), entries: entries(), dirty: false };
  }

  /** The loaded subtree of `parent`'s entry `name`, which becomes an entry of `parent`'s own. */
  async #child(parent: TreeNode, name: string, entry: Entry): Promise<TreeNode> {
    if (entry.node) return entry.node;
    const node = await this.#load(entry.oid);
    parent.entries.set(name, { mode: entry.mode, oid: entry.oid, type: entry.type, node });
    return node;
  }

  /** The directory at `parts` below `node`, loaded; made (replacing a file in the way) when `create`. */
  async #walk(node: TreeNode, parts: string[], create: boolean): Promise<TreeNode | undefined> {
    for (const part of parts) {
      const entry = node.entries.get(part);
      if (entry?.type === "tree") {
        node = await this.#child(node, part, entry);
      } else if (create) {
        const next: TreeNode = { base: undefined, original: new Map(), entries: new Map(), dirty: true };
        node.entries.set(part, { mode: "040000", oid: "", type: "tree", node: next });
        node.dirty = true;
        node = next;
      } else {
        return undefined;
      }
    }
    return node;
  }

  /** Writes the changed trees below and at `node`; undefined for a directory left empty (it goes away). */
  async #writeNode(node: TreeNode): Promise<string | undefined> {
    let changed = node.dirty || !node.base;
    for (const [name, entry] of node.entries) {
      if (!entry.node) continue;
      const oid = await this.#writeNode(entry.node);
      if (oid === undefined) node.entries.delete(name);
      else if (oid !== entry.oid) entry.oid = oid;
      else continue;
      changed = true;
    }
    if (!node.entries.size) return undefined;
    if (!changed && node.base) return node.base;
    // An unchanged entry is the cached tree's own object: a new namespace tree costs its changed entries only.
    const tree = [...node.entries].map(([path, e]): TreeEntry => (!e.node && "path" in e && e.path === path ? (e as TreeEntry) : { path, mode: e.mode, oid: e.oid, type: e.type }));
    const oid = await this.#storeTree(tree);
    this.#remember(oid, tree);
    return oid;
  }

  /**
   * Pushes the local branch (or another local branch) to the remote; a non-fast-forward is a PushRejectedError.
   *
   * The receive-pack request is made here, not by isomorphic-git's push, whose cost grows with the history and
   * with the tree: it looks for a merge base with a walk that goes from the remote's tip down to the root commit
   * (isomorphic-git#1131: 3 s at 10,000 commits); it finds the objects to send by listing every object of the
   * merge base's tree and of each new commit's tree; and when the remote moved, it walks (and lists the tree of)
   * every commit down to the root before finding out the push is no fast-forward. Marking the remote's tip as a
   * shallow boundary in .git/shallow for the length of a push cuts the walks short but not the tree listings
   * (100 ms a push with 100 apps, 400 ms and more with 1,000). Here, with isomorphic-git's discovery, reads and
   * packObjects: the new commits are those above what the remote has (its tip and our remote-tracking refs),
   * their objects are found by a diff against the first parent's tree that only reads the trees on changed
   * paths, and the request and its report status follow the smart-HTTP receive-pack protocol (gitprotocol-pack).
   */
  async push(branch = this.branch): Promise<void> {
    const ref = `refs/heads/${branch}`;
    const oid = await git.resolveRef({ fs: gitFs, dir: this.dir, ref });
    const remote = await git.getRemoteInfo2({ http: this.#http, url: this.url, onAuth: this.#onAuth, forPush: true, protocolVersion: 1 });
    const refs = new Map((remote.refs ?? []).map((r) => [r.ref, r.oid]));
    const old = refs.get(ref) ?? ZERO;
    const rejected = (why: string) => new PushRejectedError(`push of ${branch} rejected: ${why}`);
    if (old !== oid) {
      // Commits the remote has with all they reach: its tips, and what it had when we last heard from it.
      const known = new Set<string>();
      const candidates = [old, refs.get(this.#ref), await this.#tracking(this.branch), await this.#tracking(branch)];
      for (const c of new Set(candidates)) if (c && c !== ZERO && (await this.hasCommit(c))) known.add(c);
      if (old !== ZERO && !known.has(old)) throw rejected("not-fast-forward (the remote has commits this clone has not fetched)");
      const { commits, reached } = await this.#commitsAbove(oid, known);
      if (old !== ZERO && !reached.has(old)) throw rejected("not-fast-forward");
      const objects = new Set<string>();
      for (const commit of commits) {
        objects.add(commit.oid);
        await this.#newObjects(commit.tree, commit.parent && (await this.#treeOf(commit.parent)), objects);
      }
      const { packfile } = await git.packObjects({ fs: gitFs, dir: this.dir, oids: [...objects], cache: this.#cache });
      const status = await this.#receivePack(remote.capabilities, `${old} ${oid} ${ref}`, packfile ?? new Uint8Array());
      const result = status.get(ref);
      if (status.get("unpack") !== "ok" || result !== "ok") {
        throw rejected(result && result !== "ok" ? result : `unpack ${status.get("unpack") ?? "failed"}`);
      }
    }
    await git.writeRef({ fs: gitFs, dir: this.dir, ref: `refs/remotes/origin/${branch}`, value: oid, force: true });
    this.#remoteHeads.set(branch, oid);
  }

  /** What the remote had of the branch when we last fetched or pushed it. */
  async remoteHead(): Promise<string | undefined> {
    return this.#tracking(this.branch);
  }

  /** What the remote had of a branch when we last fetched or pushed it. */
  async #tracking(branch: string): Promise<string | undefined> {
    let oid = this.#remoteHeads.get(branch);
    if (oid) return oid;
    try {
      oid = await git.resolveRef({ fs: gitFs, dir: this.dir, ref: `refs/remotes/origin/${branch}` });
    } catch {
      return undefined;
    }
    this.#remoteHeads.set(branch, oid);
    return oid;
  }

  /**
   * The remote-tracking refs as this process last wrote or read them, by branch: only this process writes
   * them, and a pass asks for the remote's head several times (reading a ref is a stat and a read of a file).
   */
  readonly #remoteHeads = new Map<string, string>();

  /** The commits reachable from `oid` but not through `known` ones (newest first), and the known ones met. */
  async #commitsAbove(oid: string, known: Set<string>) {
    const commits: { oid: string; tree: string; parent: string | undefined }[] = [];
    const reached = new Set<string>();
    const queue = [oid];
    const seen = new Set(queue);
    for (let next = queue.shift(); next; next = queue.shift()) {
      if (known.has(next)) {
        reached.add(next);
        continue;
      }
      const commit = await this.#readCommit(next);
      commits.push({ oid: next, tree: commit.tree, parent: commit.parent[0] });
      for (const parent of commit.parent.filter((p) => !seen.has(p))) {
        seen.add(parent);
        queue.push(parent);
      }
    }
    return { commits, reached };
  }

  /**
   * Adds to `out` the trees and blobs of `tree` that `base` (the first parent's tree) does not have at the same
   * path: what the remote lacks once it has the parent. Unchanged subtrees are not read.
   */
  async #newObjects(tree: string, base: string | undefined, out: Set<string>): Promise<void> {
    if (tree === base || out.has(tree)) return;
    out.add(tree);
    const before = new Map<string, { oid: string; type: string }>();
    if (base) for (const e of await this.#readTree(base)) before.set(e.path, e);
    for (const entry of await this.#readTree(tree)) {
      const was = before.get(entry.path);
      if (was?.oid === entry.oid || entry.type === "commit") continue; // unchanged, or a submodule's commit
      if (entry.type === "tree") await this.#newObjects(entry.oid, was?.type === "tree" ? was.oid : undefined, out);
      else out.add(entry.oid);
    }
  }

  /** POSTs one ref update and its pack to git-receive-pack; returns the report: "unpack" and each ref's status. */
  async #receivePack(capabilities: Record<string, string | true>, command: string, pack: Uint8Array): Promise<Map<string, string>> {
    const caps = ["report-status", "side-band-64k"].filter((c) => c in capabilities);
    if ("agent" in capabilities) caps.push(`agent=${AGENT}`);
    const body = Buffer.concat([pktLine(`${command}\0${caps.join(" ")}\n`), Buffer.from("0000"), pack]);
    const headers: Record<string, string> = {
      "content-type": "application/x-git-receive-pack-request",
      accept: "application/x-git-receive-pack-result",
      "user-agent": AGENT,
    };
    // As isomorphic-git does: credentials in the URL are sent as Basic auth, unless given separately.
    const url = new URL(this.url);
    const auth = this.#onAuth?.() ?? (url.username ? { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) } : undefined);
    url.username = url.password = "";
    if (auth) headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`;
    const res = await this.#http.request({
      url: `${url.href.replace(/\/+$/, "")}/git-receive-pack`,
      method: "POST",
      headers,
      body: (async function* () {
        yield body;
      })(),
    });
    const chunks: Uint8Array[] = [];
    for await (const chunk of res.body ?? []) chunks.push(chunk);
    const response = Buffer.concat(chunks);
    if (res.statusCode !== 200) {
      throw Object.assign(new Error(`git-receive-pack answered HTTP ${res.statusCode} ${res.statusMessage}: ${response.toString().slice(0, 200)}`), { code: "HttpError" });
    }
    let report = response;
    if (caps.includes("side-band-64k")) {
      const data: Buffer[] = [];
      for (const packet of pktLines(response)) {
        if (packet[0] === 1) data.push(packet.subarray(1));
        else if (packet[0] === 3) throw new Error(`git-receive-pack: ${packet.subarray(1).toString().trim()}`);
      }
      report = Buffer.concat(data);
    }
    const status = new Map<string, string>();
    for (const packet of pktLines(report)) {
      const line = packet.toString().replace(/\n$/, "");
      if (line.startsWith("unpack ")) status.set("unpack", line.slice("unpack ".length));
      else if (line.startsWith("ok ")) status.set(line.slice(3), "ok");
      else if (line.startsWith("ng ")) {
        const [name = "", ...why] = line.slice(3).split(" ");
        status.set(name, why.join(" ") || "rejected");
      }
    }
    return status;
  }

  /** Records a commit under a new branch and pushes it (used to keep the losing side of a conflict). */
  async pushNewBranch(branch: string, oid: string): Promise<void> {
    await git.writeRef({ fs: gitFs, dir: this.dir, ref: `refs/heads/${branch}`, value: oid, force: true });
    await this.push(branch);
  }

  async #writeTree(files: Map<string, TreeFile>): Promise<string> {
    type Dir = { files: Map<string, TreeFile>; dirs: Map<string, Dir> };
    const root: Dir = { files: new Map(), dirs: new Map() };
    for (const [path, file] of files) {
      const parts = path.split("/");
      const name = parts.pop() ?? path;
      let dir = root;
      for (const part of parts) {
        let next = dir.dirs.get(part);
        if (!next) dir.dirs.set(part, (next = { files: new Map(), dirs: new Map() }));
        dir = next;
      }
      dir.files.set(name, file);
    }
    const write = async (dir: Dir): Promise<string> => {
      const tree: { mode: string; path: string; oid: string; type: "blob" | "tree" }[] = [];
      for (const [name, file] of dir.files) tree.push({ mode: file.mode, path: name, oid: file.oid, type: "blob" });
      for (const [name, sub] of dir.dirs) tree.push({ mode: "040000", path: name, oid: await write(sub), type: "tree" });
      return this.#storeTree(tree);
    };
    return write(root);
  }
}

/** A pkt-line of the Git protocol: four hex digits of length (themselves included), then the payload. */
function pktLine(payload: string): Buffer {
  const bytes = Buffer.from(payload);
  return Buffer.concat([Buffer.from((bytes.length + 4).toString(16).padStart(4, "0")), bytes]);
}

/** The payloads of the pkt-lines in `data`; flush, delimiter and end packets are skipped. */
function pktLines(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + 4 <= data.length; ) {
    const length = Number.parseInt(data.toString("latin1", i, i + 4), 16);
    if (Number.isNaN(length) || (length >= 4 && i + length > data.length)) throw new Error("git-receive-pack: malformed response");
    if (length >= 4) out.push(data.subarray(i + 4, i + length));
    i += Math.max(length, 4);
  }
  return out;
}
