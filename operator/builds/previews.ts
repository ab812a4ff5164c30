// Pull-request previews as objects: the preview App `<app>-pr-<n>` and its Config, computed from the parent
// App and the pull request. Pure functions, so the same webhook delivered twice yields the same objects.
import { API_VERSION, LABELS, MANAGED_BY, type App, type Config } from "../../crds/v1alpha1.js";
import type { PullRequestEvent } from "./events.js";
import { fitName, ownerReference } from "./pipelinerun.js";

/** Annotations on a preview App. */
export const PREVIEW_ANNOTATIONS = {
  /** The pull (merge) request number. */
  pr: "slipway.dev/preview-pr",
  /** The head commit the preview was last asked to build. */
  commit: "slipway.dev/preview-commit",
  /** When the head commit last changed (RFC 3339); the TTL counts from here. */
  updatedAt: "slipway.dev/preview-updated-at",
  /** "true" when the pull request comes from a fork: the preview gets no secret env. */
  fork: "slipway.dev/preview-fork",
} as const;

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

/**
 * The preview App for an opened or updated pull request: the parent's spec built from the pull request's head
 * repository and branch, routed only at its own host, without previews of its own. Owned by the parent, so
 * deleting the parent deletes its previews.
 */
export function previewApp(parent: App, pr: PullRequestEvent, host: string, updatedAt: string): App {
  const source = parent.spec.source;
  if (!source) throw new Error(`App ${parent.metadata.name} has no spec.source; previews need one`);
  // A preview has no previews of its own.
  const spec = { ...parent.spec };
  delete spec.previews;
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
      routing: { ...(parent.spec.routing ?? {}), domains: [host] },
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
