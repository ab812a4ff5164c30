import test from "ava";
import { webhookSecretsFromEnv } from "./platform.js";

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
