import test from "ava";
import type { App } from "../../crds/v1alpha1.js";
import { buildOutcome, buildPipelineRun, failedTasks, fitName, imageRepository, pipelineRunName, type PipelineRun, type PodTemplate } from "./pipelinerun.js";
import { buildInput } from "./previews.js";

const SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f80912a3b4c5";
const DIGEST = `sha256:${"e".repeat(64)}`;

function app(source: App["spec"]["source"]): App {
  return {
    apiVersion: "slipway.dev/v1alpha1",
    kind: "App",
    metadata: { name: "shop", namespace: "team-a", uid: "uid-1" },
    spec: { source },
  };
}

test("a buildpacks PipelineRun is named <app>-build-<short sha> and passes exactly the slipway-buildpacks params", (t) => {
  const run = buildPipelineRun(app({ git: "https://git.example.com/acme/shop.git", path: "services/shop" }), SHA);
  t.is(run.apiVersion, "tekton.dev/v1");
  t.is(run.kind, "PipelineRun");
  t.is(run.metadata.name, "shop-build-1a2b3c4");
  t.is(run.metadata.namespace, "team-a");
  t.deepEqual(run.spec.pipelineRef, { name: "slipway-buildpacks" });
  t.deepEqual(run.spec.params, [
    { name: "APP_IMAGE", value: "registry.slipway.local/team-a/shop:1a2b3c4" },
    { name: "BUILDER_IMAGE", value: "paketobuildpacks/builder-jammy-base:latest" },
    { name: "SOURCE_SUBPATH", value: "services/shop" },
    { name: "git-url", value: "https://git.example.com/acme/shop.git" },
    { name: "git-revision", value: SHA },
  ]);
  t.deepEqual(run.spec.timeouts, { pipeline: "1h" });
});

test("a PipelineRun is labelled with the App and the full commit and owned by the App", (t) => {
  const run = buildPipelineRun(app({ git: "https://git.example.com/acme/shop.git" }), SHA);
  t.like(run.metadata.labels, { "slipway.dev/app": "shop", "slipway.dev/commit": SHA, "app.kubernetes.io/managed-by": "slipway" });
  t.deepEqual(run.metadata.ownerReferences, [
    { apiVersion: "slipway.dev/v1alpha1", kind: "App", name: "shop", uid: "uid-1", controller: true, blockOwnerDeletion: true },
  ]);
});

test("a PipelineRun binds one workspace, the App's build PVC, as Tekton's affinity assistant requires", (t) => {
  const run = buildPipelineRun(app({ git: "https://git.example.com/acme/shop.git" }), SHA);
  t.deepEqual(run.spec.workspaces, [{ name: "build", persistentVolumeClaim: { claimName: "shop-build-cache" } }]);
});

test("source credentials are given to the clone as the basic-auth workspace", (t) => {
  const run = buildPipelineRun(app({ git: "https://git.example.com/acme/shop.git", credentialsSecret: "shop-git" }), SHA);
  t.deepEqual(run.spec.workspaces.at(-1), { name: "basic-auth", secret: { secretName: "shop-git" } });
});

test("the App's builder, the platform's registry, pipeline names and service account are used when set", (t) => {
  const run = buildPipelineRun(app({ git: "https://g/x.git", builder: "heroku/builder:24" }), SHA, {
    registry: "registry.internal:5000/", buildpacksPipeline: "my-cnb", serviceAccountName: "builder", timeout: "20m",
  });
  t.deepEqual(run.spec.pipelineRef, { name: "my-cnb" });
  t.like(run.spec.params, [{ value: "registry.internal:5000/team-a/shop:1a2b3c4" }, { value: "heroku/builder:24" }]);
  t.deepEqual(run.spec.taskRunTemplate, { serviceAccountName: "builder" });
  t.deepEqual(run.spec.timeouts, { pipeline: "20m" });
});

test("a Dockerfile App is built by slipway-dockerfile with the Dockerfile and context at its path", (t) => {
  const run = buildPipelineRun(app({ git: "https://g/x.git", path: "api", strategy: "dockerfile" }), SHA);
  t.deepEqual(run.spec.pipelineRef, { name: "slipway-dockerfile" });
  t.deepEqual(run.spec.params, [
    { name: "APP_IMAGE", value: "registry.slipway.local/team-a/shop:1a2b3c4" },
    { name: "DOCKERFILE", value: "./api/Dockerfile" },
    { name: "CONTEXT", value: "./api" },
    { name: "git-url", value: "https://g/x.git" },
    { name: "git-revision", value: SHA },
  ]);
});

test("the same App and commit always give the same PipelineRun", (t) => {
  const a = app({ git: "https://g/x.git" });
  t.deepEqual(buildPipelineRun(a, SHA), buildPipelineRun(a, SHA));
  t.is(pipelineRunName("a-forty-character-app-name-xxxxxxxxxxxxx", SHA).length <= 63, true);
});

test("an App without source cannot be built, and says so", (t) => {
  t.throws(() => buildPipelineRun(app(undefined), SHA), { message: "App shop has no spec.source to build" });
});

function finished(status: "True" | "False" | "Unknown", reason: string, results?: { name: string; value: string }[]): PipelineRun {
  const run = buildPipelineRun(app({ git: "https://g/x.git" }), SHA);
  run.status = { conditions: [{ type: "Succeeded", status, reason, message: "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0" }], results };
  return run;
}

test("a succeeded PipelineRun yields the image url pinned by the APP_IMAGE_DIGEST result", (t) => {
  const run = finished("True", "Succeeded", [
    { name: "APP_IMAGE_DIGEST", value: DIGEST },
    { name: "APP_IMAGE_URL", value: "registry.slipway.local/team-a/shop:1a2b3c4" },
  ]);
  t.deepEqual(buildOutcome(run), { phase: "Succeeded", image: `registry.slipway.local/team-a/shop@${DIGEST}` });
});

test("without APP_IMAGE_URL the APP_IMAGE param names the repository", (t) => {
  t.deepEqual(buildOutcome(finished("True", "Succeeded", [{ name: "APP_IMAGE_DIGEST", value: `${DIGEST}\n` }])),
    { phase: "Succeeded", image: `registry.slipway.local/team-a/shop@${DIGEST}` });
});

test("a succeeded PipelineRun without a digest is a failed build", (t) => {
  t.like(buildOutcome(finished("True", "Succeeded", [])), { phase: "Failed", reason: "NoImageDigest" });
  t.like(buildOutcome(finished("True", "Succeeded", [{ name: "APP_IMAGE_DIGEST", value: "latest" }])), { phase: "Failed", reason: "NoImageDigest" });
});

test("a PipelineRun without a Succeeded condition, or with it Unknown, is running", (t) => {
  t.deepEqual(buildOutcome(buildPipelineRun(app({ git: "https://g/x.git" }), SHA)), { phase: "Running" });
  t.deepEqual(buildOutcome(finished("Unknown", "Running")), { phase: "Running" });
});

test("failed, timed-out and cancelled PipelineRuns are failures with Tekton's reason", (t) => {
  t.like(buildOutcome(finished("False", "Failed")), { phase: "Failed", reason: "Failed" });
  t.like(buildOutcome(finished("False", "PipelineRunTimeout")), { phase: "Failed", reason: "PipelineRunTimeout" });
  t.like(buildOutcome(finished("False", "Cancelled")), { phase: "Failed", reason: "Cancelled" });
});

test("an image's repository drops its tag and digest but keeps a registry port", (t) => {
  t.is(imageRepository("registry:5000/a/b:tag"), "registry:5000/a/b");
  t.is(imageRepository(`registry:5000/a/b@${DIGEST}`), "registry:5000/a/b");
  t.is(imageRepository("registry:5000/a/b"), "registry:5000/a/b");
});

test("a long name is cut to fit with a stable hash suffix", (t) => {
  t.is(fitName("short", 10), "short");
  const cut = fitName("a-very-long-application-name", 20);
  t.is(cut.length, 20);
  t.is(cut, fitName("a-very-long-application-name", 20));
  t.not(cut, fitName("a-very-long-application-nama", 20));
});

test("a failed build names its failed TaskRuns with Tekton's message (the step), and not the ones cancelled or succeeded", (t) => {
  const taskRun = (name: string, task: string, status: string, reason: string, message: string) => ({
    metadata: { name, labels: { "tekton.dev/pipelineTask": task } },
    status: { conditions: [{ type: "Succeeded", status, reason, message }] },
  });
  t.is(failedTasks([
    taskRun("shop-build-1a2b3c4-clone", "clone", "True", "Succeeded", "All Steps have completed executing"),
    taskRun("shop-build-1a2b3c4-build", "build", "False", "Failed", '"step-create" exited with code 1: Error'),
    taskRun("shop-build-1a2b3c4-lint", "lint", "False", "TaskRunCancelled", "TaskRun was cancelled"),
  ]), 'task build (TaskRun shop-build-1a2b3c4-build) Failed: "step-create" exited with code 1: Error');
  t.is(failedTasks([]), undefined, "a run that timed out before any task failed has nothing to add");
});

test("a source URL with credentials in it reaches the PipelineRun's params without them", (t) => {
  for (const strategy of ["buildpacks", "dockerfile"] as const) {
    const run = buildPipelineRun(app({ git: "https://deploy:hunter2@git.example.com/acme/shop.git", strategy, credentialsSecret: "shop-git" }), SHA);
    t.false(JSON.stringify(run).includes("hunter2"), strategy);
    t.is(run.spec.params.find((p) => p.name === "git-url")?.value, "https://git.example.com/acme/shop.git");
  }
});

const POD_TEMPLATE: PodTemplate = {
  nodeSelector: { "slipway.dev/pool": "builds" },
  tolerations: [{ key: "slipway.dev/pool", operator: "Equal", value: "builds", effect: "NoSchedule" }],
  securityContext: { runAsNonRoot: true, fsGroup: 1000 },
};

test("the platform's pod template is the PipelineRun's spec.taskRunTemplate.podTemplate, beside its ServiceAccount", (t) => {
  const a = app({ git: "https://g/x.git" });
  t.deepEqual(buildPipelineRun(a, SHA, { serviceAccountName: "builder", podTemplate: POD_TEMPLATE }).spec.taskRunTemplate,
    { serviceAccountName: "builder", podTemplate: POD_TEMPLATE });
  t.deepEqual(buildPipelineRun(a, SHA, { podTemplate: POD_TEMPLATE }).spec.taskRunTemplate, { podTemplate: POD_TEMPLATE }, "without a ServiceAccount");
  t.is(buildPipelineRun(a, SHA).spec.taskRunTemplate, undefined, "neither: no taskRunTemplate");
  const settings = { podTemplate: structuredClone(POD_TEMPLATE) };
  buildPipelineRun(a, SHA, settings).spec.taskRunTemplate?.podTemplate?.tolerations?.push({ key: "x", operator: "Exists" });
  t.deepEqual(settings.podTemplate, POD_TEMPLATE, "each PipelineRun has its own copy");
});

test("a fork preview's PipelineRun keeps the platform's pod template and runs as the fork ServiceAccount", (t) => {
  const fork: App = {
    ...app({ git: "https://git.example.com/mallory/shop.git", credentialsSecret: "shop-git" }),
    metadata: {
      name: "shop-pr-7", namespace: "team-a", uid: "uid-7",
      labels: { "slipway.dev/preview": "shop" }, annotations: { "slipway.dev/preview-fork": "true" },
    },
  };
  const input = buildInput(fork, { serviceAccountName: "builder", forkServiceAccountName: "forks", podTemplate: POD_TEMPLATE });
  const run = buildPipelineRun(input.app, SHA, input.settings);
  t.deepEqual(run.spec.taskRunTemplate, { serviceAccountName: "forks", podTemplate: POD_TEMPLATE });
  t.deepEqual(run.spec.workspaces, [{ name: "build", persistentVolumeClaim: { claimName: "shop-pr-7-build-cache" } }], "and mounts no credentials");
});
