// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics: one holder at a time,
// acquired only after the holder's lease expired (judged by our own clock since we last saw it change),
// renewed every few seconds, written with optimistic concurrency, and released on a graceful stop. A leader
// whose start fails releases the Lease and campaigns again after a backoff, so it never holds the Lease
// while doing nothing.
import { performance } from "node:perf_hooks";
import { isConflict, isNotFound, microTime, type Kube, type KubeObject } from "./kube.js";
import type { Logger } from "pino";
import { log as rootLog } from "./log.js";

export const LEASE_API_VERSION = "coordination.k8s.io/v1";

/** The fields of a Lease that leader election reads and writes. */
export interface LeaseObject extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** Why a leader stopped leading: `lost` when it did not mean to (renewals failed, or another holds the Lease). */
export interface StoppedLeading {
  readonly lost: boolean;
  readonly reason: string;
}

export interface LeaderElectionOptions {
  /** The operator's client; the Lease is read and written through it. */
  readonly kube: Kube;
  /** Namespace of the Lease (the operator's own). */
  readonly namespace: string;
  /** Name of the Lease. */
  readonly name: string;
  /** This candidate's identity, unique among candidates (the pod name). */
  readonly identity: string;
  /** How long a lease is valid without renewal; default 15. */
  readonly leaseDurationSeconds?: number;
  /** How long the leader keeps trying to renew before it gives up leading; default 2/3 of the lease. */
  readonly renewDeadlineSeconds?: number;
  /** Time between attempts to acquire or renew; default 2 (±20% jitter). */
  readonly retryPeriodSeconds?: number;
  /** The first wait after a failed start before campaigning again; doubles per failure up to 32×. Default 2. */
  readonly startBackoffSeconds?: number;
  /**
   * Called when this candidate becomes the leader. Not awaited by the campaign (renewals go on meanwhile).
   * When it rejects, the start failed: the candidate stops leading, releases the Lease, and campaigns again
   * after a backoff (see status()).
   */
  readonly onStartedLeading: () => void | Promise<void>;
  /**
   * Called when this candidate stops leading: its renewals failed or another holds the Lease (`lost`), or
   * stop() was called, or its start failed. Awaited before the Lease is released, so the next leader never
   * overlaps with work still running here.
   */
  readonly onStoppedLeading: (why: StoppedLeading) => void | Promise<void>;
  /** Called with the Lease whenever this candidate read or wrote it (the receiver's sync requests live on it). */
  readonly onLease?: (lease: LeaseObject) => void;
  /** Where it logs; default the operator's logger. */
  readonly logger?: Logger;
}

/** What a candidate is doing now. */
export type LeaderStatus =
  | { readonly role: "leader" }
  /** Campaigning; `reachable` when its last attempt got an answer from the API server. */
  | { readonly role: "candidate"; readonly holder: string; readonly reachable: boolean }
  /** Its start as the leader failed; it campaigns again at `retryAt` (Date.now() clock). */
  | { readonly role: "backing-off"; readonly error: string; readonly retryAt: number }
  | { readonly role: "stopped" };

export interface LeaderElection {
  /** True while this candidate holds a lease it renewed within the renew deadline. */
  isLeader(): boolean;
  status(): LeaderStatus;
  /** Stops campaigning; a leader calls onStoppedLeading and releases the Lease so another takes over at once. */
  stop(): Promise<void>;
}

interface Observed {
  holder: string;
  renewTime: string;
  durationSeconds: number;
  /** Our monotonic clock (ms) when we saw this record change; expiry is judged from here, not from renewTime. */
  seenAt: number;
}

const now = (): number => performance.now();

/** Times out a request that hangs so a partitioned leader still steps down before its lease expires. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Starts campaigning for the Lease; resolves once the first attempt finished (leading or not). */
export async function startLeaderElection(options: LeaderElectionOptions): Promise<LeaderElection> {
  const { kube, namespace, name, identity } = options;
  const leaseSeconds = options.leaseDurationSeconds ?? 15;
  const renewDeadlineMs = (options.renewDeadlineSeconds ?? (leaseSeconds * 2) / 3) * 1000;
  const retryMs = (options.retryPeriodSeconds ?? 2) * 1000;
  const backoffMs = (options.startBackoffSeconds ?? 2) * 1000;
  if (!identity) throw new Error("leader election needs a non-empty identity (set POD_NAME)");
  if (renewDeadlineMs >= leaseSeconds * 1000) {
    throw new Error(`renew deadline (${renewDeadlineMs} ms) must be shorter than the lease (${leaseSeconds} s)`);
  }
  const log = (options.logger ?? rootLog).child({ lease: `${namespace}/${name}`, identity });
  const requestMs = Math.max(retryMs, 1000);

  let leading = false;
  let lastRenewed = 0;
  let reachable = false;
  let observed: Observed | undefined;
  let stopped = false;
  let wake: (() => void) | undefined;
  /** Consecutive failed starts, and until when (Date.now() clock) not to campaign after the last one. */
  let failedStarts = 0;
  let backingOff: { error: string; retryAt: number } | undefined;
  /** Counts leaderships, so a start that finishes after its leadership ended is not mistaken for the current one. */
  let term = 0;

  function observe(lease: LeaseObject): void {
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const renewTime = String(spec.renewTime ?? "");
    if (!observed || observed.holder !== holder || observed.renewTime !== renewTime) {
      observed = { holder, renewTime, durationSeconds: spec.leaseDurationSeconds ?? leaseSeconds, seenAt: now() };
    }
    options.onLease?.(lease);
  }

  /** One attempt to acquire or renew; true when we hold the lease afterwards. */
  async function tryAcquireOrRenew(): Promise<boolean> {
    const time = microTime(new Date());
    let current: LeaseObject;
    try {
      current = await kube.get<LeaseObject>(LEASE_API_VERSION, "Lease", namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const created = await kube.create<LeaseObject>({
        apiVersion: LEASE_API_VERSION,
        kind: "Lease",
        metadata: { name, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: time, renewTime: time, leaseTransitions: 0 },
      });
      observe(created);
      return true;
    }

    observe(current);
    const spec = current.spec ?? {};
    const heldByUs = observed?.holder === identity;
    if (!heldByUs && observed && observed.holder !== "" && now() < observed.seenAt + observed.durationSeconds * 1000) {
      return false; // someone else holds a lease that has not expired by our clock
    }
    // metadata.resourceVersion (from the read) makes this a compare-and-swap: a concurrent writer gets 409.
    const updated = await kube.replace<LeaseObject>({
      ...current,
      apiVersion: LEASE_API_VERSION,
      kind: "Lease",
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        renewTime: time,
        acquireTime: heldByUs ? spec.acquireTime : time,
        leaseTransitions: heldByUs ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    });
    observe(updated);
    return true;
  }

  async function stepDown(why: StoppedLeading): Promise<void> {
    if (!leading) return;
    leading = false;
    // A graceful stop is routine; losing the lease or failing to start is worth a warning.
    if (why.lost) log.error({ reason: why.reason }, "leader election lost");
    else log.info({ reason: why.reason }, "stopped leading");
    try {
      await options.onStoppedLeading(why);
    } catch (err) {
      log.error({ err }, "onStoppedLeading failed");
    }
  }

  /** The start as the leader failed: step down, release the Lease, and wait before campaigning again. */
  async function startFailed(leadership: number, err: unknown): Promise<void> {
    if (stopped || leadership !== term || !leading) return;
    failedStarts++;
    const waitMs = backoffMs * 2 ** Math.min(failedStarts - 1, 5);
    const error = err instanceof Error ? err.message : String(err);
    backingOff = { error, retryAt: Date.now() + waitMs };
    log.error({ err, retryInMs: waitMs, failedStarts }, "could not start as the leader; releasing the Lease and campaigning again after a backoff");
    await stepDown({ lost: false, reason: `the start failed: ${error}` });
    await release();
    wake?.();
  }

  async function attempt(): Promise<void> {
    if (backingOff && Date.now() < backingOff.retryAt) return;
    backingOff = undefined;
    let ok = false;
    try {
      ok = await withTimeout(tryAcquireOrRenew(), requestMs, "lease update");
      reachable = true;
    } catch (err) {
      reachable = isConflict(err);
      if (reachable) log.debug("lease changed while we wrote it; someone else got it first");
      else log.warn({ err }, leading ? "failed to renew the lease" : "failed to acquire the lease");
    }
    if (stopped) return;
    if (ok) {
      lastRenewed = now();
      if (!leading) {
        leading = true;
        const leadership = ++term;
        log.info("started leading");
        Promise.resolve()
          .then(() => options.onStartedLeading())
          .then(() => {
            if (leadership === term) failedStarts = 0;
          }, (err: unknown) => startFailed(leadership, err))
          .catch((err: unknown) => log.error({ err }, "handling the failed start failed"));
      }
    } else if (leading && now() - lastRenewed >= renewDeadlineMs) {
      await stepDown({ lost: true, reason: "could not renew the lease within the renew deadline" });
    } else if (leading && observed && observed.holder !== identity) {
      await stepDown({ lost: true, reason: `the lease is now held by ${observed.holder}` });
    }
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      const untilRetry = backingOff ? backingOff.retryAt - Date.now() : 0;
      await sleep(untilRetry > 0 ? untilRetry : retryMs * (0.8 + Math.random() * 0.4));
      if (stopped) break;
      await attempt();
    }
  }

  async function release(): Promise<void> {
    try {
      const current = await withTimeout(kube.get<LeaseObject>(LEASE_API_VERSION, "Lease", namespace, name), requestMs, "lease read");
      if (current.spec?.holderIdentity !== identity) return;
      const time = microTime(new Date());
      // An empty holder means "free": the next candidate takes it on its next try instead of waiting it out.
      const released = await withTimeout(kube.replace<LeaseObject>({
        ...current,
        apiVersion: LEASE_API_VERSION,
        kind: "Lease",
        spec: { ...current.spec, holderIdentity: "", leaseDurationSeconds: 1, acquireTime: time, renewTime: time },
      }), requestMs, "lease release");
      observe(released);
      log.info("released the lease");
    } catch (err) {
      log.warn({ err }, "could not release the lease; the next leader waits for it to expire");
    }
  }

  log.info({ leaseDurationSeconds: leaseSeconds }, "campaigning for leadership");
  await attempt();
  const running = loop();

  const isLeader = () => leading && now() - lastRenewed < renewDeadlineMs;
  return {
    isLeader,
    status(): LeaderStatus {
      if (stopped) return { role: "stopped" };
      if (isLeader()) return { role: "leader" };
      if (backingOff) return { role: "backing-off", ...backingOff };
      return { role: "candidate", holder: observed?.holder ?? "", reachable };
    },
    async stop() {
      if (stopped) return running;
      stopped = true;
      wake?.();
      await running;
      await stepDown({ lost: false, reason: "stopping" });
      // Also when an attempt in flight during stop() won the lease without us acting on it.
      await release();
    },
  };
}
