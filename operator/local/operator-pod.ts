// The operator as pods on the real node (local/realnode.ts): a kustomization over the install manifests
// (operator/deploy, or an overlay of it) that changes only what this machine needs: the image, by digest, the one
// local/operator-image.ts assembled and pushed to the node's registry; the placement on the real node (its label
// and taint); and the way to the API server. Pods on the node's bridge cannot reach the `kubernetes` Service's
// ClusterIP (there is no kube-proxy), so the kubelet's KUBERNETES_SERVICE_HOST/PORT are overridden with the
// name the API server's certificate holds, `kubernetes.default.svc`, which hostAliases resolves in the pod to the
// node's forward to the API server (RealNode.apiServer). The in-cluster config, the ServiceAccount's token and the
// RBAC are the install's own.
import { writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { stringify } from "yaml";
import { realNodePlacement } from "./realnode.js";

/** The placeholder image operator/deploy/deployment.yaml names. */
export const INSTALL_IMAGE = "ghcr.io/slipway-dev/slipway-operator";
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
