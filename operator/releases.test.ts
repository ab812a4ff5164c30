import test from "ava";
import type { App, Config, ConfigSpec, Release } from "../crds/v1alpha1.js";
import {
  configChanges,
  isPinned,
  lastManagerOf,
  nextReleaseNumber,
  OWNERSHIP_PATHS,
  ownershipOnly,
  parseVersion,
  planRelease,
  planRollback,
  releaseCause,
  releaseObject,
  requestedBy,
} from "./releases.js";

const IMAGE_A = `registry.example/shop@sha256:${"a".repeat(64)}`;
const IMAGE_B = `registry.example/shop@sha256:${"b".repeat(64)}`;

function app(spec: App["spec"], extra: Partial<App["metadata"]> = {}, status?: App["status"]): App {
  return { apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "shop", namespace: "team", generation: 1, ...extra }, spec, status };
}

function config(spec: ConfigSpec, extra: Partial<Config["metadata"]> = {}): Config {
  return { apiVersion: "slipway.dev/v1alpha1", kind: "Config", metadata: { name: "shop", namespace: "team", generation: 1, ...extra }, spec };
}

function release(version: number, image: string, cfg: ConfigSpec = {}, rollbackOf?: number): Release {
  return {
    apiVersion: "slipway.dev/v1alpha1",
    kind: "Release",
    metadata: { name: `shop-v${version}`, namespace: "team" },
    spec: { app: "shop", version, cause: "", build: { image }, config: cfg, ...(rollbackOf ? { rollbackOf } : {}) },
  };
}

test("only images pinned by a sha256 digest count as pinned", (t) => {
  t.true(isPinned(IMAGE_A));
  t.false(isPinned("registry.example/shop:1.2"));
  t.false(isPinned("registry.example/shop@sha256:abc"));
});

test("release versions read as v5 or 5, nothing else", (t) => {
  t.is(parseVersion("v5"), 5);
  t.is(parseVersion("12"), 12);
  t.is(parseVersion("v0"), undefined);
  t.is(parseVersion("latest"), undefined);
});

test("config changes list set and unset keys, secrets marked", (t) => {
  t.is(configChanges({ env: { BAR: "1" } }, { env: { FOO: "1" } }), "set FOO, unset BAR");
  t.is(
    configChanges({}, { env: { FOO: "1" }, secretEnv: { BAR: { secretName: "s", key: "bar" } } }),
    "set FOO, BAR (secret)",
  );
  t.is(configChanges({ env: { FOO: "1" } }, { env: { FOO: "2" } }), "set FOO");
  t.is(configChanges({ resources: { web: { limits: { memory: "1Gi" } } } }, {}), "change resources of web");
  t.is(configChanges({ env: {} }, {}), "", "an empty map is the same as none");
});

test("the first release deploys the image", (t) => {
  t.is(releaseCause(undefined, { image: IMAGE_A }, { env: { FOO: "1" } }), "deploy registry.example/shop@sha256:aaaaaaaaaaaa");
});

test("a build from source is named by its short commit", (t) => {
  t.is(releaseCause(undefined, { image: IMAGE_A, sourceCommit: "1a2b3c4d5e6f" }, {}), "deploy 1a2b3c4");
});

test("a release that changes image and config says both", (t) => {
  t.is(releaseCause(release(1, IMAGE_A).spec, { image: IMAGE_B }, { env: { FOO: "1" } }), "deploy registry.example/shop@sha256:bbbbbbbbbbbb, set FOO");
});

test("release numbers grow past both existing releases and the remembered number", (t) => {
  t.is(nextReleaseNumber([]), 1);
  t.is(nextReleaseNumber([release(1, IMAGE_A), release(3, IMAGE_A)], 2), 4);
  t.is(nextReleaseNumber([release(1, IMAGE_A)], 7), 8, "deleted releases are not reused");
});

test("an App with a digest and no releases cuts v1", (t) => {
  const plan = planRelease({ app: app({ image: IMAGE_A }), config: config({ env: { FOO: "1" } }), releases: [] });
  t.deepEqual(plan, {
    kind: "cut",
    spec: { app: "shop", version: 1, cause: "deploy registry.example/shop@sha256:aaaaaaaaaaaa", build: { image: IMAGE_A }, config: { env: { FOO: "1" } } },
  });
});

test("a tagged image is not deployed and asks for a digest", (t) => {
  const plan = planRelease({ app: app({ image: "registry.example/shop:1.2" }), releases: [] });
  t.is(plan.kind, "stalled");
  t.like(plan, { reason: "ImageNotPinned" });
  t.regex((plan as { message: string }).message, /not pinned by digest.*@sha256/);
});

test("scaling does not cut a release", (t) => {
  const plan = planRelease({
    app: app({ image: IMAGE_A, processes: { web: { replicas: 5 } } }, { generation: 2 }),
    config: config({ env: { FOO: "1" } }),
    releases: [release(1, IMAGE_A, { env: { FOO: "1" } })],
  });
  t.deepEqual(plan, { kind: "none" });
});

test("a config change cuts the next release with the change as cause and the changer as requester", (t) => {
  const plan = planRelease({
    app: app({ image: IMAGE_A }, {}, { latestReleaseNumber: 1 }),
    config: config({ env: { FOO: "1" } }, { annotations: { "slipway.dev/changed-by": "alice" } }),
    releases: [release(1, IMAGE_A)],
  });
  t.like(plan, { kind: "cut", spec: { version: 2, cause: "set FOO", requestedBy: "alice", config: { env: { FOO: "1" } } } });
});

test("the requester falls back to the last field manager of the spec", (t) => {
  const managedFields = [
    { manager: "kubectl-client-side-apply", operation: "Update", time: "2025-01-01T00:00:00Z", fieldsV1: { "f:spec": { "f:image": {} } } },
    { manager: "slipway", operation: "Update", time: "2025-01-03T00:00:00Z", fieldsV1: { "f:spec": { "f:image": {} } } },
    { manager: "bob-cli", operation: "Apply", time: "2025-01-02T00:00:00Z", fieldsV1: { "f:spec": { "f:image": {} } } },
    { manager: "status-writer", operation: "Update", time: "2025-01-04T00:00:00Z", subresource: "status", fieldsV1: { "f:status": {} } },
  ];
  t.is(lastManagerOf({ name: "shop", managedFields }, ["f:spec"]), "bob-cli");
  const plan = planRelease({ app: app({ image: IMAGE_B }, { managedFields }), releases: [release(1, IMAGE_A)] });
  t.like(plan, { kind: "cut", spec: { requestedBy: "bob-cli", cause: "deploy registry.example/shop@sha256:bbbbbbbbbbbb" } });
});

test("what the cache keeps of managedFields names the same requester for the spec and the rollback annotation", (t) => {
  const rollback = "f:slipway.dev/rollback-to";
  const managedFields = [
    { manager: "alice-cli", operation: "Apply", time: "2025-01-01T00:00:00Z", fieldsV1: { "f:metadata": { "f:annotations": { [rollback]: {} } }, "f:spec": { "f:image": {}, "f:processes": { "f:web": { "f:replicas": {} } } } } },
    { manager: "bob-cli", operation: "Apply", time: "2025-01-02T00:00:00Z", fieldsV1: { "f:spec": { "f:processes": { "f:worker": {} } } } },
    { manager: "carol", operation: "Update", time: "2025-01-03T00:00:00Z", fieldsV1: { "f:metadata": { "f:labels": { "f:team": {} } } } },
    { manager: "slipway", operation: "Update", time: "2025-01-04T00:00:00Z", fieldsV1: { "f:metadata": { "f:finalizers": {} } } },
    { manager: "status-writer", operation: "Update", time: "2025-01-05T00:00:00Z", subresource: "status", fieldsV1: { "f:status": { "f:conditions": {} } } },
  ];
  const kept = ownershipOnly(managedFields);
  t.deepEqual(kept?.map((e) => e.manager), ["alice-cli", "bob-cli"]);
  t.deepEqual(kept?.[0]?.fieldsV1, { "f:metadata": { "f:annotations": { [rollback]: {} } }, "f:spec": {} });
  for (const path of OWNERSHIP_PATHS) {
    t.is(lastManagerOf({ name: "shop", managedFields: kept }, path), lastManagerOf({ name: "shop", managedFields }, path), path.join("."));
  }
  t.is(lastManagerOf({ name: "shop", managedFields: kept }, ["f:spec"]), "bob-cli");
});

test("the same change seen again after a restart cuts nothing, even with a stale release number in status", (t) => {
  const plan = planRelease({
    app: app({ image: IMAGE_A }, {}, { latestReleaseNumber: 1 }),
    config: config({ env: { FOO: "1" } }),
    releases: [release(1, IMAGE_A), release(2, IMAGE_A, { env: { FOO: "1" } })],
  });
  t.deepEqual(plan, { kind: "none" });
});

test("an App built from source waits for its first build", (t) => {
  const plan = planRelease({ app: app({ source: { git: "https://git.example/shop" } }), releases: [] });
  t.like(plan, { kind: "awaitingBuild" });
});

test("a config change of an App built from source reuses the live build", (t) => {
  const built = release(1, IMAGE_A);
  built.spec.build.sourceCommit = "abcdef0123";
  const plan = planRelease({ app: app({ source: { git: "https://git.example/shop" } }), config: config({ env: { X: "1" } }), releases: [built] });
  t.like(plan, { kind: "cut", spec: { version: 2, cause: "set X", build: { image: IMAGE_A, sourceCommit: "abcdef0123" } } });
});

test("a rollback reuses the old release's build and config", (t) => {
  const releases = [release(1, IMAGE_A, { env: { FOO: "1" } }), release(2, IMAGE_B, { env: { FOO: "2" } })];
  const plan = planRollback(app({ image: IMAGE_B }, { annotations: { "slipway.dev/changed-by": "carol" } }), releases, "v1");
  t.like(plan, {
    kind: "cut",
    spec: { version: 3, cause: "rollback to v1", rollbackOf: 1, requestedBy: "carol", build: { image: IMAGE_A }, config: { env: { FOO: "1" } } },
  });
});

test("a rollback already cut before a restart is not cut again", (t) => {
  const releases = [release(1, IMAGE_A), release(2, IMAGE_B), release(3, IMAGE_A, {}, 1)];
  t.like(planRollback(app({ image: IMAGE_B }), releases, "v1"), { kind: "none" });
});

test("a rollback to an unknown release names the known ones", (t) => {
  const plan = planRollback(app({ image: IMAGE_A }), [release(1, IMAGE_A)], "v9");
  t.like(plan, { kind: "stalled", reason: "RollbackTargetNotFound" });
  t.regex((plan as { message: string }).message, /has no release v9 \(known releases: v1\)/);
});

test("a release object is named after the app and version, records the generations it covers, and is never pruned by Flux", (t) => {
  const obj = releaseObject(app({ image: IMAGE_A }, { generation: 4 }), release(2, IMAGE_A).spec, config({}, { generation: 3 }));
  t.is(obj.metadata.name, "shop-v2");
  t.deepEqual(obj.metadata.annotations, {
    "slipway.dev/app-generation": "4",
    "slipway.dev/config-generation": "3",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
  });
  t.is(obj.metadata.labels?.["slipway.dev/app"], "shop");
});

const COMMIT = "1d797d6".padEnd(40, "0");
const SOURCE = { git: "https://git.example/shop.git" };

/** An App built from source whose status records a build (as the build controller writes it). */
function built(phase: "Running" | "Succeeded" | "Failed", pipelineRun = "shop-build-1d797d6", image = IMAGE_B): App {
  return app({ source: SOURCE }, {}, {
    latestBuild: { pipelineRun, commit: COMMIT, phase, ...(phase === "Succeeded" ? { image, procfile: { web: "./server" } } : {}) },
  });
}

function fromBuild(version: number, image: string, pipelineRun: string, cfg: ConfigSpec = {}): Release {
  const r = release(version, image, cfg);
  r.spec.build = { image, sourceCommit: COMMIT, pipelineRun };
  return r;
}

test("a succeeded build in the App's status cuts the next release with its image, commit and Procfile, requested by the build", (t) => {
  const plan = planRelease({ app: built("Succeeded"), config: config({ env: { FOO: "1" } }), releases: [release(1, IMAGE_A, { env: { FOO: "1" } })] });
  t.deepEqual(plan, {
    kind: "cut",
    spec: {
      app: "shop", version: 2, cause: "deploy 1d797d6", requestedBy: "build shop-build-1d797d6",
      build: { image: IMAGE_B, sourceCommit: COMMIT, pipelineRun: "shop-build-1d797d6", procfile: { web: "./server" } },
      config: { env: { FOO: "1" } },
    },
  });
});

test("an App's first build cuts v1 with the current Config; before it succeeds the App waits for it", (t) => {
  t.like(planRelease({ app: built("Succeeded"), config: config({ env: { A: "1" } }), releases: [] }), {
    kind: "cut", spec: { version: 1, cause: "deploy 1d797d6", config: { env: { A: "1" } } },
  });
  t.like(planRelease({ app: built("Running"), config: config({}), releases: [] }), { kind: "awaitingBuild" });
  t.like(planRelease({ app: built("Failed"), config: config({}), releases: [] }), { kind: "awaitingBuild" });
});

test("a build some release already holds is not released again, and a Config change releases the live build", (t) => {
  const v2 = fromBuild(2, IMAGE_B, "shop-build-1d797d6");
  t.deepEqual(planRelease({ app: built("Succeeded"), config: config({}), releases: [release(1, IMAGE_A), v2] }), { kind: "none" });
  const plan = planRelease({ app: built("Succeeded"), config: config({ env: { FOO: "2" } }, { managedFields: [] }), releases: [release(1, IMAGE_A), v2] });
  t.like(plan, { kind: "cut", spec: { version: 3, cause: "set FOO", build: { image: IMAGE_B, pipelineRun: "shop-build-1d797d6" } } });
});

test("after a rollback past the newest build, that build is not released again", (t) => {
  const releases = [fromBuild(1, IMAGE_A, "shop-build-aaaaaaa"), fromBuild(2, IMAGE_B, "shop-build-1d797d6"), { ...fromBuild(3, IMAGE_A, "shop-build-aaaaaaa"), spec: { ...fromBuild(3, IMAGE_A, "shop-build-aaaaaaa").spec, rollbackOf: 1 } }];
  t.deepEqual(planRelease({ app: built("Succeeded"), config: config({}), releases }), { kind: "none" });
});

test("a running or failed build leaves the live release's build in place", (t) => {
  const v1 = fromBuild(1, IMAGE_A, "shop-build-aaaaaaa");
  for (const phase of ["Running", "Failed"] as const) {
    t.deepEqual(planRelease({ app: built(phase, "shop-build-1d797d6"), config: config({}), releases: [v1] }), { kind: "none" }, phase);
  }
});

test("a release number status announced for a cut that never happened is not skipped; one that was cut counts", (t) => {
  const announced = app({ image: IMAGE_B }, {}, { latestReleaseNumber: 3, pendingRelease: { version: 3 } });
  t.like(planRelease({ app: announced, config: config({}), releases: [release(1, IMAGE_A), release(2, IMAGE_A)] }), { kind: "cut", spec: { version: 3 } });
  t.like(planRelease({ app: announced, config: config({ env: { A: "1" } }), releases: [release(1, IMAGE_A), release(2, IMAGE_A), release(3, IMAGE_B)] }), { kind: "cut", spec: { version: 4 } });
  const remembered = app({ image: IMAGE_B }, {}, { latestReleaseNumber: 5 });
  t.like(planRelease({ app: remembered, config: config({}), releases: [release(1, IMAGE_A)] }), { kind: "cut", spec: { version: 6 } }, "numbers only grow");
});

test("changed-by names the requester only while its writer made the latest change; a later writer is credited itself", (t) => {
  const entry = (manager: string, time: string, fields: Record<string, unknown>) => ({ manager, operation: "Update", time, fieldsV1: fields });
  const annotated = { "f:metadata": { "f:annotations": { "f:slipway.dev/changed-by": {} } }, "f:data": { "f:TOKEN": {} } };
  const meta = {
    name: "shop-env", annotations: { "slipway.dev/changed-by": "alice" },
    managedFields: [entry("kubectl-slipway", "2026-01-01T10:00:00Z", annotated)],
  };
  t.is(requestedBy(meta, ["f:data"]), "alice");
  const patchedLater = { ...meta, managedFields: [...meta.managedFields, entry("kubectl-patch", "2026-01-01T10:05:00Z", { "f:data": { "f:TOKEN": {} } })] };
  t.is(requestedBy(patchedLater, ["f:data"]), "kubectl-patch");
  t.is(requestedBy({ name: "x", annotations: { "slipway.dev/changed-by": "alice" } }), "alice", "without managedFields the annotation is taken");
});

test("a change applied from Git is credited to its commit's author, and a revert of a release commit says so", (t) => {
  const gitops = (fields: Record<string, unknown>) => ({ manager: "slipway-gitops", operation: "Apply", time: "2026-01-01T10:00:00Z", fieldsV1: fields });
  const annotations = (revertOf?: string) => ({
    "slipway.dev/changed-by": "alice@example.com", "slipway.dev/git-commit": "2c0d82e", ...(revertOf ? { "slipway.dev/git-revert-of": revertOf } : {}),
  });
  const owned = { "f:metadata": { "f:annotations": { "f:slipway.dev/changed-by": {}, "f:slipway.dev/git-commit": {} } }, "f:spec": { "f:env": {} } };
  const releases = [release(1, IMAGE_A, { env: { FOO: "1" } }), release(2, IMAGE_A, { env: { FOO: "2" } })];
  const plan = (cfg: Config) => planRelease({ app: app({ image: IMAGE_A }), config: cfg, releases });
  const edit = plan(config({ env: { FOO: "3" } }, { annotations: annotations(), managedFields: [gitops(owned)] }));
  t.like(edit, { kind: "cut", spec: { cause: "set FOO (git 2c0d82e by alice@example.com)", requestedBy: "alice@example.com" } });
  const revert = plan(config({ env: { FOO: "1" } }, { annotations: annotations("v2"), managedFields: [gitops(owned)] }));
  t.like(revert, { kind: "cut", spec: { cause: "revert of v2 (git 2c0d82e by alice@example.com)", requestedBy: "alice@example.com" } });
  // bob's later kubectl apply leaves the annotations in place: his change is not Git's, nor alice's.
  const later = plan(config({ env: { FOO: "4" } }, {
    annotations: annotations(), managedFields: [gitops(owned), { manager: "kubectl", operation: "Apply", time: "2026-01-01T10:09:00Z", fieldsV1: { "f:spec": { "f:env": {} } } }],
  }));
  t.like(later, { kind: "cut", spec: { cause: "set FOO", requestedBy: "kubectl" } });
});
