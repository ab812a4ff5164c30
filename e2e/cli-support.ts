// What the CLI e2e files share: kubectl-slipway spawned as a user types it (`node dist/cli/main.js`), users
// that are ServiceAccounts bound to slipway-developer / slipway-viewer with token kubeconfigs, and a fresh
// namespace with the operator running in-process.
import type { ExecutionContext } from "ava";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../operator/log.js";
import { startOperator, type OperatorHandle } from "../operator/controller.js";
import { repoRoot } from "../operator/local/controlplane.js";
import { controlPlane, freshNamespace, installCrds } from "./harness/suite.js";
import { Kube } from "../operator/kube.js";

export const IMAGE = `registry.example/hello@sha256:${"a".repeat(64)}`;
const CLI = join(repoRoot, "dist", "cli", "main.js");

/** Installs the CRDs and the user ClusterRoles (idempotent); call from test.before. */
export async function installCrdsAndUserRoles(): Promise<void> {
  const cp = await installCrds();
  await cp.kubectlOk(["apply", "--server-side", "--force-conflicts", "-f", "operator/deploy/user-roles.yaml"], { what: "cannot install the user ClusterRoles" });
}

export interface Result {
  stdout: string;
  stderr: string;
  code: number | null;
}

export interface User {
  name: string;
  kubeconfig: string;
  /** Runs kubectl-slipway as this user (namespace from the kubeconfig context); `input` is its stdin (none by default). */
  slipway(args: string[], opts?: { cwd?: string; input?: string }): Promise<Result>;
}

export async function kubectl(args: string[], input?: string): Promise<string> {
  return (await controlPlane()).kubectlOk(args, { input });
}

export function runCli(args: string[], env: Record<string, string>, cwd = repoRoot, input?: string): { child: ReturnType<typeof spawn>; done: Promise<Result> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
  if (input !== undefined) child.stdin?.end(input);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Result>((res) => child.on("close", (code) => res({ stdout, stderr, code })));
  return { child, done };
}

/** A ServiceAccount bound to `role` in `ns`, with a token kubeconfig whose user is named `name`. */
export async function userWith(t: ExecutionContext, ns: string, name: string, role: "slipway-developer" | "slipway-viewer"): Promise<User> {
  const cp = await controlPlane();
  await kubectl(["create", "serviceaccount", name, "-n", ns]);
  await kubectl(["create", "rolebinding", `${name}-${role}`, `--clusterrole=${role}`, `--serviceaccount=${ns}:${name}`, "-n", ns]);
  const token = (await kubectl(["create", "token", name, "-n", ns, "--duration=1h"])).trim();
  const cluster = cp.kubeConfig().getCurrentCluster();
  const ca = cluster?.caData ?? (cluster?.caFile ? (await readFile(cluster.caFile)).toString("base64") : "");
  const dir = await mkdtemp(join(tmpdir(), "slipway-cli-e2e-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, "kubeconfig");
  await writeFile(kubeconfig, JSON.stringify({
    apiVersion: "v1", kind: "Config", "current-context": name,
    clusters: [{ name: "e2e", cluster: { server: cp.server, "certificate-authority-data": ca } }],
    users: [{ name, user: { token } }],
    contexts: [{ name, context: { cluster: "e2e", user: name, namespace: ns } }],
  }));
  t.log(`${name} (${role}): KUBECONFIG=${kubeconfig}`);
  return { name, kubeconfig, slipway: (args, opts) => runCli(args, { KUBECONFIG: kubeconfig }, opts?.cwd, opts?.input).done };
}

/** A fresh namespace with the operator watching it and a developer "alice". */
export async function setup(t: ExecutionContext, options: { watchSecrets?: boolean } = {}): Promise<{ ns: string; alice: User; operator: OperatorHandle }> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "silent" });
  const operator = await startOperator({ kube: new Kube(cp.kubeConfig()), namespace: ns, logger, concurrency: 2, watchSecrets: options.watchSecrets });
  t.teardown(async () => {
    // Delete the Apps first, so the garbage collector takes their Releases and children before the namespace goes.
    await cp.kubectl(["delete", "apps.slipway.dev", "--all", "-n", ns, "--timeout=30s"]);
    await operator.stop();
  });
  return { ns, alice: await userWith(t, ns, "alice", "slipway-developer"), operator };
}

export function ok(t: ExecutionContext, r: Result, what: string): Result {
  if (r.code !== 0) t.fail(`${what} exited ${r.code}: ${r.stderr}`);
  return r;
}

export async function json<T>(t: ExecutionContext, user: User, args: string[]): Promise<T> {
  return JSON.parse(ok(t, await user.slipway([...args, "-o", "json"]), args.join(" ")).stdout) as T;
}

