// GitOps for Slipway, wired into the operator with one call: startGitOps(). Cluster → Git: hears every change
// of Apps, Configs and Releases from the operator's watch caches and commits it. Git → cluster (mode "sync"):
// applies pushes, on a webhook or by polling, to the Apps whose directories they changed. Each App is a key of
// one work queue, so different Apps are reconciled concurrently and one App never twice at once. See README.md
// in this directory for the repository layout and the rules.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { ObjectMeta } from "../../crds/v1alpha1.js";
import type { CacheEvent, ClusterCache } from "../cache.js";
import { isConflict, specFingerprint, type Kube } from "../kube.js";
import { log as rootLog, partLogger } from "../log.js";
import { gitopsPassDuration, gitopsPasses, gitopsQueueDepth } from "../metrics.js";
import { WorkQueue } from "../queue.js";
import { answerBodyError, readWebhookBody, verifyWebhook, WebhookBodyError } from "../webhooks.js";
import { ArgoCdLink, type ArgoCdOptions } from "./argocd.js";
import { GitOpsEngine, GITOPS_FIELD_MANAGER } from "./engine.js";
import { FluxNudge, type FluxTargets, type HeldObject } from "./flux.js";
import { ConfigRepo } from "./repo.js";

export { GITOPS_FIELD_MANAGER } from "./engine.js";
export type { FluxRef, FluxTargets } from "./flux.js";

export interface GitOpsOptions {
  /** The operator's client; GitOps applies and records commits through it as field manager "slipway-gitops". */
  kube: Kube;
  /** The operator's watch caches (OperatorHandle.cache), where GitOps reads and hears of the cluster's side. */
  cache: ClusterCache;
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
  /**
   * With mode "commit-only": the Flux GitRepository and Kustomization that apply the config repository. Slipway
   * asks them to reconcile after each push, and holds a cluster change from Flux until Flux has its commit
   * (flux.ts), so Flux's drift correction never reverts it.
   */
  flux?: FluxTargets;
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
  /** How many Apps are reconciled at once (commits and pushes still go one at a time); default 16. */
  concurrency?: number;
  /**
   * Mode "commit-only" beside Argo CD: the Application that applies the repository. Slipway asks it to refresh
   * after each push, and hands changes made with the CLI over to Git once Argo CD has seen them (argocd.ts).
   */
  argocd?: ArgoCdOptions;
  /** Called as each pass over an App ("namespace/name") starts (tests count them). */
  onPass?: (app: string) => void;
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

/** Starts GitOps: opens the config repository, reconciles everything once, then listens and polls. */
export async function startGitOps(options: GitOpsOptions): Promise<GitOpsHandle> {
  const log = partLogger(options.logger ?? rootLog, "gitops");
  // creationTimestamp has whole seconds.
  const startedAt = Math.floor(Date.now() / 1000) * 1000;
  const kube = options.kube;
  let repo: ConfigRepo;
  try {
    repo = await ConfigRepo.open(options.repo);
  } catch (err) {
    throw new Error(`cannot open the config repository ${options.repo.url}`, { cause: err });
  }
  const settleMs = options.settleMs ?? 500;
  const flux = new FluxNudge(kube, repo, options.mode === "commit-only" ? options.flux : undefined, log);
  /** Per App ("namespace/name"), the objects held from Flux whose changes wait to be in Flux's source. */
  const fluxHolds = new Map<string, HeldObject[]>();
  /** The generation last seen per App and Config, to tell a spec change from a metadata one. */
  const generations = new Map<string, number | undefined>();
  const releaseWaitMs = options.releaseWaitMs ?? 60_000;
  let stopped = false;

  // An App held for the release the operator is about to cut for it: since when, and the timer that gives up
  // waiting. The Release's arrival, or a change of the App's status (the operator observed the change, named the
  // release it cuts, or stalled), wakes it earlier.
  const held = new Map<string, { since: number; timer: NodeJS.Timeout }>();
  const release = (key: string) => {
    clearTimeout(held.get(key)?.timer);
    held.delete(key);
  };
  const queue = new WorkQueue(
    async (key) => {
      const [namespace = "", app = ""] = key.split("/");
      const since = held.get(key)?.since ?? Date.now();
      options.onPass?.(key);
      const started = Date.now();
      log.debug({ app: key, waitedMs: started - since }, "GitOps pass starts");
      const end = gitopsPassDuration.startTimer();
      // Holds from Flux set before this pass: the pass plans with their changes, so once it is done they are
      // in Git. One set during the pass waits for the next pass, which its change has asked for.
      const holds = fluxHolds.get(key);
      fluxHolds.delete(key);
      let result: "done" | "held";
      try {
        result = await engine.reconcileApp(namespace, app, Date.now() - since < releaseWaitMs);
        gitopsPasses.inc({ result });
      } catch (err) {
        gitopsPasses.inc({ result: "error" });
        if (holds) fluxHolds.set(key, [...holds, ...(fluxHolds.get(key) ?? [])]);
        throw err;
      } finally {
        end();
      }
      log.debug({ app: key, result, ms: Date.now() - started }, "GitOps pass");
      if (result === "done") {
        release(key);
        // The change is on the remote now (committed, or already there): release it once Flux has fetched it.
        const head = holds ? await repo.remoteHead() : undefined;
        if (head) flux.pushed(head, holds);
      } else if (holds) fluxHolds.set(key, [...holds, ...(fluxHolds.get(key) ?? [])]);
      else if (!held.has(key)) {
        const timer = setTimeout(() => void queue.enqueue(key), releaseWaitMs);
        timer.unref();
        held.set(key, { since, timer });
      }
    },
    {
      concurrency: options.concurrency ?? 16,
      onDepth: (depth) => gitopsQueueDepth.set(depth),
      onError: (key, err, retryInMs) => (isConflict((err as { cause?: unknown }).cause ?? err)
        ? log.debug({ app: key, retryInMs }, "an object changed while GitOps reconciled it; retrying")
        : log.warn({ err, app: key, retryInMs }, "GitOps could not reconcile an App; retrying")),
    },
  );

  // Syncs run one at a time; one asked for while another runs runs after it (it may have missed a push).
  let syncing: Promise<void> = Promise.resolve();
  const sync = (force: boolean): Promise<void> => {
    const run = syncing.then(async () => {
      if (stopped) return;
      const apps = await engine.sync(force);
      await Promise.all(apps.map((key) => queue.enqueue(key)));
    });
    syncing = run.catch((err: unknown) => log.warn({ err }, "cannot sync with the config repository; retrying at the next webhook or poll"));
    return run;
  };
  const syncNow = () => sync(false);

  const argocd = options.argocd && options.mode === "commit-only" ? new ArgoCdLink(kube, repo, options.argocd, log) : undefined;
  const engine = new GitOpsEngine({
    kube: kube.as(GITOPS_FIELD_MANAGER), cache: options.cache, repo, mode: options.mode, namespace: options.namespace, log, argocd,
    // A rejected push fetched commits of others: the Apps they changed are reconciled like a webhook's.
    onHeadMoved: () => void syncNow().catch(() => undefined),
    onPushed: (commit) => {
      flux.pushed(commit);
      if (argocd) void argocd.refresh();
    },
  });

  // Status-only writes (ours included) change nothing Git holds, so they are skipped, unless the App is held:
  // its status (or its Release's arrival) is what it waits for.
  const fingerprints = new Map<string, string>();
  const onEvent = ({ kind, type, object }: CacheEvent) => {
    if (stopped) return;
    const m = object.metadata;
    if (options.namespace && m.namespace !== options.namespace) return;
    const id = `${kind}/${m.namespace}/${m.name}`;
    const app = kind === "Release" ? (object.spec as { app?: string } | undefined)?.app : m.name;
    const key = app ? `${m.namespace}/${app}` : undefined;
    if (key && kind !== "Release" && type !== "delete") {
      // As soon as a watch sees it: Flux could revert a cluster change until its source has the commit.
      // A hold the CLI set is always tracked, so it is always lifted; GitOps holds only when it knows Flux's source.
      const hold = FluxNudge.holdFor(kind, m as ObjectMeta, generations.get(id));
      if (hold === "held" || (hold === "hold" && flux.holds)) {
        const held: HeldObject = { apiVersion: object.apiVersion, kind, metadata: { namespace: m.namespace ?? "", name: m.name }, generation: m.generation ?? 0 };
        fluxHolds.set(key, [...(fluxHolds.get(key) ?? []), held]);
        if (hold === "hold") void flux.hold(held);
      }
      generations.set(id, m.generation);
    }
    if (type === "delete") {
      generations.delete(id);
      fingerprints.delete(id);
      engine.noteDeleted(kind, m as ObjectMeta);
      if (key) queue.enqueueAfter(key, settleMs);
      return;
    }
    // Created since this process started (not an object of the first list): no earlier process committed it.
    if (type === "add" && m.creationTimestamp && new Date(m.creationTimestamp as string).getTime() >= startedAt) engine.noteCreated(kind, m as ObjectMeta);
    const print = specFingerprint(object);
    const same = fingerprints.get(id) === print;
    fingerprints.set(id, print);
    if (!key) return;
    if (same) {
      if (held.has(key) && kind !== "Config") void queue.enqueue(key);
    } else if (kind === "Release") void queue.enqueue(key);
    else queue.enqueueAfter(key, settleMs);
  };
  const unsubscribe = options.cache.subscribe(onEvent);

  try {
    await sync(true);
  } catch (err) {
    unsubscribe();
    await queue.stop();
    throw new Error(`cannot sync with the config repository ${options.repo.url}`, { cause: err });
  }

  const poll = setInterval(() => {
    if (!stopped) void syncNow().catch(() => undefined);
  }, options.pollIntervalMs);

  const webhookHandler = (req: IncomingMessage, res: ServerResponse) => {
    void readWebhookBody(req).then((body) => {
      const verdict = verifyWebhook(req.headers, body, options.webhookSecret ?? "");
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
    }, (err: unknown) => {
      const refused = err instanceof WebhookBodyError ? err : new WebhookBodyError(408, "webhook body was not received");
      log.warn({ status: refused.status, reason: refused.message, remote: req.socket.remoteAddress }, "refused a config repository webhook body");
      answerBodyError(res, refused);
    });
  };

  const idle = async () => {
    for (;;) {
      const mark = syncing;
      await mark;
      if (mark === syncing && queue.idle && held.size === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  return {
    webhookHandler,
    syncNow,
    idle,
    async stop() {
      stopped = true;
      clearInterval(poll);
      unsubscribe();
      for (const key of [...held.keys()]) release(key);
      await queue.stop();
      await syncing;
      await flux.stop();
      await argocd?.stop();
    },
  };
}
