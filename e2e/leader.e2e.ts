// Leader election against the real Lease API: one leader at a time, fast handover on a graceful stop,
// takeover only after a silent holder's lease expired.
import test from "ava";
import { CoordinationV1Api, V1MicroTime, type V1Lease } from "@kubernetes/client-node";
import { controlPlane, freshNamespace, waitFor } from "./harness/suite.js";
import { Kube } from "../operator/kube.js";
import { createLogger } from "../operator/log.js";
import { startLeaderElection, type LeaderElection, type LeaderElectionOptions } from "../operator/leader.js";

const LEASE = "slipway-operator";

interface Candidate {
  identity: string;
  election: LeaderElection;
  /** What the callbacks saw, in order: "started" / "stopped". */
  events: string[];
}

type Timing = Pick<LeaderElectionOptions, "leaseDurationSeconds" | "renewDeadlineSeconds" | "retryPeriodSeconds">;

/** A shared log of leadership changes across candidates, to check that two never lead at once. */
class Leadership {
  readonly changes: string[] = [];
  holders = new Set<string>();
  overlaps: string[] = [];
  started(identity: string): void {
    this.changes.push(`${identity} started`);
    if (this.holders.size > 0) this.overlaps.push(`${identity} started while ${[...this.holders].join(",")} led`);
    this.holders.add(identity);
  }
  stopped(identity: string): void {
    this.changes.push(`${identity} stopped`);
    this.holders.delete(identity);
  }
}

async function candidate(namespace: string, identity: string, leadership: Leadership, timing: Timing = {}): Promise<Candidate> {
  const cp = await controlPlane();
  const events: string[] = [];
  const election = await startLeaderElection({
    kube: new Kube(cp.kubeConfig()),
    namespace,
    name: LEASE,
    identity,
    ...timing,
    logger: createLogger({ level: process.env.LOG_LEVEL ?? "silent" }),
    onStartedLeading: () => {
      events.push("started");
      leadership.started(identity);
    },
    onStoppedLeading: () => {
      events.push("stopped");
      leadership.stopped(identity);
    },
  });
  return { identity, election, events };
}

async function readLease(namespace: string): Promise<V1Lease> {
  const cp = await controlPlane();
  return cp.kubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE, namespace });
}

/** Polls isLeader() of every candidate until `ms` pass; returns the moments two said yes at once. */
async function watchForDoubleLeaders(candidates: Candidate[], ms: number): Promise<string[]> {
  const doubles: string[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const leaders = candidates.filter((c) => c.election.isLeader()).map((c) => c.identity);
    if (leaders.length > 1) doubles.push(leaders.join(" and "));
    await new Promise((r) => setTimeout(r, 25));
  }
  return doubles;
}

test("exactly one of two candidates leads, and the Lease names it", async (t) => {
  const ns = await freshNamespace(t);
  const leadership = new Leadership();
  const a = await candidate(ns, "operator-a", leadership);
  const b = await candidate(ns, "operator-b", leadership);
  t.teardown(() => Promise.all([a.election.stop(), b.election.stop()]));

  t.deepEqual(await watchForDoubleLeaders([a, b], 5_000), []);
  const leaders = [a, b].filter((c) => c.election.isLeader());
  t.is(leaders.length, 1);
  t.true(a.election.isLeader(), "the first candidate created the Lease and keeps it");
  const lease = await readLease(ns);
  t.is(lease.spec?.holderIdentity, "operator-a");
  t.is(lease.spec?.leaseDurationSeconds, 15);
  t.is(lease.spec?.leaseTransitions, 0);
  t.deepEqual(leadership.changes, ["operator-a started"]);
});

test("the leader keeps renewing, and a candidate never leads while that lease is fresh", async (t) => {
  const ns = await freshNamespace(t);
  const leadership = new Leadership();
  const timing = { leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 0.5 };
  const a = await candidate(ns, "operator-a", leadership, timing);
  const firstRenew = new Date(String((await readLease(ns)).spec?.renewTime)).getTime();
  const b = await candidate(ns, "operator-b", leadership, timing);
  t.teardown(() => Promise.all([a.election.stop(), b.election.stop()]));

  // Over two lease durations: b would have taken over if a's renewals were not seen.
  t.deepEqual(await watchForDoubleLeaders([a, b], 9_000), []);
  t.true(a.election.isLeader());
  t.false(b.election.isLeader());
  t.deepEqual(b.events, []);
  const lease = await readLease(ns);
  t.is(lease.spec?.holderIdentity, "operator-a");
  t.true(new Date(String(lease.spec?.renewTime)).getTime() > firstRenew + 6_000, "renewTime moves forward");
});

test("stopping the leader hands the Lease to the other candidate within seconds, not after it expires", async (t) => {
  const ns = await freshNamespace(t);
  const leadership = new Leadership();
  const a = await candidate(ns, "operator-a", leadership);
  const b = await candidate(ns, "operator-b", leadership);
  t.teardown(() => Promise.all([a.election.stop(), b.election.stop()]));
  t.true(a.election.isLeader());

  const stopped = Date.now();
  await a.election.stop();
  t.false(a.election.isLeader());
  t.deepEqual(a.events, ["started", "stopped"]);
  await waitFor(async () => b.election.isLeader(), 6_000, () => `operator-b did not take over: ${leadership.changes.join("; ")}`);
  t.true(Date.now() - stopped < 6_000, "handover is well under the 15 s lease");

  t.deepEqual(leadership.changes, ["operator-a started", "operator-a stopped", "operator-b started"]);
  t.deepEqual(leadership.overlaps, []);
  const lease = await readLease(ns);
  t.is(lease.spec?.holderIdentity, "operator-b");
  t.is(lease.spec?.leaseTransitions, 1);
});

test("a Lease left by a holder that stopped renewing is taken over only after it expires", async (t) => {
  const ns = await freshNamespace(t);
  const cp = await controlPlane();
  const now = new V1MicroTime();
  // A crashed leader: it holds the lease but will never renew it.
  await cp.kubeConfig().makeApiClient(CoordinationV1Api).createNamespacedLease({
    namespace: ns,
    body: {
      metadata: { name: LEASE },
      spec: { holderIdentity: "crashed-operator", leaseDurationSeconds: 3, acquireTime: now, renewTime: now, leaseTransitions: 4 },
    },
  });
  const leadership = new Leadership();
  const started = Date.now();
  const b = await candidate(ns, "operator-b", leadership, { retryPeriodSeconds: 0.3 });
  t.teardown(() => b.election.stop());

  await new Promise((r) => setTimeout(r, 2_000));
  t.false(b.election.isLeader(), "the crashed holder's lease has not expired yet");
  await waitFor(async () => b.election.isLeader(), 6_000, () => "operator-b never took over the expired lease");
  t.true(Date.now() - started >= 3_000, "not before the lease duration passed");
  const lease = await readLease(ns);
  t.is(lease.spec?.holderIdentity, "operator-b");
  t.is(lease.spec?.leaseTransitions, 5);
});

test("of five candidates racing for an expired Lease exactly one wins", async (t) => {
  const ns = await freshNamespace(t);
  const cp = await controlPlane();
  const long = new V1MicroTime(Date.now() - 60_000);
  await cp.kubeConfig().makeApiClient(CoordinationV1Api).createNamespacedLease({
    namespace: ns,
    body: { metadata: { name: LEASE }, spec: { holderIdentity: "gone", leaseDurationSeconds: 1, renewTime: long, leaseTransitions: 0 } },
  });
  // Each candidate judges expiry by its own clock from when it first saw the record, so all five wait out
  // the 1 s lease and then try to take it within the same few hundred milliseconds.
  const leadership = new Leadership();
  const candidates = await Promise.all(
    ["a", "b", "c", "d", "e"].map((id) => candidate(ns, `operator-${id}`, leadership, { retryPeriodSeconds: 0.2 })),
  );
  t.teardown(() => Promise.all(candidates.map((c) => c.election.stop())));

  t.deepEqual(await watchForDoubleLeaders(candidates, 3_000), []);
  const leaders = candidates.filter((c) => c.election.isLeader());
  t.is(leaders.length, 1);
  t.is((await readLease(ns)).spec?.holderIdentity, leaders[0]?.identity);
  t.deepEqual(leadership.overlaps, []);
  t.is(leadership.changes.length, 1, leadership.changes.join("; "));
});
