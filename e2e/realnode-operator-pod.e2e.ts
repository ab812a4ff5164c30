// The operator as real pods on the real node (operator/local/realnode.ts): the image operator/Dockerfile describes,
// assembled from local parts without Docker (operator/local/operator-image.ts) and pushed to the node's registry,
// installed with the install manifests (operator/deploy, through e2e/install-overlay, whose one change scopes the
// admission policy's binding) and a kustomization that sets only that image by digest, the placement on the real
// node and the way to the API server (operator/local/operator-pod.ts). That proves the image, the in-cluster config
// and the least-privilege RBAC together: what is asserted is what a user sees, from the kubelet's pod status, the
// Lease, the App's status and Events, the config repository, the admission policy's verdicts and the containers'
// own logs.
//
// GitOps runs in the leader pod: its settings (a config repository on a local Git server with Basic auth, reached
// through a forward on the node's address) come from the Secret slipway-operator, as the install documents.
// Simulated here: the App's pods, which run on the kwok nodes (only the operator's pods ask for the real node).
// Left out: builds (no App has a source) and Git hosts' webhooks to the slipway-webhooks Service (no kube-proxy
// serves Services here).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ExecutionContext } from "ava";
import type { V1Pod } from "@kubernetes/client-node";
import { parseDocument } from "yaml";
import type { App } from "../crds/v1alpha1.js";
import { repoRoot } from "../operator/local/controlplane.js";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { installOperatorPods, OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE as NS, OPERATOR_POD_SELECTOR, type OperatorPods } from "../operator/local/operator-pod.js";
import { startRealNode, type RealNode } from "../operator/local/realnode.js";
import { httpGet, podReady } from "./harness/realnode-app.js";
import { controlPlane, freshNamespace, realNodeTest, waitFor } from "./harness/suite.js";

let node: RealNode | undefined;
let installed: OperatorPods | undefined;
let git: GitServer | undefined;
const gitAuth = { username: "slipway", password: randomBytes(8).toString("hex") };
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (line: string) => console.log(`realnode-operator-pod.e2e: ${line}`);

async function kubectl(args: string[], input?: string): Promise<string> {
  return (await controlPlane()).kubectlOk(args, { input });
}

async function operatorPods(): Promise<V1Pod[]> {
  const pods = JSON.parse(await kubectl(["get", "pods", "-n", NS, "-l", OPERATOR_POD_SELECTOR, "-o", "json"])) as { items: V1Pod[] };
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp);
}

async function leaseHolder(): Promise<string> {
  const r = await (await controlPlane()).kubectl(["get", "lease", OPERATOR_DEPLOYMENT, "-n", NS, "-o", "jsonpath={.spec.holderIdentity}"]);
  return r.code === 0 ? r.stdout.trim() : "";
}

/** The operator's pods once the rollout is done: all of the image's, on the real node. */
let pods: V1Pod[] = [];

realNodeTest.before("start the real node, assemble the operator image and install Slipway with it on the real node", async (t) => {
  t.timeout(45 * 60_000, "building and starting the real node");
  const cp = await controlPlane();
  node = await startRealNode(cp, { progress: log });
  log(`the API server is forwarded to ${node.apiServer.host}:${node.apiServer.port}`);
  git = await startGitServer({ auth: gitAuth });
  await git.createBareRepo("slipway-config");
  const gitPort = await node.forward({ host: "127.0.0.1", port: git.port });
  const settings = {
    SLIPWAY_GIT_URL: `http://${node.nodeIP}:${gitPort}/slipway-config.git`, SLIPWAY_GIT_USERNAME: gitAuth.username, SLIPWAY_GIT_PASSWORD: gitAuth.password,
    SLIPWAY_GIT_POLL_SECONDS: "5",
  };
  const applying = Date.now();
  installed = await installOperatorPods(cp, node, { base: join(repoRoot, "e2e", "install-overlay"), settings, progress: log });
  await kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd/apps.slipway.dev", "crd/configs.slipway.dev", "crd/releases.slipway.dev"]);
  await waitFor(async () => {
    pods = await operatorPods();
    return pods.length === 2 && pods.every(podReady);
  }, 60_000, () => `expected the install's 2 operator pods, Ready: ${pods.map((p) => `${p.metadata?.name} ${p.spec?.nodeName} ${p.status?.phase}`).join(", ")}`);
  log(`the operator's 2 pods are Ready ${((Date.now() - applying) / 1000).toFixed(1)}s after the image build started (${elapsed()} in all)`);
});

realNodeTest.afterAlways("remove the operator's Deployment, stop the real node", async () => {
  // The Deployment goes first: otherwise the next real node of the run would get its pods.
  await installed?.remove();
  await (await controlPlane()).kubectl(["delete", "secret", "slipway-operator", "-n", NS, "--ignore-not-found"]);
  await node?.stop();
  await git?.stop();
  log(`done in ${elapsed()}`);
});

realNodeTest.serial("the operator image, assembled from operator/Dockerfile without Docker, runs the install's two replicas on the real node, Ready by the kubelet's probes", async (t) => {
  const real = node as RealNode;
  t.is(pods.length, 2);
  for (const p of pods) {
    t.is(p.spec?.nodeName, real.nodeName, `${p.metadata?.name} runs on ${p.spec?.nodeName}`);
    t.is(p.spec?.serviceAccountName, "slipway");
    const status = p.status?.containerStatuses?.[0];
    t.true(status?.ready, `${p.metadata?.name}: ${JSON.stringify(status)}`);
    // The kubelet pulled the image by the digest it was pushed with.
    t.is(status?.imageID?.split("@")[1], installed?.image.reference.split("@")[1]);
  }
  // Inside, the runtime operator/Dockerfile's final stage sets: user 10001, /app, its ENV, a read-only root.
  const name = pods[0]?.metadata?.name ?? "";
  const probe = "const fs=require('fs');let ro='';try{fs.writeFileSync('/app/x','')}catch(e){ro=e.code}" +
    "console.log(JSON.stringify({uid:process.getuid(),gid:process.getgid(),cwd:process.cwd(),env:process.env.NODE_ENV,ro,node:process.version,entry:fs.existsSync('dist/operator/main.js'),ts:fs.existsSync('node_modules/typescript')}))";
  const inside = JSON.parse(await kubectl(["exec", "-n", NS, name, "--", "node", "-e", probe])) as Record<string, unknown>;
  t.deepEqual(inside, { uid: 10001, gid: 10001, cwd: "/app", env: "production", ro: "EROFS", node: process.version, entry: true, ts: false });
});

realNodeTest.serial("the operator in a pod holds the leader Lease under its pod name, and the other replica is the standby naming it", async (t) => {
  const names = pods.map((p) => p.metadata?.name ?? "");
  let holder = "";
  // Only the pod's own ServiceAccount can write that Lease (the install's leader-election Role): without the RBAC
  // there would be no holder.
  await waitFor(async () => names.includes(holder = await leaseHolder()), 60_000, () => `the Lease's holder is "${holder}", not one of ${names.join(", ")}`);
  const leader = pods.find((p) => p.metadata?.name === holder) as V1Pod;
  const standby = pods.find((p) => p.metadata?.name !== holder) as V1Pod;
  // /readyz on each pod's IP (port 8080, the image's EXPOSE), as the kubelet's readiness probe reads it.
  const readyz = async (p: V1Pod) => {
    const r = await httpGet(`http://${p.status?.podIP ?? ""}:8080/readyz`);
    return { status: r.status, body: r.body.trim() };
  };
  t.deepEqual(await readyz(leader), { status: 200, body: "leading" });
  // The standby learns the holder at its next look at the Lease (every 2 s); until then it says "no leader yet".
  let answer = { status: 0, body: "" };
  await waitFor(async () => (answer = await readyz(standby)).body !== "standby: no leader yet", 30_000, () => `the standby still answers ${JSON.stringify(answer)}`);
  t.deepEqual(answer, { status: 200, body: `standby: ${holder} leads` });
});

/** Applies an App (a made-up image by digest, its pods go to the kwok nodes) and its Config; returns the digest. */
async function applyApp(ns: string, app: string): Promise<string> {
  const digest = `sha256:${randomBytes(32).toString("hex")}`;
  await kubectl(["apply", "--server-side", "-n", ns, "-f", "-"], [
    `apiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata: { name: ${app} }\nspec:\n  image: registry.example/web@${digest}\n  routing: { port: 8080 }`,
    `apiVersion: slipway.dev/v1alpha1\nkind: Config\nmetadata: { name: ${app} }\nspec:\n  env: { GREETING: hello }`,
  ].join("\n---\n"));
  return digest;
}

/** Waits until the App is Ready on `release` (its status, written by the operator); returns it. */
async function readyOn(ns: string, app: string, release: string): Promise<App> {
  let got: App | undefined;
  await waitFor(async () => {
    got = JSON.parse(await kubectl(["get", "apps.slipway.dev", app, "-n", ns, "-o", "json"])) as App;
    return got.status?.currentRelease === release && got.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
  }, 120_000, async () => `App ${app} is not Ready on ${release}: ${JSON.stringify(got?.status)}\n${await leaderLogTail()}`);
  return got as App;
}

/** A clone of the config repository (as the test's Git user) in a directory removed when the test ends. */
async function configClone(t: ExecutionContext): Promise<{ dir: string; git(args: string[]): Promise<string>; untilCommitted(subject: string): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "slipway-e2e-operator-pod-clone-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const url = (git as GitServer).url("slipway-config").replace("http://", `http://${gitAuth.username}:${gitAuth.password}@`);
  const run = async (args: string[]) => (await execFileAsync("git", ["-C", dir, ...args])).stdout;
  return {
    dir,
    git: run,
    // Cloned afresh each time: the operator pushes on its own time.
    async untilCommitted(subject) {
      let log = "";
      await waitFor(async () => {
        await rm(dir, { recursive: true, force: true });
        log = await execFileAsync("git", ["clone", "-q", url, dir]).then(() => run(["log", "--format=%s"]), (e: unknown) => String(e));
        return log.includes(subject);
      }, 60_000, async () => `no commit "${subject}…" in the config repository:\n${log}\n${await leaderLogTail()}`);
    },
  };
}

realNodeTest.serial("an App applied to a namespace goes Ready (its pods simulated by kwok) with its status, Release, Events and release commit in Git made by the operator in the leader pod", async (t) => {
  const ns = await freshNamespace(t);
  const app = `web-${randomBytes(2).toString("hex")}`;
  const digest = await applyApp(ns, app);
  const got = await readyOn(ns, app, "v1");
  t.is(got.status?.observedGeneration, got.metadata?.generation);
  const release = JSON.parse(await kubectl(["get", "releases.slipway.dev", `${app}-v1`, "-n", ns, "-o", "json"])) as { spec: { build: { image: string }; config: { env?: Record<string, string> } } };
  t.is(release.spec.build.image, `registry.example/web@${digest}`);
  t.deepEqual(release.spec.config.env, { GREETING: "hello" });
  const webPods = JSON.parse(await kubectl(["get", "pods", "-n", ns, "-l", `slipway.dev/app=${app}`, "-o", "json"])) as { items: V1Pod[] };
  t.true(webPods.items.length > 0 && webPods.items.every((p) => p.spec?.nodeName?.startsWith("kwok-")), "the App's pods run on the kwok nodes");
  // The operator records Events as slipway.dev/operator-<hostname>; a pod's hostname is its name.
  const holder = await leaseHolder();
  const events = JSON.parse(await kubectl(["get", "events.events.k8s.io", "-n", ns, "-o", "json"])) as { items: Array<{ reportingInstance?: string; reason?: string; regarding?: { name?: string } }> };
  const instances = new Set(events.items.filter((e) => e.regarding?.name === app).map((e) => e.reportingInstance));
  t.deepEqual([...instances], [`slipway.dev/operator-${holder}`], JSON.stringify(events.items.map((e) => [e.reason, e.reportingInstance])));

  // GitOps in the pod: the release is committed to the config repository, with the App's files.
  const clone = await configClone(t);
  await clone.untilCommitted(`${ns}/${app}: release v1:`);
  const files = (await clone.git(["ls-files", `apps/${ns}/${app}`])).trim().split("\n");
  t.true(["app.yaml", "config.yaml", "releases/v1.yaml"].every((f) => files.includes(`apps/${ns}/${app}/${f}`)), files.join(" "));
});

realNodeTest.serial("a Config change pushed to Git is applied by the pod with changed-by naming the Git author, which the admission policy admits only from the operator's ServiceAccount", async (t) => {
  const ns = await freshNamespace(t);
  // e2e/install-overlay binds the policy to namespaces with this label only (the control plane is shared).
  await kubectl(["label", "namespace", ns, "slipway.dev/e2e-admission=true"]);
  const app = `web-${randomBytes(2).toString("hex")}`;
  await applyApp(ns, app);
  await readyOn(ns, app, "v1");
  // The policy is in force here: the admin may not credit a change to someone else (asked with a server-side dry
  // run, so nothing is written while the policy takes effect).
  let forged = { code: 0, stderr: "" };
  await waitFor(async () => (forged = await (await controlPlane()).kubectl(["annotate", "--dry-run=server", "--overwrite", "-n", ns, `configs.slipway.dev/${app}`,
    "slipway.dev/changed-by=alice@example.com"])).code !== 0, 30_000, () => "the admin's forged changed-by was admitted");
  t.regex(forged.stderr, /slipway\.dev\/changed-by must name who makes the change/);

  const clone = await configClone(t);
  await clone.untilCommitted(`${ns}/${app}: release v1:`);
  const file = join(clone.dir, "apps", ns, app, "config.yaml");
  const config = parseDocument(await readFile(file, "utf8"));
  config.setIn(["spec", "env", "GREETING"], "hello from git");
  await writeFile(file, config.toString());
  await clone.git(["-c", "user.name=Alice", "-c", "user.email=alice@example.com", "commit", "-q", "-am", "greet from git"]);
  await clone.git(["push", "-q", "origin", "HEAD:main"]);

  // The pod applies the commit as the operator's ServiceAccount, crediting its author, and cuts v2 from it.
  await readyOn(ns, app, "v2");
  const applied = JSON.parse(await kubectl(["get", "configs.slipway.dev", app, "-n", ns, "-o", "json"])) as { metadata: { annotations?: Record<string, string> }; spec: { env?: Record<string, string> } };
  t.is(applied.spec.env?.GREETING, "hello from git");
  t.is(applied.metadata.annotations?.["slipway.dev/changed-by"], "alice@example.com");
  const v2 = JSON.parse(await kubectl(["get", "releases.slipway.dev", `${app}-v2`, "-n", ns, "-o", "json"])) as { spec: { requestedBy?: string; cause?: string } };
  t.is(v2.spec.requestedBy, "alice@example.com", JSON.stringify(v2.spec));
});

realNodeTest.serial("the operator pods' own logs (kubectl logs) are JSON lines with no forbidden request: the install's RBAC is enough", async (t) => {
  const holder = await leaseHolder();
  for (const p of pods) {
    const name = p.metadata?.name ?? "";
    const text = await kubectl(["logs", "-n", NS, name]);
    const lines = text.split("\n").filter((l) => l.trim());
    t.true(lines.length > 0, `${name} logged nothing`);
    const records = lines.map((l) => {
      try {
        return JSON.parse(l) as { level?: string; msg?: string; component?: string };
      } catch {
        return t.fail(`${name} logged a line that is not JSON: ${l}`);
      }
    }).filter((r): r is { level?: string; msg?: string; component?: string } => r !== undefined);
    t.true(records.every((r) => typeof r.level === "string" && typeof r.msg === "string" && r.component !== undefined), `${name}: ${lines.slice(0, 3).join("\n")}`);
    // Not RBAC, and not the operator's doing: a write into a namespace another e2e file is deleting is refused so.
    t.deepEqual(lines.filter((l) => /forbidden/i.test(l) && !/because it is being terminated/.test(l)), [], `${name} was refused something`);
    if (name === holder) t.true(records.some((r) => r.msg === "operator started"), `the leader ${name} never logged "operator started":\n${lines.slice(-10).join("\n")}`);
  }
  // A figure, not an assertion: what each pod's container uses, from the kubelet's own stats.
  const summary = JSON.parse(await kubectl(["get", "--raw", `/api/v1/nodes/${node?.nodeName ?? ""}/proxy/stats/summary`])) as {
    pods: Array<{ podRef: { name: string; namespace: string }; containers?: Array<{ memory?: { workingSetBytes?: number } }> }>;
  };
  for (const p of summary.pods.filter((s) => s.podRef.namespace === NS)) {
    const m = p.containers?.[0]?.memory;
    log(`${p.podRef.name}${p.podRef.name === holder ? " (leader)" : ""}: memory working set ${((m?.workingSetBytes ?? 0) / 1048576).toFixed(0)} MiB (kubelet stats)`);
  }
});

const execFileAsync = promisify(execFile);

async function leaderLogTail(): Promise<string> {
  const holder = await leaseHolder();
  if (!holder) return "(no Lease holder)";
  const r = await (await controlPlane()).kubectl(["logs", "-n", NS, holder, "--tail=15"]);
  return `${holder}'s log:\n${r.stdout}${r.stderr}`;
}
