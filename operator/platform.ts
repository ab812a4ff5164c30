// Slipway as one unit: the reconcilers (startOperator), GitOps (startGitOps), builds and previews
// (startBuilds) and the webhook receiver that Git hosts call. The operator program (main.ts) and the embedded
// default (local.ts) both start it through here, so they cannot drift apart.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { KubeConfig } from "@kubernetes/client-node";
import type { PlatformSettings } from "../functions/render.js";
import { startBuilds, type Builds } from "./builds/index.js";
import { startGitOps, type GitOpsHandle, type GitOpsOptions } from "./gitops/index.js";
import { log as rootLog } from "./log.js";
import { startOperator, type OperatorHandle } from "./main.js";

export interface PlatformOptions {
  kubeConfig: KubeConfig;
  platform?: Partial<PlatformSettings>;
  namespace?: string;
  concurrency?: number;
  /** The config repository; without it Slipway runs without GitOps (releases are not committed). */
  gitops?: Omit<GitOpsOptions, "kubeConfig" | "namespace" | "webhookSecret">;
  /** Builds from source with Tekton; without it Apps with a `source` wait for a build forever. */
  builds?: { pollIntervalMs: number };
  /** Secret the Git hosts sign webhooks with (both the config repository's and the sources'). */
  webhookSecret?: string;
  /** Port for the webhook receiver (POST /webhooks/config, POST /webhooks/source); 0 picks one; undefined: none. */
  webhookPort?: number;
}

export interface Platform {
  operator: OperatorHandle;
  gitops?: GitOpsHandle;
  builds?: Builds;
  /** Port of the webhook receiver, when one runs. */
  webhookPort?: number;
  synced(): boolean;
  stop(): Promise<void>;
}

export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const log = rootLog.child({ component: "platform" });
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.error({ err }, "stopping failed"));
  };
  try {
    const operator = await startOperator({
      kubeConfig: options.kubeConfig, platform: options.platform, namespace: options.namespace, concurrency: options.concurrency,
    });
    stops.push(() => operator.stop());
    const gitops = options.gitops
      ? await startGitOps({ ...options.gitops, kubeConfig: options.kubeConfig, namespace: options.namespace, webhookSecret: options.webhookSecret })
      : undefined;
    if (gitops) stops.push(() => gitops.stop());
    const builds = options.builds
      ? await startBuilds({
        kubeConfig: options.kubeConfig, namespace: options.namespace, pollIntervalMs: options.builds.pollIntervalMs,
        webhookSecret: options.webhookSecret, previewDomain: options.platform?.domain,
      })
      : undefined;
    if (builds) stops.push(() => builds.stop());

    let webhookPort: number | undefined;
    if (options.webhookPort !== undefined) {
      const routes: Record<string, ((req: IncomingMessage, res: ServerResponse) => void) | undefined> = {
        "/webhooks/config": gitops?.webhookHandler,
        "/webhooks/source": builds?.webhookHandler,
      };
      const server = createServer((req, res) => {
        const handler = req.method === "POST" ? routes[new URL(req.url ?? "/", "http://x").pathname] : undefined;
        if (handler) return handler(req, res);
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: POST /webhooks/config or /webhooks/source\n");
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", (cause) => reject(new Error(`webhook receiver: cannot listen on port ${options.webhookPort}`, { cause })));
        server.listen(options.webhookPort, resolve);
      });
      webhookPort = (server.address() as AddressInfo).port;
      stops.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
      log.info({ port: webhookPort }, "webhook receiver listening");
    }
    return { operator, gitops, builds, webhookPort, synced: () => operator.synced(), stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Platform options from the operator's environment (see operator/deploy/deployment.yaml). */
export function gitopsFromEnv(env: NodeJS.ProcessEnv): PlatformOptions["gitops"] {
  if (!env.SLIPWAY_GIT_URL) return undefined;
  const mode = env.SLIPWAY_GIT_MODE === "commit-only" ? "commit-only" : "sync";
  return {
    repo: {
      url: env.SLIPWAY_GIT_URL,
      branch: env.SLIPWAY_GIT_BRANCH || undefined,
      credentials: env.SLIPWAY_GIT_USERNAME ? { username: env.SLIPWAY_GIT_USERNAME, password: env.SLIPWAY_GIT_PASSWORD ?? "" } : undefined,
      dir: env.SLIPWAY_GIT_DIR ?? "/tmp/slipway-config",
    },
    mode,
    pollIntervalMs: Number(env.SLIPWAY_GIT_POLL_SECONDS ?? 60) * 1000,
  };
}
