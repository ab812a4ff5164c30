// Render an App, its Config and its live Release into the Kubernetes objects that run it: a Deployment per
// process type, a Service and an Ingress (or Gateway API HTTPRoute) for `web`, and an HPA per autoscaled
// process type. Pure and deterministic: the same input gives the same objects, keys in the same order.
// The operator, the kpt function (main.ts), the kustomize exec function and the Argo CD plugin all call this.
import { createHash } from "node:crypto";
import type { App, Config, ConfigSpec, HttpProbe, ProcessResources, ProcessSpec, Release, ResourceAmounts } from "../crds/v1alpha1.js";
import { ANNOTATIONS, LABELS, MANAGED_BY } from "../crds/v1alpha1.js";

export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface PlatformSettings {
  /** Default host is `<app>.<namespace>.<domain>`; default "slipway.local". */
  domain: string;
  /** Ingress (networking.k8s.io/v1) or Gateway API HTTPRoute; default "ingress". */
  routing: "ingress" | "gateway";
  ingressClassName?: string;
  /** parentRef for HTTPRoutes; required when routing is "gateway". */
  gateway?: { name: string; namespace?: string };
  /** How long a rollout may make no progress before the Deployment reports failure; default 600. */
  progressDeadlineSeconds: number;
  /**
   * The most a pull-request preview's container may use (each process type): its limits are the Config's
   * when lower, else these, and its requests at most its limits. Default DEFAULT_PREVIEW_LIMITS.
   */
  previewLimits?: Required<ResourceAmounts>;
  /**
   * Where the platform puts the pods it renders (every process type, and `run`'s one-off pods, which copy it
   * from the Deployment): added to the Config's nodeSelector (the platform's value wins on the same key) and
   * tolerations. Default none: pods go wherever the scheduler puts them.
   */
  placement?: Placement;
}

/** A platform's node placement: a nodeSelector and tolerations, as a pod spec has them. */
export interface Placement {
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
}

/** A pod toleration (core/v1 Toleration) without tolerationSeconds. */
export interface Toleration {
  key?: string;
  operator?: "Equal" | "Exists";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export const DEFAULT_PREVIEW_LIMITS: Required<ResourceAmounts> = Object.freeze({ cpu: "500m", memory: "512Mi" });

export const defaultPlatform: PlatformSettings = Object.freeze({
  domain: "slipway.local",
  routing: "ingress",
  progressDeadlineSeconds: 600,
}) as PlatformSettings;

export interface RenderInput {
  app: App;
  config?: Config;
  release?: Release;
}

export interface RenderError {
  message: string;
  /** Path of the offending field in `object`, e.g. "spec.routing.domains[1]". */
  field?: string;
  object?: { kind: string; name: string; namespace?: string };
}

/** `errors` non-empty => `objects` empty. */
export interface RenderOutcome {
  objects: KubernetesObject[];
  errors: RenderError[];
}

/** Port of the web Service; the container port is `spec.routing.port`. */
const SERVICE_PORT = 80;
const DEFAULT_CONTAINER_PORT = 8080;
const DEFAULT_CPU_PERCENT = 80;
const WEB = "web";

/** GitOps tools' tracking metadata: never copied onto rendered objects, so Slipway never fights them. */
const TRACKING_PREFIXES = ["argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/"];
const TRACKING_KEYS = ["app.kubernetes.io/instance"];

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** True for labels and annotations that Argo CD or Flux use to track the objects they manage. */
export function isTrackingKey(key: string): boolean {
  return TRACKING_KEYS.includes(key) || TRACKING_PREFIXES.some((p) => key.startsWith(p));
}

/** A DNS-1123 label of at most 63 characters: long names keep a prefix and get an 8-hex-digit hash. */
export function dnsLabel(name: string): string {
  if (name.length <= 63) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 8);
  return `${name.slice(0, 54).replace(/-+$/, "")}-${hash}`;
}

/** The process types of a release: Procfile entries and declared processes; `web` for a bare image. */
export function processTypes(app: App, release: Release): string[] {
  const types = new Set([...Object.keys(release.spec.build.procfile ?? {}), ...Object.keys(app.spec.processes ?? {})]);
  if (types.size === 0) types.add(WEB);
  return [...types].sort();
}

export function render(input: RenderInput, platform: Partial<PlatformSettings> = {}): RenderOutcome {
  const settings: PlatformSettings = { ...defaultPlatform, ...dropUndefined(platform) };
  const errors = validate(input, settings);
  if (errors.length > 0 || input.release === undefined) return { objects: [], errors };
  // A deep copy: callers (the operator adds ownerReferences) may change the objects without touching the input.
  return { objects: structuredClone(build(input.app, input.release, settings)), errors: [] };
}

// -------------------------------------------------------------------------------------------- validation

function validate({ app, config, release }: RenderInput, platform: PlatformSettings): RenderError[] {
  const errors: RenderError[] = [];
  const appRef = ref(app);
  const name = app.metadata.name;
  const namespace = app.metadata.namespace;

  if (!DNS_SUBDOMAIN.test(platform.domain)) {
    errors.push({ message: `platform domain "${platform.domain}" is not a DNS name`, field: "platform.domain" });
  }
  if (platform.routing !== "ingress" && platform.routing !== "gateway") {
    errors.push({ message: `platform routing must be "ingress" or "gateway", not "${String(platform.routing)}"`, field: "platform.routing" });
  }
  if (platform.routing === "gateway" && !platform.gateway?.name) {
    errors.push({ message: `platform routing "gateway" needs a gateway name for the HTTPRoute parentRef`, field: "platform.gateway.name" });
  }
  if (!Number.isInteger(platform.progressDeadlineSeconds) || platform.progressDeadlineSeconds <= 0) {
    errors.push({ message: `platform progressDeadlineSeconds must be a positive integer, not ${String(platform.progressDeadlineSeconds)}`, field: "platform.progressDeadlineSeconds" });
  }
  errors.push(...placementErrors(platform.placement).map((message) => ({ message, field: "platform.placement" })));

  if (!DNS_LABEL.test(name) || name.length > 63) {
    errors.push({ message: `App name "${name}" must be a DNS-1123 label (lowercase letters, digits and "-", at most 63 characters): it is part of the app's host name`, field: "metadata.name", object: appRef });
  }
  if (!namespace) {
    // Everything else is looked up in the App's namespace: without one, further errors would only mislead.
    errors.push({ message: `App "${name}" has no namespace: set metadata.namespace, or the render function's namespace setting`, field: "metadata.namespace", object: appRef });
    return errors;
  }

  if (config === undefined) {
    errors.push({ message: `App "${name}" has no Config: create a Config named "${name}" in namespace "${namespace ?? ""}"`, object: appRef });
  } else if (config.metadata.name !== name || config.metadata.namespace !== namespace) {
    errors.push({ message: `Config "${config.metadata.name}" belongs to another app: an App's Config has the App's name ("${name}") and namespace`, field: "metadata.name", object: ref(config) });
  }

  if (release === undefined) {
    errors.push({ message: `App "${name}" has no release yet: nothing to run until a build or an image deploy cuts v1`, object: appRef });
    return errors;
  }
  const releaseRef = ref(release);
  if (release.spec.app !== name || release.metadata.namespace !== namespace) {
    errors.push({ message: `Release "${release.metadata.name}" belongs to app "${release.spec.app}" in namespace "${release.metadata.namespace ?? ""}", not to App "${name}" in namespace "${namespace ?? ""}"`, field: "spec.app", object: releaseRef });
    return errors;
  }
  if (!release.spec.build?.image) {
    errors.push({ message: `Release "${release.metadata.name}" has no image`, field: "spec.build.image", object: releaseRef });
  }

  const types = processTypes(app, release);
  const procfile = release.spec.build?.procfile ?? {};
  const hasProcfile = Object.keys(procfile).length > 0;
  for (const type of types) {
    if (!DNS_LABEL.test(type) || type.length > 63) {
      errors.push({ message: `process type "${type}" must be a DNS-1123 label (lowercase letters, digits and "-")`, field: `spec.processes.${type}`, object: appRef });
    }
    const declared = app.spec.processes?.[type];
    if (hasProcfile && procfile[type] === undefined && !declared?.command?.length) {
      errors.push({ message: `unknown process type "${type}": it is not in release ${version(release)}'s Procfile (${Object.keys(procfile).sort().join(", ")}) and has no command`, field: `spec.processes.${type}`, object: appRef });
    }
  }

  for (const [type, spec] of Object.entries(app.spec.processes ?? {})) {
    errors.push(...validateProcess(type, spec, appRef));
  }

  const routing = app.spec.routing ?? {};
  if (routing.port !== undefined && (!Number.isInteger(routing.port) || routing.port < 1 || routing.port > 65535)) {
    errors.push({ message: `routing port ${routing.port} is not a port number (1-65535)`, field: "spec.routing.port", object: appRef });
  }
  if (routing.path !== undefined && !routing.path.startsWith("/")) {
    errors.push({ message: `routing path "${routing.path}" must start with "/"`, field: "spec.routing.path", object: appRef });
  }
  if (routing.enabled !== false && types.includes(WEB) && namespace) {
    const seen = new Map<string, string>([[defaultHost(name, namespace, platform), "the default host"]]);
    (routing.domains ?? []).forEach((domain, i) => {
      const field = `spec.routing.domains[${i}]`;
      if (!DNS_SUBDOMAIN.test(domain)) {
        errors.push({ message: `routing domain "${domain}" is not a DNS name`, field, object: appRef });
      }
      const earlier = seen.get(domain);
      if (earlier !== undefined) {
        errors.push({ message: `conflicting routes: domain "${domain}" is already routed as ${earlier}`, field, object: appRef });
      } else {
        seen.set(domain, field);
      }
    });
  }

  if (config !== undefined) errors.push(...validateConfig(config.spec, types, ref(config), "spec"));
  errors.push(...validateConfig(release.spec.config ?? {}, types, releaseRef, "spec.config"));
  return errors;
}

function validateProcess(type: string, spec: ProcessSpec, object: RenderError["object"]): RenderError[] {
  const errors: RenderError[] = [];
  const field = `spec.processes.${type}`;
  if (spec.replicas !== undefined && (!Number.isInteger(spec.replicas) || spec.replicas < 0)) {
    errors.push({ message: `replicas of process type "${type}" must be a whole number >= 0, not ${spec.replicas}`, field: `${field}.replicas`, object });
  }
  const a = spec.autoscale;
  if (a !== undefined) {
    if (!Number.isInteger(a.min) || a.min < 1) {
      errors.push({ message: `autoscale min of process type "${type}" must be at least 1, not ${a.min}`, field: `${field}.autoscale.min`, object });
    }
    if (!Number.isInteger(a.max) || a.max < a.min) {
      errors.push({ message: `autoscale max of process type "${type}" (${a.max}) must be a whole number >= min (${a.min})`, field: `${field}.autoscale.max`, object });
    }
    if (a.cpuPercent !== undefined && (!Number.isInteger(a.cpuPercent) || a.cpuPercent < 1)) {
      errors.push({ message: `autoscale cpuPercent of process type "${type}" must be a whole number >= 1, not ${a.cpuPercent}`, field: `${field}.autoscale.cpuPercent`, object });
    }
  }
  return errors;
}

function validateConfig(spec: ConfigSpec, types: string[], object: RenderError["object"], at: string): RenderError[] {
  const errors: RenderError[] = [];
  for (const type of Object.keys(spec.resources ?? {}).sort()) {
    if (!types.includes(type)) {
      errors.push({ message: `unknown process type "${type}" in resources: the app's process types are ${types.join(", ")}`, field: `${at}.resources.${type}`, object });
    }
  }
  for (const key of Object.keys(spec.secretEnv ?? {}).sort()) {
    if (spec.env?.[key] !== undefined) {
      errors.push({ message: `env "${key}" is set both as a plain value and from a Secret`, field: `${at}.secretEnv.${key}`, object });
    }
  }
  for (const key of ["PORT"]) {
    if (spec.env?.[key] !== undefined || spec.secretEnv?.[key] !== undefined) {
      errors.push({ message: `env "${key}" is set by Slipway from spec.routing.port of the App; remove it from the Config`, field: `${at}.env.${key}`, object });
    }
  }
  return errors;
}

// ----------------------------------------------------------------------------------------------- objects

function build(app: App, release: Release, platform: PlatformSettings): KubernetesObject[] {
  const types = processTypes(app, release);
  const routing = app.spec.routing ?? {};
  const port = routing.port ?? DEFAULT_CONTAINER_PORT;
  const objects: KubernetesObject[] = [];

  for (const type of types) {
    objects.push(deployment(app, release, type, port, platform));
  }
  if (types.includes(WEB) && routing.enabled !== false) {
    const hosts = routeHosts(app, platform);
    objects.push(service(app, release, port));
    objects.push(platform.routing === "gateway" ? httpRoute(app, release, hosts, platform) : ingress(app, release, hosts, platform));
  }
  for (const type of types) {
    const autoscale = app.spec.processes?.[type]?.autoscale;
    if (autoscale && !isPreview(app)) objects.push(hpa(app, release, type, autoscale.min, autoscale.max, autoscale.cpuPercent ?? DEFAULT_CPU_PERCENT));
  }
  return objects;
}

function deployment(app: App, release: Release, type: string, port: number, platform: PlatformSettings): KubernetesObject {
  const spec: ProcessSpec = app.spec.processes?.[type] ?? {};
  const snapshot = release.spec.config ?? {};
  const procfileLine = release.spec.build.procfile?.[type];
  const command = spec.command?.length ? [...spec.command] : procfileLine !== undefined ? ["/bin/sh", "-c", procfileLine] : undefined;
  const web = type === WEB;

  const env: Array<Record<string, unknown>> = [];
  for (const [key, value] of Object.entries(snapshot.env ?? {})) env.push({ name: key, value });
  for (const [key, ref] of Object.entries(snapshot.secretEnv ?? {})) {
    env.push({ name: key, valueFrom: { secretKeyRef: { name: ref.secretName, key: ref.key } } });
  }
  if (web) env.push({ name: "PORT", value: String(port) });
  env.sort((a, b) => compare(String(a.name), String(b.name)));

  const preview = isPreview(app);
  const resources = preview
    ? previewResources(snapshot.resources?.[type], platform.previewLimits ?? DEFAULT_PREVIEW_LIMITS)
    : snapshot.resources?.[type];
  const container = compact({
    name: type,
    image: release.spec.build.image,
    command,
    ports: web ? [{ name: "http", containerPort: port, protocol: "TCP" }] : undefined,
    env: env.length > 0 ? env : undefined,
    resources: resources ? compact({ requests: sortedOrUndefined(resources.requests), limits: sortedOrUndefined(resources.limits) }) : undefined,
    readinessProbe: spec.readiness ? probe(spec.readiness, port) : undefined,
    livenessProbe: spec.liveness ? probe(spec.liveness, port) : undefined,
  });

  // A preview runs one replica at most and is never autoscaled.
  const autoscaled = spec.autoscale !== undefined && !preview;
  const replicas = spec.autoscale !== undefined ? 1 : (spec.replicas ?? (type === WEB ? 1 : 0));
  return object("apps/v1", "Deployment", dnsLabel(`${app.metadata.name}-${type}`), app, release, type, {
    spec: compact({
      // An autoscaled Deployment leaves replicas to its HPA, so applying it never resets the scale.
      replicas: autoscaled ? undefined : preview ? Math.min(replicas, 1) : replicas,
      selector: { matchLabels: selectorLabels(app, type) },
      progressDeadlineSeconds: platform.progressDeadlineSeconds,
      template: {
        metadata: compact({ labels: labels(app, release, type), annotations: secretAnnotations(release) }),
        spec: compact({
          // A fork's code gets no token of the namespace's ServiceAccount: it must not call the API as the team.
          automountServiceAccountToken: isForkPreview(app) ? false : undefined,
          nodeSelector: sortedOrUndefined({ ...snapshot.nodeSelector, ...platform.placement?.nodeSelector }),
          tolerations: platform.placement?.tolerations?.length ? platform.placement.tolerations.map((t) => compact({ key: t.key, operator: t.operator, value: t.value, effect: t.effect })) : undefined,
          containers: [container],
        }),
      },
    }),
  });
}

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const LABEL_VALUE = /^(([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?)$/;
const TOLERATION_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/** A label key: an optional DNS subdomain prefix and "/", then a name of at most 63 characters. */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = key.slice(slash + 1);
  if (prefix !== undefined && (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253)) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

/** Why a platform placement is not one a pod spec accepts; empty when it is. */
export function placementErrors(placement: Placement | undefined): string[] {
  const errors: string[] = [];
  for (const [key, value] of Object.entries(placement?.nodeSelector ?? {})) {
    if (!isLabelKey(key)) errors.push(`placement nodeSelector key "${key}" is not a label key`);
    if (typeof value !== "string" || value.length > 63 || !LABEL_VALUE.test(value)) errors.push(`placement nodeSelector value "${String(value)}" of "${key}" is not a label value`);
  }
  (placement?.tolerations ?? []).forEach((t, i) => {
    const at = `placement toleration ${i + 1}`;
    if (t.key !== undefined && !isLabelKey(t.key)) errors.push(`${at}: key "${t.key}" is not a label key`);
    if (t.operator !== undefined && t.operator !== "Equal" && t.operator !== "Exists") errors.push(`${at}: operator must be Equal or Exists, not "${String(t.operator)}"`);
    if (t.operator === "Exists" && t.value) errors.push(`${at}: operator Exists takes no value`);
    if (t.key === undefined && t.operator !== "Exists") errors.push(`${at}: a toleration without a key must use operator Exists`);
    if (t.value !== undefined && (t.value.length > 63 || !LABEL_VALUE.test(t.value))) errors.push(`${at}: value "${t.value}" is not a label value`);
    if (t.effect !== undefined && !TOLERATION_EFFECTS.includes(t.effect)) errors.push(`${at}: effect must be one of ${TOLERATION_EFFECTS.join(", ")}, not "${String(t.effect)}"`);
  });
  return errors;
}

/** A pull-request preview (the label Slipway's previews carry): capped in replicas and resources. */
function isPreview(app: App): boolean {
  return app.metadata.labels?.[LABELS.preview] !== undefined;
}

/** A preview of a pull request from a fork (the annotation Slipway's previews carry). */
export function isForkPreview(app: App): boolean {
  return isPreview(app) && app.metadata.annotations?.[ANNOTATIONS.previewFork] === "true";
}

const QUANTITY_SUFFIX: Record<string, number> = {
  "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A Kubernetes quantity ("500m", "1.5Gi", "2e3") as a number; NaN when it is not one. */
export function quantityValue(q: string): number {
  const m = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([eE][-+]?[0-9]+)|(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?)$/.exec(q.trim());
  if (!m) return NaN;
  return m[2] ? Number(`${m[1]}${m[2]}`) : Number(m[1]) * (QUANTITY_SUFFIX[m[3] ?? ""] ?? NaN);
}

/** A preview's resources: limits at most the platform's preview limits, requests at most the limits. */
function previewResources(configured: ProcessResources | undefined, cap: Required<ResourceAmounts>): ProcessResources {
  const limits: ResourceAmounts = {};
  const requests: ResourceAmounts = {};
  for (const key of ["cpu", "memory"] as const) {
    const limit = configured?.limits?.[key];
    // An unreadable quantity counts as over the cap.
    limits[key] = limit !== undefined && quantityValue(limit) <= quantityValue(cap[key]) ? limit : cap[key];
    const request = configured?.requests?.[key];
    if (request !== undefined) requests[key] = quantityValue(request) <= quantityValue(limits[key]) ? request : limits[key];
  }
  return Object.keys(requests).length ? { requests, limits } : { limits };
}

/**
 * The pod template's checksum of the release's secret digests: a changed secret value changes the template, so
 * the Deployment rolls its pods out (a pod reads a Secret only when it starts). The digests are HMACs, never
 * values (operator/secrets.ts), and this is a hash of them; undefined for a release without secret env.
 */
export function secretChecksum(digests: Readonly<Record<string, string>> | undefined): string | undefined {
  const entries = Object.entries(digests ?? {}).sort(([a], [b]) => compare(a, b));
  if (!entries.length) return undefined;
  return createHash("sha256").update(JSON.stringify(entries)).digest("hex").slice(0, 16);
}

function secretAnnotations(release: Release): Record<string, string> | undefined {
  const checksum = secretChecksum(release.spec.secretDigests);
  return checksum ? { [ANNOTATIONS.secretChecksum]: checksum } : undefined;
}

function probe(p: HttpProbe, port: number): Record<string, unknown> {
  return compact({
    httpGet: { path: p.path ?? "/", port: p.port ?? port },
    initialDelaySeconds: p.initialDelaySeconds,
    periodSeconds: p.periodSeconds,
    timeoutSeconds: p.timeoutSeconds,
    failureThreshold: p.failureThreshold,
  });
}

function service(app: App, release: Release, port: number): KubernetesObject {
  return object("v1", "Service", app.metadata.name, app, release, WEB, {
    spec: {
      selector: selectorLabels(app, WEB),
      ports: [{ name: "http", port: SERVICE_PORT, targetPort: port, protocol: "TCP" }],
    },
  });
}

function ingress(app: App, release: Release, hosts: string[], platform: PlatformSettings): KubernetesObject {
  const routing = app.spec.routing ?? {};
  return object("networking.k8s.io/v1", "Ingress", app.metadata.name, app, release, WEB, {
    spec: compact({
      ingressClassName: platform.ingressClassName,
      tls: routing.tls ? [{ hosts: [...hosts], secretName: routing.tls.secretName }] : undefined,
      rules: hosts.map((host) => ({
        host,
        http: { paths: [{ path: routing.path ?? "/", pathType: "Prefix", backend: { service: { name: app.metadata.name, port: { number: SERVICE_PORT } } } }] },
      })),
    }),
  });
}

// TLS with Gateway API is terminated by the platform's Gateway listener, so the HTTPRoute names no Secret.
function httpRoute(app: App, release: Release, hosts: string[], platform: PlatformSettings): KubernetesObject {
  const gateway = platform.gateway ?? { name: "" };
  return object("gateway.networking.k8s.io/v1", "HTTPRoute", app.metadata.name, app, release, WEB, {
    spec: {
      parentRefs: [compact({ group: "gateway.networking.k8s.io", kind: "Gateway", name: gateway.name, namespace: gateway.namespace })],
      hostnames: hosts,
      rules: [
        {
          matches: [{ path: { type: "PathPrefix", value: app.spec.routing?.path ?? "/" } }],
          backendRefs: [{ name: app.metadata.name, port: SERVICE_PORT }],
        },
      ],
    },
  });
}

function hpa(app: App, release: Release, type: string, min: number, max: number, cpuPercent: number): KubernetesObject {
  const name = dnsLabel(`${app.metadata.name}-${type}`);
  return object("autoscaling/v2", "HorizontalPodAutoscaler", name, app, release, type, {
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
      minReplicas: min,
      maxReplicas: max,
      metrics: [{ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: cpuPercent } } }],
    },
  });
}

// --------------------------------------------------------------------------------------------- helpers

function object(apiVersion: string, kind: string, name: string, app: App, release: Release, type: string, body: Record<string, unknown>): KubernetesObject {
  return { apiVersion, kind, metadata: { name, namespace: app.metadata.namespace ?? "", labels: labels(app, release, type) }, ...body };
}

/** Labels that never change between releases: Deployment selectors are immutable. */
function selectorLabels(app: App, type: string): Record<string, string> {
  return { [LABELS.app]: app.metadata.name, [LABELS.process]: type };
}

function labels(app: App, release: Release, type: string): Record<string, string> {
  const own: Record<string, string> = {
    [LABELS.name]: app.metadata.name,
    [LABELS.version]: version(release),
    [LABELS.component]: type,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.app]: app.metadata.name,
    [LABELS.release]: version(release),
    [LABELS.process]: type,
  };
  // The App's own labels (team, cost centre, …) carry over; GitOps tracking labels never do.
  const inherited: Record<string, string> = {};
  for (const [key, value] of Object.entries(app.metadata.labels ?? {})) {
    if (!isTrackingKey(key) && !(key in own) && key !== LABELS.preview) inherited[key] = value;
  }
  return sorted({ ...inherited, ...own });
}

function version(release: Release): string {
  return `v${release.spec.version}`;
}

/** The hosts an App's web route serves: its default host, then spec.routing.domains (none when routing is off). */
export function routeHosts(app: App, platform: Partial<PlatformSettings> = {}): string[] {
  if (app.spec.routing?.enabled === false) return [];
  const settings: PlatformSettings = { ...defaultPlatform, ...dropUndefined(platform) };
  return [defaultHost(app.metadata.name, app.metadata.namespace ?? "", settings), ...(app.spec.routing?.domains ?? [])];
}

function defaultHost(app: string, namespace: string, platform: PlatformSettings): string {
  return `${app}.${namespace}.${platform.domain}`;
}

function ref(o: App | Config | Release): NonNullable<RenderError["object"]> {
  return o.metadata.namespace ? { kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace } : { kind: o.kind, name: o.metadata.name };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sorted<T>(record: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const key of Object.keys(record).sort(compare)) out[key] = record[key] as T;
  return out;
}

/** A copy with sorted keys and no undefined values; undefined when nothing is left. */
function sortedOrUndefined<T extends object>(record: T | undefined): T | undefined {
  if (record === undefined) return undefined;
  const out = sorted(dropUndefined(record) as Record<string, unknown>);
  return Object.keys(out).length > 0 ? (out as T) : undefined;
}

/** Drops undefined fields, keeping the order of the others. */
function compact<T extends Record<string, unknown>>(record: T): T {
  return dropUndefined(record) as T;
}

function dropUndefined<T extends object>(record: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, value] of Object.entries(record)) {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}
