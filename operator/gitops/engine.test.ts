import test from "ava";
import type { App, AppStatus, Release } from "../../crds/v1alpha1.js";
import type { KubeObject } from "../kube.js";
import { releasePending, type ClusterView } from "./engine.js";

const IMAGE = `registry.example/shop@sha256:${"a".repeat(64)}`;

/** The cluster as GitOps reads it: App generation 3, Config generation 5, and the Releases v1..v`cut`. */
function view(status: AppStatus | undefined, cut: number, extra: { suspend?: boolean; noConfig?: boolean } = {}): ClusterView {
  const app = {
    apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "shop", namespace: "team", generation: 3 },
    spec: { image: IMAGE, ...(extra.suspend ? { suspend: true } : {}) }, status,
  } as App;
  const config = { apiVersion: "slipway.dev/v1alpha1", kind: "Config", metadata: { name: "shop", namespace: "team", generation: 5 }, spec: {} };
  const releases = Array.from({ length: cut }, (_, i): Release => ({
    apiVersion: "slipway.dev/v1alpha1", kind: "Release", metadata: { name: `shop-v${i + 1}`, namespace: "team" },
    spec: { app: "shop", version: i + 1, cause: "", build: { image: IMAGE }, config: {} },
  }));
  return {
    app: app as unknown as ClusterView["app"],
    config: extra.noConfig ? undefined : (config as unknown as KubeObject),
    releases: releases as unknown as KubeObject[],
  };
}

const observed: AppStatus = { observedGeneration: 3, observedConfigGeneration: 5, latestReleaseNumber: 2 };

test("a release is pending while the operator has not reconciled the App's or the Config's current generation", (t) => {
  t.true(releasePending(view(undefined, 0)), "no status yet");
  t.true(releasePending(view({ ...observed, observedGeneration: 2 }, 2)), "a new App generation");
  t.true(releasePending(view({ ...observed, observedConfigGeneration: 4 }, 2)), "a new Config generation");
});

test("a release is pending while the status names one the Release cache does not hold yet", (t) => {
  t.true(releasePending(view({ ...observed, pendingRelease: { version: 3, generation: 3, configGeneration: 5 } }, 2)), "being cut");
  t.false(releasePending(view({ ...observed, pendingRelease: { version: 3, generation: 3, configGeneration: 5 } }, 3)), "cut, and cached");
  t.true(releasePending(view({ ...observed, latestReleaseNumber: 3 }, 2)), "cut, its pending mark cleared, not cached yet");
});

test("no release is pending once the operator reconciled the current generations and cut nothing, nor without a Config or while suspended", (t) => {
  t.false(releasePending(view(observed, 2)));
  t.false(releasePending(view(undefined, 0, { noConfig: true })));
  t.false(releasePending(view(undefined, 0, { suspend: true })));
});
