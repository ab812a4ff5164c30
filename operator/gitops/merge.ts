// Deciding, per object, which side changed: the cluster, Git, or both. A three-way comparison of the object
// in the cluster, the file at Git's head, and the base: the file at the commit the object's status.commit
// names (the last state both sides agreed on). Pure; the sync engine carries the decisions out.

/** The base is unknown when the object records no commit (it was never written to or read from Git). */
export const UNKNOWN = Symbol("unknown base");
export type Base = string | undefined | typeof UNKNOWN;

export type Decision =
  /** Both sides agree (or the object exists on neither). `record` when status.commit should point at head. */
  | { action: "none"; record: boolean }
  /** The cluster changed it: write the cluster's version to Git (or remove the file when deleted). */
  | { action: "commit" }
  /** Git changed it: apply Git's version to the cluster. */
  | { action: "apply" }
  /** Git removed it: remove it from the cluster. */
  | { action: "delete" }
  /** Both changed it: Git wins, the cluster's version is kept on a conflict branch. */
  | { action: "conflict" };

export interface MergeInput {
  /** The object in the cluster, rendered as Git would hold it; undefined when absent. */
  cluster: string | undefined;
  /** The file at Git's head, canonical; undefined when absent. */
  git: string | undefined;
  base: Base;
  /** The object was deleted in the cluster (seen by a watch), as opposed to never having been created there. */
  deletedInCluster: boolean;
}

export function decide({ cluster, git, base, deletedInCluster }: MergeInput): Decision {
  if (cluster === git) return { action: "none", record: cluster !== undefined && base !== git };
  if (cluster === undefined) {
    if (!deletedInCluster) return { action: "apply" };
    if (base !== UNKNOWN && base !== git) return { action: "conflict" };
    return { action: "commit" };
  }
  if (git === undefined) {
    if (base === UNKNOWN || base === undefined) return { action: "commit" };
    return cluster === base ? { action: "delete" } : { action: "conflict" };
  }
  if (base === UNKNOWN) return { action: "conflict" };
  if (git === base) return { action: "commit" };
  if (cluster === base) return { action: "apply" };
  return { action: "conflict" };
}
