// Builds and pull-request previews. A new commit on an App's source branch (push webhook, or polling the
// repository's refs) becomes a Tekton v1 PipelineRun; a succeeded run is recorded in the App's status.latestBuild
// (image digest, commit, Procfile), which the App reconciler releases, and a failed one is reported on the App
// while the live release keeps serving. Pull-request webhooks create, update
// and delete preview Apps. Every App is handled through one keyed queue, so one App never has two builds
// started at once, and every write compares before writing, so redelivered webhooks change nothing.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { ANNOTATIONS, API_VERSION, LABELS, type App, type Condition, type Config, type LatestBuild } from "../../crds/v1alpha1.js";
import { isForkPreview } from "../../functions/render.js";
import type { CacheEvent, ClusterCache } from "../cache.js";
import { BUILT, setCondition, sameConditions } from "../conditions.js";
import { faultPoint } from "../fault.js";
import { Informers } from "../informers.js";
import { isConflict, isRefused, isUidChanged, type Kube, type KubeObject } from "../kube.js";
import { log as rootLog } from "../log.js";
import { WorkQueue } from "../queue.js";
import { normalizeConfig } from "../releases.js";
import { answerBodyError, hasSignature, readWebhookBody, verifyWebhook, WebhookBodyError, type WebhookHeaders } from "../webhooks.js";
import { parseGitEvent, sameRepo, type PullRequestEvent, type PushEvent } from "./events.js";
import {
  buildOutcome, builtMessage, buildPipelineRun, cacheClaimName, DEFAULT_SETTINGS, failedTasks, ownerReference, pipelineRunName, RECORDED_ANNOTATION,
  shortSha, TEKTON_API_VERSION, PIPELINE_RUN_KIND, type PipelineRun, type PipelineSettings, type TaskRunSummary,
} from "./pipelinerun.js";
import {
  buildInput, DEFAULT_MAX_PREVIEWS, isPreviewOf, previewApp, previewApproval, previewConfig, previewExpired, previewHost, previewName,
  PREVIEW_ANNOTATIONS,
} from "./previews.js";
import { branchHead, ProcfileError, readProcfile, type GitAuth } from "./procfile.js";

export { BUILT } from "../conditions.js";

/** The key of an App's spec.source.webhookSecret Secret when it names none. */
export const WEBHOOK_SECRET_KEY = "secret";
/** Why an unverified source delivery is refused: the same words whether or not any App builds the repository. */
const NO_MATCHING_SECRET = "the signature matches the webhook secret of no App that builds this repository and branch";
/** Times a pull request event re-reads and rewrites its preview after a refused write (isConflict, isUidChanged) before the webhook answers with the error. */
const PREVIEW_WRITE_ATTEMPTS = 3;

export interface BuildsOptions {
  /** The operator's client. */
  kube: Kube;
  /** The process's informers (OperatorHandle.informers), where builds add PipelineRuns; default their own. */
  informers?: Informers;
  /** Only Apps in this namespace; default all namespaces. */
  namespace?: string;
  /** How often source branches are polled (the fallback when no webhook arrives) and previews' TTLs checked. */
  pollIntervalMs: number;
  /** How long a Git request to a source repository may wait for a byte; default SLIPWAY_GIT_TIMEOUT_SECONDS (git-http.ts). */
  gitTimeoutMs?: number;
  /**
   * The platform's fallback source webhook secret (SLIPWAY_SOURCE_WEBHOOK_SECRET): accepted only for Apps whose
   * spec.source names no webhookSecret. Without it such Apps are built by polling only.
   */
  webhookSecret?: string;
  pipeline?: PipelineSettings;
  /** Platform domain for the default preview host `{app}-pr-{pr}.<domain>`; default "slipway.local". */
  previewDomain?: string;
  /** Default the operator's logger. */
  logger?: Logger;
  /**
   * The operator's watch caches: an App whose ANNOTATIONS.requestedAt changes (a replica that does not lead
   * received a push for it) has its source polled and its branch head built at once.
   */
  cache?: ClusterCache;
}

export interface Builds {
  stop(): Promise<void>;
  /** Handles a Git host's webhook (push, pull request); answers 401 when the signature is wrong. */
  webhookHandler(req: IncomingMessage, res: ServerResponse): void;
  /** Polls every source branch now, records finished builds and removes expired previews. */
  pollNow(): Promise<void>;
}


type AppKey = `${string}/${string}`;

function keyOf(namespace: string | undefined, name: string): AppKey {
  return `${namespace ?? "default"}/${name}`;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf("/");
  return [key.slice(0, i), key.slice(i + 1)];
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Starts watching PipelineRuns and polling sources; the operator calls this once. */
export async function startBuilds(options: BuildsOptions): Promise<Builds> {
  const b = new BuildController(options);
  await b.start();
  return {
    stop: () => b.stop(),
    webhookHandler: (req, res) => void b.handleWebhook(req, res),
    pollNow: () => b.pollNow(),
  };
}

/**
 * The source webhook handler of a replica that does not lead (see operator/receiver.ts). It verifies a delivery
 * and does what needs no build, as the leader would: a pull request's preview App is created, updated or
 * deleted. The build itself it asks of the leader by setting ANNOTATIONS.requestedAt on the App (the pushed
 * App, or the preview), which the leader sees in its cache; the leader builds the branch head it reads then.
 */
export function handOverSourceWebhooks(options: Omit<BuildsOptions, "pollIntervalMs" | "cache">): Builds["webhookHandler"] {
  const b = new BuildController({ ...options, pollIntervalMs: 0 }, true);
  return (req, res) => void b.handleWebhook(req, res);
}

class BuildController {
  readonly #kube: Kube;
  readonly #opts: BuildsOptions;
  readonly #log: Logger;
  readonly #settings: PipelineSettings;
  readonly #queue: WorkQueue;
  /**
   * Commits asked for by webhooks or polling, not yet started: the newest request per App wins. `readAt` is the
   * #clock tick at which a read of the branch head that returned the commit began (none: not read as the head).
   */
  readonly #wanted = new Map<AppKey, { commit: string; readAt?: number }>();
  /** Orders reads of branch heads and build starts in this process (see #reconcile). */
  #clock = 0;
  /** The #clock tick at which each App's last build was started by this process. */
  readonly #startedAt = new Map<AppKey, number>();
  /** PipelineRuns ("namespace/name") this process has created (or tried to). */
  readonly #created = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  /** Stops hearing of PipelineRuns; and the informers builds started themselves, when not given shared ones. */
  #unwatch: (() => Promise<void>) | undefined;
  #stopped = false;
  #polling: Promise<void> | undefined;
  /** Hands builds over to the leader instead of starting them (handOverSourceWebhooks). */
  readonly #handOver: boolean;
  /** The ANNOTATIONS.requestedAt last seen per App, and the cache subscription that sees it. */
  readonly #requested = new Map<AppKey, string>();
  #unsubscribe: (() => void) | undefined;
  /** Pull request events of one parent App, handled one at a time in this process, so two cannot both pass its preview cap. */
  readonly #previewTurns = new Map<AppKey, Promise<void>>();

  constructor(opts: BuildsOptions, handOver = false) {
    this.#opts = opts;
    this.#handOver = handOver;
    this.#log = (opts.logger ?? rootLog).child({ module: "builds" });
    this.#kube = opts.kube;
    this.#settings = opts.pipeline ?? {};
    this.#queue = new WorkQueue((key) => this.#reconcile(key), {
      onError: (key, err, retryInMs) => this.#log.warn({ app: key, err, retryInMs }, "build reconcile failed; retrying"),
    });
  }

  async start(): Promise<void> {
    this.#startWatch();
    this.#unsubscribe = this.#opts.cache?.subscribe((event) => this.#onAppEvent(event));
    const tick = () => {
      if (this.#stopped) return;
      this.pollNow()
        .catch((err: unknown) => this.#log.warn({ err }, "polling sources failed"))
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, this.#opts.pollIntervalMs);
        });
    };
    // The first poll starts now, so a pollNow() right after start() waits for it rather than racing it.
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#unwatch?.();
    await this.#polling?.catch(() => undefined);
    await this.#queue.stop();
  }

  // ------------------------------------------------------------------------------------------- triggers

  /** PipelineRun changes (completion, cancellation) reach the App's queue key at once. */
  #startWatch(): void {
    if (this.#stopped) return;
    const ns = this.#opts.namespace;
    const own = this.#opts.informers ? undefined : new Informers(this.#kube, this.#log);
    const informers = this.#opts.informers ?? own;
    if (!informers) return;
    // Tekton not installed (yet): the informer says so in its log and lists again with backoff.
    const runs = informers.add({
      name: "pipelineruns", apiVersion: TEKTON_API_VERSION, kind: PIPELINE_RUN_KIND, labelSelector: LABELS.app, trim: "managedFields",
      path: `/apis/${TEKTON_API_VERSION}${ns ? `/namespaces/${encodeURIComponent(ns)}` : ""}/pipelineruns`,
    });
    const off = runs.on((_type, obj) => {
      const app = obj.metadata.labels?.[LABELS.app];
      if (app) void this.#queue.enqueue(keyOf(obj.metadata.namespace, app));
    });
    if (own) void own.start(0);
    this.#unwatch = async () => {
      off();
      await own?.stop();
    };
  }

  pollNow(): Promise<void> {
    this.#polling ??= this.#poll().finally(() => (this.#polling = undefined));
    return this.#polling;
  }

  async #poll(): Promise<void> {
    const apps = (await this.#kube.list<App & KubeObject>(API_VERSION, "App", this.#opts.namespace)).items;
    const byName = new Map(apps.map((a) => [keyOf(a.metadata.namespace, a.metadata.name), a]));
    await Promise.all(apps.map(async (app) => {
      const key = keyOf(app.metadata.namespace, app.metadata.name);
      try {
        const parent = app.metadata.labels?.[LABELS.preview];
        const owner = parent === undefined ? undefined : byName.get(keyOf(app.metadata.namespace, parent));
        // Only a preview this module made is removed; an App that merely carries the label is somebody's App.
        if (owner && isPreviewOf(app, owner) && (!owner.spec.previews?.enabled || previewExpired(app, owner, new Date()))) {
          this.#log.info({ app: key, parent }, "removing preview: its TTL passed or its parent no longer has previews");
          await this.#deletePreview(app);
          return;
        }
        await this.#pollSource(app);
      } catch (err) {
        this.#log.warn({ app: key, err }, "cannot poll the App's source");
      }
    }));
  }

  /** Reads the head of the App's source branch and builds it unless it is built or building already. */
  async #pollSource(app: App & KubeObject): Promise<void> {
    const key = keyOf(app.metadata.namespace, app.metadata.name);
    if (app.spec.source && !app.spec.suspend) {
      const readAt = ++this.#clock;
      const head = await this.#head(app);
      if (head && !this.#wanted.has(key)) this.#wanted.set(key, { commit: head, readAt });
    }
    await this.#queue.enqueue(key);
  }

  /** A new ANNOTATIONS.requestedAt on an App: another replica received a push for it; poll its source now. */
  #onAppEvent({ kind, type, object }: CacheEvent): void {
    if (kind !== "App" || this.#stopped) return;
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    const requested = object.metadata.annotations?.[ANNOTATIONS.requestedAt];
    if (type === "delete" || requested === undefined) {
      this.#requested.delete(key);
      return;
    }
    if (this.#requested.get(key) === requested) return;
    this.#requested.set(key, requested);
    const app = object as App & KubeObject;
    if (!app.spec.source) return;
    this.#log.info({ app: key, requestedAt: requested }, "a build was asked for through the cluster: polling the App's source");
    this.#pollSource(app).catch((err: unknown) => this.#log.warn({ app: key, err }, "cannot poll the App's source"));
  }

  /**
   * Builds `commit` of an App, its source's head as read at #clock tick `readAt` (none: the head is read before
   * the build starts); a replica that does not lead asks the leader instead.
   */
  async #request(app: App, commit: string, readAt?: number): Promise<void> {
    const key = keyOf(app.metadata.namespace, app.metadata.name);
    if (this.#handOver) {
      await this.#kube.mergePatch({ apiVersion: API_VERSION, kind: "App", metadata: app.metadata },
        { metadata: { annotations: { [ANNOTATIONS.requestedAt]: new Date().toISOString() } } });
      this.#log.info({ app: key, commit }, "asked the leader for a build");
      return;
    }
    this.#wanted.set(key, { commit, readAt });
    await this.#queue.enqueue(key);
  }

  async handleWebhook(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (code: number, body: Record<string, unknown>) => {
      if (res.headersSent) return;
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.method !== "POST") return answer(405, { error: "webhooks are POSTed" });
      let body: Buffer;
      try {
        body = await readWebhookBody(req);
      } catch (err) {
        if (!(err instanceof WebhookBodyError)) throw err;
        this.#log.warn({ status: err.status, reason: err.message }, "refused a webhook body");
        return answerBodyError(res, err);
      }
      // Each source repository has its own secret, named by the Apps that build it, and the body says which
      // repository: it is parsed before the signature is checked. A delivery without any signature is refused
      // unparsed; one that no App's secret signed reads only those Secrets and changes nothing.
      if (!hasSignature(req.headers)) {
        const reason = "no signature header (X-Hub-Signature-256, X-Gitea-Signature, X-Gitlab-Token or X-Slipway-Signature)";
        this.#log.warn({ reason, remote: req.socket.remoteAddress }, "refused a source webhook");
        return answer(401, { error: reason });
      }
      let payload: unknown;
      try {
        payload = JSON.parse(body.toString("utf8"));
      } catch {
        return answer(400, { error: "webhook body is not JSON" });
      }
      const event = parseGitEvent(req.headers, payload);
      // An event Slipway does not act on (a ping, a tag push) changes nothing, whoever sent it.
      if (event.kind === "ignored") return answer(202, { ignored: event.reason });
      const candidates = event.kind === "push" ? await this.#pushed(event) : await this.#previewParents(event);
      const apps = await this.#signedFor(candidates, req.headers, body);
      if (apps.length === 0 && !(candidates.length === 0 && this.#opts.webhookSecret && verifyWebhook(req.headers, body, this.#opts.webhookSecret).ok)) {
        this.#log.warn({ reason: NO_MATCHING_SECRET, event: event.kind, remote: req.socket.remoteAddress }, "refused a source webhook");
        return answer(401, { error: NO_MATCHING_SECRET });
      }
      if (event.kind === "push") return answer(202, await this.#onPush(event, apps));
      const { previews, refused } = await this.#onPullRequest(event, apps);
      return answer(202, refused.length ? { previews, refused } : { previews });
    } catch (err) {
      this.#log.error({ err }, "webhook handling failed");
      answer(500, { error: (err as Error).message });
    }
  }

  async #appsWithSource(): Promise<(App & KubeObject)[]> {
    const apps = (await this.#kube.list<App & KubeObject>(API_VERSION, "App", this.#opts.namespace)).items;
    return apps.filter((a) => a.spec.source && !a.spec.suspend);
  }

  /** The Apps that build the pushed repository and branch. */
  async #pushed(event: PushEvent): Promise<(App & KubeObject)[]> {
    return (await this.#appsWithSource()).filter((a) =>
      (a.spec.source?.branch ?? "main") === event.branch && event.repoUrls.some((u) => sameRepo(u, a.spec.source?.git ?? "")));
  }

  /** The Apps with previews that build a pull request's base repository and branch. */
  async #previewParents(event: PullRequestEvent): Promise<(App & KubeObject)[]> {
    return (await this.#appsWithSource()).filter((a) =>
      a.spec.previews?.enabled && a.metadata.labels?.[LABELS.preview] === undefined &&
      (a.spec.source?.branch ?? "main") === event.base.branch && event.base.repoUrls.some((u) => sameRepo(u, a.spec.source?.git ?? "")));
  }

  /**
   * The Apps among `apps` whose webhook secret signed the delivery: the Secret key their spec.source.webhookSecret
   * names, or the platform's fallback for Apps that name none. A Secret shared by several Apps is read once.
   */
  async #signedFor(apps: (App & KubeObject)[], headers: WebhookHeaders, body: Buffer): Promise<(App & KubeObject)[]> {
    const secrets = new Map<string, Promise<string | undefined>>();
    const signed: (App & KubeObject)[] = [];
    for (const app of apps) {
      const ref = app.spec.source?.webhookSecret;
      let secret = this.#opts.webhookSecret;
      if (ref) {
        const id = `${app.metadata.namespace}/${ref.name}/${ref.key ?? WEBHOOK_SECRET_KEY}`;
        if (!secrets.has(id)) secrets.set(id, this.#secretValue(app, ref.name, ref.key ?? WEBHOOK_SECRET_KEY));
        secret = await secrets.get(id);
      }
      if (secret && verifyWebhook(headers, body, secret).ok) signed.push(app);
    }
    return signed;
  }

  /** One key of a Secret in the App's namespace; undefined (and a log line naming it) when it is missing. */
  async #secretValue(app: App, name: string, key: string): Promise<string | undefined> {
    const secret = await this.#kube.getIfExists<KubeObject & { data?: Record<string, string> }>("v1", "Secret", app.metadata.namespace, name);
    const value = secret?.data?.[key];
    if (value === undefined) {
      this.#log.warn({ app: `${app.metadata.namespace}/${app.metadata.name}`, secret: name, key }, "the App's webhook Secret or its key does not exist; its webhooks are refused");
      return undefined;
    }
    return Buffer.from(value, "base64").toString("utf8");
  }

  /**
   * Asks for a build of the pushed commit in each App, if it is the head of the App's source branch now: an old
   * or redelivered push names a commit the branch has moved past, and building it would roll the App back.
   * (A replica that does not lead only asks the leader, which builds the head it reads then.)
   */
  async #onPush(event: PushEvent, apps: (App & KubeObject)[]): Promise<{ builds: string[]; notHead?: string[] }> {
    const builds: string[] = [];
    const notHead: string[] = [];
    await Promise.all(apps.map(async (a) => {
      const id = `${a.metadata.namespace}/${a.metadata.name}`;
      let readAt: number | undefined;
      if (!this.#handOver) {
        readAt = ++this.#clock;
        const head = await this.#head(a);
        if (head !== event.commit) {
          const why = `${shortSha(event.commit)} is not the head of branch ${event.branch} (${head ? `the head is ${shortSha(head)}` : "the branch does not exist"}); not built`;
          this.#log.info({ app: id, commit: event.commit, head }, "push webhook names a commit that is not the branch head; not built");
          notHead.push(`${id}: ${why}`);
          return;
        }
      }
      await this.#request(a, event.commit, readAt);
      builds.push(`${a.metadata.namespace}/${pipelineRunName(a.metadata.name, event.commit)}`);
    }));
    return notHead.length ? { builds: builds.sort(), notHead: notHead.sort() } : { builds: builds.sort() };
  }

  /** The head commit of the App's source branch on its Git server now (undefined when the branch is gone). */
  async #head(app: App): Promise<string | undefined> {
    const source = app.spec.source;
    if (!source) return undefined;
    return branchHead({ url: source.git, branch: source.branch ?? "main", auth: await this.#auth(app), timeoutMs: this.#opts.gitTimeoutMs });
  }

  async #onPullRequest(event: PullRequestEvent, parents: (App & KubeObject)[]): Promise<{ previews: string[]; refused: string[] }> {
    const apps = (await this.#kube.list<App & KubeObject>(API_VERSION, "App", this.#opts.namespace)).items;
    const previews: string[] = [];
    const refused: string[] = [];
    for (const parent of parents) {
      const name = `${parent.metadata.namespace}/${previewName(parent.metadata.name, event.number)}`;
      const refusal = await this.#inTurn(keyOf(parent.metadata.namespace, parent.metadata.name), () =>
        event.action === "close" ? this.#closePreview(parent, event.number) : this.#ensurePreviewRetrying(parent, event, apps));
      if (refusal) refused.push(`${name}: ${refusal}`);
      else previews.push(name);
    }
    return { previews, refused };
  }

  /** Runs `fn` after the pull request events of the same parent App that arrived before it. */
  async #inTurn<T>(key: AppKey, fn: () => Promise<T>): Promise<T> {
    const before = this.#previewTurns.get(key) ?? Promise.resolve();
    const run = before.then(fn);
    const turn = run.then(() => undefined, () => undefined);
    this.#previewTurns.set(key, turn);
    try {
      return await run;
    } finally {
      if (this.#previewTurns.get(key) === turn) this.#previewTurns.delete(key);
    }
  }

  /** A pull request closed: its preview goes; an App of that name that is not its preview stays. */
  async #closePreview(parent: App, pr: number): Promise<string | undefined> {
    const name = previewName(parent.metadata.name, pr);
    const existing = await this.#kube.getIfExists<App & KubeObject>(API_VERSION, "App", parent.metadata.namespace, name);
    if (existing && !isPreviewOf(existing, parent, pr)) return this.#refuseTaken(parent, pr, existing);
    if (existing && await this.#deletePreview(existing)) this.#log.info({ app: name, pr }, "pull request closed; preview deleted");
    return undefined;
  }

  /**
   * Deletes a preview App (only that App: the delete is conditional on its uid); owner references take its
   * Releases, cache and workloads with it. Its Config (which this module created) and PipelineRuns go right away
   * too: runs may still be running, and the garbage collector only learns of a newly installed Tekton's kinds on
   * its next discovery.
   */
  async #deletePreview(preview: App): Promise<boolean> {
    const { name, namespace, uid } = preview.metadata;
    let existed: boolean;
    try {
      existed = await this.#kube.deleteIfExists({ apiVersion: API_VERSION, kind: "App", metadata: { name, namespace } }, "Background", { uid });
    } catch (err) {
      // Another App of that name replaced the preview meanwhile: it is not this module's to delete.
      if (isConflict(err)) return false;
      throw err;
    }
    const runs = await this.#kube.list<PipelineRun & KubeObject>(TEKTON_API_VERSION, PIPELINE_RUN_KIND, namespace, `${LABELS.app}=${name}`);
    for (const run of runs.items) {
      if (run.metadata.ownerReferences?.some((o) => o.uid === uid)) await this.#kube.deleteIfExists(run);
    }
    const config = await this.#kube.getIfExists<Config & KubeObject>(API_VERSION, "Config", namespace, name);
    if (config?.metadata.ownerReferences?.some((o) => o.uid === uid)) {
      await this.#kube.deleteIfExists(config, "Background", { uid: config.metadata.uid });
    }
    return existed;
  }

  /** An App or Config with the preview's name that is not the preview: left as it is, and the parent gets a Warning Event. */
  async #refuseTaken(parent: App, pr: number, taken: App | Config): Promise<string> {
    const message = `${taken.kind} ${taken.metadata.name} exists and is not the preview of pull request #${pr} of App ${parent.metadata.name}: ` +
      "it is left unchanged and the pull request gets no preview";
    this.#log.warn({ app: parent.metadata.name, pr, taken: `${taken.kind}/${taken.metadata.name}` }, "preview name taken by another object");
    await this.#event(parent, "Warning", "PreviewNameTaken", message, "Preview");
    return message;
  }

  async #ensurePreviewRetrying(parent: App, event: PullRequestEvent, apps: readonly App[]): Promise<string | undefined> {
    // The preview App is written with the uid read and its Config on the resourceVersion read, so that neither
    // is taken over if replaced meanwhile; such a refusal means "read again", and each attempt redoes every
    // ownership check on what it reads.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#ensurePreview(parent, event, apps);
      } catch (err) {
        if (!(isConflict(err) || isUidChanged(err)) || attempt >= PREVIEW_WRITE_ATTEMPTS) throw err;
        this.#log.debug({ app: parent.metadata.name, pr: event.number, attempt }, "preview changed while it was written; reading it again");
      }
    }
  }

  /**
   * Creates or updates the preview App and its Config, writing only what differs, then builds the head commit.
   * Refuses, with an Event on the parent, and returns why: a fork's pull request nobody trusted approved (its
   * preview, if approval was withdrawn, is removed), a new preview over the parent's cap, and a name or host that
   * another App has.
   */
  async #ensurePreview(parent: App, event: PullRequestEvent, apps: readonly App[]): Promise<string | undefined> {
    const ns = parent.metadata.namespace;
    const name = previewName(parent.metadata.name, event.number);
    const existing = await this.#kube.getIfExists<App & KubeObject>(API_VERSION, "App", ns, name);
    if (existing && !isPreviewOf(existing, parent, event.number)) return this.#refuseTaken(parent, event.number, existing);
    const current = await this.#kube.getIfExists<Config & KubeObject>(API_VERSION, "Config", ns, name);
    if (current && current.metadata.labels?.[LABELS.preview] !== parent.metadata.name) return this.#refuseTaken(parent, event.number, current);

    const approval = previewApproval(parent, event);
    if (!approval.approved) {
      const removed = existing ? await this.#deletePreview(existing) : false;
      const message = removed ? `${approval.reason}; its preview ${name} was removed` : approval.reason;
      this.#log.info({ app: parent.metadata.name, pr: event.number, author: event.author, removed }, "pull request from a fork awaits approval");
      await this.#event(parent, "Normal", "PreviewAwaitingApproval", message, "Preview");
      return message;
    }
    if (!existing) {
      const max = parent.spec.previews?.max ?? DEFAULT_MAX_PREVIEWS;
      const mine = (await this.#kube.list<App & KubeObject>(API_VERSION, "App", ns, `${LABELS.preview}=${parent.metadata.name}`)).items
        .filter((a) => isPreviewOf(a, parent)).map((a) => a.metadata.name).sort();
      if (mine.length >= max) {
        const message = `pull request #${event.number} gets no preview: App ${parent.metadata.name} has ${mine.length} previews (${mine.join(", ")}), ` +
          `its limit spec.previews.max is ${max}; close a pull request or raise the limit`;
        this.#log.warn({ app: parent.metadata.name, pr: event.number, previews: mine.length, max }, "preview limit reached");
        await this.#event(parent, "Warning", "PreviewLimitReached", message, "Preview");
        return message;
      }
    }
    const host = previewHost(parent, event.number, this.#opts.previewDomain ?? "slipway.local");
    const owner = apps.find((a) => !(a.metadata.namespace === ns && a.metadata.name === name) && this.#hostsOf(a).includes(host));
    if (owner) {
      const message = `pull request #${event.number} gets no preview: its host ${host} is App ${owner.metadata.namespace}/${owner.metadata.name}'s`;
      this.#log.warn({ app: parent.metadata.name, pr: event.number, host, owner: owner.metadata.name }, "preview host taken by another App");
      await this.#event(parent, "Warning", "PreviewHostTaken", message, "Preview");
      return message;
    }

    const sameCommit = existing?.metadata.annotations?.[PREVIEW_ANNOTATIONS.commit] === event.head.commit;
    const updatedAt = sameCommit ? existing?.metadata.annotations?.[PREVIEW_ANNOTATIONS.updatedAt] ?? now() : now();
    const desired = previewApp(parent, event, host, updatedAt);
    let app: App = existing ?? desired;
    if (!existing) {
      // Created, never applied: an App that appeared under this name since it was read must not be taken over.
      try {
        app = await this.#kube.create<App & KubeObject>(desired as App & KubeObject);
      } catch (err) {
        if (!isConflict(err)) throw err;
        const found = await this.#kube.get<App & KubeObject>(API_VERSION, "App", ns, name);
        if (!isPreviewOf(found, parent, event.number)) return this.#refuseTaken(parent, event.number, found);
        app = found;
      }
      this.#log.info({ app: name, pr: event.number, commit: event.head.commit, fork: event.fromFork, approvedBy: approval.by }, "preview created");
    }
    if (!contains(app, desired)) {
      // Applied with the uid of the App that was checked to be the preview: the API server refuses the apply if
      // that App was deleted (409) or replaced (422, uid is immutable) since, and the next attempt's checks see
      // the replacement. Not its resourceVersion: the preview's own status writes move that all the time.
      const read = app as App & KubeObject;
      app = await this.#kube.apply<App & KubeObject>({ ...desired, metadata: { ...desired.metadata, uid: read.metadata.uid } } as App & KubeObject);
      this.#log.info({ app: name, pr: event.number, commit: event.head.commit, fork: event.fromFork }, "preview updated");
    }
    const parentConfig = await this.#kube.getIfExists<Config & KubeObject>(API_VERSION, "Config", ns, parent.metadata.name);
    const config = previewConfig(parentConfig, app, event.fromFork);
    // A stale secretEnv must go too, so compare the spec exactly rather than "contains".
    if (!current || JSON.stringify(normalizeConfig(current.spec)) !== JSON.stringify(normalizeConfig(config.spec)) || !contains(current, { metadata: config.metadata })) {
      if (current) await this.#kube.replace({ ...config, metadata: { ...config.metadata, resourceVersion: current.metadata.resourceVersion } } as Config & KubeObject);
      else await this.#kube.create(config as Config & KubeObject);
    }
    await this.#request(app, event.head.commit);
    return undefined;
  }

  /** The hosts an App is routed at: its domains and its default host. */
  #hostsOf(app: App): string[] {
    return [`${app.metadata.name}.${app.metadata.namespace ?? "default"}.${this.#opts.previewDomain ?? "slipway.local"}`, ...(app.spec.routing?.domains ?? [])];
  }

  // ------------------------------------------------------------------------------------------ reconcile

  /** One App's builds: start the wanted commit, record finished runs, prune old ones. */
  async #reconcile(key: string): Promise<void> {
    const [ns, name] = splitKey(key);
    const app = await this.#kube.getIfExists<App & KubeObject>(API_VERSION, "App", ns, name);
    if (!app || !app.spec.source || app.metadata.deletionTimestamp) {
      this.#wanted.delete(key as AppKey);
      this.#startedAt.delete(key as AppKey);
      return;
    }
    let runs = await this.#runsOf(app);
    // A build recorded as started whose PipelineRun does not exist: the process that recorded it stopped before
    // creating it. It is created now (once per process: one deleted by hand later is not made again).
    const recorded = app.status?.latestBuild;
    if (recorded?.phase === "Running" && !runs.some((r) => r.metadata.name === recorded.pipelineRun) && !this.#created.has(`${ns}/${recorded.pipelineRun}`)) {
      this.#log.info({ app: name, pipelineRun: recorded.pipelineRun, commit: recorded.commit }, "creating the PipelineRun of a build recorded before a restart");
      await this.#startBuild(app, recorded.commit, runs);
      runs = await this.#runsOf(app);
    }
    const request = this.#wanted.get(key as AppKey);
    if (request) {
      this.#wanted.delete(key as AppKey);
      const wanted = request.commit;
      const runName = pipelineRunName(name, wanted);
      const known = runs.some((r) => r.metadata.name === runName);
      if (!known && app.status?.latestBuild?.commit !== wanted) {
        // Only the branch head is built, so an older commit never supersedes a newer one. A head read after this
        // App's last build started is current enough; one read before it (a poll that read it while a newer push
        // was being built), or a commit never read as the head (a pull request's), is read again.
        let head: string | undefined = wanted;
        if (request.readAt === undefined || request.readAt < (this.#startedAt.get(key as AppKey) ?? 0)) {
          try {
            head = await this.#head(app);
          } catch (err) {
            // Asked for again when the pass is retried, unless a newer request came meanwhile.
            if (!this.#wanted.has(key as AppKey)) this.#wanted.set(key as AppKey, request);
            throw err;
          }
        }
        if (head === wanted) {
          await this.#startBuild(app, wanted, runs);
          runs = await this.#runsOf(app);
        } else {
          this.#log.info({ app: key, commit: wanted, head }, "not building a commit that is no longer the branch head");
        }
      }
    }
    const fresh = (await this.#kube.getIfExists<App & KubeObject>(API_VERSION, "App", ns, name)) ?? app;
    for (const run of runs) {
      if (run.metadata.annotations?.[RECORDED_ANNOTATION]) continue;
      const outcome = buildOutcome(run);
      if (outcome.phase === "Running") continue;
      await this.#record(fresh, run);
    }
    await this.#prune(await this.#runsOf(app));
  }

  async #runsOf(app: App): Promise<PipelineRun[]> {
    const list = await this.#kube.list<PipelineRun & KubeObject>(TEKTON_API_VERSION, PIPELINE_RUN_KIND, app.metadata.namespace, `${LABELS.app}=${app.metadata.name}`);
    return list.items.sort((a, b) => (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? "") || a.metadata.name.localeCompare(b.metadata.name));
  }

  async #startBuild(app: App & KubeObject, commit: string, runs: PipelineRun[]): Promise<void> {
    this.#startedAt.set(keyOf(app.metadata.namespace, app.metadata.name), ++this.#clock);
    const input = buildInput(app, this.#settings);
    const run = buildPipelineRun(input.app, commit, input.settings);
    // A newer commit supersedes builds of older ones: Tekton v1 stops a run whose spec.status is Cancelled.
    for (const old of runs) {
      if (buildOutcome(old).phase === "Running" && old.spec.status !== "Cancelled") {
        await this.#kube.mergePatch(old as PipelineRun & KubeObject, { spec: { status: "Cancelled" } });
        this.#log.info({ app: app.metadata.name, pipelineRun: old.metadata.name, supersededBy: run.metadata.name }, "cancelled a superseded build");
      }
    }
    await this.#ensureCacheClaim(app);
    // The build is recorded before its PipelineRun is created, under the run's deterministic name: a process that
    // stops in between leaves a record that the next one finishes (see #reconcile), never a run that status does
    // not name (which would be taken for a superseded build when it finishes).
    await this.#writeStatus(app, { pipelineRun: run.metadata.name, commit, phase: "Running", message: `building ${shortSha(commit)}` }, {
      type: BUILT, status: "Unknown", reason: "Building",
      message: `Building commit ${shortSha(commit)} in PipelineRun ${run.metadata.name}`,
    });
    this.#created.add(`${app.metadata.namespace}/${run.metadata.name}`);
    try {
      await this.#kube.create(run as PipelineRun & KubeObject);
    } catch (err) {
      if (isRefused(err)) {
        // Refused by the API server or by Tekton's admission webhook: the same PipelineRun would be refused again.
        await this.#fail(app, run, commit, "PipelineRunRefused", `the API server refused the PipelineRun: ${err.status}`);
        return;
      }
      if (!isConflict(err)) throw err;
    }
    faultPoint("after-pipelinerun-created");
    this.#log.info({ app: app.metadata.name, commit, pipelineRun: run.metadata.name }, "build started");
    await this.#event(app, "Normal", "BuildStarted", `Building commit ${shortSha(commit)} of ${app.spec.source?.git} in PipelineRun ${run.metadata.name}`);
  }

  /** The per-App build cache, kept across builds and removed with the App. */
  async #ensureCacheClaim(app: App): Promise<void> {
    const name = cacheClaimName(app.metadata.name);
    if (await this.#kube.getIfExists("v1", "PersistentVolumeClaim", app.metadata.namespace, name)) return;
    try {
      await this.#kube.create({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: {
          name,
          namespace: app.metadata.namespace,
          labels: { [LABELS.app]: app.metadata.name, [LABELS.managedBy]: "slipway" },
          ownerReferences: [ownerReference(app)],
        },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: this.#settings.cacheSize ?? DEFAULT_SETTINGS.cacheSize } },
        },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  /** Records a finished run once: the App's current build is recorded as succeeded or failed; others were superseded. */
  async #record(app: App & KubeObject, run: PipelineRun): Promise<void> {
    const outcome = buildOutcome(run);
    const commit = run.metadata.labels?.["slipway.dev/commit"] ?? "";
    const current = app.status?.latestBuild?.pipelineRun === run.metadata.name;
    let recorded: string;
    if (!current) {
      recorded = "Superseded";
      this.#log.info({ app: app.metadata.name, pipelineRun: run.metadata.name, phase: outcome.phase }, "build of a superseded commit finished; not deployed");
    } else if (outcome.phase === "Succeeded") {
      recorded = await this.#succeed(app, run, commit, outcome.image);
    } else if (outcome.phase === "Failed") {
      const tasks = await this.#failedTasks(run);
      await this.#fail(app, run, commit, outcome.reason, tasks ? `${outcome.message}; ${tasks}` : outcome.message);
      recorded = "Failed";
    } else {
      return;
    }
    await this.#kube.mergePatch(run as PipelineRun & KubeObject, { metadata: { annotations: { [RECORDED_ANNOTATION]: recorded } } });
  }

  /**
   * Records a succeeded build in the App's status: the image by digest, the commit and its Procfile. The App
   * reconciler cuts the release from that record (the only place releases are cut), and names the release in
   * status and in the BuildSucceeded Event.
   */
  async #succeed(app: App & KubeObject, run: PipelineRun, commit: string, image: string): Promise<string> {
    // Recorded already (a restart between the status write and the annotation): the reconciler may have
    // released it since, and named the release in the record.
    const already = app.status?.latestBuild;
    if (already?.pipelineRun === run.metadata.name && already.phase === "Succeeded" && already.image === image) return "Succeeded";
    const source = app.spec.source;
    let procfile: Record<string, string> | undefined;
    try {
      procfile = source ? await readProcfile({ url: source.git, branch: source.branch ?? "main", commit, path: source.path, auth: await this.#auth(app), timeoutMs: this.#opts.gitTimeoutMs }) : undefined;
    } catch (err) {
      if (!(err instanceof ProcfileError)) throw err;
      await this.#fail(app, run, commit, "InvalidProcfile", err.message);
      return "Failed";
    }
    await this.#writeStatus(app, {
      pipelineRun: run.metadata.name, commit, phase: "Succeeded", image, ...(procfile ? { procfile } : {}), message: "built; to be released",
    }, { type: BUILT, status: "True", reason: "Succeeded", message: builtMessage(commit, run.metadata.name, image) });
    this.#log.info({ app: app.metadata.name, pipelineRun: run.metadata.name, image }, "build succeeded; recorded for release");
    return "Succeeded";
  }

  async #fail(app: App & KubeObject, run: PipelineRun, commit: string, reason: string, message: string): Promise<void> {
    const text = `PipelineRun ${run.metadata.name} for commit ${shortSha(commit)} failed (${reason}): ${message}`;
    await this.#writeStatus(app, { pipelineRun: run.metadata.name, commit, phase: "Failed", message: `${reason}: ${message}` }, {
      type: BUILT, status: "False", reason: "BuildFailed", message: `${text}; the live release keeps serving`,
    });
    await this.#event(app, "Warning", "BuildFailed", text);
    this.#log.warn({ app: app.metadata.name, pipelineRun: run.metadata.name, reason }, "build failed");
  }

  /** Which of a failed run's TaskRuns failed and why (Tekton names the step); undefined when none did. */
  async #failedTasks(run: PipelineRun): Promise<string | undefined> {
    const taskRuns = await this.#kube.list<TaskRunSummary & KubeObject>(TEKTON_API_VERSION, "TaskRun", run.metadata.namespace, `tekton.dev/pipelineRun=${run.metadata.name}`);
    return failedTasks(taskRuns.items);
  }

  /** Finished runs beyond the newest `keep` are deleted; running ones never are. */
  async #prune(runs: PipelineRun[]): Promise<void> {
    const keep = this.#settings.keep ?? DEFAULT_SETTINGS.keep;
    const finished = runs.filter((r) => buildOutcome(r).phase !== "Running" && r.metadata.annotations?.[RECORDED_ANNOTATION]);
    for (const old of finished.slice(0, Math.max(0, finished.length - keep))) {
      await this.#kube.deleteIfExists(old as PipelineRun & KubeObject);
      this.#log.info({ pipelineRun: old.metadata.name }, "pruned an old PipelineRun");
    }
  }

  /** Writes status.latestBuild and the Built condition through the status subresource, only when they change. */
  async #writeStatus(app: App, latestBuild: LatestBuild, condition: Omit<Condition, "lastTransitionTime">): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const fresh = await this.#kube.get<App & KubeObject>(API_VERSION, "App", app.metadata.namespace, app.metadata.name);
      const conditions = setCondition(fresh.status?.conditions, { ...condition, observedGeneration: fresh.metadata.generation }, new Date());
      if (JSON.stringify(fresh.status?.latestBuild) === JSON.stringify(latestBuild) && sameConditions(fresh.status?.conditions, conditions)) return;
      try {
        await this.#kube.patchStatus(fresh, { latestBuild, conditions }, fresh.metadata.resourceVersion);
        app.status = { ...fresh.status, latestBuild, conditions };
        return;
      } catch (err) {
        if (!isConflict(err) || attempt >= 5) throw err;
      }
    }
  }

  async #event(app: App, type: "Normal" | "Warning", reason: string, note: string, action = "Build"): Promise<void> {
    try {
      await this.#kube.event({ apiVersion: API_VERSION, kind: "App", metadata: app.metadata }, { type, reason, action, note });
    } catch (err) {
      this.#log.warn({ app: app.metadata.name, err }, "cannot record an Event");
    }
  }

  /** Credentials for the source repository from `source.credentialsSecret` (keys username, password). */
  async #auth(app: App): Promise<GitAuth | undefined> {
    const secretName = app.spec.source?.credentialsSecret;
    // A fork's preview reads the fork, which must never see the parent's credentials.
    if (!secretName || isForkPreview(app)) return undefined;
    const secret = await this.#kube.get<KubeObject & { data?: Record<string, string> }>("v1", "Secret", app.metadata.namespace, secretName);
    const field = (k: string) => Buffer.from(secret.data?.[k] ?? "", "base64").toString("utf8");
    return { username: field("username"), password: field("password") };
  }
}

/** Whether `actual` already holds every field of `desired` (labels, annotations, owners, spec). */
function contains(actual: unknown, desired: unknown): boolean {
  if (Array.isArray(desired)) {
    return Array.isArray(actual) && actual.length === desired.length && desired.every((d, i) => contains(actual[i], d));
  }
  if (desired && typeof desired === "object") {
    if (!actual || typeof actual !== "object") return false;
    return Object.entries(desired).every(([k, v]) => v === undefined || contains((actual as Record<string, unknown>)[k], v));
  }
  return actual === desired;
}
