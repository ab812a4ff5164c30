// Real Argo CD against the local control plane: the application controller, the repo-server and a cmp-server
// running Slipway's Config Management Plugin (samples/argocd/plugin.yaml), as processes, with the one binary
// e2e/controlplane/build.sh builds from Argo CD's Go module (it picks its role from ARGOCD_BINARY_NAME, as from
// the name it is started under). Argo CD's CRDs and base ConfigMaps/Secret are the module's own
// `manifests/crds` and `manifests/base/config`, which build.sh copies beside the binary; Slipway's health checks
// are samples/gitops/argocd/argocd-cm-health.yaml as shipped. The Redis the controller and repo-server keep
// their caches in is miniredis (argocd-redis, from the same module graph), so no Redis server is installed.
import { existsSync } from "node:fs";
import { createConnection } from "node:net";
import { gunzipSync } from "node:zlib";
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { freePort, waitFor, type ControlPlane } from "../../operator/local/controlplane.js";
import { Processes, tail, type Process } from "../../operator/local/processes.js";
import { build, repoRoot } from "../../operator/local/tools.js";

export interface ArgoCd {
  /**
   * The destination cluster Applications name (`destination.name`): the local control plane, registered as an
   * Argo CD cluster Secret. Argo CD runs outside the cluster here, so its built-in in-cluster destination
   * (`https://kubernetes.default.svc`, read from a pod's service account) does not exist.
   */
  readonly cluster: string;
  /** The namespace Argo CD runs in and reads its Applications, AppProjects, argocd-cm and argocd-secret from. */
  readonly namespace: string;
  /**
   * The Application's resource tree as the application controller stores it for argocd-server and the UI (in
   * Redis, key `app|resources-tree|<name>|<cache version>.gz`): managed resources and their children.
   */
  resourceTree(application: string): Promise<ResourceTree | undefined>;
  /** Last lines of a component's log: argocd-application-controller, argocd-repo-server, argocd-cmp-server, argocd-redis. */
  logTail(component: string, lines?: number): Promise<string>;
  stop(): Promise<void>;
}

export interface ResourceRef {
  group?: string;
  kind: string;
  namespace?: string;
  name: string;
}

export interface ResourceTree {
  nodes?: (ResourceRef & { parentRefs?: ResourceRef[]; health?: { status?: string; message?: string } })[];
  orphanedNodes?: ResourceRef[];
}

export interface ArgoCdOptions {
  /** Namespace for Argo CD's own objects; created, and deleted on stop. */
  namespace: string;
  /** Extra data for argocd-cm, over the shipped health checks. */
  argocdCm?: Record<string, string>;
  /** Extra environment for the application controller (its ARGOCD_APPLICATION_CONTROLLER_* settings). */
  controllerEnv?: Record<string, string>;
}

const CLUSTER = "local";

/** Set (by harness/run.ts) to the directory build.sh --argocd printed, so test files skip build.sh. */
export const ENV_ARGOCD_DIR = "SLIPWAY_ARGOCD_DIR";

/** The directory holding Argo CD's binaries, manifests and scripts (built by build.sh --argocd if missing). */
export function argocdDir(): string {
  const given = process.env[ENV_ARGOCD_DIR];
  if (given) {
    if (!existsSync(join(given, "argocd")) || !existsSync(join(given, "argocd-redis"))) throw new Error(`${ENV_ARGOCD_DIR}=${given} holds no argocd and argocd-redis`);
    return given;
  }
  const dir = build("--argocd");
  process.env[ENV_ARGOCD_DIR] = dir;
  return dir;
}

/** Argo CD's cache format version (common.CacheVersion in v3.6.1), part of every Redis key it writes. */
const CACHE_VERSION = "1.8.3";

/** One Redis GET over RESP: the value's bytes, or undefined when the key does not exist. */
function redisGet(port: number, key: string): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    let data = Buffer.alloc(0);
    const fail = (err: Error) => {
      socket.destroy();
      reject(new Error(`argocd: Redis GET ${key} failed: ${err.message}`));
    };
    socket.setTimeout(5000, () => fail(new Error("timed out")));
    socket.on("error", fail);
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const eol = data.indexOf("\r\n");
      if (eol < 0) return;
      const header = data.subarray(0, eol).toString();
      if (header.startsWith("-")) return fail(new Error(header.slice(1)));
      if (!header.startsWith("$")) return fail(new Error(`unexpected reply ${JSON.stringify(header)}`));
      const size = Number(header.slice(1));
      if (size < 0) {
        socket.end();
        return resolve(undefined);
      }
      if (data.length < eol + 2 + size) return;
      socket.end();
      resolve(data.subarray(eol + 2, eol + 2 + size));
    });
    socket.write(`*2\r\n$3\r\nGET\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n`);
  });
}

type Component = "argocd-redis" | "argocd-repo-server" | "argocd-cmp-server" | "argocd-application-controller";

/** Applies YAML documents into `namespace` (their own namespace, if any, replaced). */
async function applyInto(cp: ControlPlane, namespace: string, docs: Record<string, unknown>[]): Promise<void> {
  const yaml = docs.map((d) => {
    const meta = (d.metadata ?? {}) as Record<string, unknown>;
    return stringify({ ...d, metadata: { ...meta, namespace } });
  }).join("---\n");
  await cp.kubectlOk(["apply", "--server-side", "--force-conflicts", "--field-manager=argocd-install", "-f", "-"], { input: yaml, what: `argocd: cannot apply Argo CD's base config into ${namespace}` });
}

async function yamlDocs(path: string): Promise<Record<string, unknown>[]> {
  return parseAllDocuments(await readFile(path, "utf8"))
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => d !== null && typeof d === "object" && "kind" in d);
}

/** The CRDs Argo CD's Applications need, from the module's manifests/crds (idempotent, shared by every caller). */
export async function installArgoCdCrds(cp: ControlPlane, dir: string): Promise<void> {
  const crds = join(dir, "manifests", "crds");
  const files = ["application-crd.yaml", "appproject-crd.yaml"].map((f) => join(crds, f));
  await cp.kubectlOk(["apply", "--server-side", "--force-conflicts", ...files.flatMap((f) => ["-f", f])], { what: `argocd: cannot install Argo CD's CRDs from ${crds}` });
  // Polled rather than `kubectl wait`, which fails on a CRD that has no conditions yet.
  for (const crd of ["applications.argoproj.io", "appprojects.argoproj.io"]) {
    await waitFor(async () => (await cp.kubectl(["get", "crd", crd, "-o", "jsonpath={.status.conditions[?(@.type==\"Established\")].status}"])).stdout === "True",
      60_000, () => `argocd: CRD ${crd} not established`);
  }
}

/**
 * Starts Argo CD in `namespace` on the control plane. The repo-server reaches Git over whatever URL an
 * Application names (the local Git server), runs the machine's git, and hands plugin sources to the cmp-server
 * over a unix socket in a temporary directory; the cmp-server runs `slipway-render` (this repository's
 * dist/functions/main.js) and the kustomize build.sh builds, as the plugin's sidecar image would.
 */
export async function startArgoCd(cp: ControlPlane, opts: ArgoCdOptions): Promise<ArgoCd> {
  const dir = argocdDir();
  const binary = join(dir, "argocd");
  const work = await mkdtemp(join(tmpdir(), "slipway-argocd-"));
  const logs = join(work, "logs");
  const sockets = join(work, "plugins");
  const cmpConfig = join(work, "cmp-config");
  const bin = join(work, "bin");
  await Promise.all([logs, sockets, cmpConfig, bin, ...["ssh", "tls", "gpg"].map((d) => join(work, d))].map((d) => mkdir(d, { recursive: true })));
  const processes = new Processes(logs);
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    await processes.stopAll();
    await cp.kubectl(["delete", "namespace", opts.namespace, "--wait=false"]);
    await rm(work, { recursive: true, force: true });
  })());

  const logTail = (component: string, lines = 40) => tail(join(logs, `${component}.log`), lines);

  const start = (name: Component, path: string, args: string[], env: Record<string, string> = {}) =>
    processes.start(name, path, args, {
      cwd: work,
      // No GnuPG (commit signature verification is off, as it is unless a project asks for it) and the
      // container image's /app/config paths moved into the temporary directory.
      extraEnv: {
        ARGOCD_BINARY_NAME: name, HOME: work, TMPDIR: work, ARGOCD_GPG_ENABLED: "false",
        ARGOCD_SSH_DATA_PATH: join(work, "ssh"), ARGOCD_TLS_DATA_PATH: join(work, "tls"), ARGOCD_GNUPGHOME: join(work, "gpg"), ...env,
      },
    });

  try {
    await installArgoCdCrds(cp, dir);
    await cp.kubectlOk(["create", "namespace", opts.namespace], { what: `argocd: cannot create namespace ${opts.namespace}` });
    // Argo CD's base config as released (argocd-cm, argocd-cmd-params-cm, argocd-rbac-cm, argocd-secret, …),
    // then Slipway's health checks and tracking method merged into argocd-cm, as the sample says to.
    const base = join(dir, "manifests", "base", "config");
    const baseDocs = (await Promise.all((await readdir(base)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
      .map((f) => yamlDocs(join(base, f))))).flat();
    const health = (await yamlDocs(join(repoRoot, "samples", "gitops", "argocd", "argocd-cm-health.yaml")))[0];
    if (!health) throw new Error("argocd: samples/gitops/argocd/argocd-cm-health.yaml holds no ConfigMap");
    const docs = baseDocs.map((d) => {
      if (d.kind !== "ConfigMap" || (d.metadata as { name?: string } | undefined)?.name !== "argocd-cm") return d;
      return { ...d, data: { ...(d.data as Record<string, string> | undefined), ...(health.data as Record<string, string>), ...opts.argocdCm } };
    });
    await applyInto(cp, opts.namespace, docs);
    // The local control plane as a cluster, with the admin client certificate of the harness's kubeconfig.
    const kc = cp.kubeConfig();
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    if (!cluster?.caData || !user?.certData || !user.keyData) throw new Error("argocd: the control plane's kubeconfig has no inline CA and client certificate");
    await applyInto(cp, opts.namespace, [{
      apiVersion: "v1", kind: "Secret",
      metadata: { name: "cluster-local", labels: { "argocd.argoproj.io/secret-type": "cluster" } },
      stringData: {
        name: CLUSTER, server: cp.server,
        config: JSON.stringify({ tlsClientConfig: { caData: cluster.caData, certData: user.certData, keyData: user.keyData } }),
      },
    }]);

    // slipway-render as npm installs it (the compiled executable) and kustomize, for the plugin's commands.
    const render = join(repoRoot, "dist", "functions", "main.js");
    await chmod(render, 0o755);
    await symlink(render, join(bin, "slipway-render"));
    await symlink(build("--kustomize"), join(bin, "kustomize"));
    const plugin = await readFile(join(repoRoot, "samples", "argocd", "plugin.yaml"), "utf8");
    await writeFile(join(cmpConfig, "plugin.yaml"), plugin);

    const [redis, repo, repoMetrics, controllerMetrics] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const redisAddr = `127.0.0.1:${redis}`;
    start("argocd-redis", join(dir, "argocd-redis"), [redisAddr]);
    const plugins = { ARGOCD_PLUGINSOCKFILEPATH: sockets };
    start("argocd-cmp-server", binary, ["--config-dir-path", cmpConfig, "--loglevel", "info"],
      { ...plugins, PATH: `${bin}:${process.env.PATH ?? ""}` });
    start("argocd-repo-server", binary, ["--address", "127.0.0.1", "--port", String(repo), "--metrics-address", "127.0.0.1",
      "--metrics-port", String(repoMetrics), "--disable-tls", "--client-ca-path", "", "--redis", redisAddr, "--loglevel", "info"],
    { ...plugins, PATH: `${bin}:${join(dir, "scripts")}:${process.env.PATH ?? ""}` });
    start("argocd-application-controller", binary, ["--kubeconfig", cp.kubeconfigPath, "--namespace", opts.namespace,
      "--redis", redisAddr, "--repo-server", `127.0.0.1:${repo}`, "--repo-server-plaintext", "--metrics-port",
      String(controllerMetrics), "--loglevel", "info", "--status-processors", "4", "--operation-processors", "4"],
    // Health in status.resources; and Git polled every 15 s (timeout.reconciliation; 3 min by default), the
    // fallback when a refresh request is folded into a comparison already under way.
    { ARGOCD_APPLICATION_CONTROLLER_PERSIST_RESOURCE_HEALTH: "true", ARGOCD_RECONCILIATION_TIMEOUT: "15s", ...opts.controllerEnv });

    // Up when the controller serves its metrics (it has synced its caches) and the plugin's socket exists.
    let dead: Process | undefined;
    await waitFor(async () => {
      dead = processes.exited();
      if (dead) return true;
      const sock = (await readdir(sockets)).some((f) => f.endsWith(".sock"));
      const metrics = await fetch(`http://127.0.0.1:${controllerMetrics}/metrics`).then((r) => r.ok, () => false);
      return sock && metrics;
    }, 120_000, async () => `argocd: not up within 120 s; controller log:\n${await logTail("argocd-application-controller")}\n` +
      `cmp-server log:\n${await logTail("argocd-cmp-server")}`);
    if (dead) throw new Error(`argocd: ${dead.name} exited at start:\n${await logTail(dead.name, 10)}`);
    const resourceTree = async (application: string) => {
      const value = await redisGet(redis, `app|resources-tree|${application}|${CACHE_VERSION}.gz`);
      return value ? (JSON.parse(gunzipSync(value).toString("utf8")) as ResourceTree) : undefined;
    };
    return { cluster: CLUSTER, namespace: opts.namespace, resourceTree, logTail, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
