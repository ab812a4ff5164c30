import test from "ava";
import { kubectlFor } from "./controlplane.js";
import { putToolsOnPath } from "./tools.js";

// runKubectl runs the kubectl on PATH: the built one. Neither call below reaches an API server.
putToolsOnPath();
const { kubectlOk } = kubectlFor("/nonexistent/kubeconfig");

test("kubectlOk gives kubectl's stdout when it succeeds", async (t) => {
  t.regex(await kubectlOk(["version", "--client"]), /Client Version: v\d+\./);
});

test("kubectlOk throws `kubectl <args>: <stderr>` when kubectl fails, or `<what>: <stderr>`", async (t) => {
  const usage = "error: unknown flag: --no-such-flag\nSee 'kubectl get --help' for usage.";
  await t.throwsAsync(kubectlOk(["get", "--no-such-flag"]), { message: `kubectl get --no-such-flag: ${usage}` });
  await t.throwsAsync(kubectlOk(["get", "--no-such-flag"], { what: "cannot get" }), { message: `cannot get: ${usage}` });
});
