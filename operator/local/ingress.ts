// The ingress controller in front of the real node's pods: Traefik, built from the Go module proxy by
// e2e/controlplane/build.sh --traefik and run as a process on this machine against the local control plane.
// It serves the Ingresses of its IngressClass (and, with `gateway`, the Gateway API HTTPRoutes attached to its
// Gateway) on one plain-HTTP port on loopback, and routes to the pods' own IPs (their EndpointSlices): the real
// node's bridge makes those reachable from this machine, so no kube-proxy is needed. A pod on a kwok node has no
// address that answers, and Traefik says so (502 or 503).
//
// Traefik reads the cluster with a ServiceAccount token bound to the ClusterRoles its own module's docs give
// (copied beside the binary by build.sh), never with the admin's credentials, and it is told not to call home
// (no version check, no anonymous usage report): nothing here leaves the machine.
import { request } from "node:http";
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { freePort, type ControlPlane } from "./controlplane.js";
import { Processes, tail, untilUp } from "./processes.js";
import { buildInBackground } from "./tools.js";

/** The IngressClass (and GatewayClass) the controller serves. */
export const INGRESS_CLASS = "traefik";
/** The namespace of its ServiceAccount and of the Gateway it is given. */
export const INGRESS_NAMESPACE = "slipway-ingress";
const SERVICE_ACCOUNT = "traefik";

export interface IngressControllerOptions {
  /**
   * Also serve the Gateway API: install its standard CRDs (the version Traefik's module requires), a GatewayClass
   * and this Gateway in INGRESS_NAMESPACE, listening on the controller's port and taking routes from every
   * namespace.
   */
  gateway?: { name: string };
  progress?: (line: string) => void;
}

export interface IngressController {
  /** The IngressClass to give Slipway (SLIPWAY_INGRESS_CLASS). */
  readonly ingressClassName: string;
  /** The Gateway it serves (SLIPWAY_GATEWAY_NAME / SLIPWAY_GATEWAY_NAMESPACE), when started with `gateway`. */
  readonly gateway?: { name: string; namespace: string };
  /** Where it listens: 127.0.0.1:<port>, plain HTTP. A request's Host header picks the route. */
  readonly address: string;
  readonly port: number;
  /** Traefik's version, from versions.env. */
  readonly version: string;
  /** GET http://<host><path> through the controller (what `curl --resolve <host>:<port>:127.0.0.1` does). */
  get(host: string, path?: string): Promise<{ status: number; body: string }>;
  /** The last lines of Traefik's log (its access log included). */
  logTail(lines?: number): Promise<string>;
  stop(): Promise<void>;
}

/** The directory holding Traefik, its RBAC and the Gateway API CRDs, built on first use by build.sh --traefik. */
export function traefikBinaries(progress?: (line: string) => void): Promise<string> {
  return buildInBackground("--traefik", progress);
}

type Cluster = Pick<ControlPlane, "server" | "dir" | "kubectl" | "kubectlOk">;

/** Starts Traefik against `cp`; stops what it started if a step fails. */
export async function startIngressController(cp: Cluster, opts: IngressControllerOptions = {}): Promise<IngressController> {
  const progress = opts.progress ?? (() => undefined);
  const binDir = await traefikBinaries(progress);
  const version = (await readFile(join(binDir, "VERSION"), "utf8").catch(() => "")).trim();
  const dir = await mkdtemp(join(tmpdir(), "slipway-ingress-"));
  await mkdir(join(dir, "logs"));
  const processes = new Processes(join(dir, "logs"));
  const stop = async () => {
    await processes.stopAll();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const pingPort = await freePort();
    const apply = (what: string, docs: object[]) => cp.kubectlOk(["apply", "--server-side", "--force-conflicts", "--field-manager=slipway-local", "-f", "-"],
      { input: docs.map((d) => JSON.stringify(d)).join("\n"), what: `ingress controller: cannot apply ${what}` });

    progress(`ingress: Traefik ${version}: ServiceAccount ${INGRESS_NAMESPACE}/${SERVICE_ACCOUNT}, its RBAC and IngressClass ${INGRESS_CLASS}`);
    const roles = await traefikClusterRoles(binDir, opts.gateway !== undefined);
    await apply("Traefik's namespace, ServiceAccount, RBAC and IngressClass", [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: INGRESS_NAMESPACE } },
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: SERVICE_ACCOUNT, namespace: INGRESS_NAMESPACE } },
      ...roles.flatMap((role) => [role, {
        apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: role.metadata.name },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role.metadata.name },
        subjects: [{ kind: "ServiceAccount", name: SERVICE_ACCOUNT, namespace: INGRESS_NAMESPACE }],
      }]),
      { apiVersion: "networking.k8s.io/v1", kind: "IngressClass", metadata: { name: INGRESS_CLASS }, spec: { controller: "traefik.io/ingress-controller" } },
    ]);
    let gateway: { name: string; namespace: string } | undefined;
    if (opts.gateway) {
      gateway = { name: opts.gateway.name, namespace: INGRESS_NAMESPACE };
      progress(`ingress: the Gateway API's standard CRDs, GatewayClass ${INGRESS_CLASS} and Gateway ${INGRESS_NAMESPACE}/${gateway.name}`);
      const crds = join(binDir, "gateway-crds");
      const docs: object[] = [];
      for (const f of (await readdir(crds)).filter((n) => n.endsWith(".yaml")).sort()) {
        for (const d of parseAllDocuments(await readFile(join(crds, f), "utf8"))) if (d.contents) docs.push(d.toJS() as object);
      }
      await apply("the Gateway API CRDs", docs);
      await cp.kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd/gateways.gateway.networking.k8s.io", "crd/httproutes.gateway.networking.k8s.io", "crd/gatewayclasses.gateway.networking.k8s.io"],
        { what: "ingress controller: the Gateway API CRDs are not established" });
      await apply("the GatewayClass and Gateway", [
        { apiVersion: "gateway.networking.k8s.io/v1", kind: "GatewayClass", metadata: { name: INGRESS_CLASS }, spec: { controllerName: "traefik.io/gateway-controller" } },
        {
          apiVersion: "gateway.networking.k8s.io/v1", kind: "Gateway", metadata: { name: gateway.name, namespace: INGRESS_NAMESPACE },
          // Traefik binds a listener to the entry point whose port it names.
          spec: { gatewayClassName: INGRESS_CLASS, listeners: [{ name: "web", protocol: "HTTP", port, allowedRoutes: { namespaces: { from: "All" } } }] },
        },
      ]);
    }

    const token = await cp.kubectlOk(["create", "token", SERVICE_ACCOUNT, "-n", INGRESS_NAMESPACE, "--duration=24h"],
      { what: `ingress controller: cannot get a token for ${INGRESS_NAMESPACE}/${SERVICE_ACCOUNT}` });
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, token.trim(), { mode: 0o600 });
    const client = (provider: string) => [`--providers.${provider}.endpoint=${cp.server}`, `--providers.${provider}.token=${tokenFile}`,
      `--providers.${provider}.certAuthFilePath=${join(cp.dir, "ca.crt")}`];
    const args = [
      "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false", "--log.level=INFO", "--accessLog=true",
      `--entryPoints.web.address=127.0.0.1:${port}`, `--entryPoints.ping.address=127.0.0.1:${pingPort}`, "--ping=true", "--ping.entryPoint=ping",
      "--providers.kubernetesIngress=true", ...client("kubernetesIngress"), `--providers.kubernetesIngress.ingressClass=${INGRESS_CLASS}`,
      // What kubectl get ingress shows as ADDRESS.
      "--providers.kubernetesIngress.ingressEndpoint.ip=127.0.0.1",
      ...(gateway ? ["--providers.kubernetesGateway=true", ...client("kubernetesGateway")] : []),
    ];
    progress(`ingress: starting Traefik on 127.0.0.1:${port}`);
    const traefik = processes.start("traefik", join(binDir, "traefik"), args, { cwd: dir });
    await untilUp(traefik, async () => (await fetch(`http://127.0.0.1:${pingPort}/ping`)).status === 200, 30_000, `an answer to /ping on 127.0.0.1:${pingPort}`)
      .catch((e: unknown) => {
        throw new Error(`ingress controller: Traefik: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      });

    return {
      ingressClassName: INGRESS_CLASS, gateway, address: `127.0.0.1:${port}`, port, version,
      get: (host, path = "/") => httpGet(port, host, path),
      logTail: (lines) => tail(traefik.logPath, lines),
      stop,
    };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

interface ClusterRole { apiVersion: string; kind: "ClusterRole"; metadata: { name: string }; rules: unknown[] }

/**
 * The ClusterRoles of Traefik's docs (build.sh copied them as rbac/ingress.yml and rbac/gateway.yml), renamed
 * slipway-traefik-*: the Ingress provider's (which also names Traefik's own CRDs, not installed here) and, for the
 * Gateway API, the gateway provider's.
 */
async function traefikClusterRoles(binDir: string, gateway: boolean): Promise<ClusterRole[]> {
  const roles: ClusterRole[] = [];
  for (const file of gateway ? ["ingress", "gateway"] : ["ingress"]) {
    const text = await readFile(join(binDir, "rbac", `${file}.yml`), "utf8");
    const role = parseAllDocuments(text).map((d) => d.toJS() as { kind?: string; rules?: unknown[] }).find((d) => d.kind === "ClusterRole");
    if (!role?.rules) throw new Error(`ingress controller: no ClusterRole in Traefik's rbac/${file}.yml`);
    roles.push({ apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: `slipway-traefik-${file}` }, rules: role.rules });
  }
  return roles;
}

/** One GET to 127.0.0.1:`port` with Host `host`. */
function httpGet(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers: { host }, timeout: 5_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET http://${host}${path} through 127.0.0.1:${port} timed out`)));
    req.on("error", reject);
    req.end();
  });
}
