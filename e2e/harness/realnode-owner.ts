// A process that starts a real node on the run's control plane, runs a pod there and waits to be killed: the
// crashed owner e2e/realnode.e2e.ts leaves behind to check that the next real node cleans up after it.
// Prints "READY <node directory>" once the pod runs. Needs SLIPWAY_E2E_KUBECONFIG and SLIPWAY_E2E_DIR.
import { ENV_DIR, ENV_KUBECONFIG, kubectlFor, waitFor } from "../../operator/local/controlplane.js";
import { KubeConfig } from "@kubernetes/client-node";
import { realNodePlacement, startRealNode } from "../../operator/local/realnode.js";

const kubeconfigPath = process.env[ENV_KUBECONFIG];
const dir = process.env[ENV_DIR];
const namespace = process.argv[2];
if (!kubeconfigPath || !dir || !namespace) {
  console.error(`usage: ${ENV_KUBECONFIG}=… ${ENV_DIR}=… node realnode-owner.js NAMESPACE`);
  process.exit(2);
}
const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const { kubectl, kubectlOk } = kubectlFor(kubeconfigPath);
const node = await startRealNode({ server: kc.getCurrentCluster()?.server ?? "", dir, kubectl });
const pod = {
  apiVersion: "v1", kind: "Pod", metadata: { name: "left-behind", namespace },
  spec: { ...realNodePlacement, containers: [{ name: "pause", image: node.pauseImage }] },
};
await kubectlOk(["create", "-f", "-"], { input: JSON.stringify(pod), what: "cannot create pod" });
await waitFor(async () => (await kubectl(["get", "pod", "-n", namespace, "left-behind", "-o", "jsonpath={.status.phase}"])).stdout === "Running",
  90_000, () => "pod left-behind never ran");
console.log(`READY ${node.dir}`);
setInterval(() => undefined, 60_000);
