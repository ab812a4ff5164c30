// Slipway as one unit: the App controller (startOperator), GitOps (startGitOps), builds and previews
// (startBuilds) and the webhook receiver that Git hosts call, sharing one API client and one informer cache.
// The operator program (main.ts) and the embedded default (local/main.ts) both start it through here, so they
// cannot drift apart; both read their settings from the environment with the *FromEnv functions below.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { DEFAULT_PREVIEW_LIMITS, placementErrors, quantityValue, type Placement, type PlatformSettings, type Toleration } from "../functions/render.js";
import { startBuilds, type Builds } from "./builds/index.js";
import { POD_TEMPLATE_FIELDS, type PipelineSettings, type PodTemplate } from "./builds/pipelinerun.js";
import { DEFAULT_FORK_SERVICE_ACCOUNT } from "./builds/previews.js";
import { startGitOps, type FluxRef, type FluxTargets, type GitOpsHandle, type GitOpsOptions } from "./gitops/index.js";
import { log as rootLog, partLogger } from "./log.js";
import { startOperator, type OperatorHandle } from "./controller.js";
import type { Kube } from "./kube.js";

export interface PlatformOptions {
  /** The process's one API client; every loop writes through it (GitOps as its own field manager). */
  kube: Kube;
  platform?: Partial<PlatformSettings>;
  namespace?: string;
  concurrency?: number;
  /** Watch Secrets' metadata so a Secret changed with plain kubectl rolls out at once (OperatorOptions.watchSecrets). */
  watchSecrets?: boolean;
  /** The config repository; without it Slipway runs without GitOps (releases are not committed). */
  gitops?: Omit<GitOpsOptions, "kube" | "cache" | "namespace" | "webhookSecret">;
  /** Builds from source with Tekton; without it Apps with a `source` wait for a build forever. */
  builds?: { pollIntervalMs: number; pipeline?: PipelineSettings };
  /** Webhook secrets: the config repository's, and the fallback for source repositories whose App names none. */
  webhookSecrets?: WebhookSecrets;
}

/**
 * The platform's webhook secrets (webhookSecretsFromEnv). Each source repository's own secret is named by the
 * Apps that build it (spec.source.webhookSecret), in their namespace.
 */
export interface WebhookSecrets {
  /** Signs pushes to the config repository (POST /webhooks/config); without it those webhooks are refused. */
  config?: string;
  /**
   * Accepted on POST /webhooks/source only for Apps whose spec.source names no webhookSecret; without it those
   * Apps are built by polling only. Whoever knows it can start builds of every such App.
   */
  sourceFallback?: string;
}

export interface Platform {
  operator: OperatorHandle;
  gitops?: GitOpsHandle;
  builds?: Builds;
  /** Routes POST /webhooks/config (config repository pushes) and POST /webhooks/source (source pushes, PRs). */
  webhookHandler(req: IncomingMessage, res: ServerResponse): void;
  synced(): boolean;
  stop(): Promise<void>;
}

export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const log = partLogger(rootLog, "platform");
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.error({ err }, "stopping failed"));
  };
  try {
    const operator = await startOperator({
      kube: options.kube, platform: options.platform, namespace: options.namespace, concurrency: options.concurrency,
      watchSecrets: options.watchSecrets,
    });
    stops.push(() => operator.stop());
    const gitops = options.gitops
      ? await startGitOps({ ...options.gitops, kube: options.kube, cache: operator.cache, namespace: options.namespace, webhookSecret: options.webhookSecrets?.config })
      : undefined;
    if (gitops) stops.push(() => gitops.stop());
    const builds = options.builds
      ? await startBuilds({
        kube: options.kube, informers: operator.informers, namespace: options.namespace, pollIntervalMs: options.builds.pollIntervalMs,
        webhookSecret: options.webhookSecrets?.sourceFallback, previewDomain: options.platform?.domain, cache: operator.cache, pipeline: options.builds.pipeline,
      })
      : undefined;
    if (builds) stops.push(() => builds.stop());

    const routes: Record<string, ((req: IncomingMessage, res: ServerResponse) => void) | undefined> = {
      "/webhooks/config": gitops?.webhookHandler,
      "/webhooks/source": builds?.webhookHandler,
    };
    const webhookHandler = (req: IncomingMessage, res: ServerResponse) => {
      const handler = req.method === "POST" ? routes[new URL(req.url ?? "/", "http://x").pathname] : undefined;
      if (handler) return handler(req, res);
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: POST /webhooks/config or /webhooks/source\n");
    };
    return { operator, gitops, builds, webhookHandler, synced: () => operator.synced(), stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function notServing(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(503, { "content-type": "text/plain", "retry-after": "5" }).end("the operator is not serving yet\n");
}

/**
 * Listens for Git hosts' webhooks on every replica. `handler()` gives the platform's handler where it runs (the
 * leader, or the only replica); elsewhere (a standby, a leader still starting) `handOver` verifies the delivery
 * and asks the leader for the work through the cluster (receiver.ts), so no replica turns a delivery away.
 */
export async function listenForWebhooks(port: number, handler: () => Platform["webhookHandler"] | undefined,
  handOver: Platform["webhookHandler"] = notServing): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => (handler() ?? handOver)(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", (cause) => reject(new Error(`webhook receiver: cannot listen on port ${port}`, { cause })));
    server.listen(port, resolve);
  });
  rootLog.info({ port: (server.address() as AddressInfo).port }, "webhook receiver listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** "namespace/name" into a reference; throws naming the variable when it is not that. */
function fluxRef(variable: string, value: string): FluxRef {
  const [namespace, name, ...rest] = value.split("/");
  if (!namespace || !name || rest.length) throw new Error(`${variable} must be namespace/name, not ${JSON.stringify(value)}`);
  return { namespace, name };
}

/** The Flux objects that apply the config repository: SLIPWAY_FLUX_GITREPOSITORY and SLIPWAY_FLUX_KUSTOMIZATION, both or neither. */
export function fluxFromEnv(env: NodeJS.ProcessEnv): FluxTargets | undefined {
  const source = env.SLIPWAY_FLUX_GITREPOSITORY;
  const kustomization = env.SLIPWAY_FLUX_KUSTOMIZATION;
  if (!source && !kustomization) return undefined;
  if (!source || !kustomization) throw new Error("SLIPWAY_FLUX_GITREPOSITORY and SLIPWAY_FLUX_KUSTOMIZATION are set together (namespace/name each)");
  return { gitRepository: fluxRef("SLIPWAY_FLUX_GITREPOSITORY", source), kustomization: fluxRef("SLIPWAY_FLUX_KUSTOMIZATION", kustomization) };
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
    ...argocdFromEnv(env.SLIPWAY_ARGOCD_APPLICATION),
    flux: fluxFromEnv(env),
  };
}

/** SLIPWAY_ARGOCD_APPLICATION="<namespace>/<name>": the Argo CD Application that applies the repository. */
function argocdFromEnv(value: string | undefined): { argocd?: { application: { namespace: string; name: string } } } {
  if (!value) return {};
  const [namespace, name, ...rest] = value.split("/");
  if (!namespace || !name || rest.length) {
    throw new Error(`SLIPWAY_ARGOCD_APPLICATION must be "<namespace>/<name>" of an Argo CD Application, not ${JSON.stringify(value)}`);
  }
  return { argocd: { application: { namespace, name } } };
}

/**
 * The webhook secrets from the environment: SLIPWAY_CONFIG_WEBHOOK_SECRET (the config repository) and
 * SLIPWAY_SOURCE_WEBHOOK_SECRET (the fallback for Apps that name no spec.source.webhookSecret). The single
 * secret that once signed both, SLIPWAY_WEBHOOK_SECRET, is refused rather than given either meaning in silence.
 */
export function webhookSecretsFromEnv(env: NodeJS.ProcessEnv): WebhookSecrets {
  if (env.SLIPWAY_WEBHOOK_SECRET) {
    throw new Error("SLIPWAY_WEBHOOK_SECRET is no longer read: set SLIPWAY_CONFIG_WEBHOOK_SECRET for the config repository, " +
      "and spec.source.webhookSecret on each App (or SLIPWAY_SOURCE_WEBHOOK_SECRET, a fallback for Apps that name none)");
  }
  return { config: env.SLIPWAY_CONFIG_WEBHOOK_SECRET || undefined, sourceFallback: env.SLIPWAY_SOURCE_WEBHOOK_SECRET || undefined };
}

/** Platform settings from the environment (the slipway-operator Secret). */
export function platformFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<PlatformSettings> {
  const platform: Partial<PlatformSettings> = {};
  if (env.SLIPWAY_DOMAIN) platform.domain = env.SLIPWAY_DOMAIN;
  if (env.SLIPWAY_ROUTING === "ingress" || env.SLIPWAY_ROUTING === "gateway") platform.routing = env.SLIPWAY_ROUTING;
  if (env.SLIPWAY_INGRESS_CLASS) platform.ingressClassName = env.SLIPWAY_INGRESS_CLASS;
  if (env.SLIPWAY_GATEWAY_NAME) platform.gateway = { name: env.SLIPWAY_GATEWAY_NAME, namespace: env.SLIPWAY_GATEWAY_NAMESPACE || undefined };
  if (env.SLIPWAY_PROGRESS_DEADLINE_SECONDS) platform.progressDeadlineSeconds = Number(env.SLIPWAY_PROGRESS_DEADLINE_SECONDS);
  const cpu = env.SLIPWAY_PREVIEW_CPU_LIMIT || DEFAULT_PREVIEW_LIMITS.cpu;
  const memory = env.SLIPWAY_PREVIEW_MEMORY_LIMIT || DEFAULT_PREVIEW_LIMITS.memory;
  for (const [variable, value] of [["SLIPWAY_PREVIEW_CPU_LIMIT", cpu], ["SLIPWAY_PREVIEW_MEMORY_LIMIT", memory]] as const) {
    if (!(quantityValue(value) > 0)) throw new Error(`${variable} must be a positive quantity such as 500m or 512Mi, not ${JSON.stringify(value)}`);
  }
  platform.previewLimits = { cpu, memory };
  const placement = placementFromEnv(env);
  if (placement) platform.placement = placement;
  return platform;
}

/**
 * Where the pods Slipway renders run: SLIPWAY_NODE_SELECTOR ("key=value,key2=value2") and SLIPWAY_TOLERATIONS
 * (comma-separated, as `kubectl taint` writes taints: "key=value:Effect" tolerates that taint, "key:Effect" or
 * "key" any value of the key, an effect left out any effect). Neither set: undefined, the scheduler decides.
 */
export function placementFromEnv(env: NodeJS.ProcessEnv): Placement | undefined {
  const placement: Placement = {};
  const selector = env.SLIPWAY_NODE_SELECTOR?.trim();
  if (selector) {
    placement.nodeSelector = {};
    for (const part of selector.split(",").map((p) => p.trim()).filter(Boolean)) {
      const eq = part.indexOf("=");
      if (eq <= 0) throw new Error(`SLIPWAY_NODE_SELECTOR must be key=value pairs separated by commas, not ${JSON.stringify(part)} in ${JSON.stringify(selector)}`);
      placement.nodeSelector[part.slice(0, eq)] = part.slice(eq + 1);
    }
  }
  const tolerations = env.SLIPWAY_TOLERATIONS?.trim();
  if (tolerations) placement.tolerations = tolerations.split(",").map((p) => p.trim()).filter(Boolean).map(toleration);
  const errors = placementErrors(placement);
  if (errors.length) throw new Error(`SLIPWAY_NODE_SELECTOR / SLIPWAY_TOLERATIONS: ${errors.join("; ")}`);
  return placement.nodeSelector || placement.tolerations ? placement : undefined;
}

/** "key=value:Effect", "key:Effect", "key=value" or "key" into a toleration. */
function toleration(text: string): Toleration {
  const colon = text.lastIndexOf(":");
  const effect = colon >= 0 ? text.slice(colon + 1) : undefined;
  const keyValue = colon >= 0 ? text.slice(0, colon) : text;
  const eq = keyValue.indexOf("=");
  const key = eq >= 0 ? keyValue.slice(0, eq) : keyValue;
  if (!key) throw new Error(`SLIPWAY_TOLERATIONS entries are key=value:Effect, key:Effect or key, not ${JSON.stringify(text)}`);
  const out: Toleration = eq >= 0 ? { key, operator: "Equal", value: keyValue.slice(eq + 1) } : { key, operator: "Exists" };
  if (effect !== undefined) out.effect = effect as Toleration["effect"];
  return out;
}

/**
 * Build settings from the environment: the ServiceAccounts builds run as (see samples/tekton), the registry
 * images are pushed to, the default buildpacks builder, and the Tekton PodTemplate of the build pods.
 */
export function pipelineFromEnv(env: NodeJS.ProcessEnv = process.env): PipelineSettings {
  const pipeline: PipelineSettings = {};
  if (env.SLIPWAY_BUILD_SERVICE_ACCOUNT) pipeline.serviceAccountName = env.SLIPWAY_BUILD_SERVICE_ACCOUNT;
  if (env.SLIPWAY_FORK_BUILD_SERVICE_ACCOUNT) pipeline.forkServiceAccountName = env.SLIPWAY_FORK_BUILD_SERVICE_ACCOUNT;
  if ((pipeline.forkServiceAccountName ?? DEFAULT_FORK_SERVICE_ACCOUNT) === pipeline.serviceAccountName) {
    throw new Error("SLIPWAY_FORK_BUILD_SERVICE_ACCOUNT must differ from SLIPWAY_BUILD_SERVICE_ACCOUNT: builds of forks must not get the push credentials of other builds");
  }
  if (env.SLIPWAY_BUILD_REGISTRY) {
    // appImage drops trailing slashes too; what is left is <registry>/<namespace>/<app>:<short sha>'s first part.
    const registry = env.SLIPWAY_BUILD_REGISTRY.replace(/\/+$/, "");
    if (!REGISTRY.test(registry)) {
      throw new Error(`SLIPWAY_BUILD_REGISTRY must be a registry host[:port] with an optional /path, such as registry.example.com:5000/builds, not ${JSON.stringify(env.SLIPWAY_BUILD_REGISTRY)}`);
    }
    const host = registry.split("/")[0] ?? "";
    if (!host.includes(".") && !host.includes(":") && host !== "localhost") {
      throw new Error(`SLIPWAY_BUILD_REGISTRY must start with a registry host that has a dot or a port (or is localhost), not ${JSON.stringify(env.SLIPWAY_BUILD_REGISTRY)}: ` +
        `image tools read ${JSON.stringify(`${registry}/<namespace>/<app>`)} as a Docker Hub repository`);
    }
    pipeline.registry = registry;
  }
  if (env.SLIPWAY_BUILDER_IMAGE) {
    if (!IMAGE_REFERENCE.test(env.SLIPWAY_BUILDER_IMAGE)) {
      throw new Error(`SLIPWAY_BUILDER_IMAGE must be an image reference such as paketobuildpacks/builder-jammy-base:latest, not ${JSON.stringify(env.SLIPWAY_BUILDER_IMAGE)}`);
    }
    pipeline.builderImage = env.SLIPWAY_BUILDER_IMAGE;
  }
  if (env.SLIPWAY_BUILD_POD_TEMPLATE) pipeline.podTemplate = podTemplate(env.SLIPWAY_BUILD_POD_TEMPLATE);
  return pipeline;
}

// The grammar of image references (github.com/distribution/reference): a domain with an optional port, then
// lowercase path components; a tag and a digest after the name. IPv6 registry addresses are not accepted.
const DOMAIN = String.raw`(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?`;
const PATH_COMPONENT = String.raw`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`;
const TAG = String.raw`[\w][\w.-]{0,127}`;
const DIGEST = String.raw`[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`;
/** A registry and an optional path under it: what comes before `/<namespace>/<app>:<tag>` in a build's image. */
const REGISTRY = new RegExp(`^${DOMAIN}(?:/${PATH_COMPONENT})*$`);
/** A full image reference: [registry/]path[:tag][@digest]. */
const IMAGE_REFERENCE = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::${TAG})?(?:@${DIGEST})?$`);

const DNS_POLICIES: readonly string[] = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"] satisfies PodTemplate["dnsPolicy"][];

/**
 * SLIPWAY_BUILD_POD_TEMPLATE: a JSON object with Tekton PodTemplate fields only, each of the right JSON type.
 * What is inside the fields (a toleration's keys, an affinity's terms) is left to Tekton and the API server,
 * which refuse a malformed one when the build's pods are created.
 */
function podTemplate(text: string): PodTemplate {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`SLIPWAY_BUILD_POD_TEMPLATE must be a JSON object (a Tekton PodTemplate), but it is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed)) {
    throw new Error(`SLIPWAY_BUILD_POD_TEMPLATE must be a JSON object (a Tekton PodTemplate), not ${jsonKind(parsed)}`);
  }
  const errors: string[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    if (!Object.hasOwn(POD_TEMPLATE_FIELDS, key)) {
      errors.push(`${JSON.stringify(key)} is not a Tekton PodTemplate field (those are ${Object.keys(POD_TEMPLATE_FIELDS).join(", ")})`);
      continue;
    }
    const kind = POD_TEMPLATE_FIELDS[key as keyof PodTemplate];
    if (!FIELD_KINDS[kind].test(value)) errors.push(`${key} must be ${FIELD_KINDS[kind].is}, not ${jsonKind(value)}`);
    else if (key === "dnsPolicy" && !DNS_POLICIES.includes(value as string)) {
      errors.push(`dnsPolicy must be one of ${DNS_POLICIES.join(", ")}, not ${jsonKind(value)}`);
    }
  }
  if (errors.length) throw new Error(`SLIPWAY_BUILD_POD_TEMPLATE: ${errors.join("; ")}`);
  return parsed as PodTemplate;
}

const FIELD_KINDS: Record<(typeof POD_TEMPLATE_FIELDS)[keyof PodTemplate], { is: string; test(value: unknown): boolean }> = {
  object: { is: "an object", test: isObject },
  strings: { is: "an object of strings", test: (v) => isObject(v) && Object.values(v).every((s) => typeof s === "string") },
  list: { is: "a list of objects", test: (v) => Array.isArray(v) && v.every(isObject) },
  "named list": { is: "a list of objects with a name each", test: (v) => Array.isArray(v) && v.every((o) => isObject(o) && typeof o.name === "string" && o.name !== "") },
  string: { is: "a non-empty string", test: (v) => typeof v === "string" && v !== "" },
  boolean: { is: "true or false", test: (v) => typeof v === "boolean" },
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What a JSON value is, for messages: "an array", "null", "a string" and so on. */
function jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "number") return `the number ${value}`;
  return String(value);
}
