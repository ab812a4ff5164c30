// The operator as pods on the real node (local/realnode.ts): a kustomization over the install manifests
// (operator/deploy, or an overlay of it) that changes only what this machine needs: the image, by digest, the one
// local/operator-image.ts assembled and pushed to the node's registry; the placement on the real node (its label
// and taint); and the way to the API server. Pods on the node's bridge cannot reach the `kubernetes` Service's
// ClusterIP (there is no kube-proxy), so the kubelet's KUBERNETES_SERVICE_HOST/PORT are overridden with the
// name the API server's certificate holds, `kubernetes.default.svc`, which hostAliases resolves in the pod to the
// node's forward to the API server (RealNode.apiServer). The in-cluster config, the ServiceAccount's token and the
// RBAC are the install's own.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { stringify } from "yaml";
import { waitFor, type ControlPlane } from "./controlplane.js";
import { buildOperatorImage, type OperatorImage } from "./operator-image.js";
import { realNodePlacement, type RealNode } from "./realnode.js";

/** The placeholder image operator/deploy/deployment.yaml names. */
export const INSTALL_IMAGE = "ghcr.io/slipway-dev/slipway-operator";
export const OPERATOR_NAMESPACE = "slipway-system";
export const OPERATOR_DEPLOYMENT = "slipway-operator";
/** The install's labels on the operator's pods. */
export const OPERATOR_POD_SELECTOR = "app.kubernetes.io/name=slipway,app.kubernetes.io/component=operator";
/** The API server's name in its certificate, resolved in the operator's pods by hostAliases. */
export const API_SERVER_NAME = "kubernetes.default.svc";

export interface OperatorPodOptions {
  /** The kustomization directory to build on: operator/deploy or an overlay of it. */
  base: string;
  /** The operator image by digest: registry/name@sha256:… */
  image: string;
  /** Where pods on the node reach the API server (RealNode.apiServer). */
  apiServer: { host: string; port: number };
  /** Replicas of the Deployment; default the install's own (2). */
  replicas?: number;
}

/** Writes the kustomization into `dir` (kustomize wants its base as a relative path, so dir may be anywhere). */
export async function writeOperatorPodOverlay(dir: string, o: OperatorPodOptions): Promise<void> {
  await writeFile(join(dir, "kustomization.yaml"), operatorPodKustomization(relative(dir, o.base), o));
}

/** The kustomization's text, with `base` relative to its directory. */
export function operatorPodKustomization(base: string, o: OperatorPodOptions): string {
  const m = /^(.+)@(sha256:[0-9a-f]{64})$/.exec(o.image);
  if (!m) throw new Error(`the operator image must be given by digest, not ${o.image}`);
  const patch = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "slipway-operator", namespace: "slipway-system" },
    spec: {
      ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
      template: {
        spec: {
          nodeSelector: realNodePlacement.nodeSelector,
          tolerations: realNodePlacement.tolerations,
          hostAliases: [{ ip: o.apiServer.host, hostnames: [API_SERVER_NAME] }],
          containers: [{
            name: "operator",
            env: [
              { name: "KUBERNETES_SERVICE_HOST", value: API_SERVER_NAME },
              { name: "KUBERNETES_SERVICE_PORT", value: String(o.apiServer.port) },
            ],
          }],
        },
      },
    },
  };
  return stringify({
    apiVersion: "kustomize.config.k8s.io/v1beta1",
    kind: "Kustomization",
    resources: [base],
    images: [{ name: INSTALL_IMAGE, newName: m[1], digest: m[2] }],
    patches: [{ patch: stringify(patch) }],
  });
}

export interface OperatorPods {
  image: OperatorImage;
  /** Deletes the operator's Deployment and waits until its pods are gone (before the real node stops). */
  remove(): Promise<void>;
}

/**
 * Assembles the operator image, pushes it to the node's registry and installs Slipway from `base` with it on the
 * node (`kubectl apply --server-side -k`); with `settings`, first writes them to the Secret slipway-operator the
 * Deployment reads its environment from. Resolves once the rollout is complete; fails with the pods' last log lines.
 */
export async function installOperatorPods(cp: Pick<ControlPlane, "kubectl" | "kubectlOk">, node: RealNode,
  o: { base: string; settings?: Record<string, string>; replicas?: number; progress?: (line: string) => void }): Promise<OperatorPods> {
  const building = Date.now();
  const image = await buildOperatorImage(`${node.binDir}/crane`, node.registry);
  o.progress?.(`operator image: ${image.reference} (${image.files} files, Node ${image.nodeVersion}) assembled and pushed in ${((Date.now() - building) / 1000).toFixed(1)}s`);
  const dir = await mkdtemp(join(tmpdir(), "slipway-operator-pod-"));
  const remove = async () => {
    await cp.kubectl(["delete", "deployment", OPERATOR_DEPLOYMENT, "-n", OPERATOR_NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=60s"]);
    await waitFor(async () => (await cp.kubectl(["get", "pods", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_POD_SELECTOR, "-o", "name"])).stdout.trim() === "", 60_000,
      () => "the operator's pods are still there").catch((e: unknown) => o.progress?.(String(e)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await writeOperatorPodOverlay(dir, { base: o.base, image: image.reference, apiServer: node.apiServer, ...(o.replicas !== undefined ? { replicas: o.replicas } : {}) });
    if (o.settings) {
      // The namespace first, so the pods find the Secret when they start.
      await cp.kubectlOk(["apply", "--server-side", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: OPERATOR_NAMESPACE } }) });
      await cp.kubectlOk(["apply", "--server-side", "--force-conflicts", "-f", "-"], { input: JSON.stringify({
        apiVersion: "v1", kind: "Secret", metadata: { name: "slipway-operator", namespace: OPERATOR_NAMESPACE }, stringData: o.settings,
      }) });
    }
    // --force-conflicts: the CRDs may have been applied by kubectl before, as in the e2e suite.
    await cp.kubectlOk(["apply", "--server-side", "--force-conflicts", "-k", dir]);
    const rollout = await cp.kubectl(["rollout", "status", `deployment/${OPERATOR_DEPLOYMENT}`, "-n", OPERATOR_NAMESPACE, "--timeout=300s"]);
    if (rollout.code !== 0) {
      const pods = (await cp.kubectl(["get", "pods", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_POD_SELECTOR, "-o", "name"])).stdout.trim().split("\n").filter(Boolean);
      const logs = await Promise.all(pods.map(async (p) => {
        const r = await cp.kubectl(["logs", "-n", OPERATOR_NAMESPACE, p, "--tail=8"]);
        return `${p}'s log:\n${r.stdout}${r.stderr}`;
      }));
      throw new Error(`the operator's rollout on the real node did not complete: ${rollout.stderr.trim()}\n${logs.join("\n")}\nkubelet log:\n${await node.logTail("kubelet", 10)}`);
    }
  } catch (e) {
    await remove().catch(() => undefined);
    throw e;
  }
  o.progress?.(`operator: deployment ${OPERATOR_NAMESPACE}/${OPERATOR_DEPLOYMENT} rolled out on ${node.nodeName}`);
  return { image, remove };
}
