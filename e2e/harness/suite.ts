// Shared e2e fixtures: the run's control plane and a fresh namespace per test.
// `npm run test:e2e` (harness/run.ts) starts one control plane for the whole run and passes it to every test
// file through the environment; a file run on its own (`npx ava dist/e2e/x.e2e.js`) starts its own, Tekton included.
import test, { type ExecutionContext } from "ava";
import { randomBytes } from "node:crypto";
import { KubeConfig } from "@kubernetes/client-node";
import { ENV_DIR, ENV_KUBECONFIG, kubectlFor, startControlPlane, waitFor, type ControlPlane } from "../../operator/local/controlplane.js";
import { putToolsOnPath } from "../../operator/local/tools.js";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

// Every e2e file runs the built kubectl and kpt (harness/run.ts already put them first on PATH; a file run on
// its own builds or finds them here), before any test runs one.
putToolsOnPath();


let shared: Promise<ControlPlane> | undefined;
let ownsControlPlane = false;

test.after.always("stop the control plane this file started", async () => {
  if (shared && ownsControlPlane) await (await shared).stop();
});

/** The real control plane for this run. */
export function controlPlane(): Promise<ControlPlane> {
  shared ??= connectOrStart();
  return shared;
}

async function connectOrStart(): Promise<ControlPlane> {
  const kubeconfigPath = process.env[ENV_KUBECONFIG];
  const dir = process.env[ENV_DIR];
  if (!kubeconfigPath || !dir) {
    ownsControlPlane = true;
    return startControlPlane({ tekton: true });
  }
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const server = kc.getCurrentCluster()?.server ?? "";
  return {
    kubeconfigPath,
    server,
    dir,
    nodes: ["kwok-node-0"],
    kubeConfig() {
      const k = new KubeConfig();
      k.loadFromFile(kubeconfigPath);
      return k;
    },
    ...kubectlFor(kubeconfigPath),
    async logTail(component, lines = 25) {
      const text = await readFile(join(dir, "logs", `${component}.log`), "utf8").catch(() => "(no log)");
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    },
    // Another process (harness/run.ts) started it: its processes are not this one's children.
    pids: () => ({}),
    // The run's owner (harness/run.ts) stops it.
    stop: async () => undefined,
  };
}

/** Creates a namespace for one test and deletes it when the test ends. */
export async function freshNamespace(t: ExecutionContext): Promise<string> {
  const cp = await controlPlane();
  const name = `e2e-${t.title.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 40).replace(/-+$/, "")}-${randomBytes(3).toString("hex")}`;
  await cp.kubectlOk(["create", "namespace", name], { what: `cannot create namespace ${name}` });
  // Namespace admission needs the default ServiceAccount before pods can be created in it.
  await waitFor(async () => (await cp.kubectl(["get", "serviceaccount", "default", "-n", name])).code === 0, 30_000,
    () => `no default ServiceAccount in ${name}`);
  t.teardown(async () => {
    await cp.kubectl(["delete", "namespace", name, "--wait=false"]);
  });
  return name;
}

/** Installs the Slipway CRDs (idempotent; never removed, other files share them) and waits until they serve. */
export async function installCrds(): Promise<ControlPlane> {
  const cp = await controlPlane();
  await cp.kubectlOk(["apply", "--server-side", "--force-conflicts", "-f", "crds/"], { what: "cannot install CRDs" });
  await cp.kubectlOk(["wait", "--for=condition=Established", "--timeout=60s",
    "crd/apps.slipway.dev", "crd/configs.slipway.dev", "crd/releases.slipway.dev"], { what: "CRDs not established" });
  gcWatchesReleases ??= untilGarbageCollectorWatchesReleases(cp);
  await gcWatchesReleases;
  return cp;
}

let gcWatchesReleases: Promise<void> | undefined;

/**
 * The garbage collector deletes an App's Releases with it, but it learns of a new CRD only when it next rediscovers
 * the API (every 30 s in the controller manager). A test that deletes an App right after the CRDs were installed
 * would wait for that, so this waits first: a Release whose owner does not exist is deleted once the collector
 * watches Releases.
 */
async function untilGarbageCollectorWatchesReleases(cp: ControlPlane): Promise<void> {
  const app = `gc-probe-${randomBytes(3).toString("hex")}`;
  const name = `${app}-v1`;
  const release = {
    apiVersion: "slipway.dev/v1alpha1",
    kind: "Release",
    metadata: {
      name, namespace: "default",
      ownerReferences: [{ apiVersion: "slipway.dev/v1alpha1", kind: "App", name: app, uid: "00000000-0000-0000-0000-000000000000" }],
    },
    spec: { app, version: 1, cause: "garbage collector probe", build: { image: `registry.example/probe@sha256:${"0".repeat(64)}` }, config: {} },
  };
  await cp.kubectlOk(["create", "-f", "-"], { input: JSON.stringify(release), what: "cannot create the garbage collector probe" });
  await waitFor(async () => (await cp.kubectl(["get", "releases.slipway.dev", name, "-n", "default"])).code !== 0, 90_000,
    async () => `the garbage collector did not delete Release default/${name}, whose owner does not exist; controller-manager log:\n${await cp.logTail("kube-controller-manager")}`);
}

export { waitFor };

/**
 * SLIPWAY_REAL_NODE=off: the run opts out of the tests that need the real node (operator/local/realnode.ts), on a
 * machine that cannot run one. Only then are they skipped, by name: ava lists each as skipped and counts them.
 * Without it, a machine that cannot run a real node fails those tests with startRealNode's one-line reason.
 */
export const REAL_NODE_OFF = process.env.SLIPWAY_REAL_NODE === "off";
/** ava's serial test, before and after.always hooks for a file of real-node tests (see REAL_NODE_OFF). */
export const realNodeTest = {
  serial: REAL_NODE_OFF ? test.serial.skip : test.serial,
  before: REAL_NODE_OFF ? test.before.skip : test.before,
  afterAlways: REAL_NODE_OFF ? test.after.always.skip : test.after.always,
};
if (REAL_NODE_OFF) console.log("SLIPWAY_REAL_NODE=off: the tests that need the real node are skipped (ava lists them as skipped)");
