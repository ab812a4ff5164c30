// Slipway beside Flux (GitOps mode "commit-only"): Flux applies the config repository, Slipway commits the
// cluster changes and releases it makes. Two things keep them from fighting:
// - Right after each push, Slipway asks Flux's GitRepository to fetch (the `reconcile.fluxcd.io/requestedAt`
//   annotation, as Flux's own webhook receiver does) and, once its artifact holds the pushed commit, asks the
//   Kustomization to apply it. A CLI change converges in seconds instead of at the next poll.
// - Until Flux's source holds the commit of a cluster change, a Kustomization reconcile would apply the older
//   revision and undo the change (drift correction). So a changed App or Config is held from Flux:
//   `kustomize.toolkit.fluxcd.io/reconcile: disabled` on the in-cluster object, which Flux reads there and
//   skips. The CLI holds what it changes in the same write; GitOps holds any other change (not Flux's own) the
//   moment its watch sees it. The hold is removed once the Kustomization has attempted a revision holding the
//   commit (once the artifact merely holds it, a reconcile of the older revision may still be in flight).
import type { Logger } from "pino";
import { ANNOTATIONS, FLUX_METADATA, type ObjectMeta } from "../../crds/v1alpha1.js";
import { isConflict, isNotFound, Kube, type KubeObject } from "../kube.js";
import { lastManagerOf } from "../releases.js";
import type { ConfigRepo } from "./repo.js";

/** A Flux object by namespace and name. */
export interface FluxRef {
  namespace: string;
  name: string;
}

/** The Flux objects that apply the config repository: the source Slipway pushes to, and what applies it. */
export interface FluxTargets {
  gitRepository: FluxRef;
  kustomization: FluxRef;
}

export const FLUX_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt";
const FLUX_RECONCILE = FLUX_METADATA.reconcile;
const FLUX_HOLD = ANNOTATIONS.fluxHold;
/** kustomize-controller's field manager: its writes are Git's, not cluster changes to hold. */
export const FLUX_FIELD_MANAGER = "kustomize-controller";

const SOURCE_API = "source.toolkit.fluxcd.io/v1";
const KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1";
/** How often the GitRepository is read while a pushed commit waits for it; slower once it has waited a minute (Flux down). */
const POLL_MS = 250;
const SLOW_POLL_MS = 5_000;

/** "main@sha1:<40 hex>" (Flux v1 revisions) or a bare id: the commit id. */
export function commitOfRevision(revision: string | undefined): string | undefined {
  const m = /(?:^|[@:])([0-9a-f]{40})$/.exec(revision ?? "");
  return m?.[1];
}

/** A held object: enough to address it, and the generation whose change it holds. */
export interface HeldObject {
  apiVersion: string;
  kind: string;
  metadata: { namespace: string; name: string };
  generation: number;
}

/**
 * A pushed commit with the holds to remove once Flux has applied it: first Flux's source must hold it
 * (`fetched`), then the Kustomization must have attempted a revision holding it. Only then is no Kustomization
 * reconcile of an older revision still in flight (Flux reconciles one Kustomization at a time), so removing
 * the hold cannot let an older revision revert the change.
 */
interface Waiting {
  commit: string;
  release: HeldObject[];
  fetched?: boolean;
}

export class FluxNudge {
  readonly #kube: Kube;
  readonly #repo: ConfigRepo;
  readonly #targets: FluxTargets | undefined;
  readonly #log: Logger;
  #waiting: Waiting[] = [];
  #loop: Promise<void> | undefined;
  #stopped = false;
  #lastPush = 0;

  /**
   * Without targets (Slipway not told which Flux objects apply the repository, or mode "sync"), nothing is
   * asked of Flux and nothing is held by GitOps; a hold the CLI set is removed as soon as its change is pushed,
   * so a Flux-applied object is never left held.
   */
  constructor(kube: Kube, repo: ConfigRepo, targets: FluxTargets | undefined, log: Logger) {
    this.#kube = kube;
    this.#repo = repo;
    this.#targets = targets;
    this.#log = targets ? log.child({ flux: `${targets.gitRepository.namespace}/${targets.gitRepository.name}` }) : log;
  }

  /** Whether GitOps holds the cluster changes it sees (it knows which Flux source to wait for). */
  get holds(): boolean {
    return this.#targets !== undefined;
  }

  /**
   * Whether a watched change of an App or Config is a cluster change Flux could revert before it has Git's:
   * "hold" it, or it is "held" already (the CLI holds what it changes in the same write). Undefined for
   * Flux's own applies, metadata-only changes, and objects seen for the first time.
   */
  static holdFor(kind: string, meta: ObjectMeta, previousGeneration: number | undefined): "hold" | "held" | undefined {
    if (kind !== "App" && kind !== "Config") return undefined;
    if (previousGeneration === undefined || meta.generation === previousGeneration) return undefined;
    if (lastManagerOf(meta, ["f:spec"]) === FLUX_FIELD_MANAGER) return undefined;
    return meta.annotations?.[FLUX_HOLD] ? "held" : "hold";
  }

  /** Holds an object: Flux skips it until its change is in Flux's artifact. */
  async hold(obj: HeldObject): Promise<void> {
    try {
      await this.#kube.mergePatch(obj, { metadata: { annotations: { [FLUX_RECONCILE]: "disabled", [FLUX_HOLD]: `generation ${obj.generation}` } } });
      this.#log.debug({ object: `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}` }, "holding a cluster change from Flux until it has fetched its commit");
    } catch (err) {
      if (!isNotFound(err)) this.#log.warn({ err, object: `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}` }, "cannot hold a cluster change from Flux");
    }
  }

  /**
   * The remote now holds `commit` (pushed, or already there): asks the GitRepository to fetch it, once its
   * artifact holds it asks the Kustomization to apply it, and once the Kustomization has attempted it removes
   * the holds of `release`.
   */
  pushed(commit: string, release: HeldObject[] = []): void {
    if (this.#stopped) return;
    const targets = this.#targets;
    if (!targets) {
      for (const obj of release) void this.#unhold(obj);
      return;
    }
    this.#waiting.push({ commit, release });
    this.#lastPush = Date.now();
    void this.#request(SOURCE_API, "GitRepository", targets.gitRepository);
    this.#loop ??= this.#run().finally(() => (this.#loop = undefined));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    const targets = this.#targets;
    if (!targets) return;
    let lastAsked = Date.now();
    let lastFetched = Date.now();
    while (this.#waiting.length && !this.#stopped) {
      const quiet = Date.now() - Math.max(lastFetched, this.#lastPush);
      await new Promise((r) => setTimeout(r, quiet > 60_000 ? SLOW_POLL_MS : POLL_MS));
      const fetched = await this.#artifactCommit();
      if (!fetched) continue;
      const newlyFetched: Waiting[] = [];
      for (const w of this.#waiting) {
        if (!w.fetched && (await this.#repo.contains(fetched, w.commit))) {
          w.fetched = true;
          newlyFetched.push(w);
        }
      }
      if (newlyFetched.length) {
        lastFetched = Date.now();
        await this.#request(KUSTOMIZE_API, "Kustomization", targets.kustomization);
        this.#log.debug({ revision: fetched }, "Flux's source holds the pushed commits; asked the Kustomization to apply them");
      } else if (this.#waiting.some((w) => !w.fetched) && Date.now() - lastAsked > 10_000) {
        // A request made while the source was busy can be folded into that reconcile: ask again now and then.
        lastAsked = Date.now();
        await this.#request(SOURCE_API, "GitRepository", targets.gitRepository);
      }
      const attempted = await this.#attemptedCommit();
      if (!attempted) continue;
      const done: Waiting[] = [];
      const left: Waiting[] = [];
      for (const w of this.#waiting) ((w.fetched && (await this.#repo.contains(attempted, w.commit))) ? done : left).push(w);
      if (!done.length) continue;
      this.#waiting = left;
      await Promise.all(done.flatMap((w) => w.release).map((obj) => this.#unhold(obj)));
      this.#log.debug({ revision: attempted }, "Flux's Kustomization has attempted the pushed commits; their holds are removed");
    }
  }

  /** The commit of the revision the Kustomization last attempted to apply. */
  async #attemptedCommit(): Promise<string | undefined> {
    if (!this.#targets) return undefined;
    const { namespace, name } = this.#targets.kustomization;
    try {
      const k = await this.#kube.get<KubeObject & { status?: { lastAttemptedRevision?: string } }>(KUSTOMIZE_API, "Kustomization", namespace, name);
      return commitOfRevision(k.status?.lastAttemptedRevision);
    } catch (err) {
      this.#log.warn({ err }, "cannot read Flux's Kustomization");
      return undefined;
    }
  }

  async #artifactCommit(): Promise<string | undefined> {
    if (!this.#targets) return undefined;
    const { namespace, name } = this.#targets.gitRepository;
    try {
      const repo = await this.#kube.get<KubeObject & { status?: { artifact?: { revision?: string } } }>(SOURCE_API, "GitRepository", namespace, name);
      return commitOfRevision(repo.status?.artifact?.revision);
    } catch (err) {
      this.#log.warn({ err }, "cannot read Flux's GitRepository");
      return undefined;
    }
  }

  /**
   * Removes a hold, unless a later change holds the object again (its generation moved on: that change's own
   * pass releases it). Guarded by resourceVersion; a 409 (a status write meanwhile) reads it again.
   */
  async #unhold(obj: HeldObject): Promise<void> {
    const what = `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`;
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        const live = await this.#kube.get<KubeObject>(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
        const hold = live.metadata.annotations?.[FLUX_HOLD];
        if (!hold || (live.metadata.generation ?? 0) > obj.generation) return;
        await this.#kube.mergePatch(live, {
          metadata: { resourceVersion: live.metadata.resourceVersion, annotations: { [FLUX_RECONCILE]: null, [FLUX_HOLD]: null } },
        });
        this.#log.debug({ object: what }, "released a cluster change to Flux: its Kustomization has attempted the commit");
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err) || attempt === 5) {
          this.#log.warn({ err, object: what }, "cannot remove a Flux hold; Flux skips the object until it is removed");
          return;
        }
      }
    }
  }

  async #request(apiVersion: string, kind: string, ref: FluxRef): Promise<void> {
    const target = { apiVersion, kind, metadata: { namespace: ref.namespace, name: ref.name } };
    try {
      await this.#kube.mergePatch(target, { metadata: { annotations: { [FLUX_REQUESTED_AT]: new Date().toISOString() } } });
    } catch (err) {
      this.#log.warn({ err, object: `${kind}/${ref.namespace}/${ref.name}` }, "cannot ask Flux to reconcile");
    }
  }
}
