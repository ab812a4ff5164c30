// Process types from the Procfile at the built commit, read straight from the source repository with
// isomorphic-git (no git binary in the operator image): a shallow fetch of one branch, through the Git HTTP
// client with a timeout (git-http.ts).
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import git from "isomorphic-git";
import { gitHttp } from "../git-http.js";

/** A Procfile that cannot be used; the message names the line. */
export class ProcfileError extends Error {
  override name = "ProcfileError";
}

const LINE = /^([A-Za-z0-9_-]+)[ \t]*:[ \t]*(.*)$/;
const PROCESS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Parses a Procfile: `name: command` per line, blank lines and `#` comments ignored. Process type names must
 * be DNS labels (they name Deployments), commands must not be empty and a name may appear once.
 */
export function parseProcfile(text: string): Record<string, string> {
  const processes: Record<string, string> = {};
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = LINE.exec(line);
    if (!m) throw new ProcfileError(`Procfile line ${i + 1}: expected "name: command", got ${JSON.stringify(line)}`);
    const [, name = "", command = ""] = m;
    if (!PROCESS_NAME.test(name) || name.length > 63) {
      throw new ProcfileError(`Procfile line ${i + 1}: process type ${JSON.stringify(name)} must be a DNS label (lowercase letters, digits and '-')`);
    }
    if (command.trim() === "") throw new ProcfileError(`Procfile line ${i + 1}: process type ${name} has no command`);
    if (Object.hasOwn(processes, name)) throw new ProcfileError(`Procfile line ${i + 1}: process type ${name} is declared twice`);
    processes[name] = command.trim();
  });
  return processes;
}

export interface GitAuth {
  username: string;
  password: string;
}

/** How many more commits of history a Procfile read fetches, in turn, when the commit is not the branch head. */
const DEEPEN = [20, 200];

/**
 * The Procfile at `commit` (in directory `path` of the repository), or undefined when that commit has none.
 * Fetches only `branch`, only its head commit (deeper only while `commit` is not among those fetched yet), into
 * a temporary directory, reads the blob at the commit, and removes the clone.
 */
export async function readProcfile(opts: { url: string; branch: string; commit: string; path?: string; auth?: GitAuth; timeoutMs?: number }): Promise<Record<string, string> | undefined> {
  const dir = await mkdtemp(join(tmpdir(), "slipway-procfile-"));
  const http = gitHttp(opts.timeoutMs);
  const onAuth = opts.auth ? () => opts.auth : undefined;
  try {
    await git.clone({ fs, http, dir, url: opts.url, ref: opts.branch, singleBranch: true, noCheckout: true, noTags: true, depth: 1, onAuth });
    for (const depth of DEEPEN) {
      if (await hasCommit(dir, opts.commit)) break;
      await git.fetch({ fs, http, dir, ref: opts.branch, singleBranch: true, tags: false, depth, relative: true, onAuth });
    }
    const filepath = posix.join(opts.path ?? "", "Procfile").replace(/^\.?\//, "");
    let blob: Uint8Array;
    try {
      ({ blob } = await git.readBlob({ fs, dir, oid: opts.commit, filepath }));
    } catch (err) {
      if ((err as { code?: string }).code === "NotFoundError") {
        // Either no Procfile at that commit, or the commit is not on the branch any more (force-push).
        await git.readCommit({ fs, dir, oid: opts.commit });
        return undefined;
      }
      throw err;
    }
    return parseProcfile(Buffer.from(blob).toString("utf8"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function hasCommit(dir: string, oid: string): Promise<boolean> {
  try {
    await git.readCommit({ fs, dir, oid });
    return true;
  } catch {
    return false;
  }
}

/** The head commit of `branch` on the server, or undefined when the branch does not exist. */
export async function branchHead(opts: { url: string; branch: string; auth?: GitAuth; timeoutMs?: number }): Promise<string | undefined> {
  const refs = await git.listServerRefs({
    http: gitHttp(opts.timeoutMs),
    url: opts.url,
    prefix: `refs/heads/${opts.branch}`,
    onAuth: opts.auth ? () => opts.auth : undefined,
  });
  return refs.find((r) => r.ref === `refs/heads/${opts.branch}`)?.oid;
}
