import test from "ava";
import { canonical, cleanObject, pathMismatch, pathOf, renderObject, SecretRefusedError, type StoredObject } from "./layout.js";
import { decide, UNKNOWN } from "./merge.js";
import { changedPaths, commitMessage } from "./messages.js";

const A = "A";
const B = "B";
const C = "C";

test("a cluster change on an object Git did not touch is committed", (t) => {
  t.deepEqual(decide({ cluster: B, git: A, base: A, deletedInCluster: false }), { action: "commit" });
});

test("a Git change on an object the cluster did not touch is applied", (t) => {
  t.deepEqual(decide({ cluster: A, git: B, base: A, deletedInCluster: false }), { action: "apply" });
});

test("changes on both sides are a conflict that Git wins", (t) => {
  t.deepEqual(decide({ cluster: B, git: C, base: A, deletedInCluster: false }), { action: "conflict" });
});

test("a new object in the cluster is committed", (t) => {
  t.deepEqual(decide({ cluster: A, git: undefined, base: UNKNOWN, deletedInCluster: false }), { action: "commit" });
});

test("an object removed from Git and unchanged in the cluster is deleted", (t) => {
  t.deepEqual(decide({ cluster: A, git: undefined, base: A, deletedInCluster: false }), { action: "delete" });
});

test("an object deleted with kubectl is removed from Git", (t) => {
  t.deepEqual(decide({ cluster: undefined, git: A, base: A, deletedInCluster: true }), { action: "commit" });
});

test("a file in Git without an object in the cluster is applied", (t) => {
  t.deepEqual(decide({ cluster: undefined, git: A, base: UNKNOWN, deletedInCluster: false }), { action: "apply" });
});

test("equal sides need nothing but a status record when the base is stale", (t) => {
  t.deepEqual(decide({ cluster: A, git: A, base: B, deletedInCluster: false }), { action: "none", record: true });
  t.deepEqual(decide({ cluster: A, git: A, base: A, deletedInCluster: false }), { action: "none", record: false });
});

const live = {
  apiVersion: "slipway.dev/v1alpha1",
  kind: "Config",
  metadata: {
    name: "web",
    namespace: "team-a",
    uid: "1234",
    resourceVersion: "77",
    generation: 3,
    creationTimestamp: "2025-01-01T00:00:00Z",
    managedFields: [{ manager: "kubectl" }],
    ownerReferences: [{ apiVersion: "slipway.dev/v1alpha1", kind: "App", name: "web", uid: "1" }],
    annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}", "slipway.dev/changed-by": "alice" },
  },
  spec: { env: { B: "2", A: "1" }, secretEnv: { TOKEN: { secretName: "web", key: "token" } } },
  status: { commit: "abc", observedGeneration: 3 },
} as StoredObject;

test("objects are written without status, server bookkeeping or who changed them, keys sorted", (t) => {
  t.is(
    renderObject(live),
    [
      "apiVersion: slipway.dev/v1alpha1",
      "kind: Config",
      "metadata:",
      "  name: web",
      "  namespace: team-a",
      "spec:",
      "  env:",
      '    A: "1"',
      '    B: "2"',
      "  secretEnv:",
      "    TOKEN:",
      "      key: token",
      "      secretName: web",
      "",
    ].join("\n"),
  );
});

test("user-written YAML with another key order compares equal to the rendered object", (t) => {
  const text = "# edited by hand\nkind: Config\napiVersion: slipway.dev/v1alpha1\nspec:\n  env: {A: '1', B: '2'}\n  secretEnv: {TOKEN: {key: token, secretName: web}}\nmetadata: {namespace: team-a, name: web, annotations: {slipway.dev/changed-by: alice}}\n";
  t.is(canonical(text), renderObject(live));
});

test("a v1 Secret is refused", (t) => {
  t.throws(() => cleanObject({ apiVersion: "v1", kind: "Secret", metadata: { name: "web" } }), { instanceOf: SecretRefusedError });
});

test("releases are laid out under their App by version", (t) => {
  t.is(
    pathOf({ apiVersion: "slipway.dev/v1alpha1", kind: "Release", metadata: { name: "web-v7", namespace: "team-a" }, spec: { app: "web", version: 7 } }),
    "apps/team-a/web/releases/v7.yaml",
  );
});

test("changed paths name the leaves that differ", (t) => {
  t.deepEqual(changedPaths({ spec: { image: "a", processes: { web: { replicas: 1 } } } }, { spec: { image: "b", processes: { web: { replicas: 1 } } } }), [
    "spec.image",
  ]);
});

test("a release commit message names the release, its cause, who asked, and the Config change", (t) => {
  const before = cleanObject({ ...live, spec: { env: { A: "1" } } });
  const after = cleanObject(live);
  const rel = cleanObject({
    apiVersion: "slipway.dev/v1alpha1",
    kind: "Release",
    metadata: { name: "web-v4", namespace: "team-a" },
    spec: { app: "web", version: 4, cause: "set B, TOKEN (secret)", requestedBy: "alice", build: { image: "i" }, config: {} },
  });
  const message = commitMessage("team-a", "web", [
    { kind: "Config", path: "apps/team-a/web/config.yaml", before, after, meta: live.metadata },
    { kind: "Release", path: "apps/team-a/web/releases/v4.yaml", before: undefined, after: rel, meta: rel.metadata },
  ]);
  t.is(message.split("\n")[0], "team-a/web: release v4: set B, TOKEN (secret) (by alice)");
  t.regex(message, /^Config: update Config \(set B, TOKEN \(secret\)\)$/m);
  t.regex(message, /^A apps\/team-a\/web\/releases\/v4\.yaml$/m);
  t.regex(message, /^M apps\/team-a\/web\/config\.yaml$/m);
});

test("a change without a release says what changed and names the field manager when no one is annotated", (t) => {
  const meta = { name: "web", namespace: "team-a", managedFields: [{ manager: "kubectl-edit", operation: "Update", time: "2025-01-01T00:00:00Z", fieldsV1: { "f:spec": {} } }] };
  const before = cleanObject({ apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "web", namespace: "team-a" }, spec: { processes: { web: { replicas: 1 } } } });
  const after = cleanObject({ ...before, spec: { processes: { web: { replicas: 3 } } } });
  const message = commitMessage("team-a", "web", [{ kind: "App", path: "apps/team-a/web/app.yaml", before, after, meta }]);
  t.is(message.split("\n")[0], "team-a/web: update App (spec.processes.web.replicas) (by kubectl-edit)");
});

test("Argo CD and Flux tracking metadata is not written to Git", (t) => {
  const tracked = cleanObject({
    ...live,
    metadata: {
      ...live.metadata,
      labels: { "kustomize.toolkit.fluxcd.io/name": "apps", team: "a" },
      annotations: { "argocd.argoproj.io/tracking-id": "slipway:slipway.dev/Config:team-a/web" },
    },
  });
  t.deepEqual(tracked.metadata.labels, { team: "a" });
  t.is(tracked.metadata.annotations, undefined);
});

test("a Release keeps its Flux prune policy in Git; Slipway's Flux hold is never written, on any kind", (t) => {
  const release = cleanObject({
    apiVersion: "slipway.dev/v1alpha1",
    kind: "Release",
    metadata: {
      name: "web-v2", namespace: "team-a",
      annotations: { "kustomize.toolkit.fluxcd.io/prune": "disabled", "kustomize.toolkit.fluxcd.io/reconcile": "disabled", "slipway.dev/flux-hold": "2026-01-01T00:00:00Z" },
    },
    spec: { app: "web", version: 2 },
  });
  t.deepEqual(release.metadata.annotations, { "kustomize.toolkit.fluxcd.io/prune": "disabled" });
  const held = cleanObject({
    ...live,
    metadata: { ...live.metadata, annotations: { "kustomize.toolkit.fluxcd.io/prune": "disabled", "kustomize.toolkit.fluxcd.io/reconcile": "disabled", "slipway.dev/flux-hold": "2026-01-01T00:00:00Z" } },
  });
  t.is(held.metadata.annotations, undefined);
});

test("a file applies only to the namespace and App its path names", (t) => {
  const V = "slipway.dev/v1alpha1";
  const app = (namespace: string | undefined, name: string): StoredObject => ({ apiVersion: V, kind: "App", metadata: { name, ...(namespace ? { namespace } : {}) }, spec: {} });
  const release = (name: string, spec: object): StoredObject => ({ apiVersion: V, kind: "Release", metadata: { name, namespace: "team-a" }, spec });
  t.is(pathMismatch("apps/team-a/web/app.yaml", app("team-a", "web")), undefined);
  t.is(pathMismatch("apps/team-a/web/app.yaml", app("team-b", "web")),
    "apps/team-a/web/app.yaml holds App team-b/web, but a file under apps/team-a/web/ may only hold objects of namespace team-a; it is not applied");
  t.regex(pathMismatch("apps/team-a/web/app.yaml", app(undefined, "web")) ?? "", /holds App \(no namespace\)\/web/);
  t.is(pathMismatch("apps/team-a/web/app.yaml", app("team-a", "api")),
    "apps/team-a/web/app.yaml holds App team-a/api, but a file under apps/team-a/web/ may only hold the App named web; it is not applied");
  t.regex(pathMismatch("apps/team-a/web/config.yaml", app("team-a", "web")) ?? "", /may only hold a Config/);
  t.is(pathMismatch("apps/team-a/web/releases/v2.yaml", release("web-v2", { app: "web", version: 2 })), undefined);
  t.regex(pathMismatch("apps/team-a/web/releases/v2.yaml", release("api-v2", { app: "api", version: 2 })) ?? "", /may only hold Release web-v2/);
  t.regex(pathMismatch("apps/team-a/web/releases/v2.yaml", release("web-v2", { app: "web", version: 3 })) ?? "", /spec.version 2/);
});
