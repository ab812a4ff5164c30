import test from "ava";
import type { App } from "../crds/v1alpha1.js";
import { buildPipelineRun } from "./builds/pipelinerun.js";
import { buildInput } from "./builds/previews.js";
import { pipelineFromEnv, platformFromEnv, webhookSecretsFromEnv } from "./platform.js";

test("previews are limited to 500m CPU and 512Mi memory unless the environment says otherwise", (t) => {
  t.deepEqual(platformFromEnv({}).previewLimits, { cpu: "500m", memory: "512Mi" });
  t.deepEqual(platformFromEnv({ SLIPWAY_PREVIEW_CPU_LIMIT: "1", SLIPWAY_PREVIEW_MEMORY_LIMIT: "1Gi" }).previewLimits, { cpu: "1", memory: "1Gi" });
});

test("a preview limit that is not a positive quantity is refused, naming the variable", (t) => {
  t.throws(() => platformFromEnv({ SLIPWAY_PREVIEW_MEMORY_LIMIT: "lots" }), { message: 'SLIPWAY_PREVIEW_MEMORY_LIMIT must be a positive quantity such as 500m or 512Mi, not "lots"' });
  t.throws(() => platformFromEnv({ SLIPWAY_PREVIEW_CPU_LIMIT: "0" }), { message: /^SLIPWAY_PREVIEW_CPU_LIMIT must be a positive quantity/ });
});

test("builds run as the ServiceAccounts the environment names, and forks never as the other builds' one", (t) => {
  t.deepEqual(pipelineFromEnv({}), {});
  t.deepEqual(pipelineFromEnv({ SLIPWAY_BUILD_SERVICE_ACCOUNT: "builder", SLIPWAY_FORK_BUILD_SERVICE_ACCOUNT: "forks" }), { serviceAccountName: "builder", forkServiceAccountName: "forks" });
  t.throws(() => pipelineFromEnv({ SLIPWAY_BUILD_SERVICE_ACCOUNT: "builder", SLIPWAY_FORK_BUILD_SERVICE_ACCOUNT: "builder" }), { message: /must differ from SLIPWAY_BUILD_SERVICE_ACCOUNT/ });
  t.throws(() => pipelineFromEnv({ SLIPWAY_BUILD_SERVICE_ACCOUNT: "slipway-fork-build" }), { message: /must differ/ }, "the default fork ServiceAccount counts too");
});

test("the config repository's webhook secret and the source fallback are separate settings, both optional", (t) => {
  t.deepEqual(webhookSecretsFromEnv({ SLIPWAY_CONFIG_WEBHOOK_SECRET: "config-only" }), { config: "config-only", sourceFallback: undefined });
  t.deepEqual(webhookSecretsFromEnv({ SLIPWAY_CONFIG_WEBHOOK_SECRET: "c", SLIPWAY_SOURCE_WEBHOOK_SECRET: "s" }), { config: "c", sourceFallback: "s" });
  t.deepEqual(webhookSecretsFromEnv({}), { config: undefined, sourceFallback: undefined });
});

test("the one platform-wide secret of old is refused at start, naming what replaces it", (t) => {
  const err = t.throws(() => webhookSecretsFromEnv({ SLIPWAY_WEBHOOK_SECRET: "everyone-knows-it" }));
  t.regex(err?.message ?? "", /SLIPWAY_WEBHOOK_SECRET is no longer read: set SLIPWAY_CONFIG_WEBHOOK_SECRET .* spec\.source\.webhookSecret .* SLIPWAY_SOURCE_WEBHOOK_SECRET/);
  t.notRegex(err?.message ?? "", /everyone-knows-it/, "the value is not in the message");
});

test("the placement comes from SLIPWAY_NODE_SELECTOR and SLIPWAY_TOLERATIONS, written as kubectl writes labels and taints", (t) => {
  t.is(platformFromEnv({}).placement, undefined, "no placement by default");
  t.deepEqual(platformFromEnv({
    SLIPWAY_NODE_SELECTOR: "slipway.dev/node-kind=real, disk=ssd",
    SLIPWAY_TOLERATIONS: "slipway.dev/real-node=true:NoSchedule,spot:NoExecute,gpu",
  }).placement, {
    nodeSelector: { "slipway.dev/node-kind": "real", disk: "ssd" },
    tolerations: [
      { key: "slipway.dev/real-node", operator: "Equal", value: "true", effect: "NoSchedule" },
      { key: "spot", operator: "Exists", effect: "NoExecute" },
      { key: "gpu", operator: "Exists" },
    ],
  });
  t.deepEqual(platformFromEnv({ SLIPWAY_TOLERATIONS: "dedicated=apps" }).placement, { tolerations: [{ key: "dedicated", operator: "Equal", value: "apps" }] });
});

test("a placement that is not labels and taints is refused at start, naming the variable and the entry", (t) => {
  t.throws(() => platformFromEnv({ SLIPWAY_NODE_SELECTOR: "real" }), { message: 'SLIPWAY_NODE_SELECTOR must be key=value pairs separated by commas, not "real" in "real"' });
  t.throws(() => platformFromEnv({ SLIPWAY_NODE_SELECTOR: "a=b c" }), { message: 'SLIPWAY_NODE_SELECTOR / SLIPWAY_TOLERATIONS: placement nodeSelector value "b c" of "a" is not a label value' });
  t.throws(() => platformFromEnv({ SLIPWAY_TOLERATIONS: "x=y:Sometimes" }), { message: /placement toleration 1: effect must be one of NoSchedule, PreferNoSchedule, NoExecute, not "Sometimes"/ });
  t.throws(() => platformFromEnv({ SLIPWAY_TOLERATIONS: "=y:NoSchedule" }), { message: /^SLIPWAY_TOLERATIONS entries are key=value:Effect/ });
});

const SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f80912a3b4c5";
const shop = (source: NonNullable<App["spec"]["source"]>, metadata: Partial<App["metadata"]> = {}): App => ({
  apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "shop", namespace: "team-a", uid: "uid-1", ...metadata }, spec: { source },
});
const POD_TEMPLATE = {
  nodeSelector: { "slipway.dev/pool": "builds" },
  tolerations: [{ key: "slipway.dev/pool", operator: "Equal", value: "builds", effect: "NoSchedule" }],
  securityContext: { runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 },
  priorityClassName: "builds",
  dnsPolicy: "ClusterFirst",
  hostNetwork: false,
  imagePullSecrets: [{ name: "builder-pull" }],
};

test("the build registry, the default builder and the build pod template from the environment reach the PipelineRun", (t) => {
  const settings = pipelineFromEnv({
    SLIPWAY_BUILD_SERVICE_ACCOUNT: "builder",
    SLIPWAY_BUILD_REGISTRY: "registry.example.com:5000/builds/",
    SLIPWAY_BUILDER_IMAGE: "paketobuildpacks/builder-jammy-full:0.3.400",
    SLIPWAY_BUILD_POD_TEMPLATE: JSON.stringify(POD_TEMPLATE),
  });
  const run = buildPipelineRun(shop({ git: "https://g/x.git" }), SHA, settings);
  t.deepEqual(run.spec.params.slice(0, 2), [
    { name: "APP_IMAGE", value: "registry.example.com:5000/builds/team-a/shop:1a2b3c4" },
    { name: "BUILDER_IMAGE", value: "paketobuildpacks/builder-jammy-full:0.3.400" },
  ]);
  t.deepEqual(run.spec.taskRunTemplate, { serviceAccountName: "builder", podTemplate: POD_TEMPLATE });
  t.is(buildPipelineRun(shop({ git: "https://g/x.git", builder: "heroku/builder:24" }), SHA, settings).spec.params[1]?.value, "heroku/builder:24",
    "an App's own builder wins");
  const fork = shop({ git: "https://g/mallory.git" }, { name: "shop-pr-7", labels: { "slipway.dev/preview": "shop" }, annotations: { "slipway.dev/preview-fork": "true" } });
  const input = buildInput(fork, settings);
  t.deepEqual(buildPipelineRun(input.app, SHA, input.settings).spec.taskRunTemplate, { serviceAccountName: "slipway-fork-build", podTemplate: POD_TEMPLATE },
    "a fork's build keeps the pod template and runs as the fork ServiceAccount");
});

test("registries and builder images are accepted in the forms image references take", (t) => {
  for (const registry of ["localhost:5000", "registry.slipway.local", "10.0.0.7:5000/x", "ghcr.io/acme", "eu.gcr.io/acme/builds_v2", "Registry.Example.com/a/b"]) {
    t.is(pipelineFromEnv({ SLIPWAY_BUILD_REGISTRY: registry }).registry, registry);
  }
  t.is(pipelineFromEnv({ SLIPWAY_BUILD_REGISTRY: "ghcr.io/acme//" }).registry, "ghcr.io/acme", "trailing slashes are dropped, as appImage does");
  for (const builder of ["heroku/builder:24", "builder", "gcr.io/buildpacks/builder:v1", `registry.internal:5000/cnb/builder:1.2@sha256:${"a".repeat(64)}`, `builder@sha256:${"b".repeat(64)}`]) {
    t.is(pipelineFromEnv({ SLIPWAY_BUILDER_IMAGE: builder }).builderImage, builder);
  }
});

test("a registry or builder image that is not one is refused at start, naming the variable and the value", (t) => {
  t.throws(() => pipelineFromEnv({ SLIPWAY_BUILD_REGISTRY: "https://registry.example.com" }),
    { message: 'SLIPWAY_BUILD_REGISTRY must be a registry host[:port] with an optional /path, such as registry.example.com:5000/builds, not "https://registry.example.com"' });
  for (const registry of ["registry example.com", "registry.example.com/Builds", "registry.example.com//x", "registry.example.com:port", "/", "registry.example.com/x:tag"]) {
    t.throws(() => pipelineFromEnv({ SLIPWAY_BUILD_REGISTRY: registry }), { message: `SLIPWAY_BUILD_REGISTRY must be a registry host[:port] with an optional /path, such as registry.example.com:5000/builds, not ${JSON.stringify(registry)}` }, registry);
  }
  t.throws(() => pipelineFromEnv({ SLIPWAY_BUILD_REGISTRY: "acme/builds" }),
    { message: 'SLIPWAY_BUILD_REGISTRY must start with a registry host that has a dot or a port (or is localhost), not "acme/builds": image tools read "acme/builds/<namespace>/<app>" as a Docker Hub repository' });
  t.throws(() => pipelineFromEnv({ SLIPWAY_BUILDER_IMAGE: "docker://paketobuildpacks/builder" }),
    { message: 'SLIPWAY_BUILDER_IMAGE must be an image reference such as paketobuildpacks/builder-jammy-base:latest, not "docker://paketobuildpacks/builder"' });
  for (const builder of ["paketo builder", "Paketo/Builder:latest", "builder:", "builder@sha256:short", " builder", "builder:latest\n"]) {
    t.throws(() => pipelineFromEnv({ SLIPWAY_BUILDER_IMAGE: builder }), { message: `SLIPWAY_BUILDER_IMAGE must be an image reference such as paketobuildpacks/builder-jammy-base:latest, not ${JSON.stringify(builder)}` }, builder);
  }
});

test("a build pod template that is not a JSON object of Tekton PodTemplate fields is refused at start, saying what is wrong", (t) => {
  const refused = (value: string) => t.throws(() => pipelineFromEnv({ SLIPWAY_BUILD_POD_TEMPLATE: value }))?.message;
  t.regex(refused("{nodeSelector: {}}") ?? "", /^SLIPWAY_BUILD_POD_TEMPLATE must be a JSON object \(a Tekton PodTemplate\), but it is not JSON: /);
  t.is(refused("[]"), "SLIPWAY_BUILD_POD_TEMPLATE must be a JSON object (a Tekton PodTemplate), not an array");
  t.is(refused("null"), "SLIPWAY_BUILD_POD_TEMPLATE must be a JSON object (a Tekton PodTemplate), not null");
  t.is(refused('"nodeSelector"'), 'SLIPWAY_BUILD_POD_TEMPLATE must be a JSON object (a Tekton PodTemplate), not the string "nodeSelector"');
  t.is(refused(JSON.stringify({ nodeSelector: {}, containers: [], serviceAccountName: "root" })),
    'SLIPWAY_BUILD_POD_TEMPLATE: "containers" is not a Tekton PodTemplate field (those are nodeSelector, env, tolerations, affinity, securityContext, volumes, ' +
    'runtimeClassName, automountServiceAccountToken, dnsPolicy, dnsConfig, enableServiceLinks, priorityClassName, schedulerName, imagePullSecrets, hostAliases, ' +
    'hostNetwork, topologySpreadConstraints); "serviceAccountName" is not a Tekton PodTemplate field (those are nodeSelector, env, tolerations, affinity, ' +
    'securityContext, volumes, runtimeClassName, automountServiceAccountToken, dnsPolicy, dnsConfig, enableServiceLinks, priorityClassName, schedulerName, ' +
    'imagePullSecrets, hostAliases, hostNetwork, topologySpreadConstraints)');
  t.is(refused(JSON.stringify({ nodeSelector: { pool: 1 } })), "SLIPWAY_BUILD_POD_TEMPLATE: nodeSelector must be an object of strings, not an object");
  t.is(refused(JSON.stringify({ tolerations: { key: "x" } })), "SLIPWAY_BUILD_POD_TEMPLATE: tolerations must be a list of objects, not an object");
  t.is(refused(JSON.stringify({ env: [{ value: "x" }], hostNetwork: "true" })),
    'SLIPWAY_BUILD_POD_TEMPLATE: env must be a list of objects with a name each, not an array; hostNetwork must be true or false, not the string "true"');
  t.is(refused(JSON.stringify({ dnsPolicy: "Sometimes" })), 'SLIPWAY_BUILD_POD_TEMPLATE: dnsPolicy must be one of ClusterFirst, ClusterFirstWithHostNet, Default, None, not the string "Sometimes"');
  t.is(refused(JSON.stringify({ securityContext: null, runtimeClassName: 7 })),
    "SLIPWAY_BUILD_POD_TEMPLATE: securityContext must be an object, not null; runtimeClassName must be a non-empty string, not the number 7");
  t.deepEqual(pipelineFromEnv({ SLIPWAY_BUILD_POD_TEMPLATE: "{}" }), { podTemplate: {} }, "an empty template is a template");
  t.deepEqual(pipelineFromEnv({ SLIPWAY_BUILD_POD_TEMPLATE: "" }), {}, "empty is unset");
});
