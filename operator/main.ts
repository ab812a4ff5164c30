// The operator program: health and metrics endpoints, Lease leader election when enabled, the webhook receiver
// and graceful shutdown around Slipway's platform (platform.ts), configured from the environment
// (operator/deploy/deployment.yaml).
import os from "node:os";
import { pathToFileURL } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { ANNOTATIONS } from "../crds/v1alpha1.js";
import { startHealthServer, type Readiness } from "./http.js";
import { Kube } from "./kube.js";
import { startLeaderElection, type LeaderElection, type LeaseObject } from "./leader.js";
import { log as rootLog, partLogger } from "./log.js";
import { gitopsFromEnv, listenForWebhooks, pipelineFromEnv, platformFromEnv, startPlatform, webhookSecretsFromEnv, type Platform, type PlatformOptions } from "./platform.js";
import { handOverWebhooks } from "./receiver.js";
import { handleShutdown } from "./shutdown.js";

/** How long a replica that lost the Lease gives its work to stop before it exits (see main). */
const LOST_LEASE_STOP_MS = 2_000;

/**
 * Runs the operator as a program: health/metrics server, leader election (when enabled), graceful shutdown.
 *
 * Without leader election a start that fails exits non-zero (the kubelet, or whoever ran it, starts it
 * again). With it, a leader whose start fails (the config repository unreachable at takeover) stops what it
 * started, releases the Lease and campaigns again after a backoff (leader.ts), so the other replica can take
 * over and this one retries within seconds once the cause is gone, instead of waiting out the kubelet's
 * crash-loop backoff of up to five minutes. A leader that loses the Lease exits non-zero after a short stop,
 * as controller-runtime does: a fresh process starts clean. Dying at any point loses nothing, as a crash
 * does not: a GitOps commit is on the remote or is pushed by the next leader, which finds it in the clone or
 * makes it again (e2e/crash.e2e.ts, e2e/failover.e2e.ts).
 */
async function main(): Promise<void> {
  const env = process.env;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const kube = new Kube(kubeConfig);
  const log = partLogger(rootLog, "main");
  const options: PlatformOptions = {
    kube,
    platform: platformFromEnv(env),
    concurrency: env.RECONCILE_CONCURRENCY ? Number(env.RECONCILE_CONCURRENCY) : undefined,
    namespace: env.WATCH_NAMESPACE || undefined,
    watchSecrets: env.SLIPWAY_WATCH_SECRETS === "true",
  };
  const webhookSecrets = webhookSecretsFromEnv(env);
  const shutdown = handleShutdown();
  let operator: Platform | undefined;
  let starting: Promise<void> | undefined;
  // Only the leader reconciles, commits and builds; a standby waits for the Lease.
  const lead = (): Promise<void> => {
    starting ??= startPlatform({
      ...options,
      gitops: gitopsFromEnv(env),
      builds: env.SLIPWAY_BUILDS === "true" ? { pollIntervalMs: Number(env.SLIPWAY_SOURCE_POLL_SECONDS ?? 60) * 1000, pipeline: pipelineFromEnv(env) } : undefined,
      webhookSecrets,
    }).then((handle) => {
      operator = handle;
      if (syncAfterStart) {
        syncAfterStart = false;
        void handle.gitops?.syncNow().catch(() => undefined);
      }
    }, (err: unknown) => {
      // startPlatform stopped what it had started: the next lead() starts afresh.
      starting = undefined;
      throw new Error("the operator failed to start", { cause: err });
    });
    return starting;
  };
  const follow = async (): Promise<void> => {
    await starting?.catch(() => undefined);
    const handle = operator;
    operator = undefined;
    starting = undefined;
    await handle?.stop();
  };

  // Another replica that received a config repository webhook asks the leader to sync through the Lease
  // (receiver.ts). A request seen while the platform starts is carried out once it has started: the start's own
  // fetch may have come before the push.
  let syncRequested: string | undefined | null = null;
  let syncAfterStart = false;
  const onLease = (lease: LeaseObject) => {
    const requested = lease.metadata.annotations?.[ANNOTATIONS.syncRequestedAt];
    const first = syncRequested === null;
    if (requested === syncRequested) return;
    syncRequested = requested;
    if (first || !requested) return;
    const gitops = operator?.gitops;
    if (!gitops) {
      syncAfterStart = !!starting;
      return;
    }
    log.info({ requestedAt: requested }, "another replica received a config repository webhook: syncing");
    void gitops.syncNow().catch(() => undefined);
  };
  /**
   * /readyz: a leader is ready once it serves (its caches listed, GitOps synced once); a standby is ready while
   * it can reach the API server to take over, so a Deployment rollout of two replicas completes and the
   * Service routes webhooks to it too; a replica whose start failed is not ready until it leads.
   */
  // Set once the campaign has started (after the health server, so a port in use fails before the Lease is taken).
  let election: LeaderElection | undefined = undefined;
  const readiness = (): Readiness => {
    if (operator) return operator.synced() ? { ready: true, reason: election ? "leading" : "ok" } : { ready: false, reason: "the watches have not listed yet" };
    const status = election?.status();
    switch (status?.role) {
      case undefined:
      case "leader":
        return { ready: false, reason: "starting the reconcilers and GitOps" };
      case "backing-off":
        return { ready: false, reason: `the start as the leader failed (${status.error}); campaigning again in ${Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000))} s` };
      case "candidate":
        return status.reachable
          ? { ready: true, reason: `standby: ${status.holder ? `${status.holder} leads` : "no leader yet"}` }
          : { ready: false, reason: "cannot reach the API server to campaign for the Lease" };
      case "stopped":
        return { ready: false, reason: "stopping" };
    }
  };
  const health = await startHealthServer({ port: Number(env.HTTP_PORT ?? 8080), ready: readiness });
  const lease = { namespace: env.POD_NAMESPACE ?? "slipway-system", name: env.LEADER_ELECTION_LEASE ?? "slipway-operator" };
  const campaign = env.LEADER_ELECTION === "true"
    ? await startLeaderElection({
      kube,
      ...lease,
      identity: env.POD_NAME ?? os.hostname(),
      onLease,
      onStartedLeading: lead,
      onStoppedLeading: async ({ lost }) => {
        // Not awaited: the shutdown stops the election, which is what called this.
        if (lost) void shutdown.shutdown("leader election lost", { exitCode: 1, timeoutMs: LOST_LEASE_STOP_MS });
        else await follow();
      },
    })
    : undefined;
  election = campaign;
  // In this order on SIGTERM: a leader stops its work, then hands the Lease over; then the endpoints close.
  if (campaign) shutdown.add("leader election", () => campaign.stop());
  shutdown.add("operator", follow);
  shutdown.add("health server", () => health.close());
  if (env.WEBHOOK_PORT) {
    const handOver = handOverWebhooks({
      kube, lease: campaign ? lease : undefined, webhookSecrets, namespace: options.namespace, previewDomain: options.platform?.domain,
    });
    const webhooks = await listenForWebhooks(Number(env.WEBHOOK_PORT), () => operator?.webhookHandler, handOver);
    shutdown.add("webhook receiver", () => webhooks.close());
  }
  if (!campaign) {
    try {
      await lead();
    } catch (err) {
      log.fatal({ err }, "exiting");
      await shutdown.shutdown("the start failed", { exitCode: 1 });
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    rootLog.fatal({ err: new Error("the operator failed to start", { cause: err }) }, "exiting");
    process.exit(1);
  });
}
