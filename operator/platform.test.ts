import test from "ava";
import { pipelineFromEnv, platformFromEnv } from "./platform.js";

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
