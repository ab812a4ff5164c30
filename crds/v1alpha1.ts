// The Slipway API (group slipway.dev, version v1alpha1): App, Config and Release.
// These types mirror the CustomResourceDefinitions in this directory; the CRDs are the source of truth for
// validation, these interfaces are what the operator, the render function and the CLI read and write.

export const GROUP = "slipway.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Labels and annotations Slipway sets or reads. */
export const LABELS = {
  app: "slipway.dev/app",
  release: "slipway.dev/release",
  process: "slipway.dev/process",
  preview: "slipway.dev/preview",
  name: "app.kubernetes.io/name",
  version: "app.kubernetes.io/version",
  component: "app.kubernetes.io/component",
  managedBy: "app.kubernetes.io/managed-by",
} as const;

export const ANNOTATIONS = {
  /** "true" on a preview App whose pull request comes from a fork: no parent secrets, no ServiceAccount token. */
  previewFork: "slipway.dev/preview-fork",
  /** Set on an App to roll back: the value is a release version such as "v5". */
  rollback: "slipway.dev/rollback-to",
  /**
   * Who asked for a change; set by clients (the CLI sets it; admission checks it is the requesting user) and by
   * GitOps to a Git commit's author when it applies a change from Git. Read into release causes and commits;
   * never written to Git (the commit itself says who).
   */
  changedBy: "slipway.dev/changed-by",
  /**
   * Set by GitOps on an App or Config it applies from Git: the short id of the commit that changed the file, and
   * for a `git revert` of a release commit, the release it reverts ("v2"). The release the change cuts names
   * them ("revert of v2 (git 2c0d82e by alice@example.com)"). Never written to Git.
   */
  gitCommit: "slipway.dev/git-commit",
  gitRevertOf: "slipway.dev/git-revert-of",
  /**
   * Marks a hold of a cluster change from Flux (with Flux's reconcile annotation, see FLUX_METADATA), set by the
   * CLI or GitOps and removed by GitOps once Flux's source has the change's commit. Never written to Git.
   */
  fluxHold: "slipway.dev/flux-hold",
  /**
   * Set on an App by a replica that received a verified source webhook but does not lead (an RFC 3339 time):
   * the leader polls the App's source branch and builds its head. Like Flux's `reconcile.fluxcd.io/requestedAt`.
   * Never written to Git.
   */
  requestedAt: "slipway.dev/reconcile-requested-at",
  /**
   * Set on the operator's Lease by a replica that received a verified config repository webhook but does not
   * lead (an RFC 3339 time): the leader, which reads the Lease at every renewal, syncs with the repository.
   */
  syncRequestedAt: "slipway.dev/sync-requested-at",
  /**
   * Set on a Config by the CLI when it writes a value into the Secret `<app>-env` (the Secret's resourceVersion
   * after the write): the operator does not watch Secrets, so this change of the Config is what makes it read the
   * Secret again and roll out a changed value. Never written to Git.
   */
  secretVersion: "slipway.dev/secret-version",
  /**
   * On a Deployment's pod template: a checksum of the live release's secretDigests, so a changed secret value
   * rolls the pods out (they read Secrets only when they start).
   */
  secretChecksum: "slipway.dev/secret-checksum",
} as const;

/** Flux's own metadata that Slipway reads or sets on its objects (operator/gitops/flux.ts). */
export const FLUX_METADATA = {
  /** The label kustomize-controller puts on what it applies: the object is Flux's to apply. */
  name: "kustomize.toolkit.fluxcd.io/name",
  /** "disabled" on an in-cluster object: kustomize-controller skips it (apply and prune). */
  reconcile: "kustomize.toolkit.fluxcd.io/reconcile",
  /** "disabled": kustomize-controller never prunes the object. Every Release carries it. */
  prune: "kustomize.toolkit.fluxcd.io/prune",
} as const;

export const MANAGED_BY = "slipway";

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: unknown[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** A kstatus condition (metav1.Condition). */
export interface Condition {
  type: "Ready" | "Reconciling" | "Stalled" | "Built" | string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

// ---------------------------------------------------------------------------------------------- App

/** Where an App's code comes from when it is built from source. */
export interface GitSource {
  /** Git URL of the source repository (https://, http:// or a local path in the embedded default). */
  git: string;
  /** Branch to build; default "main". */
  branch?: string;
  /** Subdirectory of the repository that holds the app; default the repository root. */
  path?: string;
  /** Name of a Secret (same namespace) with `username`/`password` for the source repository. */
  credentialsSecret?: string;
  /**
   * The Secret key (same namespace) holding the secret this repository's webhooks are signed with; key default
   * "secret". Without it only the platform's fallback source webhook secret, if any, is accepted.
   */
  webhookSecret?: { name: string; key?: string };
  /** How to build: Cloud Native Buildpacks (default) or the Dockerfile at `path`. */
  strategy?: "buildpacks" | "dockerfile";
  /** Buildpacks builder image; default is the platform's. */
  builder?: string;
}

export interface HttpProbe {
  /** HTTP path to GET; default "/". */
  path?: string;
  /** Port; default the routing port. */
  port?: number;
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}

export interface Autoscale {
  min: number;
  max: number;
  /** Target average CPU utilization in percent; default 80. */
  cpuPercent?: number;
}

/** One process type (web, worker, …). */
export interface ProcessSpec {
  /** Command to run, overriding the Procfile entry of the release. */
  command?: string[];
  /** Replicas when not autoscaled; default 1 for web, 0 for others without a declared count. */
  replicas?: number;
  autoscale?: Autoscale;
  readiness?: HttpProbe;
  liveness?: HttpProbe;
}

export interface Routing {
  /** Hosts that route to the web process, in addition to the platform's default host. */
  domains?: string[];
  /** TLS for the hosts: the Secret holding the certificate (kubernetes.io/tls). */
  tls?: { secretName: string };
  /** Container port the web process listens on; default 8080 (also given as $PORT). */
  port?: number;
  /** Path prefix routed to the app; default "/". */
  path?: string;
  /** Set false to run web without a Service/route; default true. */
  enabled?: boolean;
}

export interface Previews {
  enabled: boolean;
  /** How long an idle preview lives, as a Go-style duration ("72h"); default "168h". */
  ttl?: string;
  /** Host template; `{app}`, `{pr}` and `{namespace}` are replaced. Default "{app}-pr-{pr}.<platform domain>". */
  domainTemplate?: string;
  /** Most previews the App has at once; a pull request over it gets none (an Event says so). Default 5. */
  max?: number;
  /** Git host logins whose pull requests from forks build without the `slipway/ok-to-preview` label. */
  trustedAuthors?: string[];
  /** GitHub author associations whose pull requests from forks build without the label; default OWNER, MEMBER, COLLABORATOR. */
  trustedAssociations?: string[];
}

export interface AppSpec {
  /** A prebuilt image to deploy (tag or digest). Exactly one of image and source. */
  image?: string;
  source?: GitSource;
  /** Process types by name; `web` gets a Service and a route. */
  processes?: Record<string, ProcessSpec>;
  routing?: Routing;
  previews?: Previews;
  /** Stop reconciling this App (status still reports). */
  suspend?: boolean;
}

/** The App's most recent build, as the build controller records it; the App reconciler releases it. */
export interface LatestBuild {
  pipelineRun: string;
  commit: string;
  phase: "Running" | "Succeeded" | "Failed";
  message?: string;
  /** Image by digest, once the build succeeded. */
  image?: string;
  /** Process types and their commands, from the Procfile at the built commit (once the build succeeded). */
  procfile?: Record<string, string>;
  /** The release this build became ("v4"), once the App reconciler cut it. */
  release?: string;
}

/** A release the App reconciler is cutting: set with the first status write of the pass that cuts it. */
export interface PendingRelease {
  /** The number it gets. */
  version: number;
  /** The App's metadata.generation it is cut from. */
  generation?: number;
  /** The Config's metadata.generation it is cut from. */
  configGeneration?: number;
}

export interface AppStatus {
  observedGeneration?: number;
  /** The Config's metadata.generation the status describes (the operator has seen that Config). */
  observedConfigGeneration?: number;
  conditions?: Condition[];
  /** The live release, e.g. "v3". */
  currentRelease?: string;
  /** Highest release number ever cut for this App (release numbers only grow). */
  latestReleaseNumber?: number;
  url?: string;
  latestBuild?: LatestBuild;
  /**
   * The release the operator is cutting, written before the cut and cleared by the pass's last status write:
   * what GitOps waits for before it commits an App or Config change, so the change and its release share a commit.
   */
  pendingRelease?: PendingRelease;
  /** Rollout progress of the live release: available / desired replicas per process type (written at most every 5 s while rolling out). */
  processes?: Record<string, { desired: number; available: number; updated: number }>;
  /** Commit in the config repository that records the App as it is now. */
  commit?: string;
  /** The children the operator applied and kept, as "<apiVersion>/<kind>/<name>"; others of the App's are pruned. */
  inventory?: string[];
}

export interface App {
  apiVersion: typeof API_VERSION;
  kind: "App";
  metadata: ObjectMeta;
  spec: AppSpec;
  status?: AppStatus;
}

// ------------------------------------------------------------------------------------------- Config

/** A reference to a key of a Secret in the App's namespace. The value never enters Git. */
export interface SecretKeyRef {
  secretName: string;
  key: string;
}

export interface ResourceAmounts {
  cpu?: string;
  memory?: string;
}

export interface ProcessResources {
  requests?: ResourceAmounts;
  limits?: ResourceAmounts;
}

export interface ConfigSpec {
  /** Plain environment values; committed to Git as they are. */
  env?: Record<string, string>;
  /** Environment values read from Secrets; only the references are stored. */
  secretEnv?: Record<string, SecretKeyRef>;
  /** Resources per process type. */
  resources?: Record<string, ProcessResources>;
  nodeSelector?: Record<string, string>;
}

export interface ConfigStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  commit?: string;
}

export interface Config {
  apiVersion: typeof API_VERSION;
  kind: "Config";
  metadata: ObjectMeta;
  spec: ConfigSpec;
  status?: ConfigStatus;
}

// ------------------------------------------------------------------------------------------ Release

export interface Build {
  /** Image by digest: `registry/repo@sha256:<64 hex>`. */
  image: string;
  /** Source commit the image was built from, when built from source. */
  sourceCommit?: string;
  /** Process types and their commands, from the Procfile at the built commit. */
  procfile?: Record<string, string>;
  /** The PipelineRun that built it. */
  pipelineRun?: string;
}

export interface ReleaseSpec {
  /** Name of the App this release belongs to. */
  app: string;
  /** Release number; the object is named `<app>-v<version>`. */
  version: number;
  /** What caused it: "deploy 1a2b3c4", "set FOO, unset BAR", "rollback to v5". */
  cause: string;
  /** Who asked for it. */
  requestedBy?: string;
  build: Build;
  /** Snapshot of the App's Config at the time of the release. */
  config: ConfigSpec;
  /** For a rollback: the version whose build and config this release reuses. */
  rollbackOf?: number;
  /**
   * Per secretEnv variable, a digest of its value when the release was cut (operator/secrets.ts): never the
   * value, and not a plain hash of it either, so a short value cannot be guessed from Git. Absent on releases
   * cut before Slipway recorded them.
   */
  secretDigests?: Record<string, string>;
}

export interface ReleaseStatus {
  conditions?: Condition[];
  /** Commit in the config repository that records this release. */
  commit?: string;
}

export interface Release {
  apiVersion: typeof API_VERSION;
  kind: "Release";
  metadata: ObjectMeta;
  spec: ReleaseSpec;
  status?: ReleaseStatus;
}

export function releaseName(app: string, version: number): string {
  return `${app}-v${version}`;
}
