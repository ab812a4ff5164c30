// Commit messages: one line that says what changed, which release it made and who asked, then the details.
import type { ConfigSpec, ObjectMeta, ReleaseSpec } from "../../crds/v1alpha1.js";
import { configChanges, requestedBy } from "../releases.js";
import type { StoredObject } from "./layout.js";
import type { CommitInfo } from "./repo.js";

/** One object's change in a commit. */
export interface ObjectChange {
  kind: "App" | "Config" | "Release";
  path: string;
  /** The object as the cluster holds it now (undefined when deleted). */
  after: StoredObject | undefined;
  /** The object as Git held it before (undefined when new). */
  before: StoredObject | undefined;
  /** Full metadata from the cluster (managedFields included) or the last seen object for deletions. */
  meta: ObjectMeta | undefined;
}

/** Dotted paths of the leaves that differ between two values, e.g. ["spec.image", "spec.processes.web.replicas"]. */
export function changedPaths(a: unknown, b: unknown, prefix = ""): string[] {
  const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
  if (isMap(a) && isMap(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((key) => changedPaths(a[key], b[key], prefix ? `${prefix}.${key}` : key));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
}

function who(change: ObjectChange): string | undefined {
  if (change.kind === "Release") {
    const spec = change.after?.spec as ReleaseSpec | undefined;
    if (spec?.requestedBy) return spec.requestedBy;
  }
  return change.meta ? requestedBy(change.meta) : undefined;
}

function describe(change: ObjectChange): string {
  const { kind, before, after } = change;
  if (!after) return `delete ${kind}`;
  if (!before) return `create ${kind}`;
  if (kind === "Config") {
    const what = configChanges((before.spec ?? {}) as ConfigSpec, (after.spec ?? {}) as ConfigSpec);
    if (what) return `update Config (${what})`;
  }
  const paths = changedPaths({ metadata: before.metadata, spec: before.spec }, { metadata: after.metadata, spec: after.spec });
  const shown = paths.slice(0, 4).join(", ") + (paths.length > 4 ? `, +${paths.length - 4} more` : "");
  return `update ${kind}${shown ? ` (${shown})` : ""}`;
}

/** The commit message for the changes of one App, Config and its Releases. */
export function commitMessage(namespace: string, app: string, changes: readonly ObjectChange[]): string {
  const newReleases = changes
    .filter((c) => c.kind === "Release" && c.after && !c.before)
    .map((c) => c.after?.spec as ReleaseSpec)
    .sort((a, b) => a.version - b.version);
  const people = [...new Set(changes.map(who).filter((w): w is string => !!w))];
  const by = people.length ? people.join(", ") : "unknown";
  const latest = newReleases.at(-1);
  const others = changes.filter((c) => !(c.kind === "Release" && c.after && !c.before));
  // A cause that names its Git commit says who already: "revert of v2 (git 2c0d82e by alice@example.com)".
  const credited = latest && people.length === 1 && latest.cause.endsWith(` by ${by})`);
  const subject = latest
    ? `${namespace}/${app}: release v${latest.version}: ${latest.cause}${credited ? "" : ` (by ${by})`}`
    : `${namespace}/${app}: ${others.map(describe).join(", ")} (by ${by})`;
  const body = [
    ...(newReleases.length ? [`Release: ${newReleases.map((r) => `v${r.version}`).join(", ")}`] : []),
    ...changes.filter((c) => !(c.kind === "Release" && c.after && !c.before)).map((c) => `${c.kind}: ${describe(c)}`),
    `Changed-by: ${by}`,
    "",
    ...changes.map((c) => `${c.after ? (c.before ? "M" : "A") : "D"} ${c.path}`),
  ];
  return `${subject}\n\n${body.join("\n")}\n`;
}

/**
 * Who a commit pushed to Git credits with its change, and what it is: the author's email (a Git host maps it to
 * an account; names are not unique), or for a commit of Slipway's own, the requester its Changed-by trailer
 * names; and for a `git revert` of a release commit, the release it reverts ("v2"). Git authors are
 * self-asserted: push access to the config repository is the boundary.
 */
export function gitCredit(commit: CommitInfo): { by: string; commit: string; revertOf?: string } {
  const trailer = commit.bySlipway ? /^Changed-by: (.+)$/m.exec(commit.message)?.[1]?.trim() : undefined;
  const by = (trailer && trailer !== "unknown" ? trailer : undefined) ?? (commit.author.email || commit.author.name);
  const reverted = /^Revert "(.*)"\s*$/m.exec(commit.message.split("\n")[0] ?? "")?.[1];
  const version = reverted ? /: release (v[1-9][0-9]*): /.exec(reverted)?.[1] : undefined;
  return { by, commit: commit.oid.slice(0, 7), ...(version ? { revertOf: version } : {}) };
}

/** The message of a conflict branch's commit. */
export function conflictMessage(kind: string, namespace: string, name: string, gitCommit: string): string {
  return (
    `Conflict: cluster change to ${kind} ${namespace}/${name} lost to Git\n\n` +
    `Git and the cluster changed ${kind} ${namespace}/${name} at the same time. Git wins: commit ` +
    `${gitCommit.slice(0, 7)} is applied. This commit keeps the cluster's version so nothing is lost.\n`
  );
}
