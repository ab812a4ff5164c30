// The config repository's layout and how objects are written into it. Pure functions: paths, clean YAML and
// the kustomization.yaml files that let `kustomize build`, Argo CD and Flux read the tree as it is.
//
//   kustomization.yaml                       resources: [apps]
//   apps/kustomization.yaml                  resources: [<namespace>, …]
//   apps/<namespace>/kustomization.yaml      resources: [<app>, …]
//   apps/<namespace>/<app>/app.yaml          the App
//   apps/<namespace>/<app>/config.yaml       the Config (same name as the App)
//   apps/<namespace>/<app>/releases/v<N>.yaml, releases/kustomization.yaml
//   apps/<namespace>/<app>/kustomization.yaml resources: [app.yaml, config.yaml, releases]
import YAML from "yaml";
import { ANNOTATIONS, API_VERSION, FLUX_METADATA } from "../../crds/v1alpha1.js";

export type SlipwayKind = "App" | "Config" | "Release";
export const KINDS: readonly SlipwayKind[] = ["App", "Config", "Release"];

export const KUSTOMIZATION = "kustomization.yaml";
export const APPS_DIR = "apps";

/** The objects Slipway writes to Git: one of the three kinds, addressed by namespace and name. */
export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: unknown;
}

/** An object's identity in the cluster. */
export interface ObjectRef {
  kind: SlipwayKind;
  namespace: string;
  name: string;
}


/** Annotations that are bookkeeping of a client, not desired state. */
// The rollback annotation is a one-off request the operator acts on and removes, not desired state. Who changed
// an object is said by the commit that records the change (its message, or its author for a change pushed to
// Git), not by the file: a file's changed-by would be anyone's to write, and would credit the next change too.
const DROPPED_ANNOTATIONS = new Set([
  "kubectl.kubernetes.io/last-applied-configuration", ANNOTATIONS.rollback, ANNOTATIONS.fluxHold, ANNOTATIONS.requestedAt,
  ANNOTATIONS.changedBy, ANNOTATIONS.gitCommit, ANNOTATIONS.gitRevertOf, ANNOTATIONS.secretVersion,
]);

/** Tracking metadata Argo CD and Flux put on live objects: theirs, not desired state, so never written to Git. */
const TOOL_PREFIXES = ["argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/"];
const isToolKey = (key: string) => TOOL_PREFIXES.some((p) => key.startsWith(p));

export class SecretRefusedError extends Error {
  constructor(what: string) {
    super(`refusing to write ${what} to the config repository: Secrets never enter Git`);
    this.name = "SecretRefusedError";
  }
}

/** The App an object belongs to: the App and Config by name, a Release by spec.app. */
export function appOf(obj: StoredObject): string {
  if (obj.kind === "Release") {
    const app = (obj.spec as { app?: unknown } | undefined)?.app;
    if (typeof app !== "string" || !app) throw new Error(`Release ${obj.metadata.name} has no spec.app`);
    return app;
  }
  return obj.metadata.name;
}

export function appDir(namespace: string, app: string): string {
  return `${APPS_DIR}/${namespace}/${app}`;
}

/** Where an object lives in the repository. */
export function pathOf(obj: StoredObject): string {
  const namespace = obj.metadata.namespace;
  if (!namespace) throw new Error(`${obj.kind} ${obj.metadata.name} has no namespace`);
  const dir = appDir(namespace, appOf(obj));
  switch (obj.kind) {
    case "App":
      return `${dir}/app.yaml`;
    case "Config":
      return `${dir}/config.yaml`;
    case "Release": {
      const version = (obj.spec as { version?: unknown } | undefined)?.version;
      if (typeof version !== "number") throw new Error(`Release ${obj.metadata.name} has no spec.version`);
      return `${dir}/releases/v${version}.yaml`;
    }
    default:
      throw new Error(`${obj.kind} is not one of Slipway's kinds`);
  }
}

/** The namespace and App a path under apps/ belongs to, and whether it is an object file. */
export function parsePath(path: string): { namespace: string; app: string; kind?: SlipwayKind } | undefined {
  const parts = path.split("/");
  if (parts[0] !== APPS_DIR || parts.length < 4) return undefined;
  const [, namespace = "", app = ""] = parts;
  const rest = parts.slice(3).join("/");
  if (rest === "app.yaml") return { namespace, app, kind: "App" };
  if (rest === "config.yaml") return { namespace, app, kind: "Config" };
  if (rest.startsWith("releases/") && isReleaseFile(rest.slice("releases/".length))) return { namespace, app, kind: "Release" };
  return { namespace, app };
}

/**
 * Why an object read from `path` must not be applied, or undefined when it may: a file applies only to the
 * namespace and App its path names (`apps/<namespace>/<app>/…`), so one team's directory cannot write into
 * another team's namespace or over another App.
 */
export function pathMismatch(path: string, obj: StoredObject): string | undefined {
  const parsed = parsePath(path);
  if (!parsed?.kind) return `${path} is not an App, Config or Release file`;
  const { namespace, app, kind } = parsed;
  const what = `${obj.kind} ${obj.metadata.namespace ?? "(no namespace)"}/${obj.metadata.name}`;
  const refuse = (rule: string) => `${path} holds ${what}, but ${rule}; it is not applied`;
  if (obj.kind !== kind) return refuse(`a file at that path may only hold a ${kind}`);
  if (obj.metadata.namespace !== namespace) return refuse(`a file under ${appDir(namespace, app)}/ may only hold objects of namespace ${namespace}`);
  if (kind !== "Release") {
    return obj.metadata.name === app ? undefined : refuse(`a file under ${appDir(namespace, app)}/ may only hold the ${kind} named ${app}`);
  }
  const version = Number(/v([0-9]+)\.yaml$/.exec(path)?.[1]);
  const spec = obj.spec as { app?: unknown; version?: unknown } | undefined;
  if (obj.metadata.name !== `${app}-v${version}` || spec?.app !== app || spec?.version !== version) {
    return refuse(`a file at that path may only hold Release ${app}-v${version} of App ${app} (spec.app ${app}, spec.version ${version})`);
  }
  return undefined;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

function refuseSecrets(obj: { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown } }): void {
  if (obj.kind === "Secret" && (obj.apiVersion === "v1" || obj.apiVersion === undefined)) {
    throw new SecretRefusedError(`Secret ${String(obj.metadata?.name)}`);
  }
}

/**
 * An object as Git records it: apiVersion, kind, metadata (name, namespace, labels, annotations) and spec
 * with sorted keys. No status, uid, resourceVersion, managedFields, generation, timestamps or owners.
 */
export function cleanObject(obj: StoredObject): StoredObject {
  refuseSecrets(obj);
  if (!KINDS.includes(obj.kind as SlipwayKind) || obj.apiVersion !== API_VERSION) {
    throw new Error(`${obj.apiVersion}/${obj.kind} ${obj.metadata?.name} is not one of Slipway's kinds`);
  }
  const metadata: StoredObject["metadata"] = { name: obj.metadata.name };
  if (obj.metadata.namespace) metadata.namespace = obj.metadata.namespace;
  const labels = Object.fromEntries(Object.entries(obj.metadata.labels ?? {}).filter(([key]) => !isToolKey(key)));
  if (Object.keys(labels).length) metadata.labels = sortKeys(labels) as Record<string, string>;
  const annotations = Object.fromEntries(
    Object.entries(obj.metadata.annotations ?? {})
      // A Release's Flux prune policy is kept: it is what lets its history outlive its file (releases.ts).
      .filter(([key]) => !DROPPED_ANNOTATIONS.has(key) && (!isToolKey(key) || (obj.kind === "Release" && key === FLUX_METADATA.prune))),
  );
  if (Object.keys(annotations).length) metadata.annotations = sortKeys(annotations) as Record<string, string>;
  return { apiVersion: obj.apiVersion, kind: obj.kind, metadata, spec: sortKeys(obj.spec ?? {}) };
}

/** The file content Git holds for an object. Deterministic: the same object always gives the same bytes. */
export function renderObject(obj: StoredObject): string {
  return YAML.stringify(cleanObject(obj), { lineWidth: 0 });
}

/** Parses a file of the repository into an object; throws on YAML that is not one of Slipway's kinds. */
export function parseObject(text: string): StoredObject {
  const doc = YAML.parse(text) as StoredObject | null;
  if (!doc || typeof doc !== "object" || typeof doc.metadata?.name !== "string") {
    throw new Error("not a Kubernetes object");
  }
  refuseSecrets(doc);
  return doc;
}

/**
 * Canonical form of a file for comparisons: user-written YAML (other key order, comments) that means the same
 * object compares equal to what Slipway renders. Files that do not parse compare by their text.
 */
export function canonical(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    return renderObject(parseObject(text));
  } catch {
    return `unparsable:${text}`;
  }
}

/** A generated kustomization.yaml listing `resources`. */
export function kustomization(resources: string[]): string {
  return YAML.stringify({ apiVersion: "kustomize.config.k8s.io/v1beta1", kind: "Kustomization", resources });
}

/** Whether a file name in an app's releases/ directory is a Release (v<N>.yaml). */
export function isReleaseFile(name: string): boolean {
  return /^v[1-9][0-9]*\.yaml$/.test(name);
}

/** The order releases/kustomization.yaml lists releases in: by version number. */
export function releaseOrder(a: string, b: string): number {
  const num = (s: string) => Number(/^v(\d+)\.yaml$/.exec(s)?.[1] ?? Number.NaN);
  const [x, y] = [num(a), num(b)];
  return Number.isNaN(x) || Number.isNaN(y) ? a.localeCompare(b) : x - y;
}

/** What an app's kustomization.yaml lists, given which of its object files it has; empty: it gets none. */
export function appResources(has: { app: boolean; config: boolean; releases: boolean }): string[] {
  return [...(has.app ? ["app.yaml"] : []), ...(has.config ? ["config.yaml"] : []), ...(has.releases ? ["releases"] : [])];
}

/**
 * The kustomization.yaml files the tree needs, given every path in it: one per directory from the root down
 * to each app's releases/, listing what is there. Directories under apps/ that hold no object file get none.
 */
export function kustomizations(paths: Iterable<string>): Map<string, string> {
  const apps = new Map<string, { files: Set<string>; releases: string[] }>();
  for (const path of paths) {
    const parsed = parsePath(path);
    if (!parsed?.kind) continue;
    const dir = appDir(parsed.namespace, parsed.app);
    const entry = apps.get(dir) ?? { files: new Set<string>(), releases: [] };
    if (parsed.kind === "Release") entry.releases.push(path.slice(dir.length + "/releases/".length));
    else entry.files.add(path.slice(dir.length + 1));
    apps.set(dir, entry);
  }
  const out = new Map<string, string>();
  const namespaces = new Map<string, Set<string>>();
  for (const [dir, entry] of apps) {
    const [, namespace = "", app = ""] = dir.split("/");
    namespaces.set(namespace, (namespaces.get(namespace) ?? new Set()).add(app));
    const resources = appResources({ app: entry.files.has("app.yaml"), config: entry.files.has("config.yaml"), releases: entry.releases.length > 0 });
    if (entry.releases.length) out.set(`${dir}/releases/${KUSTOMIZATION}`, kustomization(entry.releases.sort(releaseOrder)));
    out.set(`${dir}/${KUSTOMIZATION}`, kustomization(resources));
  }
  for (const [namespace, names] of namespaces) {
    out.set(`${APPS_DIR}/${namespace}/${KUSTOMIZATION}`, kustomization([...names].sort()));
  }
  if (namespaces.size) out.set(`${APPS_DIR}/${KUSTOMIZATION}`, kustomization([...namespaces.keys()].sort()));
  out.set(KUSTOMIZATION, kustomization(namespaces.size ? [APPS_DIR] : []));
  return out;
}

/** Whether a path is a kustomization.yaml that `kustomizations()` manages (the root and any under apps/). */
export function isManagedKustomization(path: string): boolean {
  return path === KUSTOMIZATION || (path.startsWith(`${APPS_DIR}/`) && path.endsWith(`/${KUSTOMIZATION}`));
}
