// Pull-request previews as objects: the preview App `<app>-pr-<n>` and its Config, computed from the parent
// App and the pull request. Pure functions, so the same webhook delivered twice yields the same objects.
import { ANNOTATIONS, API_VERSION, LABELS, MANAGED_BY, type App, type Config, type ProcessSpec } from "../../crds/v1alpha1.js";
import { isForkPreview } from "../../functions/render.js";
import type { PullRequestEvent } from "./events.js";
import { fitName, ownerReference, type PipelineSettings } from "./pipelinerun.js";

/** Annotations on a preview App. */
export const PREVIEW_ANNOTATIONS = {
  /** The pull (merge) request number. */
  pr: "slipway.dev/preview-pr",
  /** The head commit the preview was last asked to build. */
  commit: "slipway.dev/preview-commit",
  /** When the head commit last changed (RFC 3339); the TTL counts from here. */
  updatedAt: "slipway.dev/preview-updated-at",
  /**
   * "true" when the pull request comes from a fork: the preview gets no Git credentials, secret env or TLS
   * Secret, and its builds run as the fork build ServiceAccount.
   */
  fork: ANNOTATIONS.previewFork,
} as const;

/** The label someone trusted puts on a fork's pull request to let it build and get a preview. */
export const APPROVAL_LABEL = "slipway/ok-to-preview";
/** GitHub author associations whose fork pull requests need no label: they can push to the repository already. */
export const DEFAULT_TRUSTED_ASSOCIATIONS: readonly string[] = ["OWNER", "MEMBER", "COLLABORATOR"];
/** Previews an App has at once when spec.previews.max is not set. */
export const DEFAULT_MAX_PREVIEWS = 5;
/** The ServiceAccount fork previews' builds run as when the platform names none. */
export const DEFAULT_FORK_SERVICE_ACCOUNT = "slipway-fork-build";

export type Approval = { approved: true; by: string } | { approved: false; reason: string };

/**
 * Whether a pull request may build and get a preview. A branch of the repository itself may: its author can push
 * there anyway. A fork's may once someone trusted approved it: the approval label is on the pull request (only
 * people with triage or write access can label), or its author, or GitHub's author association, is in the
 * parent's trusted lists. The label approves the pull request, later commits included, until it is removed.
 */
export function previewApproval(parent: App, pr: PullRequestEvent): Approval {
  if (!pr.fromFork) return { approved: true, by: "a branch of the repository" };
  if (pr.labels.includes(APPROVAL_LABEL)) return { approved: true, by: `label ${APPROVAL_LABEL}` };
  const author = pr.author?.toLowerCase();
  if (author && (parent.spec.previews?.trustedAuthors ?? []).some((a) => a.toLowerCase() === author)) return { approved: true, by: `trusted author ${pr.author}` };
  const association = pr.authorAssociation?.toUpperCase();
  if (association && (parent.spec.previews?.trustedAssociations ?? DEFAULT_TRUSTED_ASSOCIATIONS).includes(association)) {
    return { approved: true, by: `trusted author association ${association}` };
  }
  const who = pr.author ? `${pr.author}${pr.authorAssociation ? ` (${pr.authorAssociation})` : ""}` : "an author the Git host does not name";
  return {
    approved: false,
    reason: `pull request #${pr.number} comes from the fork ${pr.head.repoUrl || "(deleted)"} by ${who} and is not built nor previewed until someone trusted approves it: ` +
      `add the label ${APPROVAL_LABEL} to the pull request, or list its author in spec.previews.trustedAuthors of App ${parent.metadata.name}`,
  };
}

/**
 * Whether `app` is the preview that this module made for pull request `pr` of `parent`: labelled with the
 * parent's name, controlled by the parent (same uid) and annotated with the pull request. Anything else with the
 * preview's name is somebody's App, which no pull request may change or delete.
 */
export function isPreviewOf(app: App, parent: App, pr?: number): boolean {
  return app.metadata.labels?.[LABELS.preview] === parent.metadata.name &&
    (app.metadata.ownerReferences ?? []).some((o) => o.kind === "App" && o.controller === true && o.uid === parent.metadata.uid) &&
    (pr === undefined || app.metadata.annotations?.[PREVIEW_ANNOTATIONS.pr] === String(pr));
}


/**
 * What an App's build is made from: a fork preview's build runs as the fork build ServiceAccount, never the
 * platform's, and mounts no Git credentials, even when its spec names some (a preview made before forks were
 * stripped of them).
 */
export function buildInput(app: App, settings: PipelineSettings): { app: App; settings: PipelineSettings } {
  if (!isForkPreview(app) || !app.spec.source) return { app, settings };
  const source = { ...app.spec.source };
  delete source.credentialsSecret;
  return {
    app: { ...app, spec: { ...app.spec, source } },
    settings: { ...settings, serviceAccountName: settings.forkServiceAccountName ?? DEFAULT_FORK_SERVICE_ACCOUNT },
  };
}

/** App names are at most 40 characters (CRD validation). */
const APP_NAME_MAX = 40;

export const DEFAULT_PREVIEW_TTL = "168h";

/** `<app>-pr-<n>`, shortened with a hash when the parent's name is long. */
export function previewName(app: string, pr: number): string {
  const suffix = `-pr-${pr}`;
  if (app.length + suffix.length <= APP_NAME_MAX) return `${app}${suffix}`;
  return `${fitName(app, APP_NAME_MAX - suffix.length)}${suffix}`;
}

/** The preview's host from the parent's template (`{app}`, `{pr}`, `{namespace}`), default `{app}-pr-{pr}.<domain>`. */
export function previewHost(parent: App, pr: number, platformDomain: string): string {
  const template = parent.spec.previews?.domainTemplate ?? `{app}-pr-{pr}.${platformDomain}`;
  const host = template
    .replaceAll("{app}", parent.metadata.name)
    .replaceAll("{pr}", String(pr))
    .replaceAll("{namespace}", parent.metadata.namespace ?? "default")
    .toLowerCase();
  if (host.length > 253 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(host)) {
    throw new Error(`App ${parent.metadata.name}: spec.previews.domainTemplate ${JSON.stringify(template)} gives ${JSON.stringify(host)}, which is not a host name`);
  }
  return host;
}

/** A preview's process type: at most one replica, never autoscaled. */
function previewProcess(spec: ProcessSpec): ProcessSpec {
  const capped = { ...spec };
  if (capped.autoscale) {
    delete capped.autoscale;
    capped.replicas = 1;
  } else if (capped.replicas !== undefined) {
    capped.replicas = Math.min(capped.replicas, 1);
  }
  return capped;
}

/**
 * The preview App for an opened or updated pull request: the parent's spec built from the pull request's head
 * repository and branch, routed only at its own host, without previews of its own, each process type at one
 * replica at most and none autoscaled. A fork's preview gets neither the parent's Git credentials nor its TLS
 * Secret. Owned by the parent, so deleting the parent deletes its previews.
 */
export function previewApp(parent: App, pr: PullRequestEvent, host: string, updatedAt: string): App {
  if (!parent.spec.source) throw new Error(`App ${parent.metadata.name} has no spec.source; previews need one`);
  const source = { ...parent.spec.source };
  const routing = { ...(parent.spec.routing ?? {}) };
  if (pr.fromFork) {
    delete source.credentialsSecret;
    delete routing.tls;
  }
  // A preview has no previews of its own.
  const spec = { ...parent.spec };
  delete spec.previews;
  if (spec.processes) spec.processes = Object.fromEntries(Object.entries(spec.processes).map(([type, p]) => [type, previewProcess(p)]));
  return {
    apiVersion: API_VERSION,
    kind: "App",
    metadata: {
      name: previewName(parent.metadata.name, pr.number),
      namespace: parent.metadata.namespace,
      labels: { [LABELS.preview]: parent.metadata.name, [LABELS.managedBy]: MANAGED_BY },
      annotations: {
        [PREVIEW_ANNOTATIONS.pr]: String(pr.number),
        [PREVIEW_ANNOTATIONS.commit]: pr.head.commit,
        [PREVIEW_ANNOTATIONS.updatedAt]: updatedAt,
        [PREVIEW_ANNOTATIONS.fork]: String(pr.fromFork),
      },
      ownerReferences: [ownerReference(parent)],
    },
    spec: {
      ...spec,
      source: { ...source, git: pr.head.repoUrl, branch: pr.head.branch },
      routing: { ...routing, domains: [host] },
    },
  };
}

/** The preview's Config: a copy of the parent's, without secret env when the pull request comes from a fork. */
export function previewConfig(parent: Config | undefined, preview: App, fromFork: boolean): Config {
  const spec = structuredClone(parent?.spec ?? {});
  if (fromFork) delete spec.secretEnv;
  return {
    apiVersion: API_VERSION,
    kind: "Config",
    metadata: {
      name: preview.metadata.name,
      namespace: preview.metadata.namespace,
      labels: { [LABELS.preview]: preview.metadata.labels?.[LABELS.preview] ?? "", [LABELS.managedBy]: MANAGED_BY },
      ownerReferences: [ownerReference(preview)],
    },
    spec,
  };
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("72h", "1h30m", "90s") in milliseconds. */
export function parseDuration(text: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ""] ?? 0);
    end = re.lastIndex;
  }
  if (text === "" || end !== text.length) throw new Error(`${JSON.stringify(text)} is not a duration such as "72h" or "1h30m"`);
  return total;
}

/** Whether a preview has seen no new commit for longer than its parent's TTL. */
export function previewExpired(preview: App, parent: App | undefined, now: Date): boolean {
  const updated = Date.parse(preview.metadata.annotations?.[PREVIEW_ANNOTATIONS.updatedAt] ?? preview.metadata.creationTimestamp ?? "");
  if (Number.isNaN(updated)) return false;
  const ttl = parseDuration(parent?.spec.previews?.ttl ?? DEFAULT_PREVIEW_TTL);
  return now.getTime() - updated > ttl;
}
