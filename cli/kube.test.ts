import test, { type ExecutionContext } from "ava";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "./kube.js";

async function kubeconfig(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "slipway-kc-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "config");
  await writeFile(file, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": "team-a",
    clusters: [{ name: "c", cluster: { server: "https://10.0.0.1:6443" } }],
    users: [{ name: "alice", user: { token: "t" } }, { name: "bob", user: { token: "u" } }],
    contexts: [
      { name: "team-a", context: { cluster: "c", user: "alice", namespace: "team-a" } },
      { name: "other", context: { cluster: "c", user: "bob" } },
    ],
  }));
  return file;
}

test("the namespace and the user recorded in changed-by come from the kubeconfig context", async (t) => {
  const kube = Session.connect({ kubeconfig: await kubeconfig(t) });
  t.is(kube.namespace, "team-a");
  t.is(kube.user, "alice");
  t.is(kube.server, "https://10.0.0.1:6443");
});

test("-n, --context and --as override the context's namespace and user", async (t) => {
  const file = await kubeconfig(t);
  t.is(Session.connect({ kubeconfig: file, namespace: "team-b" }).namespace, "team-b");
  const other = Session.connect({ kubeconfig: file, context: "other" });
  t.deepEqual([other.namespace, other.user], ["default", "bob"]);
  t.is(Session.connect({ kubeconfig: file, as: "carol" }).user, "carol");
  t.throws(() => Session.connect({ kubeconfig: file, context: "nope" }), { message: `context "nope" not found in kubeconfig` });
});
