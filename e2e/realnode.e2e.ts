// The real node beside the kwok nodes (operator/local/realnode.ts): a real kubelet with containerd and runc runs
// pods built here without docker, and they really answer HTTP on their pod IP, log, run `kubectl exec` and exit
// with their own code. Nothing in this file is simulated by kwok. The tests run in order: the fifth stops the
// node and checks that it left nothing on the machine; the last kills another process's real node and checks that
// the next start cleans up after it.
//
// If this machine cannot run a real node (not root, no cgroups, a build failure, …) the before hook fails with
// the reason and so does every test here. They are skipped only when the run opts out with SLIPWAY_REAL_NODE=off
// (realNodeTest in harness/suite.ts), and ava then lists each one as skipped.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ENV_DIR, ENV_KUBECONFIG, repoRoot } from "../operator/local/controlplane.js";
import { describeLeftovers, leftovers, REAL_NODE_FIXED_PATHS, realNodePlacement, startRealNode, type RealNode } from "../operator/local/realnode.js";
import { buildEchoImage } from "./harness/echo-image.js";
import { controlPlane, freshNamespace, realNodeTest, waitFor } from "./harness/suite.js";

interface PodStatus {
  spec: { nodeName?: string };
  status: {
    phase?: string;
    podIP?: string;
    hostIP?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{
      containerID?: string;
      ready: boolean;
      started?: boolean;
      state?: { running?: { startedAt: string }; terminated?: { exitCode: number; reason?: string } };
    }>;
  };
}

let node: RealNode | undefined;
/** The fixed paths the node writes to that this machine did not have before: none of them may be left. */
const newFixedPaths = REAL_NODE_FIXED_PATHS.filter((p) => !existsSync(p));
const fixedPathsLeft = () => newFixedPaths.filter((p) => existsSync(p));
/** The echo server (samples/images/echo) with u-root's gosh as /bin/sh, and cat and ls: FROM scratch. */
let echoImage = "";
/** Shared by the serial tests below: the echo pod's namespace, name, IP and message. */
const echo = { ns: "", name: "", ip: "", message: "" };
const started = Date.now();

realNodeTest.before("start the real node and build the echo image", async (t) => {
  // A first run on a machine builds the kubelet, containerd, runc, the CNI plugins and crane (many minutes).
  t.timeout(45 * 60_000, "building and starting the real node");
  const cp = await controlPlane();
  node = await startRealNode(cp, { progress: (line) => console.log(`realnode.e2e: ${line}`) });
  echoImage = await buildEchoImage(node, "samples/echo", { PATH: "/bin", PORT: "8080" });
  console.log(`realnode.e2e: node ${node.nodeName} Ready and ${echoImage} pushed in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  // The echo pod serves three tests: its namespace lives as long as this file (freshNamespace's ends with a test).
  echo.ns = `e2e-realnode-${randomBytes(3).toString("hex")}`;
  await cp.kubectlOk(["create", "namespace", echo.ns], { what: `cannot create namespace ${echo.ns}` });
  await waitFor(async () => (await cp.kubectl(["get", "serviceaccount", "default", "-n", echo.ns])).code === 0, 30_000,
    () => `no default ServiceAccount in ${echo.ns}`);
});

realNodeTest.afterAlways("stop the real node", async () => {
  if (echo.ns) await (await controlPlane()).kubectl(["delete", "namespace", echo.ns, "--wait=false"]);
  await node?.stop();
  console.log(`realnode.e2e: done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
});

function realNode(): RealNode {
  if (!node) throw new Error("the real node did not start");
  return node;
}

async function pod(ns: string, name: string): Promise<PodStatus> {
  const cp = await controlPlane();
  const r = await cp.kubectlOk(["get", "pod", "-n", ns, name, "-o", "json"], { what: `cannot get pod ${ns}/${name}` });
  return JSON.parse(r) as PodStatus;
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

realNodeTest.serial("a pod on the real node runs, is Ready by its kubelet's readiness probe, and answers HTTP on its pod IP", async (t) => {
  const n = realNode();
  const cp = await controlPlane();
  const ns = echo.ns;
  const message = `hello from the real node ${randomBytes(4).toString("hex")}`;
  const deployment = {
    apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "echo" },
    spec: {
      replicas: 1, selector: { matchLabels: { app: "echo" } },
      template: {
        metadata: { labels: { app: "echo" } },
        spec: {
          ...realNodePlacement, terminationGracePeriodSeconds: 5,
          containers: [{
            name: "echo", image: echoImage, env: [{ name: "MESSAGE", value: message }], ports: [{ containerPort: 8080 }],
            readinessProbe: { httpGet: { path: "/ready", port: 8080 }, periodSeconds: 1 },
          }],
        },
      },
    },
  };
  const applied = await cp.kubectl(["apply", "-n", ns, "-f", "-"], { input: JSON.stringify(deployment) });
  t.is(applied.code, 0, applied.stderr);
  const rollout = await cp.kubectl(["rollout", "status", "-n", ns, "deployment/echo", "--timeout=120s"]);
  t.is(rollout.code, 0, `${rollout.stderr}\nkubelet log:\n${await n.logTail("kubelet", 20)}`);
  const name = (await cp.kubectl(["get", "pods", "-n", ns, "-l", "app=echo", "-o", "jsonpath={.items[0].metadata.name}"])).stdout.trim();
  const p = await pod(ns, name);
  t.is(p.spec.nodeName, n.nodeName);
  t.is(p.status.phase, "Running");
  t.is(p.status.hostIP, n.nodeIP);
  t.true(p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"), JSON.stringify(p.status.conditions));
  const container = p.status.containerStatuses?.[0];
  t.true(container?.ready);
  t.regex(container?.containerID ?? "", /^containerd:\/\/[0-9a-f]{64}$/);
  t.truthy(container?.state?.running?.startedAt);
  const ip = p.status.podIP ?? "";
  t.regex(ip, /^10\.88\.\d+\.\d+$/);
  const res = await httpGet(`http://${ip}:8080/`);
  t.is(res.status, 200);
  t.is(res.body.trim(), message);
  Object.assign(echo, { name, ip, message });
});

realNodeTest.serial("kubectl logs shows the request line the pod on the real node logged", async (t) => {
  if (!echo.ip) return t.fail("the first test did not start the echo pod");
  const cp = await controlPlane();
  const path = `/logged-${randomBytes(4).toString("hex")}`;
  t.is((await httpGet(`http://${echo.ip}:8080${path}`)).status, 200);
  let logs = "";
  await waitFor(async () => {
    const r = await cp.kubectl(["logs", "-n", echo.ns, echo.name]);
    logs = `${r.stdout}${r.stderr}`;
    return logs.includes(`echo: GET ${path} from ${realNode().nodeIP}:`);
  }, 20_000, () => `kubectl logs never showed GET ${path}:\n${logs}`);
  t.regex(logs, /^echo: listening on :8080$/m);
});

realNodeTest.serial("kubectl exec runs a shell command in the container on the real node", async (t) => {
  if (!echo.ip) return t.fail("the first test did not start the echo pod");
  const cp = await controlPlane();
  const r = await cp.kubectl(["exec", "-n", echo.ns, echo.name, "--", "/bin/sh", "-c", "echo \"$MESSAGE\"; cat /proc/1/cmdline; echo; ls /"]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  t.is(lines[0], echo.message);
  t.is(lines[1]?.replace(/\0/g, ""), "/echo");
  t.true(lines.slice(2).some((l) => /\becho\b/.test(l)) && r.stdout.includes("bin"), r.stdout);
  const failed = await cp.kubectl(["exec", "-n", echo.ns, echo.name, "--", "/bin/sh", "-c", "exit 7"]);
  t.is(failed.code, 7, `kubectl exec passes the command's exit code on: ${failed.stderr}`);
});

realNodeTest.serial("a container on the real node that exits 3 reports terminated.exitCode 3 and its output", async (t) => {
  const n = realNode();
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const p = {
    apiVersion: "v1", kind: "Pod", metadata: { name: "exits" },
    spec: {
      ...realNodePlacement, restartPolicy: "Never",
      containers: [{ name: "exits", image: echoImage, command: ["/bin/sh", "-c", "echo about to exit 3; exit 3"] }],
    },
  };
  const created = await cp.kubectl(["create", "-n", ns, "-f", "-"], { input: JSON.stringify(p) });
  t.is(created.code, 0, created.stderr);
  let last: PodStatus | undefined;
  await waitFor(async () => {
    last = await pod(ns, "exits");
    return last.status.phase === "Failed";
  }, 90_000, async () => `pod never Failed: ${JSON.stringify(last?.status)}\nkubelet log:\n${await n.logTail("kubelet", 20)}`);
  t.is(last?.spec.nodeName, n.nodeName);
  const terminated = last?.status.containerStatuses?.[0]?.state?.terminated;
  t.is(terminated?.exitCode, 3, JSON.stringify(last?.status));
  t.is(terminated?.reason, "Error");
  const logs = await cp.kubectl(["logs", "-n", ns, "exits"]);
  t.is(logs.stdout.trim(), "about to exit 3");
});

realNodeTest.serial("stopping the real node leaves no process, mount, cgroup, bridge or directory behind", async (t) => {
  const n = realNode();
  const cp = await controlPlane();
  const stopStarted = Date.now();
  await n.stop();
  t.log(`stopped in ${((Date.now() - stopStarted) / 1000).toFixed(1)}s`);
  const left = await leftovers([n.dir], ["slipway0"], ["kubelet", "containerd", "containerd-shim-runc-v2", "crane"].map((b) => join(n.binDir, b)));
  t.is(describeLeftovers(left), "");
  t.deepEqual(fixedPathsLeft(), []);
  t.false(existsSync(n.dir), `${n.dir} still exists`);
  t.false(existsSync("/sys/class/net/slipway0"));
  const nodes = await cp.kubectl(["get", "node", n.nodeName, "--ignore-not-found", "-o", "name"]);
  t.is(nodes.stdout.trim(), "");
});

realNodeTest.serial("a real node whose owner was killed is cleaned up by the next real node's start", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  // The owner: another process that starts a real node, runs a pod there and is then killed with SIGKILL, so its
  // kubelet, containerd, shim, pod, mounts, cgroups and bridge stay behind.
  const owner = spawn(process.execPath, [join(repoRoot, "dist", "e2e", "harness", "realnode-owner.js"), ns], {
    stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, [ENV_KUBECONFIG]: cp.kubeconfigPath, [ENV_DIR]: cp.dir },
  });
  let output = "";
  owner.stdout.on("data", (d: Buffer) => (output += d.toString()));
  owner.stderr.on("data", (d: Buffer) => (output += d.toString()));
  await waitFor(async () => /^READY /m.test(output) || owner.exitCode !== null, 120_000, () => `the owner never said READY:\n${output}`);
  const crashedDir = /^READY (\S+)$/m.exec(output)?.[1] ?? "";
  t.truthy(crashedDir, output);
  owner.kill("SIGKILL");
  await new Promise((r) => owner.once("exit", r));
  const binDir = realNode().binDir;
  const exes = ["kubelet", "containerd", "containerd-shim-runc-v2"].map((b) => join(binDir, b));
  const left = await leftovers([crashedDir], ["slipway0"], exes);
  t.true(left.mounts.length > 0 && left.cgroups.length > 0 && left.links.length === 1 && left.processes.length >= 3,
    `the killed owner left its node running: ${describeLeftovers(left)}`);

  const next = await startRealNode(cp, { progress: (line) => console.log(`realnode.e2e: ${line}`) });
  try {
    t.false(existsSync(crashedDir), `${crashedDir} still exists`);
    const stillThere = await leftovers([crashedDir], [], [join(binDir, "kubelet"), join(binDir, "containerd")]);
    // Only the new node's own kubelet and containerd run now.
    t.is(stillThere.mounts.length, 0, stillThere.mounts.join(" "));
    t.is(stillThere.processes.length, 2, stillThere.processes.join(", "));
  } finally {
    await next.stop();
  }
  t.is(describeLeftovers(await leftovers([crashedDir, next.dir], ["slipway0"], exes)), "");
  // The killed shims' sockets and the killed pods' CNI results too.
  t.deepEqual(fixedPathsLeft(), []);
});
