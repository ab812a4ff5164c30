// What the e2e files that run Slipway Apps on the real node share (realnode-apps.e2e.ts, realnode-lifecycle.e2e.ts):
// the operator's placement on the real node, a developer's kubeconfig, and one App seen through the real node's own
// state — its Releases, its web pods as the kubelet reports them, and their HTTP answers on their pod IPs.
import type { ExecutionContext } from "ava";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import type { App, Release } from "../../crds/v1alpha1.js";
import { startIngressController, type IngressController } from "../../operator/local/ingress.js";
import { realNodePlacement, startRealNode, type RealNode } from "../../operator/local/realnode.js";
import { installCrdsAndUserRoles, runCli, type Result } from "../cli-support.js";
import { buildEchoImage } from "./echo-image.js";
import { Operators, type OperatorProcess } from "./operator-process.js";
import { controlPlane, waitFor } from "./suite.js";

/** The placement the operator is given: exactly the real node's label and taint, as environment settings. */
export const placementEnv = {
  SLIPWAY_NODE_SELECTOR: Object.entries(realNodePlacement.nodeSelector).map(([k, v]) => `${k}=${v}`).join(","),
  SLIPWAY_TOLERATIONS: realNodePlacement.tolerations.map((t) => `${t.key}=${t.value}:${t.effect}`).join(","),
};

/** A ServiceAccount bound to slipway-developer in `namespace`, with a token kubeconfig (as cli-support's userWith). */
export async function developerKubeconfig(namespace: string, name: string, dir: string): Promise<string> {
  const cp = await controlPlane();
  await cp.kubectlOk(["create", "serviceaccount", name, "-n", namespace]);
  await cp.kubectlOk(["create", "rolebinding", `${name}-developer`, "--clusterrole=slipway-developer", `--serviceaccount=${namespace}:${name}`, "-n", namespace]);
  const token = (await cp.kubectlOk(["create", "token", name, "-n", namespace, "--duration=2h"])).trim();
  const cluster = cp.kubeConfig().getCurrentCluster();
  const ca = cluster?.caData ?? (cluster?.caFile ? (await readFile(cluster.caFile)).toString("base64") : "");
  const path = join(dir, "kubeconfig");
  await writeFile(path, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": name,
    clusters: [{ name: "e2e", cluster: { server: cp.server, "certificate-authority-data": ca } }],
    users: [{ name, user: { token } }],
    contexts: [{ name, context: { cluster: "e2e", user: name, namespace } }],
  }));
  return path;
}

export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

/** The pod is Ready by the kubelet's own status (its Ready condition). */
export function podReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
}

/** One App on the real node, driven by a developer with kubectl-slipway and read with the admin's kubectl. */
export class RealNodeApp {
  constructor(
    readonly node: RealNode,
    readonly namespace: string,
    readonly name: string,
    /** The port the App routes to: Slipway sets $PORT to it, and the echo server listens on $PORT. */
    readonly port: number,
    /** The developer's kubeconfig (developerKubeconfig). */
    readonly kubeconfig: string,
    /** Traefik in front of the App, when the fixture started one. */
    readonly ingress?: IngressController,
  ) {}

  /** The App's default host (`<app>.<namespace>.<domain>`, the default domain slipway.local). */
  get host(): string {
    return `${this.name}.${this.namespace}.slipway.local`;
  }

  /**
   * Waits until the App's URL, through the ingress controller, answers `expected` (Traefik follows the
   * EndpointSlices, so a new pod's answer comes a moment after it is Ready); fails with the last answer and
   * Traefik's log.
   */
  async urlAnswers(expected: string): Promise<void> {
    const c = this.ingress;
    if (!c) throw new Error("no ingress controller was started for this App");
    let last = "";
    await waitFor(async () => {
      const res = await c.get(this.host);
      last = `${res.status} ${res.body.trim()}`;
      return res.status === 200 && res.body.trim() === expected;
    }, 30_000, async () => `http://${this.host}/ through ${c.address} answered "${last}", not "${expected}"; Traefik's log:\n${await c.logTail(15)}`);
  }

  /** kubectl-slipway as the developer. */
  slipway(args: string[]): Promise<Result> {
    return runCli(args, { KUBECONFIG: this.kubeconfig }).done;
  }

  /** kubectl-slipway as the developer, still running: for `logs -f`. */
  spawnSlipway(args: string[]): ReturnType<typeof runCli> {
    return runCli(args, { KUBECONFIG: this.kubeconfig });
  }

  async getJson<T>(args: string[]): Promise<T> {
    return JSON.parse(await (await controlPlane()).kubectlOk([...args, "-n", this.namespace, "-o", "json"])) as T;
  }

  app(): Promise<App> {
    return this.getJson<App>(["get", "apps.slipway.dev", this.name]);
  }

  /** The release whose cause is `cause` (the newest such, numbered above `after`), once it is cut. */
  async releaseBy(cause: (r: Release) => boolean, what: string, after = 0): Promise<Release> {
    let found: Release | undefined;
    await waitFor(async () => {
      const list = (await this.getJson<{ items: Release[] }>(["get", "releases.slipway.dev", "-l", `slipway.dev/app=${this.name}`])).items;
      found = list.filter((r) => r.spec.version > after && cause(r)).sort((a, b) => b.spec.version - a.spec.version)[0];
      return found !== undefined;
    }, 60_000, () => `no release ${what} was cut`);
    if (!found) throw new Error(`no release ${what}`);
    return found;
  }

  /** The App's web pods that are not being deleted, as the API server has them from the kubelet. */
  async webPods(): Promise<V1Pod[]> {
    return (await this.getJson<{ items: V1Pod[] }>(["get", "pods", "-l", `slipway.dev/app=${this.name},slipway.dev/process=web`])).items
      .filter((p) => !p.metadata?.deletionTimestamp);
  }

  /**
   * Waits until `version` is live and Ready (the App's status), its Deployment rolled out and exactly `replicas`
   * pods of it run, Ready by the kubelet's readiness probe, and no other web pod; returns those pods.
   */
  async liveAndReady(t: ExecutionContext, version: number, replicas = 1): Promise<V1Pod[]> {
    const cp = await controlPlane();
    let app: App | undefined;
    await waitFor(async () => {
      app = await this.app();
      return app.status?.currentRelease === `v${version}` && app.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
    }, 120_000, async () => `App ${this.name} is not Ready on v${version}: ${JSON.stringify(app?.status)}\nkubelet log:\n${await this.node.logTail("kubelet", 20)}`);
    const rollout = await cp.kubectl(["rollout", "status", "-n", this.namespace, `deployment/${this.name}-web`, "--timeout=120s"]);
    t.is(rollout.code, 0, rollout.stderr);
    let pods: V1Pod[] = [];
    await waitFor(async () => {
      pods = await this.webPods();
      return pods.length === replicas && pods.every((p) => p.metadata?.labels?.["slipway.dev/release"] === `v${version}` && podReady(p));
    }, 60_000, () => `expected ${replicas} Ready web pod(s) of v${version}: ${pods.map((p) => `${p.metadata?.name} ${p.metadata?.labels?.["slipway.dev/release"]} ${p.status?.phase} ready=${podReady(p)}`).join(", ")}`);
    return pods;
  }

  /** A pod's answer to GET `path` on its pod IP at the port Slipway gave it ($PORT). */
  async answer(pod: V1Pod, path = "/"): Promise<string> {
    const res = await httpGet(`http://${pod.status?.podIP ?? ""}:${this.port}${path}`);
    if (res.status !== 200) throw new Error(`GET ${path} on pod ${pod.metadata?.name ?? ""} answered ${res.status}: ${res.body}`);
    return res.body.trim();
  }
}

/**
 * A real node with an operator placing its pods there, a namespace, the echo image pushed to the node's
 * registry and a developer "alice": what a real-node Apps file starts in its before hook (start) and stops in
 * its after.always hook (stop, which also undoes a start that failed half way).
 */
export class RealNodeFixture {
  node: RealNode | undefined;
  ingress: IngressController | undefined;
  operators: Operators | undefined;
  /** The operator process running now. */
  operator: OperatorProcess | undefined;
  image = "";
  namespace = "";
  #app: RealNodeApp | undefined;
  #kubeconfigDir = "";
  readonly #started = Date.now();

  /**
   * `label` names the file in logs, the namespace (e2e-<label>-…) and the kubeconfig's directory; `operatorEnv`
   * is added to the operator's environment after the real node's placement (placementEnv). With `ingress`, Traefik
   * (operator/local/ingress.ts) starts too, serving a Gateway of that name as well, and the operator routes
   * through its IngressClass.
   */
  constructor(readonly label: string, readonly appName: string, readonly port: number, readonly operatorEnv: Record<string, string> = {},
    readonly options: { ingress?: { gateway: string } } = {}) {}

  /** The App, once start() returned. */
  get app(): RealNodeApp {
    if (!this.#app) throw new Error("the real node did not start");
    return this.#app;
  }

  log(line: string): void {
    console.log(`${this.label}.e2e: ${line}`);
  }

  async start(): Promise<void> {
    const cp = await controlPlane();
    await installCrdsAndUserRoles();
    const node = await startRealNode(cp, { progress: (line) => this.log(line) });
    this.node = node;
    // No PORT in the image: the server listens where Slipway tells it to.
    this.image = await buildEchoImage(node, `samples/${this.label}`, { PATH: "/bin" });
    this.log(`node ${node.nodeName} Ready and ${this.image} pushed in ${this.#elapsed()}`);
    if (this.options.ingress) {
      this.ingress = await startIngressController(cp, { gateway: { name: this.options.ingress.gateway }, progress: (line) => this.log(line) });
    }

    this.namespace = `e2e-${this.label}-${randomBytes(3).toString("hex")}`;
    await cp.kubectlOk(["create", "namespace", this.namespace], { what: `cannot create namespace ${this.namespace}` });
    await waitFor(async () => (await cp.kubectl(["get", "serviceaccount", "default", "-n", this.namespace])).code === 0, 30_000,
      () => `no default ServiceAccount in ${this.namespace}`);
    // Not slipway-realnode-*: those are real nodes' directories, which a starting node may clean up.
    this.#kubeconfigDir = await mkdtemp(join(tmpdir(), `slipway-e2e-${this.label}-`));
    this.#app = new RealNodeApp(node, this.namespace, this.appName, this.port, await developerKubeconfig(this.namespace, "alice", this.#kubeconfigDir),
      this.ingress);

    this.operators = new Operators(cp, this.namespace);
    await this.restartOperator({});
  }

  /**
   * Starts the operator (stopping the one running first, with SIGTERM) with the placement, the ingress
   * controller's IngressClass, the fixture's operatorEnv and then `extra`; resolves once it has started.
   */
  async restartOperator(extra: Record<string, string>): Promise<OperatorProcess> {
    if (!this.operators) throw new Error("the fixture did not start");
    if (this.operator?.running) {
      this.operator.kill("SIGTERM");
      await this.operator.exited;
    }
    const ingressEnv: Record<string, string> = this.ingress ? { SLIPWAY_INGRESS_CLASS: this.ingress.ingressClassName } : {};
    this.operator = await this.operators.spawn(this.operator ? "operator (restarted)" : "operator", { ...placementEnv, ...ingressEnv, ...this.operatorEnv, ...extra });
    await this.operator.until("operator started", 60_000);
    return this.operator;
  }

  async stop(): Promise<void> {
    const cp = await controlPlane();
    await this.operators?.cleanup().catch((err: unknown) => this.log(`cleanup: ${String(err)}`));
    if (this.namespace) await cp.kubectl(["delete", "namespace", this.namespace, "--wait=false"]);
    await this.ingress?.stop();
    await this.node?.stop();
    if (this.#kubeconfigDir) await rm(this.#kubeconfigDir, { recursive: true, force: true });
    this.log(`done in ${this.#elapsed()}`);
  }

  #elapsed(): string {
    return `${((Date.now() - this.#started) / 1000).toFixed(1)}s`;
  }
}
