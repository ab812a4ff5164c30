// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics: one holder at a time,
// acquired only after the holder's lease expired (judged by our own clock since we last saw it change),
// renewed every few seconds, written with optimistic concurrency, and released on a graceful stop.
import { performance } from "node:perf_hooks";
import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import { log as rootLog } from "./log.js";

export interface LeaderElectionOptions {
  readonly kubeConfig: KubeConfig;
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
  /** Called when this candidate becomes the leader. Not awaited: it may run for as long as it leads. */
  readonly onStartedLeading: () => void | Promise<void>;
  /**
   * Called when this candidate stops leading: its renewals failed, or stop() was called. On stop() it is
   * awaited before the Lease is released, so the next leader never overlaps with work still running here.
   */
  readonly onStoppedLeading: () => void | Promise<void>;
}

export interface LeaderElection {
  /** True while this candidate holds a lease it renewed within the renew deadline. */
  isLeader(): boolean;
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

function isApiError(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

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
  const { namespace, name, identity } = options;
  const leaseSeconds = options.leaseDurationSeconds ?? 15;
  const renewDeadlineMs = (options.renewDeadlineSeconds ?? (leaseSeconds * 2) / 3) * 1000;
  const retryMs = (options.retryPeriodSeconds ?? 2) * 1000;
  if (!identity) throw new Error("leader election needs a non-empty identity (set POD_NAME)");
  if (renewDeadlineMs >= leaseSeconds * 1000) {
    throw new Error(`renew deadline (${renewDeadlineMs} ms) must be shorter than the lease (${leaseSeconds} s)`);
  }
  const api = options.kubeConfig.makeApiClient(CoordinationV1Api);
  const log = rootLog.child({ lease: `${namespace}/${name}`, identity });

  let leading = false;
  let lastRenewed = 0;
  let observed: Observed | undefined;
  let stopped = false;
  let wake: (() => void) | undefined;

  function observe(lease: V1Lease): void {
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    // Deserialized MicroTimes arrive as strings; compare them as the server wrote them.
    const renewTime = String(spec.renewTime ?? "");
    if (!observed || observed.holder !== holder || observed.renewTime !== renewTime) {
      observed = { holder, renewTime, durationSeconds: spec.leaseDurationSeconds ?? leaseSeconds, seenAt: now() };
    }
  }

  /** One attempt to acquire or renew; true when we hold the lease afterwards. */
  async function tryAcquireOrRenew(): Promise<boolean> {
    const time = new V1MicroTime();
    let current: V1Lease;
    try {
      current = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isApiError(err, 404)) throw err;
      await api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: leaseSeconds,
            acquireTime: time,
            renewTime: time,
            leaseTransitions: 0,
          },
        },
      });
      observed = { holder: identity, renewTime: time.toISOString(), durationSeconds: leaseSeconds, seenAt: now() };
      return true;
    }

    observe(current);
    const spec = current.spec ?? {};
    const heldByUs = observed?.holder === identity;
    if (!heldByUs && observed && observed.holder !== "" && now() < observed.seenAt + observed.durationSeconds * 1000) {
      return false; // someone else holds a lease that has not expired by our clock
    }
    const body: V1Lease = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        renewTime: time,
        acquireTime: heldByUs ? spec.acquireTime : time,
        leaseTransitions: heldByUs ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    // resourceVersion in body makes this a compare-and-swap: a concurrent writer gets 409 Conflict.
    const updated = await api.replaceNamespacedLease({ name, namespace, body });
    observe(updated);
    return true;
  }

  async function stepDown(why: string): Promise<void> {
    if (!leading) return;
    leading = false;
    // A graceful stop is routine; losing the lease otherwise is worth a warning.
    if (stopped) log.info({ why }, "stopped leading");
    else log.warn({ why }, "stopped leading");
    try {
      await options.onStoppedLeading();
    } catch (err) {
      log.error({ err }, "onStoppedLeading failed");
    }
  }

  async function attempt(): Promise<void> {
    let ok = false;
    try {
      ok = await withTimeout(tryAcquireOrRenew(), Math.max(retryMs, 1000), "lease update");
    } catch (err) {
      if (isApiError(err, 409)) log.debug("lease changed while we wrote it; someone else got it first");
      else log.warn({ err }, leading ? "failed to renew the lease" : "failed to acquire the lease");
    }
    if (stopped) return;
    if (ok) {
      lastRenewed = now();
      if (!leading) {
        leading = true;
        log.info("started leading");
        Promise.resolve()
          .then(() => options.onStartedLeading())
          .catch((err: unknown) => log.error({ err }, "onStartedLeading failed"));
      }
    } else if (leading && now() - lastRenewed >= renewDeadlineMs) {
      await stepDown("could not renew the lease within the renew deadline");
    } else if (leading && observed && observed.holder !== identity) {
      await stepDown(`the lease is now held by ${observed.holder}`);
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
      await sleep(retryMs * (0.8 + Math.random() * 0.4));
      if (stopped) break;
      await attempt();
    }
  }

  async function release(): Promise<void> {
    try {
      const current = await api.readNamespacedLease({ name, namespace });
      if (current.spec?.holderIdentity !== identity) return;
      const time = new V1MicroTime();
      // An empty holder means "free": the next candidate takes it on its next try instead of waiting it out.
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...current,
          spec: {
            ...current.spec,
            holderIdentity: "",
            leaseDurationSeconds: 1,
            acquireTime: time,
            renewTime: time,
          },
        },
      });
      log.info("released the lease");
    } catch (err) {
      log.warn({ err }, "could not release the lease; the next leader waits for it to expire");
    }
  }

  log.info({ leaseDurationSeconds: leaseSeconds }, "campaigning for leadership");
  await attempt();
  const running = loop();

  return {
    isLeader: () => leading && now() - lastRenewed < renewDeadlineMs,
    async stop() {
      if (stopped) return running;
      stopped = true;
      wake?.();
      await running;
      await stepDown("stopping");
      // Also when an attempt in flight during stop() won the lease without us acting on it.
      await release();
    },
  };
}
