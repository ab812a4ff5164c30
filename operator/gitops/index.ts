// GitOps for Slipway, wired into the operator with one call: startGitOps(). Cluster → Git: watches Apps,
// Configs and Releases and commits every change. Git → cluster (mode "sync"): applies pushes, on a webhook
// or by polling. See README.md in this directory for the repository layout and the rules.
import type { IncomingMessage, ServerResponse } from "node:http";
import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { ObjectMeta } from "../../crds/v1alpha1.js";
import { API_VERSION } from "../../crds/v1alpha1.js";
import { Kube, type KubeObject } from "../kube.js";
import { log as rootLog } from "../log.js";
import { verifyWebhook } from "../webhooks.js";
import { GitOpsEngine } from "./engine.js";
import type { SlipwayKind } from "./layout.js";
import { ConfigRepo } from "./repo.js";

export { GITOPS_FIELD_MANAGER } from "./engine.js";

export interface GitOpsOptions {
  kubeConfig: KubeConfig;
  repo: {
    /** Smart-HTTP(S) URL of the config repository (the embedded default serves a local one over HTTP). */
    url: string;
    /** Default "main". */
    branch?: string;
    credentials?: { username: string; password: string } | undefined;
    /** Directory for the operator's clone; reused across restarts. */
    dir: string;
  };
  /** "sync": Slipway also applies Git to the cluster. "commit-only": Argo CD or Flux do that. */
  mode: "sync" | "commit-only";
  /** How often the remote is polled for pushes (a webhook makes it immediate). */
  pollIntervalMs: number;
  /** Secret push webhooks are signed with; without one every webhook is refused (polling still works). */
  webhookSecret?: string;
  /** Only this namespace; default all. */
  namespace?: string;
  logger?: Logger;
  /** Quiet time after an App or Config change before it is committed; default 500 ms. */
  settleMs?: number;
  /**
   * How long at most an App or Config change waits for the Release the operator cuts for it, to share its
   * commit; default 60 s. Only a slow operator gets near it (an overloaded cluster can take 10 s to cut one).
   */
  releaseWaitMs?: number;
}

export interface GitOpsHandle {
  stop(): Promise<void>;
  /** Answers push webhooks: 401 unless signed with the webhook secret, else 202 and a sync starts. */
  webhookHandler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Fetches the remote and applies what changed (mode "sync"); resolves when done. */
  syncNow(): Promise<void>;
  /** Resolves when every change seen so far is committed (tests, graceful shutdown). */
  idle(): Promise<void>;
}

const RESOURCES: Record<SlipwayKind, string> = { App: "apps", Config: "configs", Release: "releases" };

/** Starts GitOps: opens the config repository, reconciles everything once, then watches and polls. */
export async function startGitOps(options: GitOpsOptions): Promise<GitOpsHandle> {
  const log = (options.logger ?? rootLog).child({ component: "gitops" });
  const kube = new Kube(options.kubeConfig);
  let repo: ConfigRepo;
  try {
    repo = await ConfigRepo.open(options.repo);
  } catch (err) {
    throw new Error(`cannot open the config repository ${options.repo.url}`, { cause: err });
  }
  const engine = new GitOpsEngine({ kube, repo, mode: options.mode, namespace: options.namespace, log });
  const settleMs = options.settleMs ?? 500;
  const releaseWaitMs = options.releaseWaitMs ?? 60_000;
  let stopped = false;

  // One lane: every use of the repository runs after the previous one.
  let tail: Promise<void> = Promise.resolve();
  const lane = (what: string, fn: () => Promise<void>): Promise<void> => {
    const run = tail.then(fn);
    tail = run.catch((err: unknown) => log.warn({ err, what }, "GitOps step failed; it is retried on the next event or poll"));
    return run;
  };
  // An App or Config change waits briefly, and for the Release the operator cuts for it, so both share a commit.
  const timers = new Map<string, NodeJS.Timeout>();
  const waiting = new Map<string, number>();
  const queuedApps = new Set<string>();
  const enqueueApp = (key: string) => {
    if (queuedApps.has(key) || stopped) return;
    queuedApps.add(key);
    const since = waiting.get(key) ?? Date.now();
    void lane(`reconcile ${key}`, async () => {
      queuedApps.delete(key);
      const [ns = "", app = ""] = key.split("/");
      const result = await engine.reconcileApp(ns, app, Date.now() - since < releaseWaitMs);
      if (result === "held") {
        waiting.set(key, since);
        schedule(key, 250);
      }
    }).catch(() => undefined);
  };
  function schedule(key: string, delay: number): void {
    clearTimeout(timers.get(key));
    if (!waiting.has(key)) waiting.set(key, Date.now());
    timers.set(
      key,
      setTimeout(async () => {
        timers.delete(key);
        const [ns = "", app = ""] = key.split("/");
        const since = waiting.get(key) ?? Date.now();
        try {
          if (Date.now() - since < releaseWaitMs && (await engine.releaseExpected(ns, app))) {
            schedule(key, 250);
            return;
          }
        } catch (err) {
          log.debug({ err, app: key }, "cannot tell whether a release is coming; committing now");
        }
        enqueueApp(key);
        waiting.delete(key);
      }, delay),
    );
  }
  const now = (key: string) => {
    clearTimeout(timers.get(key));
    timers.delete(key);
    enqueueApp(key);
    waiting.delete(key);
  };

  const sync = async (force: boolean) => {
    for (const key of await engine.sync(force)) schedule(key, 250);
  };
  const syncNow = () => lane("sync", () => sync(false));
  await lane("initial sync", () => sync(true));

  // Watches: status-only writes (ours included) change nothing Git holds, so they are skipped.
  const fingerprints = new Map<string, string>();
  const informers = (Object.keys(RESOURCES) as SlipwayKind[]).map((kind) => {
    const inNs = options.namespace ? `/namespaces/${encodeURIComponent(options.namespace)}` : "";
    const path = `/apis/${API_VERSION}${inNs}/${RESOURCES[kind]}`;
    const list = () =>
      kube.list<KubeObject>(API_VERSION, kind, options.namespace) as unknown as Promise<KubernetesListObject<KubernetesObject>>;
    const informer = makeInformer<KubernetesObject>(options.kubeConfig, path, list);
    const appKey = (obj: KubernetesObject) => {
      const ns = obj.metadata?.namespace ?? "";
      const app = kind === "Release" ? (obj as { spec?: { app?: string } }).spec?.app : obj.metadata?.name;
      return app ? `${ns}/${app}` : undefined;
    };
    const onChange = (obj: KubernetesObject) => {
      const m = obj.metadata ?? {};
      const id = `${kind}/${m.namespace}/${m.name}`;
      const print = JSON.stringify([m.uid, m.generation, m.labels ?? {}, m.annotations ?? {}, m.deletionTimestamp ?? null]);
      if (fingerprints.get(id) === print) return;
      fingerprints.set(id, print);
      const key = appKey(obj);
      if (!key) return;
      if (kind === "Release") now(key);
      else schedule(key, settleMs);
    };
    informer.on("add", onChange);
    informer.on("update", onChange);
    informer.on("delete", (obj) => {
      const m = obj.metadata ?? {};
      fingerprints.delete(`${kind}/${m.namespace}/${m.name}`);
      engine.noteDeleted(kind, m as ObjectMeta);
      const key = appKey(obj);
      if (key) schedule(key, settleMs);
    });
    informer.on("error", (err: unknown) => {
      if (stopped) return;
      log.warn({ err, kind }, "watch failed; restarting it");
      setTimeout(() => {
        if (!stopped) informer.start().catch((e: unknown) => log.warn({ err: e, kind }, "cannot restart the watch"));
      }, 2_000);
    });
    return informer;
  });
  await Promise.all(informers.map((i) => i.start()));

  const poll = setInterval(() => {
    if (!stopped) void syncNow().catch(() => undefined);
  }, options.pollIntervalMs);

  const webhookHandler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const verdict = verifyWebhook(req.headers, Buffer.concat(chunks), options.webhookSecret ?? "");
      if (!verdict.ok) {
        log.warn({ reason: verdict.reason, remote: req.socket.remoteAddress }, "refused a config repository webhook");
        res.writeHead(401, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: verdict.reason }));
        return;
      }
      log.info({ provider: verdict.provider }, "config repository webhook: syncing");
      res.writeHead(202, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "sync scheduled" }));
      void syncNow().catch(() => undefined);
    });
  };

  const idle = async () => {
    for (;;) {
      const mark = tail;
      while (timers.size) await new Promise((r) => setTimeout(r, 50));
      await mark;
      if (mark === tail && timers.size === 0) return;
    }
  };

  return {
    webhookHandler,
    syncNow,
    idle,
    async stop() {
      stopped = true;
      clearInterval(poll);
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      await Promise.all(informers.map((i) => i.stop()));
      await tail;
    },
  };
}
