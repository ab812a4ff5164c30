// Slipway beside Argo CD (mode "commit-only"): what keeps Argo CD's self-heal from fighting changes made in the
// cluster through Slipway (`kubectl slipway config:set`), which reach Git only when Slipway has committed them.
//
// Argo CD self-heals as soon as it sees a live object differ from Git, well before Slipway's commit lands. So
// the Application ignores the fields the CLI's field manager owns (`ignoreDifferences` with
// `managedFieldsManagers: [kubectl-slipway]` and the RespectIgnoreDifferences sync option; see
// samples/gitops/argocd/application.yaml). Once Slipway has pushed such a change, two steps hand it to Git:
//   1. Slipway asks Argo CD to refresh the Application (the `argocd.argoproj.io/refresh` annotation), so
//      Argo CD reads the new commit now instead of at its next poll;
//   2. when the Application's status says it compared a revision that holds the commit, Slipway removes the
//      CLI's entries from the objects' managedFields. Argo CD then sees those fields again, equal to Git, and
//      a later Git edit of them is applied (ignored fields would otherwise hide it for good).
import type { Logger } from "pino";
import { isConflict, isNotFound, KubeError, type Kube, type KubeObject } from "../kube.js";
import type { ConfigRepo } from "./repo.js";

export interface ArgoCdOptions {
  /** The Argo CD Application that syncs the config repository. */
  application: { namespace: string; name: string };
  /**
   * Field managers whose changes the Application ignores until they are in Git (its ignoreDifferences'
   * managedFieldsManagers); default ["kubectl-slipway"], the CLI's.
   */
  handoffManagers?: string[];
  /** How long to wait for the Application to compare a pushed commit before handing off anyway; default 60 s. */
  compareWaitMs?: number;
}

const REFRESH_ANNOTATION = "argocd.argoproj.io/refresh";
const POLL_MS = 250;

interface ManagedFieldsEntry {
  manager?: string;
}

type Application = KubeObject & { status?: { sync?: { revision?: string; revisions?: string[] } } };

export class ArgoCdLink {
  readonly #kube: Kube;
  readonly #repo: ConfigRepo;
  readonly #log: Logger;
  readonly #app: { namespace: string; name: string };
  readonly #managers: Set<string>;
  readonly #waitMs: number;
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = false;

  constructor(kube: Kube, repo: ConfigRepo, options: ArgoCdOptions, log: Logger) {
    this.#kube = kube;
    this.#repo = repo;
    this.#app = options.application;
    this.#managers = new Set(options.handoffManagers ?? ["kubectl-slipway"]);
    this.#waitMs = options.compareWaitMs ?? 60_000;
    this.#log = log.child({ application: `${this.#app.namespace}/${this.#app.name}` });
  }

  /** Whether an object carries changes of a manager the Application ignores until they are in Git. */
  needsHandoff(obj: KubeObject): boolean {
    return ((obj.metadata as { managedFields?: ManagedFieldsEntry[] }).managedFields ?? []).some((e) => !!e.manager && this.#managers.has(e.manager));
  }

  /** Asks Argo CD to compare the Application with the branch's head now. Failures are logged, never thrown. */
  async refresh(): Promise<void> {
    try {
      await this.#kube.request("PATCH", await this.#appPath(), {
        body: { metadata: { annotations: { [REFRESH_ANNOTATION]: "normal" } } },
        contentType: "application/merge-patch+json",
      });
    } catch (err) {
      this.#log.warn({ err }, "cannot ask Argo CD to refresh the Application");
    }
  }

  /**
   * After `commit` (pushed) holds changes the Application ignores: once Argo CD has compared a revision holding
   * it, the ignored managers' field ownership is removed from the objects. Runs in the background.
   */
  handOff(commit: string, objects: KubeObject[]): void {
    const job = this.#handOff(commit, objects).catch((err: unknown) => this.#log.warn({ err, commit }, "cannot hand changes over to Git"));
    this.#inFlight.add(job);
    void job.finally(() => this.#inFlight.delete(job));
  }

  /** Stops waiting; hand-offs in flight finish their current request. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#inFlight]);
  }

  async #handOff(commit: string, objects: KubeObject[]): Promise<void> {
    const deadline = Date.now() + this.#waitMs;
    while (!this.#stopped && !(await this.#compared(commit))) {
      if (Date.now() > deadline) {
        this.#log.warn({ commit, waitedMs: this.#waitMs }, "Argo CD did not compare the commit in time; handing over anyway");
        break;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (this.#stopped) return;
    for (const obj of objects) await this.#dropManagers(obj);
  }

  /** Whether the Application's last comparison was made with a revision holding `commit`. */
  async #compared(commit: string): Promise<boolean> {
    const app = await this.#kube.request<Application>("GET", await this.#appPath()).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    const revisions = [app?.status?.sync?.revision, ...(app?.status?.sync?.revisions ?? [])].filter((r): r is string => !!r);
    for (const r of revisions) if (await this.#repo.contains(r, commit)) return true;
    return false;
  }

  /** Removes the handed-off managers' managedFields entries, guarded by resourceVersion (retried on a 409). */
  async #dropManagers(ref: KubeObject): Promise<void> {
    const path = await this.#kube.path(ref.apiVersion, ref.kind, ref.metadata.namespace, ref.metadata.name);
    for (let attempt = 1; attempt <= 5; attempt++) {
      const live = await this.#kube.request<KubeObject>("GET", path).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      const entries = (live?.metadata as { managedFields?: ManagedFieldsEntry[] } | undefined)?.managedFields ?? [];
      const kept = entries.filter((e) => !e.manager || !this.#managers.has(e.manager));
      if (!live || kept.length === entries.length || !kept.length) return;
      try {
        await this.#kube.request("PATCH", path, {
          body: [
            { op: "test", path: "/metadata/resourceVersion", value: live.metadata.resourceVersion },
            { op: "replace", path: "/metadata/managedFields", value: kept },
          ],
          contentType: "application/json-patch+json",
        });
        this.#log.debug({ object: `${ref.kind}/${ref.metadata.namespace}/${ref.metadata.name}` }, "handed the CLI's fields over to Git");
        return;
      } catch (err) {
        // A JSON patch's failed test is a 422; a changed object is a 409.
        if (!isConflict(err) && !(err instanceof KubeError && err.code === 422)) throw err;
      }
    }
  }

  async #appPath(): Promise<string> {
    return this.#kube.path("argoproj.io/v1alpha1", "Application", this.#app.namespace, this.#app.name);
  }
}
