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
