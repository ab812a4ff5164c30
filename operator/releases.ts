// Release semantics, as in Deis: a new image or a Config change cuts a new immutable Release v(N+1) whose cause
// says what changed; scaling does not; a rollback reuses an old release's build and config. Pure functions:
// app-reconciler.ts reads the cluster, asks these what to do, and writes the answer.
import type { App, Build, Config, ConfigSpec, ObjectMeta, Release, ReleaseSpec } from "../crds/v1alpha1.js";
import { ANNOTATIONS, API_VERSION, FLUX_METADATA, LABELS, MANAGED_BY, releaseName } from "../crds/v1alpha1.js";
import { MISSING, type SecretState } from "./secrets.js";

/** Annotations on a Release recording which App and Config generations it was cut from. */
export const RELEASE_ANNOTATIONS = {
  appGeneration: "slipway.dev/app-generation",
  configGeneration: "slipway.dev/config-generation",
} as const;

const DIGEST = /@sha256:[0-9a-f]{64}$/;

/** True when an image is pinned by digest (`repo@sha256:<64 hex>`), the only form a Release may hold. */
export function isPinned(image: string): boolean {
  return DIGEST.test(image);
}

/** The release number in "v5" (or "5"); undefined when it is not one. */
export function parseVersion(text: string): number | undefined {
  const match = /^v?([1-9][0-9]*)$/.exec(text.trim());
  return match ? Number(match[1]) : undefined;
}

/** The releases of one App, oldest first. */
export function releasesOf(app: string, releases: readonly Release[]): Release[] {
  return releases.filter((r) => r.spec?.app === app).sort((a, b) => a.spec.version - b.spec.version);
}

/**
 * The number of the next release: one more than both the highest existing Release and the highest number
 * the App's status remembers, so numbers only grow even when Release objects were deleted.
 */
export function nextReleaseNumber(releases: readonly Release[], latestReleaseNumber = 0): number {
  return Math.max(latestReleaseNumber, 0, ...releases.map((r) => r.spec.version)) + 1;
}

/**
 * The highest release number the App's status remembers. A pass records the number of the release it cuts
 * (latestReleaseNumber, with pendingRelease) before it cuts it; a number so recorded whose release was never
 * cut (the process stopped in between) is not counted, so no number is skipped.
 */
export function rememberedNumber(app: App, releases: readonly Release[]): number {
  const latest = app.status?.latestReleaseNumber ?? 0;
  const pending = app.status?.pendingRelease?.version;
  if (pending === latest && !releases.some((r) => r.spec.version === pending)) return pending - 1;
  return latest;
}

/** A Config spec in canonical form: keys sorted, empty maps and undefined values dropped. */
export function normalizeConfig(spec: ConfigSpec | undefined): ConfigSpec {
  return (canonical(spec ?? {}) ?? {}) as ConfigSpec;
}

export function sameConfig(a: ConfigSpec | undefined, b: ConfigSpec | undefined): boolean {
  return JSON.stringify(normalizeConfig(a)) === JSON.stringify(normalizeConfig(b));
}

/** What changed between two Config specs, as Deis says it: "set FOO, BAR (secret), unset BAZ". Empty if nothing. */
export function configChanges(previous: ConfigSpec | undefined, next: ConfigSpec | undefined): string {
  const prev = normalizeConfig(previous);
  const cur = normalizeConfig(next);
  const set: string[] = [];
  const unset: string[] = [];
  const diff = (a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined, suffix: string) => {
    for (const key of Object.keys(b ?? {}).sort()) {
      if (JSON.stringify(a?.[key]) !== JSON.stringify(b?.[key])) set.push(key + suffix);
    }
    for (const key of Object.keys(a ?? {}).sort()) {
      if (!(key in (b ?? {}))) unset.push(key + suffix);
    }
  };
  diff(prev.env, cur.env, "");
  diff(prev.secretEnv, cur.secretEnv, " (secret)");
  const parts: string[] = [];
  if (set.length) parts.push(`set ${set.join(", ")}`);
  if (unset.length) parts.push(`unset ${unset.join(", ")}`);
  const processes = [...new Set([...Object.keys(prev.resources ?? {}), ...Object.keys(cur.resources ?? {})])].sort();
  const changedResources = processes.filter((p) => JSON.stringify(prev.resources?.[p]) !== JSON.stringify(cur.resources?.[p]));
  if (changedResources.length) parts.push(`change resources of ${changedResources.join(", ")}`);
  if (JSON.stringify(prev.nodeSelector) !== JSON.stringify(cur.nodeSelector)) parts.push("change node selector");
  return parts.join(", ");
}

/** An image as a release cause shows it (causes are read in `releases` tables): the digest cut to 12 hex digits. */
export function shortImage(image: string): string {
  return image.replace(/@sha256:([0-9a-f]{12})[0-9a-f]{52}$/, "@sha256:$1");
}

/**
 * The cause of a release that follows `previous`: "deploy <image>", "set FOO, unset BAR", "change secret TOKEN"
 * (a secret env variable whose value changed in its Secret, see changedSecrets), or several of these.
 */
export function releaseCause(previous: ReleaseSpec | undefined, build: Build, config: ConfigSpec, secretsChanged: readonly string[] = []): string {
  const what = build.sourceCommit ? build.sourceCommit.slice(0, 7) : shortImage(build.image);
  if (!previous) return `deploy ${what}`;
  const parts: string[] = [];
  if (previous.build.image !== build.image) parts.push(`deploy ${what}`);
  const changes = configChanges(previous.config, config);
  if (changes) parts.push(changes);
  if (secretsChanged.length) parts.push(`change secret ${secretsChanged.join(", ")}`);
  return parts.length ? parts.join(", ") : `deploy ${what}`;
}

/**
 * The digests a release of `config` records: those of its secret env variables, none when it has none. A
 * variable the state does not know (not read) is left out, and counts as unchanged.
 */
export function recordedDigests(config: ConfigSpec, state: SecretState | undefined): Record<string, string> | undefined {
  const names = Object.keys(config.secretEnv ?? {}).sort();
  if (!state || !names.length) return undefined;
  const out: Record<string, string> = {};
  for (const name of names) {
    const digest = state.digests[name];
    if (digest !== undefined) out[name] = digest;
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * The secret env variables whose value changed since `previous` was cut, though their reference did not (a
 * changed reference is a Config change): their digests differ. None for a release that recorded no digests
 * (cut before Slipway recorded them), so an upgrade does not roll every App out. A value that went missing (its
 * Secret or key deleted) is no change to roll out: new pods could not start, and the running ones keep theirs.
 */
export function changedSecrets(previous: ReleaseSpec | undefined, config: ConfigSpec, digests: Readonly<Record<string, string>> | undefined): string[] {
  const before = previous?.secretDigests;
  if (!previous || !before || !digests) return [];
  const refsBefore = normalizeConfig(previous.config).secretEnv ?? {};
  const refsNow = normalizeConfig(config).secretEnv ?? {};
  return Object.keys(digests).sort().filter((name) =>
    before[name] !== undefined && before[name] !== digests[name] && digests[name] !== MISSING &&
    JSON.stringify(refsBefore[name]) === JSON.stringify(refsNow[name]));
}

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  time?: string;
  subresource?: string;
  fieldsV1?: Record<string, unknown>;
}

/** A managedFields entry that can name who asked: the main resource's, by a manager other than Slipway. */
const isRequester = (entry: ManagedFieldsEntry): boolean => !entry.subresource && !!entry.manager && entry.manager !== MANAGED_BY;

/** The part of a fieldsV1 set under `path` (e.g. ["f:spec"]); undefined when the entry owns nothing there. */
function fieldsAt(fieldsV1: unknown, path: readonly string[]): unknown {
  let node = fieldsV1;
  for (const step of path) node = node && typeof node === "object" ? (node as Record<string, unknown>)[step] : undefined;
  return node;
}

/**
 * Who last changed the fields under `path` (e.g. ["f:spec"]) of an object, from its managedFields: the
 * manager with the newest timestamp among those owning a field there. Slipway's own writes are skipped:
 * Slipway never asks for a change on its own.
 */
export function lastManagerOf(meta: ObjectMeta, path: readonly string[]): string | undefined {
  const entries = (meta.managedFields ?? []) as ManagedFieldsEntry[];
  let best: ManagedFieldsEntry | undefined;
  for (const entry of entries) {
    if (!isRequester(entry) || fieldsAt(entry.fieldsV1, path) === undefined) continue;
    if (!best || (entry.time ?? "") >= (best.time ?? "")) best = entry;
  }
  return best?.manager;
}

/** Where managedFields say who wrote the `slipway.dev/changed-by` annotation. */
const CHANGED_BY_PATH = ["f:metadata", "f:annotations", `f:${ANNOTATIONS.changedBy}`] as const;

/** Where managedFields say who wrote the `slipway.dev/git-commit` annotation (GitOps, applying from Git). */
const GIT_COMMIT_PATH = ["f:metadata", "f:annotations", `f:${ANNOTATIONS.gitCommit}`] as const;

/** The fields whose managers `requestedBy`, `gitChange` and the rollback's requester are read from. */
export const OWNERSHIP_PATHS: readonly (readonly string[])[] = [
  ["f:spec"], ["f:metadata", "f:annotations", `f:${ANNOTATIONS.rollback}`], CHANGED_BY_PATH, GIT_COMMIT_PATH,
];

/**
 * The part of an object's managedFields that lastManagerOf reads for OWNERSHIP_PATHS: the entries of the main
 * resource, each with only whether it owns a field there. A cached App or Config keeps this much; the rest (a
 * copy of the spec's shape per manager, and the status entries) is most of an object's size. Never send it
 * back to the server: it would replace the object's real managedFields.
 */
export function ownershipOnly(managedFields: readonly ManagedFieldsEntry[] | undefined): ManagedFieldsEntry[] | undefined {
  if (!managedFields) return undefined;
  const kept: ManagedFieldsEntry[] = [];
  for (const entry of managedFields) {
    if (!isRequester(entry)) continue;
    const fieldsV1: Record<string, unknown> = {};
    for (const path of OWNERSHIP_PATHS) {
      if (fieldsAt(entry.fieldsV1, path) === undefined) continue;
      let at = fieldsV1;
      for (const step of path) at = (at[step] ??= {}) as Record<string, unknown>;
    }
    if (Object.keys(fieldsV1).length) kept.push({ manager: entry.manager, operation: entry.operation, time: entry.time, fieldsV1 });
  }
  return kept;
}

/**
 * Who asked for a change to an object: the `slipway.dev/changed-by` annotation, else the last manager of `path`.
 * The annotation names the requester only when its writer also made the latest change under `path`: a later
 * write by another manager (a `kubectl edit`, a patch of a Secret's data) leaves an earlier user's annotation in
 * place, and that change is credited to its own manager instead. Without managedFields the annotation is taken.
 */
export function requestedBy(meta: ObjectMeta, path: readonly string[] = ["f:spec"]): string | undefined {
  const annotation = meta.annotations?.[ANNOTATIONS.changedBy];
  const last = lastManagerOf(meta, path);
  if (!annotation) return last;
  const writer = lastManagerOf(meta, CHANGED_BY_PATH);
  return writer === undefined || last === undefined || writer === last ? annotation : last;
}

/** What the reconciler should do about releases. */
export type ReleasePlan =
  /** The newest release already holds the App's build and Config. */
  | { kind: "none" }
  /** Cut a new release with this spec. */
  | { kind: "cut"; spec: ReleaseSpec }
  /** Built from source and no build has succeeded yet. */
  | { kind: "awaitingBuild"; message: string }
  /** Needs a human. */
  | { kind: "stalled"; reason: "ImageNotPinned" | "InvalidSpec" | "RollbackTargetNotFound"; message: string };

export interface PlanInput {
  app: App;
  config?: Config;
  /** The App's releases, any order. */
  releases: readonly Release[];
  /** The digests of the Config's secret env values now (operator/secrets.ts); unknown when not given. */
  secrets?: SecretState;
}

/**
 * Whether the App's image or Config differ from the newest release, and if so the release to cut.
 * Comparing content (not generations) makes this idempotent: after a crash or restart the same change
 * never cuts a second release.
 */
export function planRelease({ app, config, releases, secrets }: PlanInput): ReleasePlan {
  const own = releasesOf(app.metadata.name, releases);
  const latest = own.at(-1);
  const image = app.spec.image;
  let build: Build;
  let fromBuild = false;
  if (image) {
    if (latest?.spec.build.image === image) {
      build = latest.spec.build;
    } else if (!isPinned(image)) {
      return {
        kind: "stalled",
        reason: "ImageNotPinned",
        message:
          `image "${image}" is not pinned by digest: a release must always run the same code, so set spec.image to ` +
          `"<repository>@sha256:<digest>" (find the digest with \`crane digest ${image}\` or \`docker buildx imagetools inspect ${image}\`)`,
      };
    } else {
      build = { image };
    }
  } else if (app.spec.source) {
    const built = unreleasedBuild(app, own);
    if (built) {
      build = built;
      fromBuild = true;
    }
    else if (!latest) return { kind: "awaitingBuild", message: `waiting for the first build of ${app.spec.source.git}` };
    else build = latest.spec.build;
  } else {
    return { kind: "stalled", reason: "InvalidSpec", message: "the App needs spec.image or spec.source" };
  }
  const configSpec = normalizeConfig(config?.spec);
  const digests = recordedDigests(configSpec, secrets);
  const secretsChanged = changedSecrets(latest?.spec, configSpec, digests);
  const configChanged = !latest || !sameConfig(latest.spec.config, configSpec);
  if (latest && latest.spec.build.image === build.image && !configChanged && !secretsChanged.length) return { kind: "none" };
  const imageChanged = !latest || latest.spec.build.image !== build.image;
  // A build is asked for by a push to the source branch; the PipelineRun names the commit it built. A secret
  // value changed alone is asked for by whoever wrote its Secret.
  const asker = fromBuild ? undefined : imageChanged || !config ? app.metadata : configChanged ? config.metadata : undefined;
  const who = fromBuild ? `build ${build.pipelineRun ?? ""}`.trim()
    : asker ? requestedBy(asker)
    : secretWriters(configSpec, secretsChanged, secrets);
  const fromGit = asker ? gitChange(asker) : undefined;
  const cause = fromGit?.revertOf ? `revert of ${fromGit.revertOf}` : releaseCause(latest?.spec, build, configSpec, secretsChanged);
  return {
    kind: "cut",
    spec: {
      app: app.metadata.name,
      version: nextReleaseNumber(own, rememberedNumber(app, own)),
      cause: fromGit ? `${cause} (git ${fromGit.commit}${who ? ` by ${who}` : ""})` : cause,
      ...(who ? { requestedBy: who } : {}),
      build,
      config: configSpec,
      ...(digests ? { secretDigests: digests } : {}),
    },
  };
}

/**
 * The Git commit an App's or Config's latest change came from, as GitOps records it when it applies a change
 * pushed to Git (the slipway.dev/git-commit and git-revert-of annotations); undefined when the latest change
 * under spec was made by another writer (the annotations stay on the object after it).
 */
export function gitChange(meta: ObjectMeta): { commit: string; revertOf?: string } | undefined {
  const commit = meta.annotations?.[ANNOTATIONS.gitCommit];
  if (!commit) return undefined;
  const writer = lastManagerOf(meta, GIT_COMMIT_PATH);
  const last = lastManagerOf(meta, ["f:spec"]);
  if (writer !== undefined && last !== undefined && writer !== last) return undefined;
  const revertOf = meta.annotations?.[ANNOTATIONS.gitRevertOf];
  return revertOf ? { commit, revertOf } : { commit };
}

/** Who wrote the Secrets of the changed variables, as one name ("alice", or "alice, bob"). */
function secretWriters(config: ConfigSpec, variables: readonly string[], secrets: SecretState | undefined): string | undefined {
  const names = new Set(variables.map((v) => config.secretEnv?.[v]?.secretName).filter((n): n is string => !!n));
  const writers = [...new Set([...names].map((n) => secrets?.changedBy[n]).filter((w): w is string => !!w))];
  return writers.length ? writers.join(", ") : undefined;
}

/**
 * The build of an App built from source that is still to be released: the succeeded build its status records
 * (the build controller writes it there), when no Release holds that PipelineRun's image yet. A rollback to an
 * older release does not bring it back: it was released once.
 */
export function unreleasedBuild(app: App, releases: readonly Release[]): Build | undefined {
  const built = app.status?.latestBuild;
  if (!app.spec.source || built?.phase !== "Succeeded" || !built.image || !isPinned(built.image)) return undefined;
  if (releases.some((r) => r.spec.app === app.metadata.name && r.spec.build.pipelineRun === built.pipelineRun)) return undefined;
  return { image: built.image, sourceCommit: built.commit, pipelineRun: built.pipelineRun, ...(built.procfile ? { procfile: built.procfile } : {}) };
}

/**
 * A rollback to `target` ("v5"): a new release reusing v5's build and config. "none" when the newest release
 * already holds exactly that (the rollback was cut before a restart, or it would change nothing).
 */
export function planRollback(app: App, releases: readonly Release[], target: string, secrets?: SecretState): ReleasePlan & { target?: Release } {
  const own = releasesOf(app.metadata.name, releases);
  const version = parseVersion(target);
  const found = version === undefined ? undefined : own.find((r) => r.spec.version === version);
  if (!found) {
    const known = own.length ? `known releases: ${own.map((r) => `v${r.spec.version}`).join(", ")}` : "the App has no releases yet";
    return {
      kind: "stalled",
      reason: "RollbackTargetNotFound",
      message: `cannot roll back to "${target}": ${version === undefined ? "not a release version such as v3" : `App ${app.metadata.name} has no release v${version}`} (${known}); fix or remove the ${ANNOTATIONS.rollback} annotation`,
    };
  }
  const latest = own.at(-1);
  if (latest && latest.spec.build.image === found.spec.build.image && sameConfig(latest.spec.config, found.spec.config)) {
    return { kind: "none", target: found };
  }
  const who = app.metadata.annotations?.[ANNOTATIONS.changedBy] || lastManagerOf(app.metadata, ["f:metadata", "f:annotations", `f:${ANNOTATIONS.rollback}`]);
  const digests = recordedDigests(normalizeConfig(found.spec.config), secrets);
  return {
    kind: "cut",
    target: found,
    spec: {
      app: app.metadata.name,
      version: nextReleaseNumber(own, rememberedNumber(app, own)),
      cause: `rollback to v${found.spec.version}`,
      ...(who ? { requestedBy: who } : {}),
      build: found.spec.build,
      config: normalizeConfig(found.spec.config),
      rollbackOf: found.spec.version,
      // Secrets keep only their current values: a rollback brings back the references, and records what they hold now.
      ...(digests ? { secretDigests: digests } : {}),
    },
  };
}

/** The Release object for a spec, named `<app>-v<version>` so that cutting it twice can only collide. */
export function releaseObject(app: App, spec: ReleaseSpec, config?: Config): Release {
  const annotations: Record<string, string> = {
    [RELEASE_ANNOTATIONS.appGeneration]: String(app.metadata.generation ?? 0),
    // Flux's prune policy, kept in Git too (gitops/layout.ts): `git revert` of a release commit removes its
    // file, and Flux must not delete the history Slipway keeps. Releases go only with their App.
    [FLUX_METADATA.prune]: "disabled",
  };
  if (config?.metadata.generation !== undefined) annotations[RELEASE_ANNOTATIONS.configGeneration] = String(config.metadata.generation);
  return {
    apiVersion: API_VERSION,
    kind: "Release",
    metadata: {
      name: releaseName(app.metadata.name, spec.version),
      namespace: app.metadata.namespace,
      labels: {
        [LABELS.app]: app.metadata.name,
        [LABELS.release]: `v${spec.version}`,
        [LABELS.managedBy]: MANAGED_BY,
      },
      annotations,
    },
    spec,
  };
}

/** True when two release specs hold the same build and config (what makes a release what it is). */
export function sameContent(a: ReleaseSpec, b: ReleaseSpec): boolean {
  return a.app === b.app && a.version === b.version && JSON.stringify(canonical(a.build)) === JSON.stringify(canonical(b.build)) && sameConfig(a.config, b.config) &&
    JSON.stringify(canonical(a.secretDigests)) === JSON.stringify(canonical(b.secretDigests));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = canonical((value as Record<string, unknown>)[key]);
      if (v !== undefined) out[key] = v;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return value;
}
