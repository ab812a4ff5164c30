// The Tekton v1 PipelineRun that builds one commit of an App, and how its outcome reads. Pure functions: the
// PipelineRun is fully determined by the App, the commit and the platform's pipeline settings, so a redelivered
// webhook or a restart computes the same name and never starts a second build of the same commit.
import { createHash } from "node:crypto";
import type {
  V1Affinity, V1EnvVar, V1HostAlias, V1LocalObjectReference, V1PodDNSConfig, V1PodSecurityContext, V1Toleration, V1TopologySpreadConstraint, V1Volume,
} from "@kubernetes/client-node";
import { API_VERSION, LABELS, MANAGED_BY, type App } from "../../crds/v1alpha1.js";
import { withoutCredentials } from "../redact.js";

export const TEKTON_API_VERSION = "tekton.dev/v1";
export const PIPELINE_RUN_KIND = "PipelineRun";

/** Label with the full source commit a PipelineRun builds. */
export const COMMIT_LABEL = "slipway.dev/commit";
/** Annotation Slipway sets on a finished PipelineRun once its outcome is recorded (Release cut or failure reported). */
export const RECORDED_ANNOTATION = "slipway.dev/build-recorded";

/** Where and how the platform builds; every field has a default. */
export interface PipelineSettings {
  /** Pipeline for Cloud Native Buildpacks builds; default "slipway-buildpacks" (samples/tekton). */
  buildpacksPipeline?: string;
  /** Pipeline for Dockerfile builds; default "slipway-dockerfile" (samples/tekton). */
  dockerfilePipeline?: string;
  /** Image repository prefix; the image is `<registry>/<namespace>/<app>:<short sha>`. Default "registry.slipway.local". */
  registry?: string;
  /** Buildpacks builder when the App names none; default "paketobuildpacks/builder-jammy-base:latest". */
  builderImage?: string;
  /** Tekton's pipeline timeout; a run over it fails with PipelineRunTimeout. Default "1h". */
  timeout?: string;
  /** ServiceAccount the build's TaskRuns run as (registry push credentials); default Tekton's. */
  serviceAccountName?: string;
  /**
   * ServiceAccount the builds of previews from forks run as instead: one whose credentials push preview images
   * only. Default "slipway-fork-build" (samples/tekton/fork-build-serviceaccount.yaml).
   */
  forkServiceAccountName?: string;
  /** Size of the per-App build PVC (the source checkout and the buildpacks cache); default "2Gi". */
  cacheSize?: string;
  /** Finished PipelineRuns kept per App; older ones are pruned. Default 3. */
  keep?: number;
  /** Tekton PodTemplate for the build's TaskRun pods (and the nodeSelector and tolerations of Tekton's affinity assistant); default none. */
  podTemplate?: PodTemplate;
}

/**
 * Tekton's PodTemplate (https://tekton.dev/docs/pipelines/podtemplates/): the part of a PodSpec that Tekton
 * applies to every TaskRun pod of a PipelineRun. The nested types are Kubernetes core/v1's.
 */
export interface PodTemplate {
  nodeSelector?: Record<string, string>;
  env?: V1EnvVar[];
  tolerations?: V1Toleration[];
  affinity?: V1Affinity;
  securityContext?: V1PodSecurityContext;
  volumes?: V1Volume[];
  runtimeClassName?: string;
  automountServiceAccountToken?: boolean;
  dnsPolicy?: "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" | "None";
  dnsConfig?: V1PodDNSConfig;
  enableServiceLinks?: boolean;
  priorityClassName?: string;
  schedulerName?: string;
  imagePullSecrets?: V1LocalObjectReference[];
  hostAliases?: V1HostAlias[];
  hostNetwork?: boolean;
  topologySpreadConstraints?: V1TopologySpreadConstraint[];
}

/**
 * What each PodTemplate field's JSON value is: an object, an object of strings, a list of objects (with a
 * string `name` each when "named list"), a string or a boolean. Every field of PodTemplate is here, and no other.
 */
export const POD_TEMPLATE_FIELDS: Readonly<Record<keyof PodTemplate, "object" | "strings" | "list" | "named list" | "string" | "boolean">> = {
  nodeSelector: "strings",
  env: "named list",
  tolerations: "list",
  affinity: "object",
  securityContext: "object",
  volumes: "named list",
  runtimeClassName: "string",
  automountServiceAccountToken: "boolean",
  dnsPolicy: "string",
  dnsConfig: "object",
  enableServiceLinks: "boolean",
  priorityClassName: "string",
  schedulerName: "string",
  imagePullSecrets: "named list",
  hostAliases: "list",
  hostNetwork: "boolean",
  topologySpreadConstraints: "list",
};

export const DEFAULT_SETTINGS: Required<Omit<PipelineSettings, "serviceAccountName" | "forkServiceAccountName" | "podTemplate">> = {
  buildpacksPipeline: "slipway-buildpacks",
  dockerfilePipeline: "slipway-dockerfile",
  registry: "registry.slipway.local",
  builderImage: "paketobuildpacks/builder-jammy-base:latest",
  timeout: "1h",
  cacheSize: "2Gi",
  keep: 3,
};

export function shortSha(commit: string): string {
  return commit.slice(0, 7);
}

/** The Built condition's message for a succeeded build, naming the release it became once there is one. */
export function builtMessage(commit: string, pipelineRun: string, image: string, release?: string): string {
  return `Built commit ${shortSha(commit)} in PipelineRun ${pipelineRun}: ${image}${release ? `, released as ${release}` : ""}`;
}

/** `<app>-build-<short sha>`; App names are at most 40 characters, so this fits a DNS label. */
export function pipelineRunName(app: string, commit: string): string {
  return `${app}-build-${shortSha(commit)}`;
}

/** The per-App build PVC, kept across builds: the source checkout (subPath source) and the buildpacks cache (subPath cache). */
export function cacheClaimName(app: string): string {
  return `${app}-build-cache`;
}

export function appImage(app: App, commit: string, settings: PipelineSettings = {}): string {
  const registry = (settings.registry ?? DEFAULT_SETTINGS.registry).replace(/\/+$/, "");
  return `${registry}/${app.metadata.namespace ?? "default"}/${app.metadata.name}:${shortSha(commit)}`;
}

export interface TektonParam {
  name: string;
  value: string;
}

export interface PipelineRun {
  apiVersion: typeof TEKTON_API_VERSION;
  kind: typeof PIPELINE_RUN_KIND;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
    [field: string]: unknown;
  };
  spec: {
    pipelineRef: { name: string };
    params: TektonParam[];
    workspaces: Record<string, unknown>[];
    timeouts?: { pipeline?: string };
    taskRunTemplate?: { serviceAccountName?: string; podTemplate?: PodTemplate };
    /** Tekton v1: "Cancelled" stops a running PipelineRun. */
    status?: string;
  };
  status?: {
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    results?: TektonParam[];
    startTime?: string;
    completionTime?: string;
  };
  [field: string]: unknown;
}

/** The PipelineRun that builds `commit` of `app` (App.spec.source must be set). */
export function buildPipelineRun(app: App, commit: string, settings: PipelineSettings = {}): PipelineRun {
  const source = app.spec.source;
  if (!source) throw new Error(`App ${app.metadata.name} has no spec.source to build`);
  const s = { ...DEFAULT_SETTINGS, ...settings };
  const subpath = source.path ?? "";
  const dockerfile = source.strategy === "dockerfile";
  // Params are readable by everyone who may read the PipelineRun, and end up in its TaskRuns' pods: never
  // credentials (the CRD refuses them in source.git; this covers an App admitted before it did). The clone
  // authenticates with source.credentialsSecret, bound as the basic-auth workspace.
  const gitUrl = withoutCredentials(source.git);
  const params: TektonParam[] = dockerfile
    ? [
      { name: "APP_IMAGE", value: appImage(app, commit, s) },
      { name: "DOCKERFILE", value: subpath ? `./${subpath}/Dockerfile` : "./Dockerfile" },
      { name: "CONTEXT", value: subpath ? `./${subpath}` : "./" },
      { name: "git-url", value: gitUrl },
      { name: "git-revision", value: commit },
    ]
    : [
      { name: "APP_IMAGE", value: appImage(app, commit, s) },
      { name: "BUILDER_IMAGE", value: source.builder ?? s.builderImage },
      { name: "SOURCE_SUBPATH", value: subpath },
      { name: "git-url", value: gitUrl },
      { name: "git-revision", value: commit },
    ];
  // One workspace, the App's build claim, which the Pipeline splits by subPath into the checkout and the cache.
  // With Tekton's default affinity assistant (coschedule: workspaces) a TaskRun may bind only one claim ("more
  // than one PersistentVolumeClaim is bound"), and one claim bound as two pipeline workspaces leaves the TaskRuns
  // waiting for an affinity assistant that Tekton never creates.
  const workspaces: Record<string, unknown>[] = [
    { name: "build", persistentVolumeClaim: { claimName: cacheClaimName(app.metadata.name) } },
  ];
  if (source.credentialsSecret) workspaces.push({ name: "basic-auth", secret: { secretName: source.credentialsSecret } });
  const run: PipelineRun = {
    apiVersion: TEKTON_API_VERSION,
    kind: PIPELINE_RUN_KIND,
    metadata: {
      name: pipelineRunName(app.metadata.name, commit),
      namespace: app.metadata.namespace,
      labels: {
        [LABELS.app]: app.metadata.name,
        [COMMIT_LABEL]: commit,
        [LABELS.managedBy]: MANAGED_BY,
      },
      ownerReferences: [ownerReference(app)],
    },
    spec: {
      pipelineRef: { name: dockerfile ? s.dockerfilePipeline : s.buildpacksPipeline },
      params,
      workspaces,
      timeouts: { pipeline: s.timeout },
    },
  };
  if (settings.serviceAccountName || settings.podTemplate) {
    run.spec.taskRunTemplate = {};
    if (settings.serviceAccountName) run.spec.taskRunTemplate.serviceAccountName = settings.serviceAccountName;
    // A copy: every PipelineRun gets its own, so changing one run's never changes the settings or another run's.
    if (settings.podTemplate) run.spec.taskRunTemplate.podTemplate = structuredClone(settings.podTemplate);
  }
  return run;
}

export function ownerReference(app: App): { apiVersion: string; kind: string; name: string; uid: string; controller: boolean; blockOwnerDeletion: boolean } {
  if (!app.metadata.uid) throw new Error(`App ${app.metadata.name} has no uid; read it from the API server first`);
  return { apiVersion: API_VERSION, kind: "App", name: app.metadata.name, uid: app.metadata.uid, controller: true, blockOwnerDeletion: true };
}

export type BuildOutcome =
  | { phase: "Running" }
  | { phase: "Succeeded"; image: string }
  | { phase: "Failed"; reason: string; message: string };

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * Reads a PipelineRun the way Tekton reports it: condition Succeeded (Unknown while running), and the results
 * APP_IMAGE_DIGEST and APP_IMAGE_URL. A run that "succeeded" without a digest is a failed build: there is
 * nothing to deploy by digest.
 */
export function buildOutcome(run: PipelineRun): BuildOutcome {
  const cond = run.status?.conditions?.find((c) => c.type === "Succeeded");
  if (!cond || cond.status === "Unknown") return { phase: "Running" };
  if (cond.status !== "True") {
    return { phase: "Failed", reason: cond.reason ?? "Failed", message: cond.message ?? "the PipelineRun failed" };
  }
  const result = (name: string) => run.status?.results?.find((r) => r.name === name)?.value?.trim();
  const digest = result("APP_IMAGE_DIGEST");
  if (!digest || !DIGEST.test(digest)) {
    return { phase: "Failed", reason: "NoImageDigest", message: `the PipelineRun reported no APP_IMAGE_DIGEST result of the form sha256:<64 hex> (got ${JSON.stringify(digest ?? null)})` };
  }
  const param = run.spec.params.find((p) => p.name === "APP_IMAGE")?.value;
  const url = result("APP_IMAGE_URL") ?? param;
  if (!url) return { phase: "Failed", reason: "NoImageUrl", message: "the PipelineRun reported no APP_IMAGE_URL and has no APP_IMAGE param" };
  return { phase: "Succeeded", image: `${imageRepository(url)}@${digest}` };
}

/** The parts of a Tekton v1 TaskRun that say why it failed. */
export interface TaskRunSummary {
  metadata: { name: string; labels?: Record<string, string> };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/**
 * Why a PipelineRun's tasks failed, in Tekton's words: each failed TaskRun with its pipeline task and its
 * Succeeded message (which names the step, e.g. `"step-create" exited with code 1: Error`). Undefined when no
 * TaskRun failed (a timeout or a cancellation before any task failed).
 */
export function failedTasks(taskRuns: readonly TaskRunSummary[]): string | undefined {
  const failed = taskRuns.flatMap((tr) => {
    const cond = tr.status?.conditions?.find((c) => c.type === "Succeeded");
    if (cond?.status !== "False" || cond.reason === "TaskRunCancelled") return [];
    const task = tr.metadata.labels?.["tekton.dev/pipelineTask"];
    return [`task ${task ?? tr.metadata.name} (TaskRun ${tr.metadata.name}) ${cond.reason ?? "Failed"}: ${cond.message ?? "no message"}`];
  });
  return failed.length ? failed.sort().join("; ") : undefined;
}

/** registry/repo:tag@sha256:… → registry/repo (a registry port's colon is kept). */
export function imageRepository(image: string): string {
  const noDigest = image.split("@")[0] ?? image;
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** A DNS label of at most `max` characters: kept as is when it fits, else cut and suffixed with a short hash. */
export function fitName(name: string, max: number): string {
  if (name.length <= max) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 6);
  return `${name.slice(0, max - 7).replace(/-+$/, "")}-${hash}`;
}
