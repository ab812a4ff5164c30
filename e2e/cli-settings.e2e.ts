// kubectl-slipway's settings commands against a real control plane, spawned as a user types them, with the
// operator running in-process: what each one changes in the rendered objects, and whether it cuts a release.
// Config changes (limits, tags) are releases; App changes (autoscaling, health checks, domains, TLS) are not —
// "scaling is not a release". A change that is no release is checked once its effect is rendered: the operator
// cuts releases before it renders, so a release it were going to cut would exist by then.
import test, { type ExecutionContext } from "ava";
import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { App, Release } from "../crds/v1alpha1.js";
import { shortImage } from "../operator/releases.js";
import { IMAGE, installCrdsAndUserRoles, kubectl, ok, setup as setupWithDeveloper, type Result } from "./cli-support.js";
import { repoRoot } from "../operator/local/controlplane.js";
import { waitFor } from "./harness/suite.js";


/** The developer "alice" in a fresh namespace the operator watches. */
interface Env {
  ns: string;
  kubeconfig: string;
  slipway(args: string[]): Promise<Result>;
}

test.before(installCrdsAndUserRoles);

async function setup(t: ExecutionContext): Promise<Env> {
  const { ns, alice } = await setupWithDeveloper(t);
  return { ns, kubeconfig: alice.kubeconfig, slipway: (args) => alice.slipway(args) };
}

async function json<T>(t: ExecutionContext, env: Env, args: string[]): Promise<T> {
  const r = ok(t, await env.slipway([...args, "-o", "json"]), args.join(" "));
  return JSON.parse(r.stdout) as T;
}

async function causes(t: ExecutionContext, env: Env, app: string): Promise<string[]> {
  return (await json<Release[]>(t, env, ["releases", app])).map((r) => `v${r.spec.version} ${r.spec.cause}`);
}

async function releasesUntil(t: ExecutionContext, env: Env, app: string, count: number): Promise<string[]> {
  let list: string[] = [];
  await waitFor(async () => (list = await causes(t, env, app)).length >= count, 60_000,
    () => `expected ${count} releases of ${app}, have ${list.join("; ") || "none"}`);
  return list;
}

async function createApp(t: ExecutionContext, env: Env, app: string, from: string[] = ["--image", IMAGE]): Promise<void> {
  ok(t, await env.slipway(["apps:create", app, ...from]), "apps:create");
  if (from[0] === "--image") await releasesUntil(t, env, app, 1);
}

/** An object the operator renders, once `check` holds for it (kubectl's JSON, as the API server stores it). */
async function rendered<T>(env: Env, what: string, check: (obj: T) => boolean): Promise<T> {
  let obj: T | undefined;
  await waitFor(async () => check(obj = JSON.parse(await kubectl(["get", what, "-n", env.ns, "-o", "json", "--show-managed-fields"])) as T), 60_000,
    () => `${what} is ${JSON.stringify(obj) ?? "missing"}`);
  return obj as T;
}

interface Container {
  resources?: { limits?: Record<string, string> };
  readinessProbe?: { httpGet?: { path?: string; port?: number } };
}
interface Deployment {
  metadata: { managedFields?: { manager?: string; fieldsV1?: { "f:spec"?: Record<string, unknown> } }[] };
  spec: { replicas?: number; template: { spec: { nodeSelector?: Record<string, string>; containers: Container[] } } };
}
interface Ingress {
  spec: { rules: { host: string }[]; tls?: { hosts: string[]; secretName: string }[] };
}
interface Hpa {
  spec: { minReplicas: number; maxReplicas: number; metrics: { resource: { name: string; target: { averageUtilization: number } } }[] };
}

const web = (d: Deployment): Container => d.spec.template.spec.containers[0] as Container;

test("limits:set puts memory and CPU limits on the web container and cuts a release", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  const r = ok(t, await env.slipway(["limits:set", "hello", "web=256Mi", "--cpu", "web=500m"]), "limits:set");
  t.is(r.stdout, "TYPE   CPU    MEMORY\nweb    500m   256Mi\n");
  t.deepEqual(await releasesUntil(t, env, "hello", 2), ["v2 change resources of web", `v1 deploy ${shortImage(IMAGE)}`]);
  const d = await rendered<Deployment>(env, "deployment/hello-web", (o) => web(o).resources?.limits !== undefined);
  t.deepEqual(web(d).resources, { limits: { cpu: "500m", memory: "256Mi" } });
  t.deepEqual(await json(t, env, ["limits", "hello"]), { web: { limits: { memory: "256Mi", cpu: "500m" } } });
});

test("tags:set puts a node selector on the app's pods and cuts a release", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  t.is(ok(t, await env.slipway(["tags", "hello"]), "tags").stdout, "No tags.\n");
  const r = ok(t, await env.slipway(["tags:set", "hello", "disk=ssd"]), "tags:set");
  t.is(r.stdout, "KEY    VALUE\ndisk   ssd\n");
  t.deepEqual((await releasesUntil(t, env, "hello", 2))[0], "v2 change node selector");
  const d = await rendered<Deployment>(env, "deployment/hello-web", (o) => o.spec.template.spec.nodeSelector !== undefined);
  t.deepEqual(d.spec.template.spec.nodeSelector, { disk: "ssd" });
  t.deepEqual(await json(t, env, ["tags", "hello"]), { disk: "ssd" });
});

test("autoscale:set creates an HPA that takes over the web replicas, without a release; autoscale:unset removes it", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  const r = ok(t, await env.slipway(["autoscale:set", "hello", "web", "--min", "2", "--max", "5", "--cpu-percent", "70"]), "autoscale:set");
  t.is(r.stdout, "Autoscaling hello web between 2 and 5 replicas at 70% CPU.\n");
  const hpa = await rendered<Hpa>(env, "hpa/hello-web", () => true);
  t.deepEqual([hpa.spec.minReplicas, hpa.spec.maxReplicas, hpa.spec.metrics.map((m) => [m.resource.name, m.resource.target.averageUtilization])],
    [2, 5, [["cpu", 70]]]);
  // The operator gives up spec.replicas, and the HPA (kube-controller-manager's) raises the Deployment to its minimum.
  const d = await rendered<Deployment>(env, "deployment/hello-web", (o) => o.spec.replicas === 2);
  const ownSpec = d.metadata.managedFields?.find((f) => f.manager === "slipway" && f.fieldsV1?.["f:spec"])?.fieldsV1?.["f:spec"];
  t.truthy(ownSpec?.["f:template"], "the operator's fields of the Deployment are not where this test looks");
  t.false("f:replicas" in (ownSpec ?? {}), "the operator still sets replicas");
  t.is((await causes(t, env, "hello")).length, 1);

  t.is(ok(t, await env.slipway(["autoscale:unset", "hello", "web"]), "autoscale:unset").stdout, "Stopped autoscaling hello web.\n");
  await waitFor(async () => (await kubectl(["get", "hpa", "-n", env.ns, "-o", "name"])).trim() === "", 60_000, () => "the HPA was not removed");
  await rendered<Deployment>(env, "deployment/hello-web", (o) => o.spec.replicas === 1);
  t.is((await causes(t, env, "hello")).length, 1);
});

test("healthchecks:set readiness web --path /healthz gives the web container a readinessProbe, without a release", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  const r = ok(t, await env.slipway(["healthchecks:set", "hello", "readiness", "web", "--path", "/healthz"]), "healthchecks:set");
  t.is(r.stdout, "Set readiness check of hello web: GET /healthz.\n");
  const d = await rendered<Deployment>(env, "deployment/hello-web", (o) => web(o).readinessProbe !== undefined);
  t.like(web(d).readinessProbe, { httpGet: { path: "/healthz", port: 8080 } });
  t.is((await causes(t, env, "hello")).length, 1);
});

test("domains:add routes a host through the Ingress and domains:remove stops it, without a release", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  const own = `hello.${env.ns}.slipway.local`;
  t.is(ok(t, await env.slipway(["domains", "hello"]), "domains").stdout, "No domains.\n");
  t.is(ok(t, await env.slipway(["domains:add", "hello", "WWW.Example.com"]), "domains:add").stdout, "Added www.example.com to hello.\n");
  let ing = await rendered<Ingress>(env, "ingress/hello", (o) => o.spec.rules.length === 2);
  t.deepEqual(ing.spec.rules.map((r) => r.host), [own, "www.example.com"]);
  t.is(ok(t, await env.slipway(["domains", "hello"]), "domains").stdout, "=== hello Domains\nwww.example.com\n");
  t.deepEqual(await json(t, env, ["domains", "hello"]), ["www.example.com"]);

  t.is(ok(t, await env.slipway(["domains:remove", "hello", "www.example.com"]), "domains:remove").stdout, "Removed www.example.com from hello.\n");
  ing = await rendered<Ingress>(env, "ingress/hello", (o) => o.spec.rules.length === 1);
  t.deepEqual(ing.spec.rules.map((r) => r.host), [own]);
  t.is((await causes(t, env, "hello")).length, 1);
});

test("url prints http://<app>.<namespace>.<domain>, https once tls:set names the Ingress TLS Secret, and http again after tls:unset, without a release", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  const host = `hello.${env.ns}.slipway.local`;
  t.is(ok(t, await env.slipway(["url", "hello"]), "url").stdout, `http://${host}\n`);
  t.is(ok(t, await env.slipway(["tls:set", "hello", "--secret", "hello-tls"]), "tls:set").stdout, "hello serves TLS with the certificate in Secret hello-tls.\n");
  const ing = await rendered<Ingress>(env, "ingress/hello", (o) => o.spec.tls !== undefined);
  t.deepEqual(ing.spec.tls, [{ hosts: [host], secretName: "hello-tls" }]);
  await waitFor(async () => (await env.slipway(["url", "hello"])).stdout === `https://${host}\n`, 30_000, () => "url still says http");

  t.is(ok(t, await env.slipway(["tls:unset", "hello"]), "tls:unset").stdout, "hello no longer serves TLS.\n");
  await rendered<Ingress>(env, "ingress/hello", (o) => o.spec.tls === undefined);
  await waitFor(async () => (await env.slipway(["url", "hello"])).stdout === `http://${host}\n`, 30_000, () => "url still says https");
  t.is((await causes(t, env, "hello")).length, 1);
});

test("url says why there is no URL for an app without one", async (t) => {
  const env = await setup(t);
  ok(t, await env.slipway(["apps:create", "worker", "--git", "https://git.example/acme/worker"]), "apps:create");
  // A source app without a build has no release, so the operator gives it no URL yet.
  const r = await env.slipway(["url", "worker"]);
  t.is(r.code, 1);
  t.is(r.stderr, `error: app "worker" has no URL yet (no web process, routing disabled, or not reconciled yet)\n`);
});

test("builds says an image app has no builds, and shows a source app's latest build", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  t.is(ok(t, await env.slipway(["builds", "hello"]), "builds").stdout, `No builds: hello deploys the image ${IMAGE}.\n`);
  t.is(await json(t, env, ["builds", "hello"]), null);

  ok(t, await env.slipway(["apps:create", "shop", "--git", "https://git.example/acme/shop"]), "apps:create");
  t.is(ok(t, await env.slipway(["builds", "shop"]), "builds").stdout, "No builds yet.\n");
  // What the build controller records when Tekton fails a run (no build controller runs here).
  const build = { pipelineRun: "shop-build-0123456", commit: "0123456789abcdef0123456789abcdef01234567", phase: "Failed", message: "step build exited 1" };
  await kubectl(["patch", "apps.slipway.dev", "shop", "-n", env.ns, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status: { latestBuild: build } })]);
  const table = ok(t, await env.slipway(["builds", "shop"]), "builds").stdout.split("\n");
  t.regex(table[0] ?? "", /^PIPELINERUN\s+COMMIT\s+PHASE\s+IMAGE\s+MESSAGE$/);
  t.regex(table[1] ?? "", /^shop-build-0123456\s+0123456\s+Failed\s+step build exited 1$/);
  t.deepEqual(await json(t, env, ["builds", "shop"]), build);
});

test("previews lists an app's pull-request previews, and says when there are none", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  t.is(ok(t, await env.slipway(["previews", "hello"]), "previews").stdout, "No previews.\n");
  t.deepEqual(await json(t, env, ["previews", "hello"]), []);
  // What the webhook receiver creates for pull request 7 (labelled with its parent), and an unrelated App.
  await kubectl(["apply", "-n", env.ns, "-f", "-"], [
    `apiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata: { name: hello-pr-7, labels: { slipway.dev/preview: hello } }\nspec: { image: "${IMAGE}" }\n`,
    "apiVersion: slipway.dev/v1alpha1\nkind: Config\nmetadata: { name: hello-pr-7 }\nspec: {}\n",
    `apiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata: { name: other }\nspec: { image: "${IMAGE}" }\n`,
  ].join("---\n"));
  await waitFor(async () => (await json<App[]>(t, env, ["previews", "hello"]))[0]?.status?.currentRelease === "v1", 60_000, () => "the preview runs no release");
  const table = ok(t, await env.slipway(["previews", "hello"]), "previews").stdout.split("\n");
  t.regex(table[0] ?? "", /^NAME\s+SOURCE\s+RELEASE\s+READY\s+URL\s+AGE$/);
  t.regex(table[1] ?? "", new RegExp(`^hello-pr-7\\s+${IMAGE.replace(/[.]/g, "\\.")}\\s+v1\\s+\\S+\\s+http://hello-pr-7\\.${env.ns}\\.slipway\\.local\\s+\\d+s$`));
  t.is(table.length, 3, table.join("\n"));
  t.deepEqual((await json<App[]>(t, env, ["previews", "hello"])).map((a) => a.metadata.name), ["hello-pr-7"]);
});

/** `kubectl __complete slipway ARGS...`: what kubectl's shell completion asks when a user presses TAB. */
async function kubectlComplete(env: Env, args: string[]): Promise<Result> {
  const bin = await mkdtemp(join(tmpdir(), "slipway-bin-"));
  // As npm installs the package's bin entries: executables on PATH.
  for (const [entry, file] of [["kubectl-slipway", "main.js"], ["kubectl_complete-slipway", "kubectl_complete-slipway.js"]] as const) {
    await writeFile(join(bin, entry), `#!/bin/sh\nexec "${process.execPath}" "${join(repoRoot, "dist", "cli", file)}" "$@"\n`);
    await chmod(join(bin, entry), 0o755);
  }
  const child = spawn("kubectl", ["__complete", "slipway", ...args], {
    // The cluster lookup's 3 s budget is for a shell; a loaded test machine can take longer to start the CLI.
    env: { ...process.env, KUBECONFIG: env.kubeconfig, PATH: `${bin}:${process.env.PATH ?? ""}`, SLIPWAY_COMPLETION_TIMEOUT_MS: "30000" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const result = await new Promise<Result>((res) => child.on("close", (code) => res({ stdout, stderr, code })));
  await rm(bin, { recursive: true, force: true });
  return result;
}

test("kubectl slipway <TAB> completes commands, then the namespace's App names, through kubectl_complete-slipway", async (t) => {
  const env = await setup(t);
  await createApp(t, env, "hello");
  await createApp(t, env, "shop");
  const commands = ok(t, await kubectlComplete(env, ["lim"]), "kubectl __complete slipway lim");
  t.is(commands.stdout, "limits:set\nlimits\n:4\n");
  const apps = ok(t, await kubectlComplete(env, ["info", ""]), "kubectl __complete slipway info");
  t.is(apps.stdout, "hello\nshop\n:4\n");
  t.is(ok(t, await kubectlComplete(env, ["scale", "s"]), "kubectl __complete slipway scale s").stdout, "shop\n:4\n");
});
