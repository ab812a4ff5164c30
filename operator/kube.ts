// The operator's one Kubernetes client: server-side apply, status writes, Events, deletes and lists, as plain
// JSON over the API server's REST paths. Authentication and TLS come from @kubernetes/client-node's KubeConfig.
import http from "node:http";
import https from "node:https";
import { createHash, randomBytes } from "node:crypto";
import os from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import { redactDeep, redactUrls } from "./redact.js";

/** The operator's field manager; GitOps writes as "slipway-gitops", the CLI as "kubectl-slipway" (Kube.as). */
/** The operator's field manager. GitOps writes as "slipway-gitops" through `Kube.as`. */
export const FIELD_MANAGER = "slipway";
export const REPORTING_CONTROLLER = "slipway.dev/operator";

/** Requests made through Kube in this process, by "VERB status" (watches excluded); /metrics serves them. */
export const requestCounts = new Map<string, number>();

/**
 * The resource a request path addresses, with its subresource ("deployments", "apps/status"), for the request
 * counter: never a name or namespace, so the counter's labels stay few. "" for a path outside /api and /apis.
 */
export function resourceOf(path: string): string {
  const segments = path.split("?")[0]?.split("/").filter(Boolean) ?? [];
  let rest: string[];
  if (segments[0] === "api") rest = segments.slice(2);
  else if (segments[0] === "apis") rest = segments.slice(3);
  else return "";
  if (rest[0] === "namespaces" && rest.length > 2) rest = rest.slice(2);
  const [resource = "", , subresource] = rest;
  return subresource ? `${resource}/${subresource}` : resource;
}

/** The smallest shape of a Kubernetes object this client reads and writes. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

/**
 * A failed API call: `code` is the HTTP status, `reason` the Status reason (NotFound, Conflict, …), `status`
 * the API server's own message (an admission webhook's denial, a validation error), without the request.
 */
export class KubeError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly status: string;
  constructor(code: number, reason: string, message: string, options?: { cause?: unknown; status?: string }) {
    super(message, options);
    this.name = "KubeError";
    this.code = code;
    this.reason = reason;
    this.status = options?.status ?? message;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeError && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeError && err.code === 409;
}

/** The API server refused a write naming an object's uid because the object under that name has another one. */
export function isUidChanged(err: unknown): boolean {
  return err instanceof KubeError && err.code === 422 && err.message.includes("metadata.uid");
}

/** The API server refused the object itself (invalid, or denied by an admission webhook): sending it again cannot help. */
export function isRefused(err: unknown): err is KubeError {
  return err instanceof KubeError && (err.code === 400 || err.code === 422 || (err.code === 403 && err.status.includes("denied the request")));
}

/** Who an Event is about. */
export interface EventSubject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string };
}

export interface EventInput {
  type: "Normal" | "Warning";
  reason: string;
  /** What the operator did or failed to do, e.g. "Reconcile", "Rollout", "CutRelease". */
  action: string;
  note: string;
}

interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** The Accept header; default application/json. */
  accept?: string;
}

/**
 * The Accept headers that ask the API server for objects' metadata only, as client-go's metadata informers do: a
 * list (PartialObjectMetadataList) or a watch (events of PartialObjectMetadata) of Secrets this way never carries
 * their values. (A watch asked for the list form ends at once, without an error.)
 */
export const METADATA_ONLY = {
  list: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
  watch: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
} as const;

/** Kinds Slipway reads and writes, so their REST paths need no discovery. */
const KNOWN_PLURALS: Record<string, string> = {
  "v1/Service": "services",
  "v1/Pod": "pods",
  "v1/Secret": "secrets",
  "v1/Event": "events",
  "v1/Namespace": "namespaces",
  "apps/v1/Deployment": "deployments",
  "apps/v1/ReplicaSet": "replicasets",
  "networking.k8s.io/v1/Ingress": "ingresses",
  "autoscaling/v2/HorizontalPodAutoscaler": "horizontalpodautoscalers",
  "gateway.networking.k8s.io/v1/HTTPRoute": "httproutes",
  "events.k8s.io/v1/Event": "events",
  "coordination.k8s.io/v1/Lease": "leases",
  "slipway.dev/v1alpha1/App": "apps",
  "slipway.dev/v1alpha1/Config": "configs",
  "slipway.dev/v1alpha1/Release": "releases",
  "tekton.dev/v1/PipelineRun": "pipelineruns",
  "tekton.dev/v1/TaskRun": "taskruns",
};

/**
 * What a change of an App or Config can matter by, as one string: uid, generation (the spec), labels,
 * annotations and deletion. Equal for two versions that differ only in status (or resourceVersion).
 */
export function specFingerprint(obj: KubeObject | undefined): string {
  if (!obj) return "";
  const m = obj.metadata;
  return digest(JSON.stringify([m.uid, m.generation, m.labels ?? {}, m.annotations ?? {}, m.deletionTimestamp ?? null]));
}

/**
 * A short digest of a fingerprint, for maps that keep one per object: the JSON itself (labels and annotations)
 * was 4 MiB of the operator's heap with 3,000 Apps and their Releases.
 */
export function digest(text: string): string {
  return createHash("sha256").update(text).digest("base64");
}

/** What clients of one API server share: the keep-alive agent and the kinds' REST paths. */
class Transport {
  agent: http.Agent | undefined;
  readonly plurals = new Map<string, string>(Object.entries(KNOWN_PLURALS));
  /** Kinds the server did not serve, until when: discovery is not repeated on every reconcile. */
  readonly unserved = new Map<string, number>();
}

export interface KubeOptions {
  /** The field manager of every write; default "slipway". */
  fieldManager?: string;
}

export class Kube {
  readonly kubeConfig: KubeConfig;
  /** The field manager this client writes as. */
  readonly fieldManager: string;
  #server: URL;
  readonly #transport: Transport;

  constructor(kubeConfig: KubeConfig, options: KubeOptions = {}, transport = new Transport()) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster");
    this.kubeConfig = kubeConfig;
    this.fieldManager = options.fieldManager ?? FIELD_MANAGER;
    this.#server = new URL(cluster.server);
    this.#transport = transport;
  }

  /** The same client (connections, discovery) writing as another field manager. */
  as(fieldManager: string): Kube {
    return new Kube(this.kubeConfig, { fieldManager }, this.#transport);
  }

  /** The REST path of a collection (name undefined) or of one object. */
  async path(apiVersion: string, kind: string, namespace: string | undefined, name?: string): Promise<string> {
    const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const plural = await this.#plural(apiVersion, kind);
    const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
    return `${base}${ns}/${plural}${name === undefined ? "" : `/${encodeURIComponent(name)}`}`;
  }

  async get<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>("GET", await this.path(apiVersion, kind, namespace, name));
  }

  /** Like get, but undefined when the object does not exist. */
  async getIfExists<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.get<T>(apiVersion, kind, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Every object of a kind in a namespace (all namespaces when undefined), optionally by label or field selector;
   * with `metadataOnly`, only their metadata (see METADATA_ONLY).
   */
  async list<T extends KubeObject>(
    apiVersion: string, kind: string, namespace: string | undefined, labelSelector?: string, fieldSelector?: string, options: { metadataOnly?: boolean } = {},
  ): Promise<KubeList<T>> {
    const path = await this.path(apiVersion, kind, namespace);
    const items: T[] = [];
    let cont: string | undefined;
    let last: KubeList<T>;
    const accept = options.metadataOnly ? METADATA_ONLY.list : undefined;
    do {
      last = await this.request<KubeList<T>>("GET", path, { query: { labelSelector, fieldSelector, limit: 500, continue: cont }, accept });
      // List items carry no apiVersion/kind; give them back so callers can address them.
      for (const item of last.items ?? []) items.push({ ...item, apiVersion, kind });
      cont = last.metadata?.continue || undefined;
    } while (cont);
    return { apiVersion: last.apiVersion, kind: last.kind, metadata: last.metadata, items };
  }

  async create<T extends KubeObject>(obj: T): Promise<T> {
    const path = await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace);
    return this.request<T>("POST", path, { body: obj, query: { fieldManager: this.fieldManager } });
  }

  /** Replaces an object; with metadata.resourceVersion set this fails with 409 when it changed meanwhile. */
  async replace<T extends KubeObject>(obj: T): Promise<T> {
    const path = await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
    return this.request<T>("PUT", path, { body: obj, query: { fieldManager: this.fieldManager } });
  }

  /** Server-side apply as this client's field manager, taking ownership of the fields in `obj` (force). */
  async apply<T extends KubeObject>(obj: KubeObject): Promise<T> {
    const path = await this.path(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
    return this.request<T>("PATCH", path, {
      body: obj,
      contentType: "application/apply-patch+yaml",
      query: { fieldManager: this.fieldManager, force: true, fieldValidation: "Strict" },
    });
  }

  /** JSON merge patch of an object (not its status); include metadata.resourceVersion for optimistic locking. */
  async mergePatch<T extends KubeObject>(target: EventSubject, patch: unknown): Promise<T> {
    const path = await this.path(target.apiVersion, target.kind, target.metadata.namespace, target.metadata.name);
    return this.request<T>("PATCH", path, {
      body: patch,
      contentType: "application/merge-patch+json",
      query: { fieldManager: this.fieldManager },
    });
  }

  /**
   * Writes status through the status subresource: a JSON merge patch holding only `{status}` (and, when
   * given, the resourceVersion it was computed from, so a concurrent change makes it fail with 409).
   */
  async patchStatus<T extends KubeObject>(target: EventSubject, status: unknown, resourceVersion?: string): Promise<T> {
    const path = await this.path(target.apiVersion, target.kind, target.metadata.namespace, target.metadata.name);
    // Status is read by everyone who may read the object: no URL credentials (from an error message) in it.
    const body = resourceVersion ? { metadata: { resourceVersion }, status: redactDeep(status) } : { status: redactDeep(status) };
    return this.request<T>("PATCH", `${path}/status`, {
      body,
      contentType: "application/merge-patch+json",
      query: { fieldManager: this.fieldManager },
    });
  }

  /** Deletes an object; one that is already gone counts as deleted. Returns whether it existed. */
  async deleteIfExists(target: EventSubject, propagationPolicy: "Background" | "Foreground" = "Background", preconditions?: { uid?: string }): Promise<boolean> {
    const path = await this.path(target.apiVersion, target.kind, target.metadata.namespace, target.metadata.name);
    try {
      // With preconditions, an object of that name with another uid is not deleted: the API server answers 409.
      await this.request("DELETE", path, { body: { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy, ...(preconditions ? { preconditions } : {}) } });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Records an Event (events.k8s.io/v1) about `subject`. Failing to record one is logged by the caller, not fatal. */
  async event(subject: EventSubject, input: EventInput): Promise<void> {
    const namespace = subject.metadata.namespace ?? "default";
    const event = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      // Named like client-go's recorder: <object>.<time in hex><random>, unique without a server round trip.
      metadata: { name: `${subject.metadata.name}.${Date.now().toString(16)}${randomBytes(3).toString("hex")}`, namespace },
      eventTime: microTime(new Date()),
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: `${REPORTING_CONTROLLER}-${os.hostname()}`.slice(0, 128),
      action: input.action,
      reason: input.reason,
      note: redactUrls(input.note).slice(0, 1024),
      type: input.type,
      regarding: {
        apiVersion: subject.apiVersion,
        kind: subject.kind,
        name: subject.metadata.name,
        namespace,
        uid: subject.metadata.uid,
      },
    };
    await this.request("POST", `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events`, { body: event });
  }

  /** One API call; non-2xx answers become a KubeError carrying the Status reason and message. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path, this.#server);
    // Keep a server URL's own path prefix (e.g. behind a proxy).
    url.pathname = this.#server.pathname.replace(/\/$/, "") + path;
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const opts: https.RequestOptions = { method, headers: {} };
    await this.kubeConfig.applyToHTTPSOptions(opts);
    // applyToHTTPSOptions builds a fresh agent per call, without keep-alive: every call would pay a TLS handshake
    // (on both sides). One keep-alive agent with the same TLS options reuses connections instead.
    if (!this.#transport.agent && opts.agent instanceof https.Agent) this.#transport.agent = new https.Agent({ ...opts.agent.options, keepAlive: true });
    else if (!this.#transport.agent && opts.agent instanceof http.Agent) this.#transport.agent = opts.agent;
    if (this.#transport.agent) opts.agent = this.#transport.agent;
    const headers: http.OutgoingHttpHeaders = { ...(opts.headers as http.OutgoingHttpHeaders), accept: options.accept ?? "application/json" };
    let payload: string | undefined;
    if (options.body !== undefined) {
      payload = JSON.stringify(options.body);
      headers["content-type"] = options.contentType ?? "application/json";
      headers["content-length"] = Buffer.byteLength(payload);
    }
    opts.headers = headers;
    const protocol = url.protocol === "https:" ? https : http;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = protocol.request(url, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer within 30s`)));
      req.on("error", (err) => reject(new KubeError(0, "ConnectionFailed", `${method} ${path}: ${err.message}`, { cause: err })));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
    const counted = `${method} ${status} ${resourceOf(path)}`;
    requestCounts.set(counted, (requestCounts.get(counted) ?? 0) + 1);
    if (status < 200 || status >= 300) {
      let reason = "Unknown";
      let message = text;
      try {
        const body = JSON.parse(text) as { reason?: string; message?: string };
        reason = body.reason ?? reason;
        message = body.message ?? message;
      } catch {
        // not a Status object; keep the raw text
      }
      throw new KubeError(status, reason, `${method} ${path}: ${status} ${reason}: ${message}`, { status: message });
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async #plural(apiVersion: string, kind: string): Promise<string> {
    const key = `${apiVersion}/${kind}`;
    const known = this.#transport.plurals.get(key);
    if (known) return known;
    const notServed = () => new KubeError(404, "NotFound", `the API server does not serve kind ${kind} in ${apiVersion}`);
    if ((this.#transport.unserved.get(key) ?? 0) > Date.now()) throw notServed();
    const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let resource: { name: string; kind: string } | undefined;
    try {
      const list = await this.request<{ resources: { name: string; kind: string }[] }>("GET", base);
      resource = list.resources.find((r) => r.kind === kind && !r.name.includes("/"));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!resource) {
      this.#transport.unserved.set(key, Date.now() + 60_000);
      throw notServed();
    }
    this.#transport.plurals.set(key, resource.name);
    return resource.name;
  }
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
