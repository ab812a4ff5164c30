// The operator program: health and metrics endpoints, Lease leader election when enabled, the webhook receiver
// and graceful shutdown around Slipway's platform (platform.ts), configured from the environment
// (operator/deploy/deployment.yaml).
import os from "node:os";
import { pathToFileURL } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { startHealthServer } from "./http.js";
import { Kube } from "./kube.js";
import { startLeaderElection } from "./leader.js";
import { log as rootLog } from "./log.js";
import { gitopsFromEnv, listenForWebhooks, platformFromEnv, startPlatform, type Platform, type PlatformOptions } from "./platform.js";
import { handleShutdown } from "./shutdown.js";

/** Runs the operator as a program: health/metrics server, leader election (when enabled), graceful shutdown. */
async function main(): Promise<void> {
  const env = process.env;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const kube = new Kube(kubeConfig);
  const options: PlatformOptions = {
    kube,
    platform: platformFromEnv(env),
    concurrency: env.RECONCILE_CONCURRENCY ? Number(env.RECONCILE_CONCURRENCY) : undefined,
    namespace: env.WATCH_NAMESPACE || undefined,
  };
  const shutdown = handleShutdown();
  let operator: Platform | undefined;
  let starting: Promise<void> | undefined;
  // Only the leader reconciles, commits and receives webhooks; a standby waits for the Lease.
  const lead = () => {
    starting ??= startPlatform({
      ...options,
      gitops: gitopsFromEnv(env),
      builds: env.SLIPWAY_BUILDS === "true" ? { pollIntervalMs: Number(env.SLIPWAY_SOURCE_POLL_SECONDS ?? 60) * 1000 } : undefined,
      webhookSecret: env.SLIPWAY_WEBHOOK_SECRET || undefined,
    }).then((handle) => {
      operator = handle;
    });
    return starting;
  };
  const follow = async () => {
    await starting?.catch(() => undefined);
    const handle = operator;
    operator = undefined;
    starting = undefined;
    await handle?.stop();
  };
  const health = await startHealthServer({
    port: Number(env.HTTP_PORT ?? 8080),
    ready: () => operator?.synced() ?? env.LEADER_ELECTION === "true",
  });
  if (env.LEADER_ELECTION === "true") {
    const election = await startLeaderElection({
      kubeConfig,
      namespace: env.POD_NAMESPACE ?? "slipway-system",
      name: env.LEADER_ELECTION_LEASE ?? "slipway-operator",
      identity: env.POD_NAME ?? os.hostname(),
      onStartedLeading: lead,
      onStoppedLeading: follow,
    });
    shutdown.add("leader election", () => election.stop());
  } else {
    // Registered first: a SIGTERM during startup waits for the start, then stops what it started.
    shutdown.add("operator", follow);
    await lead();
  }
  shutdown.add("health server", () => health.close());
  if (env.WEBHOOK_PORT) {
    const webhooks = await listenForWebhooks(Number(env.WEBHOOK_PORT), () => operator?.webhookHandler);
    shutdown.add("webhook receiver", () => webhooks.close());
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    rootLog.fatal({ err: new Error("the operator failed to start", { cause: err }) }, "exiting");
    process.exit(1);
  });
}
