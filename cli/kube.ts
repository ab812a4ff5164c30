// What kubectl-slipway knows of the cluster: the user's kubeconfig, namespace and identity over the operator's one
// Kubernetes client (operator/kube.ts), which writes as field manager "kubectl-slipway"; every write carries the
// `slipway.dev/changed-by` annotation, and every failure becomes a one-line CliError. Pod logs and the watch of a
// one-off pod stream through @kubernetes/client-node's Log and Watch on the same KubeConfig.
import { PassThrough, type Writable } from "node:stream";
import { KubeConfig, Log, Watch, type V1Deployment, type V1Pod, type V1Secret } from "@kubernetes/client-node";
import { ANNOTATIONS, API_VERSION, type App, type Config, type OwnerReference, type Release } from "../crds/v1alpha1.js";
import { isConflict, isNotFound, Kube, KubeError, type KubeObject } from "../operator/kube.js";
import { CliError, isNotServed, toCliError, type RequestContext } from "./errors.js";

/** The CLI's field manager: GitOps hands its fields over to Git (Argo CD), and Releases name the user who wrote them. */
export const FIELD_MANAGER = "kubectl-slipway";

export interface ConnectOptions {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  /** Impersonate this user, like `kubectl --as`. */
  as?: string;
}

/** An object as this CLI applies it: apiVersion, kind and metadata.name are enough. */
export interface Applied {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: OwnerReference[];
    /** A precondition: the write fails with a ConflictError when the object has changed since. */
    resourceVersion?: string;
  };
  [field: string]: unknown;
}

type Kinds = { App: App; Config: Config; Release: Release; Secret: V1Secret; Pod: V1Pod; Deployment: V1Deployment };

const apiVersionOf: Record<keyof Kinds, string> = { App: API_VERSION, Config: API_VERSION, Release: API_VERSION, Secret: "v1", Pod: "v1", Deployment: "apps/v1" };
const resourceOf: Record<keyof Kinds, string> = {
  App: "apps.slipway.dev", Config: "configs.slipway.dev", Release: "releases.slipway.dev", Secret: "secrets", Pod: "pods",
  Deployment: "deployments.apps",
};

export class Session {
  readonly #kc: KubeConfig;
  readonly #kube: Kube;
  /** The namespace every command works in. */
  readonly namespace: string;
  /** Who is asking as far as the kubeconfig says: the impersonated user, or the context's user entry name. */
  readonly user: string;
  readonly server: string;
  /** The user name the API server authenticates this client as, asked once (see requester()). */
  #requester: Promise<string> | undefined;

  private constructor(kc: KubeConfig, namespace: string, user: string) {
    this.#kc = kc;
    this.#kube = new Kube(kc, { fieldManager: FIELD_MANAGER });
    this.namespace = namespace;
    this.user = user;
    this.server = kc.getCurrentCluster()?.server ?? "";
  }

  static connect(opts: ConnectOptions): Session {
    const kc = new KubeConfig();
    try {
      if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
      else kc.loadFromDefault();
    } catch (cause) {
      throw new CliError(`cannot read kubeconfig ${opts.kubeconfig ?? process.env.KUBECONFIG ?? "~/.kube/config"}: ${(cause as Error).message}`);
    }
    if (opts.context) {
      if (!kc.getContextObject(opts.context)) throw new CliError(`context "${opts.context}" not found in kubeconfig`);
      kc.setCurrentContext(opts.context);
    }
    if (!kc.getCurrentCluster()) throw new CliError("no cluster in kubeconfig: set KUBECONFIG or pass --kubeconfig");
    const ctx = kc.getContextObject(kc.getCurrentContext());
    const userName = kc.getCurrentUser()?.name ?? ctx?.user ?? "unknown";
    if (opts.as) {
      // KubeConfig sends the Impersonate-User header for a user with impersonateUser, on every request.
      const current = kc.getCurrentUser();
      kc.users = kc.users.map((u) => (u === current ? { ...u, impersonateUser: opts.as } : u));
    }
    return new Session(kc, opts.namespace ?? ctx?.namespace ?? "default", opts.as ?? userName);
  }

  /**
   * Who the API server says is asking (a SelfSubjectReview): what `slipway.dev/changed-by` must hold, since
   * admission refuses any other value. A kubeconfig's user entry is often named otherwise ("kind-kind" for
   * "kubernetes-admin"). Falls back to `user` on a server that cannot answer (before Kubernetes 1.28).
   */
  requester(): Promise<string> {
    this.#requester ??= this.#kube
      .request<{ status?: { userInfo?: { username?: string } } }>("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
      })
      .then((review) => review.status?.userInfo?.username || this.user, () => this.user);
    return this.#requester;
  }

  async get<K extends keyof Kinds>(kind: K, name: string): Promise<Kinds[K] | undefined> {
    try {
      return await retryTransient(async () => {
        try {
          return await this.#kube.get(apiVersionOf[kind], kind, this.namespace, name) as unknown as Kinds[K];
        } catch (e) {
          if (isNotFound(e) && !isNotServed(e)) return undefined;
          throw e;
        }
      });
    } catch (e) {
      throw this.#error(e, { verb: "get", resource: resourceOf[kind], name });
    }
  }

  /** The App, or the one-line "not found" error every command gives for an unknown app. */
  async app(name: string): Promise<App> {
    const app = await this.get("App", name);
    if (!app) throw new CliError(`app "${name}" not found in namespace "${this.namespace}"`);
    return app;
  }

  async list<K extends keyof Kinds>(kind: K, labelSelector?: string): Promise<Kinds[K][]> {
    try {
      const list = await retryTransient(() => this.#kube.list(apiVersionOf[kind], kind, this.namespace, labelSelector));
      return list.items as unknown as Kinds[K][];
    } catch (e) {
      throw this.#error(e, { verb: "list", resource: resourceOf[kind] });
    }
  }

  /** Server-side apply as "kubectl-slipway" (force, strict field validation), recording the user in `slipway.dev/changed-by`. */
  async apply<T>(obj: Applied): Promise<T> {
    const body = await this.#stamped(obj);
    try {
      return await this.#kube.apply(body) as unknown as T;
    } catch (e) {
      if (isConflict(e)) throw new ConflictError(obj.kind, obj.metadata.name, { cause: e });
      throw this.#error(e, { verb: "patch", resource: resourceOf[obj.kind as keyof Kinds] ?? obj.kind, name: obj.metadata.name });
    }
  }

  /**
   * A JSON merge patch as "kubectl-slipway", for what an apply cannot do: remove a field that another manager
   * (kubectl, Git sync) also owns, or change one key of a Secret the user may write but not read.
   * Returns undefined when the object does not exist.
   */
  async mergePatch<K extends keyof Kinds>(kind: K, name: string, patch: Record<string, unknown>): Promise<Kinds[K] | undefined> {
    const meta = patch.metadata as Applied["metadata"] | undefined;
    const body = await this.#stamped({ ...patch, apiVersion: apiVersionOf[kind], kind, metadata: { ...meta, name } });
    try {
      return await this.#kube.mergePatch(body, body) as unknown as Kinds[K];
    } catch (e) {
      if (isNotFound(e) && !isNotServed(e)) return undefined;
      if (isConflict(e)) throw new ConflictError(kind, name, { cause: e });
      throw this.#error(e, { verb: "patch", resource: resourceOf[kind], name });
    }
  }

  /** Creates an object as "kubectl-slipway" (for Pods and Secrets, where the user may create but not patch). */
  async create<T>(obj: Applied): Promise<T> {
    const body = await this.#stamped(obj);
    try {
      return await this.#kube.create(body) as unknown as T;
    } catch (e) {
      if (isConflict(e)) throw new ConflictError(obj.kind, obj.metadata.name, { cause: e });
      throw this.#error(e, { verb: "create", resource: resourceOf[obj.kind as keyof Kinds] ?? obj.kind, name: obj.metadata.name });
    }
  }

  /** Deletes an object; one that is already gone is success. Returns whether it existed. */
  async delete(kind: keyof Kinds, name: string, opts: { gracePeriodSeconds?: number } = {}): Promise<boolean> {
    try {
      const path = await this.#kube.path(apiVersionOf[kind], kind, this.namespace, name);
      await this.#kube.request("DELETE", path, {
        body: { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background", gracePeriodSeconds: opts.gracePeriodSeconds },
      });
      return true;
    } catch (e) {
      if (isNotFound(e) && !isNotServed(e)) return false;
      throw this.#error(e, { verb: "delete", resource: resourceOf[kind], name });
    }
  }

  /** Streams a container's log into `into`; resolves with an AbortController once the stream has started. */
  async log(pod: string, container: string, into: Writable, opts: { follow?: boolean; tailLines?: number }): Promise<AbortController> {
    try {
      return await new Log(this.#kc).log(this.namespace, pod, container, into, opts);
    } catch (e) {
      throw this.#error(e, { verb: "get", resource: "pods/log", name: pod });
    }
  }

  /**
   * Calls `onEvent` for every Pod matching `labelSelector` (first as ADDED for those that exist) and every change
   * of one, until the returned controller is aborted.
   */
  async watchPods(labelSelector: string, onEvent: (type: string, pod: V1Pod) => void, onDone: (err: unknown) => void): Promise<AbortController> {
    try {
      return await new Watch(this.#kc).watch(`/api/v1/namespaces/${this.namespace}/pods`, { labelSelector },
        (type: string, obj: V1Pod) => onEvent(type, obj), onDone);
    } catch (e) {
      throw this.#error(e, { verb: "watch", resource: "pods" });
    }
  }

  /** Calls `onEvent` for every change of one Pod until the returned controller is aborted. */
  async watchPod(name: string, onEvent: (type: string, pod: V1Pod) => void, onDone: (err: unknown) => void): Promise<AbortController> {
    try {
      return await new Watch(this.#kc).watch(`/api/v1/namespaces/${this.namespace}/pods`, { fieldSelector: `metadata.name=${name}` },
        (type: string, obj: V1Pod) => onEvent(type, obj), onDone);
    } catch (e) {
      throw this.#error(e, { verb: "watch", resource: "pods", name });
    }
  }

  /** The object in this namespace, with the requester (see requester()) in `slipway.dev/changed-by`. */
  async #stamped(obj: Applied): Promise<KubeObject> {
    const requester = await this.requester();
    return {
      ...obj,
      metadata: { ...obj.metadata, namespace: this.namespace, annotations: { ...obj.metadata.annotations, [ANNOTATIONS.changedBy]: requester } },
    };
  }

  #error(e: unknown, ctx: Omit<RequestContext, "namespace" | "server">): CliError {
    return toCliError(e, { ...ctx, namespace: this.namespace, server: this.server });
  }
}

/** Retries a request the API server could not answer yet (503 while a new CRD's storage starts, 429). */
async function retryTransient<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (e) {
      const code = e instanceof KubeError ? e.code : undefined;
      if ((code !== 503 && code !== 429) || attempt >= 5) throw e;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** A write whose resourceVersion precondition failed: the object changed since it was read. */
export class ConflictError extends Error {
  constructor(kind: string, name: string, options?: { cause?: unknown }) {
    super(`${kind} ${name} changed while this command edited it`, options);
    this.name = "ConflictError";
  }
}

/** A writable that calls `onLine` for each complete line written to it (and the last partial one at the end). */
export function lineStream(onLine: (line: string) => void): PassThrough {
  const stream = new PassThrough();
  let buffered = "";
  stream.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const l of lines) onLine(l);
  });
  stream.on("end", () => {
    if (buffered) onLine(buffered);
    buffered = "";
  });
  return stream;
}
