import test from "ava";
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
