// Test-only fault injection, off unless SLIPWAY_FAULT_KILL is set: the crash tests (e2e/crash.e2e.ts,
// e2e/failover.e2e.ts) SIGKILL the operator at an exact point instead of racing a kill against its progress.
// SLIPWAY_FAULT_KILL=<point> kills at the first time the point is reached, <point>:<n> at the n-th time.

export type FaultPoint =
  /** GitOps: the local commit is made, the push is not. */
  | "before-push"
  /** GitOps: pushed, the commit id not yet in status.commit. */
  | "after-push"
  /** The operator created a Release; its Event, the rollout and the App's status are not written yet. */
  | "after-release-cut"
  /** Builds: the PipelineRun is created, its BuildStarted Event not recorded yet. */
  | "after-pipelinerun-created";

const hits = new Map<FaultPoint, number>();

export function faultPoint(point: FaultPoint): void {
  const setting = process.env.SLIPWAY_FAULT_KILL;
  if (!setting) return;
  const [name, nth = "1"] = setting.split(":");
  if (name !== point) return;
  const count = (hits.get(point) ?? 0) + 1;
  hits.set(point, count);
  if (count === Number(nth)) process.kill(process.pid, "SIGKILL");
}
