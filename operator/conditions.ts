// kstatus conditions (Ready, Reconciling, Stalled), written the way Flux does so that Flux, Argo CD and
// `kubectl wait` read an App's health: one summary decides all three conditions and observedGeneration.
import type { Condition } from "../crds/v1alpha1.js";

export const READY = "Ready";
export const RECONCILING = "Reconciling";
export const STALLED = "Stalled";
/** How the App's latest build went (builds/), and which release it became (the App reconciler). */
export const BUILT = "Built";

/** Where a reconcile left the object. */
export type Summary =
  /** Done: everything the spec asks for is in place. */
  | { state: "ready"; reason: string; message: string }
  /** Work under way (a rollout, a build), nothing wrong. */
  | { state: "progressing"; reason: string; message: string }
  /** Waiting for something outside the operator (a build): Ready=False, still reconciling. */
  | { state: "waiting"; reason: string; message: string }
  /** A transient failure that is being retried. */
  | { state: "retrying"; reason: string; message: string }
  /** A problem only a human can fix (invalid spec, unknown rollback target); not retried until the spec changes. */
  | { state: "stalled"; reason: string; message: string };

export const PROGRESSING_WITH_RETRY = "ProgressingWithRetry";

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

/**
 * Sets one condition, keeping the others in place. lastTransitionTime only moves when the status changes,
 * as metav1.Condition requires.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, "lastTransitionTime">,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const lastTransitionTime =
    previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, "Z");
  const condition: Condition = { ...next, lastTransitionTime };
  if (index >= 0) list[index] = condition;
  else list.push(condition);
  return list;
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

/**
 * The kstatus conditions for a summary at `generation`, keeping conditions of other types (e.g. Built):
 * - ready: Ready=True; Reconciling and Stalled are removed.
 * - progressing: Reconciling=True and Ready=Unknown with the same reason; Stalled is removed.
 * - waiting: Reconciling=True and Ready=False with the same reason; Stalled is removed.
 * - retrying: Reconciling=True reason ProgressingWithRetry, Ready=False with the failure; Stalled is removed.
 * - stalled: Stalled=True and Ready=False with the same reason; Reconciling is removed.
 */
export function summarize(
  conditions: readonly Condition[] | undefined,
  summary: Summary,
  generation: number | undefined,
  now: Date,
): Condition[] {
  const { reason, message } = summary;
  const at = (type: string, status: Condition["status"], r = reason) =>
    ({ type, status, reason: r, message, observedGeneration: generation }) as Omit<Condition, "lastTransitionTime">;
  let list = [...(conditions ?? [])];
  switch (summary.state) {
    case "ready":
      list = removeCondition(removeCondition(list, RECONCILING), STALLED);
      return order(setCondition(list, at(READY, "True"), now));
    case "progressing":
      list = setCondition(removeCondition(list, STALLED), at(RECONCILING, "True"), now);
      return order(setCondition(list, at(READY, "Unknown"), now));
    case "waiting":
      list = setCondition(removeCondition(list, STALLED), at(RECONCILING, "True"), now);
      return order(setCondition(list, at(READY, "False"), now));
    case "retrying":
      list = setCondition(removeCondition(list, STALLED), at(RECONCILING, "True", PROGRESSING_WITH_RETRY), now);
      return order(setCondition(list, at(READY, "False"), now));
    case "stalled":
      list = setCondition(removeCondition(list, RECONCILING), at(STALLED, "True"), now);
      return order(setCondition(list, at(READY, "False"), now));
  }
}

/** True when the two lists say the same thing, whatever their transition times. */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const strip = (list: readonly Condition[] | undefined) =>
    JSON.stringify(
      [...(list ?? [])]
        .sort((x, y) => x.type.localeCompare(y.type))
        .map(({ type, status, reason, message, observedGeneration }) => [type, status, reason, message, observedGeneration ?? null]),
    );
  return strip(a) === strip(b);
}

/** Ready, Reconciling, Stalled first, in that order, then the others as they were. */
function order(list: Condition[]): Condition[] {
  const rank = (type: string) => {
    const i = [READY, RECONCILING, STALLED].indexOf(type);
    return i < 0 ? 3 : i;
  };
  return list.map((c, i) => ({ c, i })).sort((x, y) => rank(x.c.type) - rank(y.c.type) || x.i - y.i).map(({ c }) => c);
}
