// One real Kubernetes node beside the kwok nodes: a real kubelet with containerd and runc, so the pods that ask for
// it really run, answer on their pod IP, log, exec and exit. Everything is built from the Go module proxy by
// e2e/controlplane/build.sh --node; nothing is installed on the machine and no image is pulled from outside:
// a local registry (crane registry serve, on loopback) holds the images built here (local/images.ts), the pause
// image first.
//
// The node is labelled slipway.dev/node-kind=real and tainted slipway.dev/real-node=true:NoSchedule, so only pods
// with that nodeSelector and toleration land on it; kwok manages only the nodes annotated kwok.x-k8s.io/node=fake.
// Its containerd runs with its own root, state, socket and configuration in the node's temporary directory, never
// the system's; its pods sit on a bridge of their own (no masquerading, no kube-proxy: nothing here needs iptables).
// They reach the API server, which listens on loopback, through a TCP forward on the bridge's address (apiServer).
//
// It needs root, cgroups (v1 or v2) and overlayfs; without them startRealNode throws a RealNodeUnavailable whose
// one-line message says why. Of the machine's programs it runs only openssl and go, and the kubelet runs mount(8)
// and umount(8) (util-linux, on every Linux machine) for its tmpfs volumes (service account tokens, Secrets); the
// node's own setup and teardown use nodeclean's system calls, never iproute2, iptables or util-linux. stop() deletes the node's pods and leaves the machine as it was: no process, mount,
// cgroup, bridge, netns or CNI state left. A run that crashed is cleaned up when the next one starts.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, mkdir, readFile, readdir, readlink, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, waitFor, type ControlPlane } from "./controlplane.js";
import { forwardTcp, type Forward } from "./forward.js";
import { buildImage } from "./images.js";
import { Processes, tail, untilUp, type Process } from "./processes.js";
import { buildInBackground } from "./tools.js";

const execFileAsync = promisify(execFile);

export const REAL_NODE_LABEL = "slipway.dev/node-kind";
export const REAL_NODE_LABEL_VALUE = "real";
export const REAL_NODE_TAINT = "slipway.dev/real-node";

/** What a pod spec needs to be placed on the real node: its nodeSelector and toleration. */
export const realNodePlacement = {
  nodeSelector: { [REAL_NODE_LABEL]: REAL_NODE_LABEL_VALUE },
  tolerations: [{ key: REAL_NODE_TAINT, operator: "Equal", value: "true", effect: "NoSchedule" }],
} as const;

/** The directories of the real nodes on this machine are `<tmpdir>/slipway-realnode-*`. */
const DIR_PREFIX = "slipway-realnode-";
/** kubelet creates its pods' cgroups under this name in every cgroup hierarchy (cgroupfs driver). */
const KUBEPODS_CGROUP = "kubepods";
/** The CNI network's name; go-cni caches each pod's result as /var/lib/cni/results/<network>-<id>-<ifname>. */
const CNI_NETWORK = "slipway-realnode";
const CNI_CACHE = "/var/lib/cni/results";
/** Where kubelet links each container's log (a constant of the kubelet, not configurable). */
const CONTAINER_LOG_LINKS = "/var/log/containers";
/** containerd's shims put their sockets here when run as root, whatever containerd's own state directory. */
const SHIM_SOCKETS = "/run/containerd/s";
/** The kubelet's device-plugin socket, at a path of its own whatever its --root-dir. */
const DEVICE_PLUGINS = "/var/lib/kubelet/device-plugins";
/** containerd's namespace for the CRI's sandboxes and containers. */
const CRI_NAMESPACE = "k8s.io";

/**
 * The directories outside its own that a real node's components write to (fixed in their code); each is removed
 * at stop when it is empty. A test can check that those that did not exist before are gone after.
 */
export const REAL_NODE_FIXED_PATHS = [SHIM_SOCKETS, "/run/containerd", CNI_CACHE, "/var/lib/cni", DEVICE_PLUGINS, "/var/lib/kubelet",
  CONTAINER_LOG_LINKS, "/run/mount"] as const;

/** The machine cannot run a real node; the message says why in one line. */
export class RealNodeUnavailable extends Error {
  constructor(reason: string, options?: ErrorOptions) {
    super(`real node unavailable: ${reason}`, options);
    this.name = "RealNodeUnavailable";
  }
}

/** The real node failed to start or to stop; the message names the step and the component's last log lines. */
export class RealNodeError extends Error {
  constructor(readonly step: string, detail: string, options?: ErrorOptions) {
    super(`real node: ${step}: ${detail}`, options);
    this.name = "RealNodeError";
  }
}

export interface RealNodeOptions {
  /** The Node's name; default slipway-real-node. */
  name?: string;
  /** The bridge the pods' interfaces join; default slipway0. */
  bridge?: string;
  /** The pods' network: the bridge takes its first address, which is also the node's IP; default 10.88.0.0/16. */
  podCidr?: string;
  /**
   * The effect of the node's taint: NoSchedule (the default) lets only pods that tolerate it land there;
   * PreferNoSchedule lets a pod that asks for the node by its label (a Config's nodeSelector) land there without a
   * toleration, while the scheduler keeps placing every other pod on the kwok nodes (`npm start`).
   */
  taintEffect?: "NoSchedule" | "PreferNoSchedule";
  /** Called with progress lines. */
  progress?: (line: string) => void;
}

export interface RealNode {
  readonly nodeName: string;
  /** The node's InternalIP: the bridge's address. */
  readonly nodeIP: string;
  /** The local registry, host:port on loopback (plain HTTP); images pushed there are pulled by the node. */
  readonly registry: string;
  /** The directory holding the built binaries (crane, kubelet, containerd, gosh, …). */
  readonly binDir: string;
  /** The node's temporary directory (configuration, state, logs); removed by stop(). */
  readonly dir: string;
  /** The pause image the node's sandboxes run, by digest. */
  readonly pauseImage: string;
  /**
   * The API server as the node's pods reach it: a TCP forward on the node's IP (the bridge's address) to the
   * control plane, which listens on loopback. Its certificate names `kubernetes.default.svc`, not this address, so
   * a pod that verifies it resolves that name here (hostAliases) and sets KUBERNETES_SERVICE_HOST to it.
   */
  readonly apiServer: { readonly host: string; readonly port: number };
  /** Forwards a TCP service of this machine (`target`, on loopback) to a port on the node's IP, for its pods; until stop(). */
  forward(target: { host: string; port: number }): Promise<number>;
  /**
   * The local registry as the node's pods reach it (a forward on the node's IP), for a build that pushes an image
   * the node then pulls under the same name; the node pulls from that address too (plain HTTP). Made once.
   */
  podRegistry(): Promise<string>;
  /**
   * Has the node pull images named after `hosts` (docker.io, ghcr.io, …) from the local registry instead, as a
   * cluster without internet access mirrors them: `docker.io/library/bash:5.2` is the local `library/bash:5.2`.
   * Nothing is ever pulled from those hosts.
   */
  mirror(hosts: string[]): Promise<void>;
  /** Last lines of a component's log: registry, containerd or kubelet. */
  logTail(component: "registry" | "containerd" | "kubelet", lines?: number): Promise<string>;
  /** Stops the node and removes everything it left on the machine; throws if something is left. Safe to call twice. */
  stop(): Promise<void>;
}

/** What a teardown can leave behind; each list empty when the machine is clean. */
export interface Leftovers {
  mounts: string[];
  cgroups: string[];
  links: string[];
  processes: string[];
}

/** The directory holding the real node's binaries, built on first use by build.sh --node. */
export async function realNodeBinaries(progress?: (line: string) => void): Promise<string> {
  try {
    return await buildInBackground("--node", progress);
  } catch (cause) {
    // build.sh's last line says why (its first only that it failed).
    const text = cause instanceof Error ? cause.message : String(cause);
    const why = text.split("\n").map((l) => l.trim()).filter(Boolean).pop() ?? text;
    throw new RealNodeUnavailable(`e2e/controlplane/build.sh --node failed (${why})`, { cause });
  }
}

/**
 * Checks that this machine can run a real node; throws RealNodeUnavailable saying why not. It needs Linux, root
 * (mounts, cgroups, network namespaces), the cgroup controllers the kubelet requires and overlayfs.
 */
export async function checkRealNodeSupport(): Promise<void> {
  if (process.platform !== "linux") throw new RealNodeUnavailable(`it needs Linux, this is ${process.platform}`);
  if (process.getuid?.() !== 0) throw new RealNodeUnavailable(`it needs root (uid 0) for mounts, cgroups and network namespaces; this is uid ${process.getuid?.()}`);
  const filesystems = await readFile("/proc/filesystems", "utf8").catch(() => "");
  if (!/\boverlay\b/.test(filesystems)) throw new RealNodeUnavailable("the kernel has no overlay filesystem (containerd's overlayfs snapshotter needs it)");
  if (existsSync("/sys/fs/cgroup/cgroup.controllers")) {
    const controllers = (await readFile("/sys/fs/cgroup/cgroup.controllers", "utf8")).trim().split(/\s+/);
    const missing = ["cpu", "cpuset", "memory", "pids"].filter((c) => !controllers.includes(c));
    if (missing.length > 0) throw new RealNodeUnavailable(`cgroup v2 lacks the controller(s) ${missing.join(", ")} the kubelet needs`);
  } else {
    const missing = ["cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer"].filter((c) => !existsSync(join("/sys/fs/cgroup", c)));
    if (missing.length > 0) throw new RealNodeUnavailable(`cgroup v1 hierarchy /sys/fs/cgroup/{${missing.join(",")}} is missing (the kubelet needs it)`);
  }
  if (!existsSync("/proc/sys/net/ipv4")) throw new RealNodeUnavailable("no IPv4 networking (/proc/sys/net/ipv4 is missing)");
}

/** What the real node needs of the control plane: its address, its directory (the CA) and kubectl. */
export type RealNodeControlPlane = Pick<ControlPlane, "server" | "dir" | "kubectl">;

/** Starts a real node registered with `cp`. Stops and cleans everything it started if any step fails. */
export async function startRealNode(cp: RealNodeControlPlane, opts: RealNodeOptions = {}): Promise<RealNode> {
  const progress = opts.progress ?? (() => undefined);
  const nodeName = opts.name ?? "slipway-real-node";
  const bridge = opts.bridge ?? "slipway0";
  const podCidr = opts.podCidr ?? "10.88.0.0/16";
  const net = parseCidr(podCidr);
  const nodeIP = net.host(1);

  await checkRealNodeSupport();
  // The pods' traffic must stay on this machine's bridge: a network this machine already routes elsewhere is refused.
  const clash = overlappingRoutes(await readFile("/proc/net/route", "utf8").catch(() => ""), podCidr, bridge);
  if (clash.length > 0) throw new RealNodeUnavailable(`its pod network ${podCidr} overlaps this machine's route(s) ${clash.join(", ")}; give another podCidr`);
  const binDir = await realNodeBinaries(progress);
  await cleanUpCrashedRuns(binDir, bridge, progress);
  const others = await liveRealNodes();
  if (others.length > 0) throw new RealNodeUnavailable(`another real node runs on this machine (${others.join(", ")}); one at a time`);
  const kubelets = await kubeletsRunning();
  if (kubelets.length > 0) throw new RealNodeUnavailable(`a kubelet already runs on this machine (${kubelets.join(", ")}); its kubepods cgroups would be shared`);

  const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  await writeFile(join(dir, "owner.json"), JSON.stringify({ pid: process.pid, binDir, bridge }));
  const logs = join(dir, "logs");
  await mkdir(logs);
  const processes = new Processes(logs);
  const bin = (name: string) => join(binDir, name);
  const env = { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ""}` };
  let kubeletProcess: Process | undefined;
  const forwards: Forward[] = [];
  const forward = async (target: { host: string; port: number }) => {
    const f = await forwardTcp({ host: nodeIP }, target);
    forwards.push(f);
    return f.port;
  };

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= teardown({ cp, nodeName, dir, binDir, bridge, processes, forwards, kubelet: () => kubeletProcess, progress }));

  try {
    progress(`real node: starting the local registry`);
    const registryPort = await freePort();
    const registry = `127.0.0.1:${registryPort}`;
    await mkdir(join(dir, "registry"));
    const reg = processes.start("registry", bin("crane"), ["registry", "serve", "--address", registry, "--disk", join(dir, "registry")], { env });
    await waitFor(async () => (await fetch(`http://${registry}/v2/`)).status === 200, 30_000,
      async () => `the registry did not answer on ${registry}; its log:\n${await tail(reg.logPath)}`).catch(rethrow("registry"));

    progress(`real node: building the pause image`);
    const pauseImage = await buildImage(bin("crane"), registry, {
      name: "slipway/pause", files: [{ path: "/pause", source: { file: bin("pause") }, mode: 0o755 }], entrypoint: ["/pause"],
    }).catch(rethrow("pause image"));

    progress(`real node: bridge ${bridge} (${nodeIP}/${net.prefix}), CNI configuration`);
    await nodeclean(binDir, ["bridge", bridge, `${nodeIP}/${net.prefix}`]).catch(rethrow(`bridge ${bridge}`));
    const api = new URL(cp.server);
    const apiServer = { host: nodeIP, port: await forward({ host: api.hostname, port: Number(api.port) }).catch(rethrow("API server forward")) };
    const cniConf = join(dir, "cni", "net.d");
    await mkdir(cniConf, { recursive: true });
    await writeFile(join(cniConf, "10-slipway.conflist"), JSON.stringify({
      cniVersion: "1.0.0",
      name: CNI_NETWORK,
      plugins: [{
        type: "bridge", bridge, isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: {
          type: "host-local", dataDir: join(dir, "cni", "ipam"),
          ranges: [[{ subnet: podCidr, gateway: nodeIP, rangeStart: net.host(10) }]],
        },
      }],
    }, null, 2));

    progress(`real node: starting containerd`);
    const containerdDir = join(dir, "containerd");
    await writeRegistryHost(containerdDir, registry, registry);
    const socket = join(containerdDir, "containerd.sock");
    await writeFile(join(containerdDir, "config.toml"), containerdConfig({ dir: containerdDir, socket, binDir, cniConf, pauseImage }));
    const containerd = processes.start("containerd", bin("containerd"), ["--config", join(containerdDir, "config.toml")], { env });
    await waitUp(containerd, async () => (await stat(socket).catch(() => undefined))?.isSocket() === true, 30_000, "containerd serving its socket");

    progress(`real node: starting the kubelet (${nodeName})`);
    const kubeletDir = join(dir, "kubelet");
    await mkdir(join(kubeletDir, "pki"), { recursive: true });
    const kubeconfig = await kubeletCredentials(cp, nodeName, kubeletDir);
    const [kubeletPort, healthzPort] = [await freePort(), await freePort()];
    await writeFile(join(kubeletDir, "config.yaml"), kubeletConfig({
      caFile: join(cp.dir, "ca.crt"), socket, nodeIP, port: kubeletPort, healthzPort, dir: kubeletDir, taintEffect: opts.taintEffect,
    }));
    kubeletProcess = processes.start("kubelet", bin("kubelet"), [
      `--config=${join(kubeletDir, "config.yaml")}`, `--kubeconfig=${kubeconfig}`, `--root-dir=${join(kubeletDir, "root")}`,
      `--cert-dir=${join(kubeletDir, "pki")}`, `--hostname-override=${nodeName}`, `--node-ip=${nodeIP}`,
      `--node-labels=${REAL_NODE_LABEL}=${REAL_NODE_LABEL_VALUE}`, "--v=1",
    ], { env });
    const kubelet = kubeletProcess;
    await waitUp(kubelet, async () => (await fetch(`http://127.0.0.1:${healthzPort}/healthz`)).status === 200, 60_000, "the kubelet healthy");
    await waitUp(kubelet, async () => {
      const r = await cp.kubectl(["get", "node", nodeName, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
      return r.stdout.trim() === "True";
    }, 90_000, `Node ${nodeName} Ready`);

    progress(`real node: ${nodeName} is Ready at ${nodeIP} (registry ${registry}, directory ${dir})`);
    // containerd reads certs.d at each pull: a host added here applies to the next pull.
    const mirror = async (hosts: string[]) => {
      for (const host of hosts) await writeRegistryHost(containerdDir, host, registry);
    };
    let podRegistry: Promise<string> | undefined;
    return {
      nodeName, nodeIP, registry, binDir, dir, pauseImage, apiServer, forward, mirror,
      podRegistry: () => (podRegistry ??= (async () => {
        const at = `${nodeIP}:${await forward({ host: "127.0.0.1", port: Number(registry.split(":")[1]) })}`;
        await writeRegistryHost(containerdDir, at, at);
        return at;
      })()),
      logTail: (component, lines) => tail(join(logs, `${component}.log`), lines),
      stop,
    };
  } catch (e) {
    const kubeletLog = await tail(join(logs, "kubelet.log"), 15).catch(() => "");
    await stop().catch((cleanup: unknown) => progress(`real node: cleaning up after a failed start: ${firstLine(cleanup)}`));
    if (e instanceof RealNodeError && kubeletLog && !e.message.includes(kubeletLog)) e.message += `\nkubelet log:\n${kubeletLog}`;
    throw e;
  }
}

/** untilUp, failing as a RealNodeError of the component's step. */
async function waitUp(p: Process, check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  await untilUp(p, check, timeoutMs, what).catch((e: unknown) => {
    throw new RealNodeError(p.name, e instanceof Error ? e.message : String(e), { cause: e });
  });
}

function rethrow(step: string): (cause: unknown) => never {
  return (cause) => {
    throw cause instanceof RealNodeError ? cause : new RealNodeError(step, firstLine(cause), { cause });
  };
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n").find((l) => l.trim()) ?? text;
}

/** Runs the node's nodeclean helper (e2e/controlplane/node/nodeclean); returns its output. */
async function nodeclean(binDir: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(join(binDir, "nodeclean"), args);
    return stdout;
  } catch (cause) {
    const c = cause as { stderr?: string; stdout?: string };
    throw new RealNodeError(`nodeclean ${args[0]}`, (c.stderr ?? "").trim() || firstLine(cause), { cause });
  }
}

/**
 * A client certificate for the kubelet (CN system:node:<name>, O system:nodes) signed by the control plane's CA,
 * its kubeconfig, and the binding that gives it the role system:node (the API server authorizes with RBAC only).
 */
async function kubeletCredentials(cp: RealNodeControlPlane, nodeName: string, dir: string): Promise<string> {
  const pki = join(dir, "pki");
  const openssl = async (args: string[]) => {
    try {
      await execFileAsync("openssl", args, { cwd: pki });
    } catch (cause) {
      throw new RealNodeError("kubelet certificate", `openssl ${args.slice(0, 2).join(" ")} failed: ${(cause as { stderr?: string }).stderr ?? ""}`.trim(), { cause });
    }
  };
  await writeFile(join(pki, "client.ext"), "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n");
  await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", `/O=system:nodes/CN=system:node:${nodeName}`]);
  await openssl(["x509", "-req", "-in", "client.csr", "-CA", join(cp.dir, "ca.crt"), "-CAkey", join(cp.dir, "ca.key"),
    "-CAcreateserial", "-CAserial", join(pki, "ca.srl"), "-out", "client.crt", "-days", "30", "-extfile", "client.ext"]);
  const path = join(dir, "kubeconfig");
  await writeFile(path, `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: ${cp.server}
    certificate-authority: ${join(cp.dir, "ca.crt")}
users:
- name: kubelet
  user:
    client-certificate: ${join(pki, "client.crt")}
    client-key: ${join(pki, "client.key")}
contexts:
- name: local
  context: { cluster: local, user: kubelet }
current-context: local
`, { mode: 0o600 });
  const binding = JSON.stringify({
    apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding",
    metadata: { name: `slipway-real-node:${nodeName}`, labels: { [REAL_NODE_LABEL]: REAL_NODE_LABEL_VALUE } },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:node" },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: `system:node:${nodeName}` }],
  });
  const r = await cp.kubectl(["apply", "-f", "-"], { input: binding });
  if (r.code !== 0) throw new RealNodeError("kubelet RBAC", `cannot bind system:node to system:node:${nodeName}: ${r.stderr.trim()}`);
  return path;
}

/** A containerd registry host file (certs.d/<host>/hosts.toml): pull and resolve from `registry` over plain HTTP only. */
function registryHostsToml(registry: string): string {
  return `server = "http://${registry}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`;
}

/** Has containerd (configured under `containerdDir`) pull images named after `host` from `registry`. */
async function writeRegistryHost(containerdDir: string, host: string, registry: string): Promise<void> {
  await mkdir(join(containerdDir, "certs.d", host), { recursive: true });
  await writeFile(join(containerdDir, "certs.d", host, "hosts.toml"), registryHostsToml(registry));
}

/** containerd's configuration (version 4): everything under `dir`, CRI with runc (cgroupfs), CNI and the local registry. */
export function containerdConfig(o: { dir: string; socket: string; binDir: string; cniConf: string; pauseImage: string }): string {
  const q = (s: string) => JSON.stringify(s);
  // Version 4 is containerd v2.4's own (what `containerd config migrate` writes for a version 3 file).
  return `version = 4
root = ${q(join(o.dir, "root"))}
state = ${q(join(o.dir, "state"))}
# No drop-ins: containerd follows only the imports of the files it loads, and /etc/containerd/conf.d (the
# default) holds a system containerd's settings, not this node's.
imports = []
# NRI would listen on /var/run/nri; opt would install to /opt/containerd; the snapshotters other than overlayfs
# and native are not needed.
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

# In version 4 the servers are plugins: a [grpc] table would be ignored and the system's socket taken.
[plugins.'io.containerd.server.v1.grpc']
  address = ${q(o.socket)}
[plugins.'io.containerd.server.v1.ttrpc']
  address = ${q(`${o.socket}.ttrpc`)}

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  # Pull with the CRI's own client, which reads the registry hosts below (the local registry is plain HTTP).
  use_local_image_pull = true
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = ${q(o.pauseImage)}
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = ${q(join(o.dir, "certs.d"))}

[plugins.'io.containerd.cri.v1.runtime']
  # This machine's root may lack CAP_SYS_RESOURCE: without this runc fails to lower a container's oom_score_adj
  # ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  # Network namespaces under the state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        # runc is built without seccomp (no libseccomp here): this wrapper drops the profiles containerd writes for
        # the RuntimeDefault the kubelet asks for every sandbox (e2e/controlplane/node/runc-noseccomp/main.go).
        BinaryName = ${q(join(o.binDir, "runc-noseccomp"))}
        Root = ${q(join(o.dir, "runc"))}
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [${q(o.binDir)}]
    conf_dir = ${q(o.cniConf)}
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
}

/** The kubelet's configuration: cgroupfs, webhook authentication and authorization, everything under `dir`. */
export function kubeletConfig(o: { caFile: string; socket: string; nodeIP: string; port: number; healthzPort: number; dir: string; taintEffect?: "NoSchedule" | "PreferNoSchedule" }): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${o.nodeIP}
port: ${o.port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${o.healthzPort}
containerRuntimeEndpoint: unix://${o.socket}
imageServiceEndpoint: unix://${o.socket}
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
# The API server's client certificate is signed by the control plane's CA; what it may do is asked of the API
# server (SubjectAccessReview). No anonymous access.
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true, cacheTTL: 10s }
  x509: { clientCAFile: ${JSON.stringify(o.caFile)} }
authorization:
  mode: Webhook
  webhook: { cacheAuthorizedTTL: 10s, cacheUnauthorizedTTL: 5s }
registerWithTaints:
- { key: ${REAL_NODE_TAINT}, value: "true", effect: ${o.taintEffect ?? "NoSchedule"} }
rotateCertificates: false
serverTLSBootstrap: false
podLogsDir: ${JSON.stringify(join(o.dir, "pods"))}
volumePluginDir: ${JSON.stringify(join(o.dir, "volume-plugins"))}
maxPods: 20
# Graceful node shutdown would take a systemd inhibitor lock; this node is stopped by its harness.
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
# A shared test machine's disk may be fuller than the defaults (10-15 % free) allow; evict only when nearly full.
evictionHard: { memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1% }
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
nodeStatusUpdateFrequency: 5s
`;
}

/** The pids of this machine's processes whose executable is `exe`. */
async function pidsOf(exe: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    if ((await readlink(`/proc/${entry}/exe`).catch(() => "")) === exe) pids.push(Number(entry));
  }
  return pids;
}

/** The directories of real nodes whose owning process is still alive. */
async function liveRealNodes(): Promise<string[]> {
  const live: string[] = [];
  for (const d of await realNodeDirs()) {
    const owner = await readOwner(d);
    if (owner && owner.pid !== process.pid && alive(owner.pid)) live.push(`${d} (pid ${owner.pid})`);
  }
  return live;
}

async function realNodeDirs(): Promise<string[]> {
  return (await readdir(tmpdir()).catch(() => [] as string[])).filter((f) => f.startsWith(DIR_PREFIX)).map((f) => join(tmpdir(), f));
}

async function readOwner(dir: string): Promise<{ pid: number; binDir: string; bridge: string } | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, "owner.json"), "utf8")) as { pid: number; binDir: string; bridge: string };
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Cleans up after real nodes whose owner died without stopping them: their directories, and kubepods cgroups,
 * bridges, shims and CNI results that no running kubelet accounts for.
 */
export async function cleanUpCrashedRuns(binDir: string, bridge: string, progress: (line: string) => void = () => undefined): Promise<void> {
  const stale: Array<{ dir: string; binDir: string; bridge: string }> = [];
  for (const d of await realNodeDirs()) {
    const owner = await readOwner(d);
    if (!owner || !alive(owner.pid)) stale.push({ dir: d, binDir: owner?.binDir ?? binDir, bridge: owner?.bridge ?? bridge });
  }
  // Their kubelet, containerd and registry first (a crashed owner leaves them running): those whose command
  // line names the stale directory.
  const killed: number[] = [];
  for (const s of stale) {
    for (const name of ["kubelet", "containerd", "crane"]) {
      for (const pid of await pidsOf(join(s.binDir, name))) {
        const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
        if (cmdline.includes(s.dir)) {
          process.kill(pid, "SIGKILL");
          killed.push(pid);
        }
      }
    }
  }
  await waitFor(async () => killed.every((pid) => !alive(pid)), 10_000, () => `processes ${killed.join(", ")} did not die`)
    .catch(rethrow("cleaning up a crashed run"));
  const kubelets = await kubeletsRunning();
  const kubepodsLeft = (await leftovers([], [])).cgroups.length > 0;
  if (stale.length === 0 && (kubelets.length > 0 || !kubepodsLeft)) return;
  progress(`real node: cleaning up after ${stale.length} crashed run(s)${killed.length ? ` (killed ${killed.length} of their processes)` : ""}` +
    `${kubepodsLeft && kubelets.length === 0 ? ", and a kubepods cgroup no kubelet owns" : ""}`);
  if (kubelets.length > 0) {
    // Another kubelet owns the kubepods cgroup and the shims: only the stale directories' mounts go.
    for (const s of stale) {
      await nodeclean(binDir, ["clean", "--umount", s.dir]);
      await rm(s.dir, { recursive: true, force: true });
    }
    return;
  }
  const args = ["clean", "--kill-cgroup", KUBEPODS_CGROUP, "--kill-exe", join(binDir, "containerd-shim-runc-v2")];
  for (const s of stale) {
    if (s.binDir !== binDir) args.push("--kill-exe", join(s.binDir, "containerd-shim-runc-v2"));
    args.push("--umount", s.dir);
  }
  args.push("--rm-cgroup", KUBEPODS_CGROUP, "--glob", join(CNI_CACHE, `${CNI_NETWORK}-*`));
  for (const b of new Set([bridge, ...stale.map((s) => s.bridge)])) args.push("--link", b);
  const removed = (await nodeclean(binDir, args)).trim();
  progress(`real node: ${removed ? removed.split("\n").length : 0} leftover(s) killed, unmounted or removed`);
  for (const s of stale) {
    await removeLogLinks(s.dir);
    await removeRunFiles(s.dir);
    await rm(s.dir, { recursive: true, force: true });
  }
  await removeFixedPaths();
}

/** The kubelets running on this machine, any binary named kubelet: "pid path" each. */
async function kubeletsRunning(): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const exe = await readlink(`/proc/${entry}/exe`).catch(() => "");
    if (exe.endsWith("/kubelet")) found.push(`${entry} ${exe}`);
  }
  return found;
}

/**
 * Removes the files a node in `dir` left at fixed paths for its sandboxes and containers when they were not
 * stopped (a crash, a kill): their shims' sockets in /run/containerd/s (named by a hash of containerd's socket,
 * the namespace and the id, as containerd's shim.CreateSocketAddress does) and go-cni's cached results
 * (<network>-<id>-<interface>) in /var/lib/cni/results. The ids are the task directories in containerd's state.
 */
async function removeRunFiles(dir: string): Promise<void> {
  const socket = join(dir, "containerd", "containerd.sock");
  const ids = await readdir(join(dir, "containerd", "state", "io.containerd.runtime.v2.task", CRI_NAMESPACE)).catch(() => [] as string[]);
  if (ids.length === 0) return;
  for (const id of ids) {
    const hash = createHash("sha256").update(join(socket, CRI_NAMESPACE, id)).digest("hex");
    await unlink(join(SHIM_SOCKETS, hash)).catch(() => undefined);
  }
  for (const f of await readdir(CNI_CACHE).catch(() => [] as string[])) {
    if (ids.some((id) => f.includes(`-${id}-`))) await unlink(join(CNI_CACHE, f)).catch(() => undefined);
  }
}

/** Removes kubelet's links in /var/log/containers that point into `dir`, and the directory if that empties it. */
async function removeLogLinks(dir: string): Promise<void> {
  for (const f of await readdir(CONTAINER_LOG_LINKS).catch(() => [] as string[])) {
    const target = await readlink(join(CONTAINER_LOG_LINKS, f)).catch(() => "");
    if (target.startsWith(`${dir}/`)) await unlink(join(CONTAINER_LOG_LINKS, f)).catch(() => undefined);
  }
  await removeEmptyDirs([CONTAINER_LOG_LINKS]);
}

/**
 * Removes what the node's components leave at fixed paths outside its directory: the kubelet's device-plugin
 * socket, and the directories containerd's shims, go-cni and the kubelet create there, when they are empty.
 */
async function removeFixedPaths(): Promise<void> {
  await unlink(join(DEVICE_PLUGINS, "kubelet.sock")).catch(() => undefined);
  // /run/mount is util-linux's, made empty by the first mount(8) the kubelet runs (tmpfs for projected volumes).
  await removeEmptyDirs([...REAL_NODE_FIXED_PATHS]);
}

/** rmdir each directory, in order, that exists and is empty: the fixed paths the node's components create. */
async function removeEmptyDirs(dirs: string[]): Promise<void> {
  for (const d of dirs) await rmdir(d).catch(() => undefined);
}

/**
 * What a real node in `dirs` left on this machine: mounts under them, kubepods cgroups, the bridges, and the
 * processes whose executable is one of `exes`.
 */
export async function leftovers(dirs: string[], bridges: string[], exes: string[] = []): Promise<Leftovers> {
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const mounts = mountinfo.split("\n").map((l) => (l.split(" ")[4] ?? "").replace(/\\040/g, " "))
    .filter((m) => m && dirs.some((d) => m === d || m.startsWith(`${d}/`)));
  const cgroups: string[] = [];
  for (const h of await readdir("/sys/fs/cgroup").catch(() => [] as string[])) {
    const p = join("/sys/fs/cgroup", h, KUBEPODS_CGROUP);
    if (existsSync(p)) cgroups.push(p);
  }
  if (existsSync(join("/sys/fs/cgroup", KUBEPODS_CGROUP))) cgroups.push(join("/sys/fs/cgroup", KUBEPODS_CGROUP));
  const links = bridges.filter((b) => existsSync(join("/sys/class/net", b)));
  const processes: string[] = [];
  for (const exe of exes) for (const pid of await pidsOf(exe)) processes.push(`${pid} ${exe}`);
  return { mounts: [...new Set(mounts)], cgroups: [...new Set(cgroups)], links, processes };
}

interface TeardownContext {
  cp: RealNodeControlPlane;
  nodeName: string;
  dir: string;
  binDir: string;
  bridge: string;
  processes: Processes;
  forwards: Forward[];
  kubelet: () => Process | undefined;
  progress: (line: string) => void;
}

/**
 * Deletes the node's pods (the kubelet stops their containers and releases their network), stops the kubelet,
 * containerd and the registry, then kills, unmounts and removes whatever is left, and checks that nothing is.
 */
async function teardown(c: TeardownContext): Promise<void> {
  const { cp, nodeName, dir, binDir, bridge } = c;
  c.progress(`real node: stopping ${nodeName}`);
  const kubelet = c.kubelet();
  const kubeletUp = kubelet !== undefined && kubelet.child.exitCode === null && kubelet.child.signalCode === null;
  // The control plane may be gone already (its owner stopped it first): every call here is best effort, bounded.
  const kubectl = (args: string[]) => cp.kubectl([...args, "--request-timeout=10s"]).catch(() => undefined);
  if (kubeletUp) {
    await kubectl(["cordon", nodeName]);
    await kubectl(["delete", "pods", "--all-namespaces", `--field-selector=spec.nodeName=${nodeName}`, "--grace-period=5", "--wait=false"]);
    await waitFor(async () => {
      const r = await cp.kubectl(["get", "pods", "--all-namespaces", `--field-selector=spec.nodeName=${nodeName}`, "-o", "name", "--request-timeout=5s"]);
      return r.code !== 0 || r.stdout.trim() === "";
    }, 30_000, () => "").catch(() => c.progress("real node: pods still there after 30 s; killing their containers"));
    // A sandbox being created when its pod was deleted is stopped by the kubelet a little later: give it the time
    // to stop through containerd (the CNI plugins then release its network) before anything is killed.
    const tasks = join(dir, "containerd", "state", "io.containerd.runtime.v2.task", CRI_NAMESPACE);
    await waitFor(async () => (await readdir(tasks).catch(() => [] as string[])).length === 0, 15_000, () => "")
      .catch(() => c.progress("real node: sandboxes still there after 15 s; killing them"));
  }
  // The kubelet first (it would register the Node again), then containerd and the registry.
  await c.processes.stopAll(10_000);
  await Promise.all(c.forwards.map((f) => f.close()));
  await kubectl(["delete", "node", nodeName, "--ignore-not-found", "--wait=false"]);
  await kubectl(["delete", "clusterrolebinding", `slipway-real-node:${nodeName}`, "--ignore-not-found"]);
  const shim = join(binDir, "containerd-shim-runc-v2");
  await nodeclean(binDir, ["clean", "--kill-cgroup", KUBEPODS_CGROUP, "--kill-exe", shim, "--umount", dir,
    "--rm-cgroup", KUBEPODS_CGROUP, "--link", bridge, "--glob", join(CNI_CACHE, `${CNI_NETWORK}-*`)]);
  await removeLogLinks(dir);
  await removeRunFiles(dir);
  await removeFixedPaths();
  const left = await leftovers([dir], [bridge], [shim, join(binDir, "containerd"), join(binDir, "kubelet")]);
  const described = describeLeftovers(left);
  if (described) throw new RealNodeError("teardown", `left on the machine: ${described} (directory ${dir} kept)`);
  await rm(dir, { recursive: true, force: true });
  c.progress(`real node: ${nodeName} stopped; no mount, cgroup, bridge or process left`);
}

/** One line naming what is left, or "" when nothing is. */
export function describeLeftovers(l: Leftovers): string {
  return [
    l.mounts.length ? `mounts ${l.mounts.join(" ")}` : "",
    l.cgroups.length ? `cgroups ${l.cgroups.join(" ")}` : "",
    l.links.length ? `links ${l.links.join(" ")}` : "",
    l.processes.length ? `processes ${l.processes.join(", ")}` : "",
  ].filter(Boolean).join("; ");
}

/** An IPv4 CIDR: its prefix length, network address and mask (as unsigned 32-bit numbers) and its n-th address. */
export function parseCidr(cidr: string): { prefix: number; base: number; mask: number; host(n: number): string } {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const prefix = m ? Number(m[5]) : NaN;
  if (!m || octets.some((o) => o > 255) || prefix < 8 || prefix > 30) throw new Error(`${cidr} is not an IPv4 CIDR with a prefix of 8 to 30 bits`);
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  const base = (octets.reduce((a, o) => a * 256 + o, 0) & mask) >>> 0;
  return {
    prefix, base, mask,
    host(n: number) {
      if (n <= 0 || n >= 2 ** (32 - prefix) - 1) throw new Error(`${cidr} has no host number ${n}`);
      const a = (base + n) >>> 0;
      return [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join(".");
    },
  };
}

/**
 * The routes in `routeTable` (the text of /proc/net/route) whose network overlaps `cidr`, other than the default
 * route and those of the interface `except` (the node's own bridge), as "interface a.b.c.d/prefix".
 */
export function overlappingRoutes(routeTable: string, cidr: string, except: string): string[] {
  const net = parseCidr(cidr);
  const le = (hex: string) => (Buffer.from(hex, "hex").readUInt32LE(0)) >>> 0;
  const out: string[] = [];
  for (const line of routeTable.split("\n").slice(1)) {
    const [iface, destination, , , , , , maskHex] = line.trim().split(/\s+/);
    if (!iface || iface === except || !/^[0-9A-Fa-f]{8}$/.test(destination ?? "") || !/^[0-9A-Fa-f]{8}$/.test(maskHex ?? "")) continue;
    const dest = le(destination ?? "");
    const mask = le(maskHex ?? "");
    if (mask === 0) continue;
    const common = (mask & net.mask) >>> 0;
    if (((dest & common) >>> 0) === ((net.base & common) >>> 0)) {
      const prefix = mask.toString(2).replace(/0+$/, "").length;
      out.push(`${iface} ${[dest >>> 24, (dest >>> 16) & 255, (dest >>> 8) & 255, dest & 255].join(".")}/${prefix}`);
    }
  }
  return out;
}
