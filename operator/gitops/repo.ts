// The one Git wrapper of GitOps: a clone of the config repository kept in a directory, written without a
// working tree (commits are built from blobs and trees), pushed and fetched over smart HTTP by isomorphic-git.
import fs from "node:fs";
import { mkdir } from "node:fs/promises";
import git from "isomorphic-git";
import http from "isomorphic-git/http/node";
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
}

/** Files to write (content) or remove (null), by path. */
export type FileChanges = Map<string, string | null>;

export const AUTHOR = { name: "Slipway", email: "slipway@slipway.dev" };

interface TreeFile {
  oid: string;
  mode: string;
}

/** A tree entry; `node` once the subtree is loaded to be changed by a commit. */
interface Entry {
  mode: string;
  oid: string;
  type: "blob" | "tree" | "commit";
  node?: TreeNode;
}

/** A tree being changed: its entries, and the tree it was read from (none when new). */
interface TreeNode {
  base: string | undefined;
  entries: Map<string, Entry>;
  dirty: boolean;
}

/** The levels of the layout (see layout.ts) whose directories get a generated kustomization.yaml. */
const enum Level {
  Apps = 1,
  Namespace = 2,
  App = 3,
  Releases = 4,
}

const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

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
  #cache = {};

  private constructor(options: RepoOptions) {
    this.url = options.url;
    this.branch = options.branch ?? "main";
    this.dir = options.dir;
    const creds = options.credentials;
    this.#onAuth = creds ? () => ({ username: creds.username, password: creds.password }) : undefined;
  }

  /** Opens (or creates) the local clone and brings it to the remote's head; seeds an empty remote. */
  static async open(options: RepoOptions): Promise<ConfigRepo> {
    const repo = new ConfigRepo(options);
    await mkdir(repo.dir, { recursive: true });
    await git.init({ fs, dir: repo.dir, defaultBranch: repo.branch });
    await git.addRemote({ fs, dir: repo.dir, remote: "origin", url: repo.url, force: true });
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

  /** The local branch's commit. */
  async head(): Promise<string | undefined> {
    try {
      return await git.resolveRef({ fs, dir: this.dir, ref: this.#ref });
    } catch {
      return undefined;
    }
  }

  /** Fetches the branch; returns the remote's head commit, or undefined when the remote has no such branch. */
  async fetch(): Promise<string | undefined> {
    const refs = await git.listServerRefs({ http, url: this.url, onAuth: this.#onAuth, prefix: this.#ref });
    const remote = refs.find((r) => r.ref === this.#ref);
    if (!remote) return undefined;
    await git.fetch({
      fs,
      http,
      dir: this.dir,
      remote: "origin",
      ref: this.branch,
      singleBranch: true,
      tags: false,
      onAuth: this.#onAuth,
      cache: this.#cache,
    });
    return git.resolveRef({ fs, dir: this.dir, ref: `refs/remotes/origin/${this.branch}` });
  }

  /** Moves the local branch to a commit (after a fetch: the remote's head). */
  async resetTo(oid: string): Promise<void> {
    await git.writeRef({ fs, dir: this.dir, ref: this.#ref, value: oid, force: true });
    await git.writeRef({ fs, dir: this.dir, ref: "HEAD", value: this.#ref, symbolic: true, force: true });
  }

  /** Every file of a commit's tree (default: the local head) with its blob id. */
  async files(commit?: string): Promise<Map<string, TreeFile>> {
    const out = new Map<string, TreeFile>();
    const oid = commit ?? (await this.head());
    if (!oid) return out;
    const walk = async (treeOid: string, prefix: string) => {
      const { tree } = await git.readTree({ fs, dir: this.dir, oid: treeOid, cache: this.#cache });
      for (const entry of tree) {
        const path = prefix ? `${prefix}/${entry.path}` : entry.path;
        if (entry.type === "tree") await walk(entry.oid, path);
        else out.set(path, { oid: entry.oid, mode: entry.mode });
      }
    };
    const { commit: c } = await git.readCommit({ fs, dir: this.dir, oid, cache: this.#cache });
    await walk(c.tree, "");
    return out;
  }

  /** A file's text at a commit (default: the local head); undefined when absent or the commit is unknown. */
  async readFile(path: string, commit?: string): Promise<string | undefined> {
    const oid = commit ?? (await this.head());
    if (!oid) return undefined;
    try {
      const { blob } = await git.readBlob({ fs, dir: this.dir, oid, filepath: path, cache: this.#cache });
      return Buffer.from(blob).toString("utf8");
    } catch {
      return undefined;
    }
  }

  /** Whether a commit is in the local clone. */
  async hasCommit(oid: string): Promise<boolean> {
    try {
      await git.readCommit({ fs, dir: this.dir, oid, cache: this.#cache });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Commits `changes` on top of `parent` (default: the local head) with regenerated kustomization.yaml files,
   * and moves the local branch there unless `ref` names another. Returns undefined when the tree would not
   * change (nothing to commit), so the same change is never committed twice.
   */
  async commit(
    changes: FileChanges,
    message: string,
    options: { allowEmpty?: boolean; parent?: string; ref?: string } = {},
  ): Promise<string | undefined> {
    const parent = options.parent ?? (await this.head());
    const before = await this.files(parent);
    const after = new Map(before);
    for (const [path, content] of changes) {
      if (content === null) after.delete(path);
      else after.set(path, { mode: "100644", oid: await git.writeBlob({ fs, dir: this.dir, blob: Buffer.from(content) }) });
    }
    for (const path of [...after.keys()]) if (isManagedKustomization(path)) after.delete(path);
    for (const [path, content] of kustomizations(after.keys())) {
      after.set(path, { mode: "100644", oid: await git.writeBlob({ fs, dir: this.dir, blob: Buffer.from(content) }) });
    }
    const unchanged =
      before.size === after.size && [...after].every(([path, file]) => before.get(path)?.oid === file.oid);
    if (unchanged && parent && !options.allowEmpty) return undefined;
    const tree = await this.#writeTree(after);
    const now = { timestamp: Math.floor(Date.now() / 1000), timezoneOffset: 0 };
    const oid = await git.writeCommit({
      fs,
      dir: this.dir,
      commit: {
        message: message.endsWith("\n") ? message : `${message}\n`,
        tree,
        parent: parent ? [parent] : [],
        author: { ...AUTHOR, ...now },
        committer: { ...AUTHOR, ...now },
      },
    });
    await git.writeRef({ fs, dir: this.dir, ref: options.ref ?? this.#ref, value: oid, force: true });
    if (!options.ref) await git.writeRef({ fs, dir: this.dir, ref: "HEAD", value: this.#ref, symbolic: true, force: true });
    return oid;
  }

  /** Pushes the local branch (or another local branch) to the remote; a non-fast-forward is a PushRejectedError. */
  async push(branch = this.branch): Promise<void> {
    try {
      const result = await git.push({
        fs,
        http,
        dir: this.dir,
        remote: "origin",
        ref: branch,
        remoteRef: branch,
        onAuth: this.#onAuth,
        cache: this.#cache,
      });
      const status = result.refs[`refs/heads/${branch}`];
      if (!result.ok || (status && !status.ok)) {
        throw new PushRejectedError(`push of ${branch} rejected: ${status?.error ?? result.error ?? "unknown"}`);
      }
    } catch (err) {
      if (err instanceof PushRejectedError) throw err;
      const code = (err as { code?: string }).code;
      if (code === "PushRejectedError" || code === "GitPushError") {
        throw new PushRejectedError(`push of ${branch} rejected: ${(err as Error).message}`, { cause: err });
      }
      throw err;
    }
  }

  /** Records a commit under a new branch and pushes it (used to keep the losing side of a conflict). */
  async pushNewBranch(branch: string, oid: string): Promise<void> {
    await git.writeRef({ fs, dir: this.dir, ref: `refs/heads/${branch}`, value: oid, force: true });
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
      return git.writeTree({ fs, dir: this.dir, tree });
    };
    return write(root);
  }
}
