// A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and kwok (simulated nodes and pods), built from the Go module proxy by e2e/controlplane/build.sh; with
// `tekton: true` also Tekton Pipelines' controller and webhook (local/tekton.ts).
// Used by the e2e suite and by `npm start`; there is no fake API server anywhere in this project.
import { execFile, spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { request } from "node:https";
import { request as httpRequest } from "node:http";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { writeKwokLogsConfig } from "./kwok-logs.js";
import { Processes, tail, type Process } from "./processes.js";
import { stringify } from "yaml";
import { serviceAccountKubeconfig, tektonBinaries, tektonModuleDir, tektonObjects, tektonProcesses, TEKTON_NAMESPACE } from "./tekton.js";
import { buildInBackground, putToolsOnPath, repoRoot } from "./tools.js";

const execFileAsync = promisify(execFile);

export { repoRoot };

const controlPlaneDir = join(repoRoot, "e2e", "controlplane");
/** kwokctl's "unlimited" client rate for kube-controller-manager and kube-scheduler (kwok itself has no limit). */
const UNLIMITED_CLIENT = ["--kube-api-qps=5000", "--kube-api-burst=10000"];

/** How harness/run.ts hands the run's control plane to every e2e test file. */
export const ENV_KUBECONFIG = "SLIPWAY_E2E_KUBECONFIG";
export const ENV_DIR = "SLIPWAY_E2E_DIR";

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ControlPlane {
  /** Admin kubeconfig (client certificate in group system:masters). */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Temporary directory holding certificates, data and component logs; removed on stop(). */
  readonly dir: string;
  /** Names of the kwok-managed fake nodes. */
  readonly nodes: readonly string[];
  kubeConfig(): KubeConfig;
  kubectl(args: string[], opts?: { input?: string }): Promise<KubectlResult>;
  /**
   * kubectl that must succeed: its stdout, or an Error `kubectl <args>: <stderr>` (`<what>: <stderr>` when
   * `what` is given, for a caller whose message says what it was doing).
   */
  kubectlOk(args: string[], opts?: { input?: string; what?: string }): Promise<string>;
  /** Tekton Pipelines' version when its controller and webhook run here (`tekton: true`). */
  readonly tekton?: { version: string };
  /** Last lines of a component's log (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, tekton-controller, tekton-webhook). */
  logTail(component: string, lines?: number): Promise<string>;
  /** Process ids of the running components by name (etcd, kube-apiserver, …), for CPU and memory figures. */
  pids(): Record<string, number>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Number of kwok fake nodes; default 1. */
  nodes?: number;
  /** Pods each kwok node takes (its capacity); default 110, the kubelet's default maxPods. */
  podsPerNode?: number;
  /** Extra kwok configuration files (Stages, ClusterLogs, …) besides e2e/controlplane/kwok/*.yaml. */
  kwokConfigs?: string[];
  /** Also run Tekton Pipelines' controller and webhook (built on first use), for builds. */
  tekton?: boolean;
  /** Called with progress lines, e.g. for `npm start`. */
  progress?: (line: string) => void;
}

/**
 * Builds the binaries if this machine has not built them yet, and returns their directory. Also puts the
 * directory holding the built kubectl and kpt (build.sh builds them too) first on this process's PATH, so it
 * and every process it starts (kubectl calls, the e2e test files) run those, not whatever the machine has.
 */
export async function ensureBinaries(progress?: (line: string) => void): Promise<string> {
  progress?.("control plane: checking binaries (the first run on a machine builds them from the Go module proxy)");
  const bin = await buildInBackground(undefined, progress);
  putToolsOnPath();
  return bin;
}

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === "object" ? res(addr.port) : rej(new Error("no port"))));
    });
  });
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await execFileAsync("openssl", args, { cwd: dir });
  } catch (cause) {
    throw new Error(`control plane: openssl ${args.slice(0, 2).join(" ")} failed`, { cause });
  }
}

/** A CA, the API server's serving certificate, the admin client certificate and service-account keys. */
async function makeCertificates(dir: string): Promise<void> {
  // RSA-2048, kubeadm's default. The API server verifies the client certificate's signature on every request;
  // with P-256 keys that verification took 6 % of its CPU under load, several times what RSA's takes.
  const key = ["-newkey", "rsa:2048", "-nodes"];
  await openssl(dir, ["req", "-x509", ...key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=slipway-local-ca"]);
  const sign = async (name: string, subj: string, ext: string) => {
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(dir, ["req", ...key, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj]);
    await openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `${name}.crt`, "-days", "30", "-extfile", `${name}.ext`]);
  };
  await sign("apiserver", "/CN=kube-apiserver",
    "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n" +
    "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n");
  await sign("admin", "/O=system:masters/CN=slipway-admin", "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n");
  // The API server's client certificate to kubelets (logs, exec, port-forward): a real node's kubelet
  // (local/realnode.ts) authenticates it by this CA and asks the API server whether it may (webhook authorization).
  await sign("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
    "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n");
  await openssl(dir, ["genrsa", "-out", "sa.key", "2048"]);
  await openssl(dir, ["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

async function writeKubeconfig(dir: string, server: string): Promise<string> {
  const b64 = async (f: string) => (await readFile(join(dir, f))).toString("base64");
  const path = join(dir, "kubeconfig");
  const text = `apiVersion: v1
kind: Config
clusters:
- name: slipway-local
  cluster:
    server: ${server}
    certificate-authority-data: ${await b64("ca.crt")}
users:
- name: slipway-admin
  user:
    client-certificate-data: ${await b64("admin.crt")}
    client-key-data: ${await b64("admin.key")}
contexts:
- name: slipway-local
  context:
    cluster: slipway-local
    user: slipway-admin
    namespace: default
current-context: slipway-local
`;
  await writeFile(path, text, { mode: 0o600 });
  return path;
}

type Component = Process;

/** GET a URL until it answers 200 or the component exits; throws with the component's last log lines. */
async function waitHealthy(c: Component, url: string, ca: Buffer | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void c.exited.then((code) => (exitCode = code));
  let last = "";
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      throw new Error(`control plane: ${c.name} exited with code ${exitCode} before it was healthy; last log lines:\n${await tail(c.logPath)}`);
    }
    try {
      const status = await httpGetStatus(url, ca);
      if (status === 200) return;
      last = `HTTP ${status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`control plane: ${c.name} was not healthy at ${url} within ${timeoutMs / 1000}s (${last}); last log lines:\n${await tail(c.logPath)}`);
}

function httpGetStatus(url: string, ca: Buffer | undefined): Promise<number> {
  return new Promise((res, rej) => {
    const u = new URL(url);
    const req = u.protocol === "https:"
      ? request(u, { ca, rejectUnauthorized: ca !== undefined, timeout: 2000 })
      : httpRequest(u, { timeout: 2000 });
    req.on("response", (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", rej);
    req.end();
  });
}

/** Starts a control plane on random loopback ports. Stops everything it started if any part fails. */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const progress = opts.progress ?? (() => undefined);
  const bin = await ensureBinaries(progress);
  const dir = await mkdtemp(join(tmpdir(), "slipway-cp-"));
  const logs = join(dir, "logs");
  await mkdir(logs);
  const processes = new Processes(logs);
  const startComponent = (name: string, args: string[], o: { binary?: string; env?: Record<string, string> } = {}): Component =>
    processes.start(name, o.binary ?? join(bin, name), args, { extraEnv: o.env });
  let stopped: Promise<void> | undefined;
  const stopAll = () => (stopped ??= processes.stopAll().then(() => rm(dir, { recursive: true, force: true })));

  try {
    progress("control plane: generating certificates");
    await makeCertificates(dir);
    const ca = await readFile(join(dir, "ca.crt"));
    const [etcdClient, etcdPeer, apiPort, kcmPort, schedPort, kwokPort] = await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    );

    progress("control plane: starting etcd");
    const etcd = startComponent("etcd", [
      "--name=default", `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`, `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // Test data only: skipping fsync makes the local plane several times faster on slow disks.
      "--unsafe-no-fsync", "--log-level=warn",
    ]);
    await waitHealthy(etcd, `http://127.0.0.1:${etcdClient}/health`, undefined, 30_000);

    progress("control plane: starting kube-apiserver");
    const server = `https://127.0.0.1:${apiPort}`;
    const apiserver = startComponent("kube-apiserver", [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      `--tls-cert-file=${join(dir, "apiserver.crt")}`, `--tls-private-key-file=${join(dir, "apiserver.key")}`,
      `--client-ca-file=${join(dir, "ca.crt")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${join(dir, "sa.pub")}`, `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC", "--allow-privileged=true",
      // kwok nodes' names do not resolve; reach their kubelet API (served by kwok) by InternalIP.
      "--kubelet-preferred-address-types=InternalIP",
      `--kubelet-client-certificate=${join(dir, "apiserver-kubelet-client.crt")}`, `--kubelet-client-key=${join(dir, "apiserver-kubelet-client.key")}`,
      "--profiling=false", "--v=0",
    ]);
    await waitHealthy(apiserver, `${server}/readyz`, ca, 90_000);
    const kubeconfigPath = await writeKubeconfig(dir, server);

    progress("control plane: starting kube-controller-manager, kube-scheduler and kwok");
    const kcm = startComponent("kube-controller-manager", [
      `--kubeconfig=${kubeconfigPath}`, `--authentication-kubeconfig=${kubeconfigPath}`, `--authorization-kubeconfig=${kubeconfigPath}`,
      "--bind-address=127.0.0.1", `--secure-port=${kcmPort}`, `--cert-dir=${join(dir, "kcm-certs")}`,
      `--service-account-private-key-file=${join(dir, "sa.key")}`, `--root-ca-file=${join(dir, "ca.crt")}`,
      "--service-cluster-ip-range=10.0.0.0/24", "--leader-elect=false", "--use-service-account-credentials=false",
      // The nodes are simulated, so the controllers' client-side rate limit (20 requests/s by default) would be
      // the cluster's bottleneck, not the API server: lift it as kwokctl's --disable-qps-limits does.
      ...UNLIMITED_CLIENT, "--profiling=false", "--v=0",
    ]);
    const scheduler = startComponent("kube-scheduler", [
      `--config=${await writeSchedulerConfig(dir, kubeconfigPath)}`,
      `--authentication-kubeconfig=${kubeconfigPath}`, `--authorization-kubeconfig=${kubeconfigPath}`,
      "--bind-address=127.0.0.1", `--secure-port=${schedPort}`, "--profiling=false", "--v=0",
    ]);
    const kwokConfigDir = join(controlPlaneDir, "kwok");
    const kwokConfigs = [
      ...(await readdir(kwokConfigDir)).filter((f) => f.endsWith(".yaml")).sort().map((f) => join(kwokConfigDir, f)),
      await writeKwokLogsConfig(dir),
      ...(opts.kwokConfigs ?? []),
    ];
    const kwok = startComponent("kwok", [
      `--kubeconfig=${kubeconfigPath}`, ...kwokConfigs.map((c) => `--config=${c}`),
      "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
      "--node-lease-duration-seconds=40", "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1",
      // kwok serves the kubelet API (logs, exec) on this port; nodes advertise it so the API server reaches it.
      `--server-address=127.0.0.1:${kwokPort}`, `--node-port=${kwokPort}`,
    ]);
    await Promise.all([
      waitHealthy(kcm, `https://127.0.0.1:${kcmPort}/healthz`, undefined, 60_000),
      waitHealthy(scheduler, `https://127.0.0.1:${schedPort}/healthz`, undefined, 60_000),
      waitHealthy(kwok, `http://127.0.0.1:${kwokPort}/healthz`, undefined, 60_000),
    ]);

    const { kubectl, kubectlOk } = kubectlFor(kubeconfigPath);
    const nodes = Array.from({ length: opts.nodes ?? 1 }, (_, i) => `kwok-node-${i}`);
    progress(`control plane: registering ${nodes.length} kwok node(s)`);
    const nodeYaml = nodes.map((n) => fakeNode(n, opts.podsPerNode ?? 110)).join("---\n");
    await kubectlOk(["apply", "-f", "-"], { input: nodeYaml, what: "control plane: cannot create kwok nodes" });
    await waitFor(async () => {
      const r = await kubectl(["wait", "--for=condition=Ready", "node", "--all", "--timeout=5s"]);
      return r.code === 0;
    }, 60_000, async () => `kwok nodes not Ready; kwok log:\n${await tail(kwok.logPath)}`);
    // The service-account controller creating "default" proves the controller manager is reconciling.
    await waitFor(async () => (await kubectl(["get", "serviceaccount", "default", "-n", "default"])).code === 0, 60_000,
      async () => `no default ServiceAccount; controller-manager log:\n${await tail(kcm.logPath)}`);

    let tekton: { version: string } | undefined;
    if (opts.tekton) {
      const binDir = await tektonBinaries(progress);
      const { dir: moduleDir, version } = await tektonModuleDir();
      progress(`control plane: installing Tekton Pipelines ${version} (CRDs, RBAC, ConfigMaps, webhook configurations from its module's config/)`);
      const ports = {
        webhook: await freePort(), webhookProbes: await freePort(), webhookProfiling: await freePort(),
        controllerProbes: await freePort(), controllerProfiling: await freePort(),
      };
      const objects = await tektonObjects(join(moduleDir, "config"), ports.webhook);
      await kubectlOk(["apply", "--server-side", "--force-conflicts", "--field-manager=slipway-local-control-plane", "-f", "-"],
        { input: objects.map((o) => stringify(o)).join("---\n"), what: `control plane: cannot install Tekton from ${moduleDir}/config` });
      await kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=tekton-pipelines"],
        { what: "control plane: Tekton's CRDs not established" });
      const caFile = join(dir, "ca.crt");
      const kubeconfigs = {
        controller: await serviceAccountKubeconfig(kubectlOk, server, caFile, "tekton-pipelines-controller", join(dir, "tekton-controller.kubeconfig")),
        webhook: await serviceAccountKubeconfig(kubectlOk, server, caFile, "tekton-pipelines-webhook", join(dir, "tekton-webhook.kubeconfig")),
      };
      progress("control plane: starting the Tekton webhook and controller");
      for (const p of tektonProcesses({ binDir, version, kubeconfigs, ports })) {
        const c = startComponent(p.name, p.args, { binary: p.binary, env: p.env });
        await waitHealthy(c, p.probeUrl, undefined, 60_000);
      }
      // Ready once the API server's calls reach it: Tekton's webhook has reconciled its webhook configurations
      // (CA bundle, paths) and defaults and validates a Task. Until then its failurePolicy Fail refuses Tekton kinds.
      const probe = stringify({
        apiVersion: "tekton.dev/v1", kind: "Task", metadata: { name: "admission-probe", namespace: TEKTON_NAMESPACE },
        spec: { steps: [{ name: "probe", image: "registry.invalid/probe", script: "true" }] },
      });
      let last = "";
      await waitFor(async () => {
        const r = await kubectl(["create", "--dry-run=server", "-o", "json", "-f", "-"], { input: probe });
        last = r.stderr.trim();
        return r.code === 0;
      }, 90_000, async () => `Tekton's webhook never admitted a Task (${last}); tekton-webhook log:\n${await tail(join(logs, "tekton-webhook.log"))}`);
      tekton = { version };
    }

    progress(`control plane: ready at ${server} (kubeconfig ${kubeconfigPath})`);
    return {
      kubeconfigPath,
      server,
      dir,
      nodes,
      tekton,
      kubeConfig() {
        const kc = new KubeConfig();
        kc.loadFromFile(kubeconfigPath);
        return kc;
      },
      kubectl,
      kubectlOk,
      logTail: (component, lines) => tail(join(logs, `${component}.log`), lines),
      pids: () => Object.fromEntries(processes.all.flatMap((c) => (c.child.pid === undefined ? [] : [[c.name, c.child.pid]]))),
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/**
 * kube-scheduler's configuration: no client-side rate limit (as kwokctl's --disable-qps-limits), no leader
 * election, and neither the VolumeBinding nor the VolumeZone plugin. No storage is provisioned here, so a
 * PersistentVolumeClaim (a Tekton workspace, an App's build cache) stays Pending; without those plugins the pods
 * that mount one are still placed on a kwok node, which runs no container and so needs no volume.
 */
async function writeSchedulerConfig(dir: string, kubeconfigPath: string): Promise<string> {
  const path = join(dir, "kube-scheduler.yaml");
  await writeFile(path, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: ${JSON.stringify(kubeconfigPath)}
  qps: 5000
  burst: 10000
leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
  plugins:
    multiPoint:
      disabled:
      - name: VolumeBinding
      - name: VolumeZone
`);
  return path;
}

function fakeNode(name: string, pods: number): string {
  return `apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: ${name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: { cpu: "32", memory: 256Gi, pods: "${pods}" }
  capacity: { cpu: "32", memory: 256Gi, pods: "${pods}" }
`;
}

/** A ControlPlane's kubectl and kubectlOk, run with `kubeconfig`. */
export function kubectlFor(kubeconfig: string): Pick<ControlPlane, "kubectl" | "kubectlOk"> {
  const kubectl = (args: string[], opts?: { input?: string }) => runKubectl(kubeconfig, args, opts?.input);
  return {
    kubectl,
    async kubectlOk(args, opts) {
      const r = await kubectl(args, opts);
      if (r.code !== 0) throw new Error(`${opts?.what ?? `kubectl ${args.join(" ")}`}: ${r.stderr.trim()}`);
      return r.stdout;
    },
  };
}

export function runKubectl(kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((res, rej) => {
    const child = spawn("kubectl", [`--kubeconfig=${kubeconfig}`, ...args], { stdio: ["pipe", "pipe", "pipe"], cwd: repoRoot });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (cause) => rej(new Error(`kubectl ${args.join(" ")}: cannot run kubectl`, { cause })));
    child.on("close", (code) => res({ stdout, stderr, code: code ?? -1 }));
    // A kubectl that exits without reading its input (a usage error) closes the pipe: its exit code says why.
    child.stdin.on("error", () => undefined);
    child.stdin.end(input ?? "");
  });
}

/** Polls `check` until it is true; on timeout throws with `explain()`'s text. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, explain: () => Promise<string> | string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s: ${await explain()}`);
}

export const crdsDir = resolve(repoRoot, "crds");
