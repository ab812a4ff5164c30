import test from "ava";
import type { App, Release } from "../crds/v1alpha1.js";
import { releasedBuild } from "./app-reconciler.js";

const IMAGE = `registry.example/shop@sha256:${"b".repeat(64)}`;
const COMMIT = "1d797d6".padEnd(40, "0");

function app(release?: string): App {
  return {
    apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "shop", namespace: "team", generation: 2 }, spec: { source: { git: "https://git.example/shop.git" } },
    status: {
      latestBuild: { pipelineRun: "shop-build-1d797d6", commit: COMMIT, phase: "Succeeded", image: IMAGE, ...(release ? { release, message: `released as ${release}` } : {}) },
      conditions: release ? [{ type: "Built", status: "True", reason: "Succeeded", message: `Built commit 1d797d6 in PipelineRun shop-build-1d797d6: ${IMAGE}, released as ${release}`, lastTransitionTime: "2026-01-01T00:00:00Z" }] : [],
    },
  };
}

const v4: Release = {
  apiVersion: "slipway.dev/v1alpha1", kind: "Release", metadata: { name: "shop-v4" },
  spec: { app: "shop", version: 4, cause: "deploy 1d797d6", build: { image: IMAGE, sourceCommit: COMMIT, pipelineRun: "shop-build-1d797d6" }, config: {} },
};

test("the App's status names the release its succeeded build became, in latestBuild and in the Built condition", (t) => {
  t.deepEqual(releasedBuild(app(), [v4]), {
    latestBuild: { pipelineRun: "shop-build-1d797d6", commit: COMMIT, phase: "Succeeded", image: IMAGE, release: "v4", message: "released as v4" },
    condition: { type: "Built", status: "True", reason: "Succeeded", message: `Built commit 1d797d6 in PipelineRun shop-build-1d797d6: ${IMAGE}, released as v4`, observedGeneration: 2 },
  });
});

test("nothing to say about a build no release holds, or one whose release status names already", (t) => {
  t.is(releasedBuild(app(), []), undefined);
  t.is(releasedBuild(app("v4"), [v4]), undefined);
});
