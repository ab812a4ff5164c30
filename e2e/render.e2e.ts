// The render function against real components: a real kube-apiserver accepts what it renders, and kpt,
// kustomize and the Argo CD plugin's commands run the compiled executable to the same output as the library.
// Gateway API CRDs are not installed on the control plane, so HTTPRoutes are only covered by unit goldens.
import test from "ava";
import { spawn } from "node:child_process";
import { chmodSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import type { App } from "../crds/v1alpha1.js";
import { collectInputs, slipwayObjects } from "../functions/inputs.js";
import { parseManifests, readManifests, toYaml } from "../functions/manifests.js";
import { type KubernetesObject, type PlatformSettings, render } from "../functions/render.js";
import { repoRoot } from "../operator/local/controlplane.js";
import { controlPlane, freshNamespace, installCrds } from "./harness/suite.js";

const main = join(repoRoot, "dist", "functions", "main.js");
const samples = readdirSync(join(repoRoot, "samples", "apps")).sort();

test.before(() => {
  // tsc does not keep the executable bit (npm sets it when the package is installed); kpt and kustomize exec it.
  chmodSync(main, 0o755);
});

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (cause) => reject(new Error(`cannot run ${cmd}`, { cause })));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // A command that exits without reading its input closes the pipe (EPIPE): its exit code and stderr say why.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** What the library renders for the Apps in `objects`, placed in `namespace` when they have none. */
function libraryRender(objects: unknown[], namespace: string, platform: Partial<PlatformSettings> = {}): KubernetesObject[] {
  return collectInputs(slipwayObjects(objects as App[], namespace)).flatMap((input) => {
    const outcome = render(input, platform);
    if (outcome.errors.length > 0) throw new Error(outcome.errors.map((e) => e.message).join("; "));
    return outcome.objects;
  });
}

const isRendered = (o: { apiVersion: string; metadata?: { labels?: Record<string, string> } }): boolean =>
  o.metadata?.labels?.["app.kubernetes.io/managed-by"] === "slipway" && o.apiVersion !== "slipway.dev/v1alpha1";

const byKey = (objects: KubernetesObject[]): Map<string, KubernetesObject> =>
  new Map(objects.map((o) => [`${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`, o]));

/** Drops the file bookkeeping annotations kpt and kustomize add to every object. */
function withoutFileAnnotations(o: KubernetesObject): KubernetesObject {
  const copy = structuredClone(o);
  const kept = Object.entries(copy.metadata.annotations ?? {}).filter(([k]) => !/^(internal\.)?config\.kubernetes\.io\/|^config\.k8s\.io\//.test(k));
  if (kept.length > 0) copy.metadata.annotations = Object.fromEntries(kept);
  else delete copy.metadata.annotations;
  return copy;
}

/** A standalone kustomize: kubectl 1.32's built-in kustomize has no --enable-exec and skips exec functions. */
async function kustomize(): Promise<string> {
  // Pinned and built (once per machine, cached outside the repo) by the control plane's build script.
  const built = await exec(join(repoRoot, "e2e", "controlplane", "build.sh"), ["--kustomize"]);
  if (built.code !== 0) throw new Error(`cannot build kustomize: ${built.stderr}`);
  return built.stdout.trim();
}

function tempCopy(t: import("ava").ExecutionContext, dir: string): string {
  const tmp = mkdtempSync(join(tmpdir(), "slipway-render-"));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  cpSync(dir, tmp, { recursive: true });
  return tmp;
}

for (const sample of samples) {
  test(`the API server accepts sample ${sample} with its rendered objects in a server-side dry-run apply`, async (t) => {
    const cp = await installCrds();
    const ns = await freshNamespace(t);
    const objects = readManifests(join(repoRoot, "samples", "apps", sample));
    const rendered = libraryRender(objects, ns);
    const applied = await cp.kubectl(["apply", "--server-side", "--dry-run=server", "--field-manager=slipway", "-n", ns, "-f", "-"], {
      input: toYaml([...objects, ...rendered]),
    });
    t.is(applied.code, 0, applied.stderr);
    t.is(applied.stdout.trim().split("\n").filter((l) => l.endsWith("serverside-applied (server dry run)")).length, objects.length + rendered.length, applied.stdout);
  });

  test(`kpt fn eval --exec renders sample ${sample} exactly as the library does`, async (t) => {
    const dir = tempCopy(t, join(repoRoot, "samples", "apps", sample));
    const ran = await exec("kpt", ["fn", "eval", dir, "--exec", main, "-o", "stdout", "--", "namespace=demo"]);
    t.is(ran.code, 0, ran.stderr);
    const items = (parse(ran.stdout) as { items: KubernetesObject[] }).items;
    const fromKpt = byKey(items.filter(isRendered).map(withoutFileAnnotations));
    const fromLibrary = libraryRender(readManifests(dir), "demo");
    t.deepEqual([...fromKpt.keys()].sort(), [...byKey(fromLibrary).keys()].sort());
    for (const [key, object] of byKey(fromLibrary)) t.deepEqual(fromKpt.get(key), object, key);
  });
}

test("a rendered sample rolls out on the control plane when applied for real", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const rendered = libraryRender(readManifests(join(repoRoot, "samples", "apps", "image-app")), ns);
  const applied = await cp.kubectl(["apply", "--server-side", "--field-manager=slipway", "-n", ns, "-f", "-"], { input: toYaml(rendered) });
  t.is(applied.code, 0, applied.stderr);
  for (const name of ["image-app-web", "image-app-worker"]) {
    const rollout = await cp.kubectl(["rollout", "status", "-n", ns, `deployment/${name}`, "--timeout=90s"]);
    t.is(rollout.code, 0, `${name}: ${rollout.stderr}`);
  }
  const service = await cp.kubectl(["get", "endpoints", "-n", ns, "image-app", "-o", "jsonpath={.subsets[*].addresses[*].ip}"]);
  t.is(service.stdout.trim().split(/\s+/).filter(Boolean).length, 2, "the Service reaches both web pods");
});

test("kpt fn eval --exec writes rendered objects into the package and a second run changes nothing", async (t) => {
  const dir = tempCopy(t, join(repoRoot, "samples", "apps", "source-app"));
  const args = ["fn", "eval", dir, "--exec", main, "--", "namespace=demo"];
  const first = await exec("kpt", args);
  t.is(first.code, 0, first.stderr);
  const files = (): string[] => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name).slice(dir.length + 1)).sort();
  const snapshot = (): string => files().map((f) => `# ${f}\n${readFileSync(join(dir, f), "utf8")}`).join("");
  t.deepEqual(files(), [
    "app.yaml",
    "config.yaml",
    "demo/deployment_source-app-web.yaml",
    "demo/deployment_source-app-worker.yaml",
    "demo/ingress_source-app.yaml",
    "demo/service_source-app.yaml",
    "release.yaml",
  ]);
  const before = snapshot();
  const second = await exec("kpt", args);
  t.is(second.code, 0, second.stderr);
  t.is(snapshot(), before);
});

test("kpt fn eval --exec fails with the render error and leaves the package alone when the Config is missing", async (t) => {
  const dir = tempCopy(t, join(repoRoot, "samples", "apps", "image-app"));
  rmSync(join(dir, "config.yaml"));
  const ran = await exec("kpt", ["fn", "eval", dir, "--exec", main, "--", "namespace=demo"]);
  t.not(ran.code, 0);
  t.true(ran.stderr.includes('[error] slipway.dev/v1alpha1/App/demo/image-app: App "image-app" has no Config: create a Config named "image-app" in namespace "demo"'), ran.stderr);
  t.notRegex(ran.stderr, /\n\s+at /);
  t.deepEqual(readdirSync(dir).sort(), ["app.yaml", "release.yaml"]);
});

test("kustomize runs slipway-render as an exec function over samples/kustomize", async (t) => {
  const built = await exec(await kustomize(), ["build", "--enable-alpha-plugins", "--enable-exec", join(repoRoot, "samples", "kustomize")]);
  t.is(built.code, 0, built.stderr);
  const fromKustomize = parseManifests(built.stdout) as KubernetesObject[];
  const settings = parse(readFileSync(join(repoRoot, "samples", "kustomize", "slipway-render.yaml"), "utf8")) as Partial<PlatformSettings>;
  const platform = { domain: settings.domain, ingressClassName: settings.ingressClassName, progressDeadlineSeconds: settings.progressDeadlineSeconds };
  const expected = libraryRender(readManifests(join(repoRoot, "samples", "kustomize")), "hello", platform);
  const rendered = byKey(fromKustomize.filter(isRendered).map(withoutFileAnnotations));
  t.deepEqual([...rendered.keys()].sort(), ["apps/v1/Deployment/hello/hello-web", "networking.k8s.io/v1/Ingress/hello/hello", "v1/Service/hello/hello"]);
  for (const [key, object] of byKey(expected)) t.deepEqual(rendered.get(key), object, key);
  t.is((rendered.get("apps/v1/Deployment/hello/hello-web")?.metadata.labels ?? {})["slipway.dev/release"], "v2", "the live release is the highest version");
});

function pluginCommand(section: "generate" | "discover"): string {
  const plugin = parse(readFileSync(join(repoRoot, "samples", "argocd", "plugin.yaml"), "utf8")) as {
    spec: { generate: { command: string[]; args: string[] }; discover: { find: { command: string[] } } };
  };
  const script = section === "generate" ? plugin.spec.generate.args[0] : plugin.spec.discover.find.command[2];
  if (script === undefined) throw new Error(`plugin.yaml has no ${section} script`);
  return script;
}

/** A PATH with slipway-render (as npm installs it) and kustomize, like the plugin's sidecar image. */
async function pluginPath(t: import("ava").ExecutionContext): Promise<string> {
  const bin = mkdtempSync(join(tmpdir(), "slipway-bin-"));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  symlinkSync(main, join(bin, "slipway-render"));
  symlinkSync(await kustomize(), join(bin, "kustomize"));
  return `${bin}:${process.env.PATH ?? ""}`;
}

test("the Argo CD plugin discovers directories that hold a Slipway App and no others", async (t) => {
  const app = await exec("sh", ["-c", pluginCommand("discover")], { cwd: join(repoRoot, "samples", "apps", "image-app") });
  t.is(app.stdout.trim(), "app.yaml");
  const other = await exec("sh", ["-c", pluginCommand("discover")], { cwd: join(repoRoot, "samples", "argocd") });
  t.is(other.stdout.trim(), "");
});

test("the Argo CD plugin renders a plain directory into the application's namespace, and the API server accepts it", async (t) => {
  const cp = await installCrds();
  const ns = await freshNamespace(t);
  const dir = join(repoRoot, "samples", "apps", "config-env");
  const ran = await exec("sh", ["-c", pluginCommand("generate")], { cwd: dir, env: { PATH: await pluginPath(t), ARGOCD_APP_NAMESPACE: ns } });
  t.is(ran.code, 0, ran.stderr);
  const output = parseManifests(ran.stdout) as KubernetesObject[];
  const rendered = byKey(output.filter(isRendered));
  for (const [key, object] of byKey(libraryRender(readManifests(dir), ns))) t.deepEqual(rendered.get(key), object, key);
  const applied = await cp.kubectl(["apply", "--server-side", "--dry-run=server", "-n", ns, "-f", "-"], { input: ran.stdout });
  t.is(applied.code, 0, applied.stderr);
});

test("the Argo CD plugin renders a kustomize directory with the platform settings beside it", async (t) => {
  const dir = tempCopy(t, join(repoRoot, "samples", "apps", "custom-domain"));
  const kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: web\nresources: [app.yaml, config.yaml, release.yaml]\n";
  const settings = "apiVersion: fn.slipway.dev/v1alpha1\nkind: PlatformSettings\nmetadata: { name: slipway-render }\ndomain: apps.example.com\ningressClassName: nginx\n";
  await exec("sh", ["-c", `cat > kustomization.yaml && printf '%s' '${settings}' > slipway-render.yaml`], { cwd: dir, input: kustomization });
  const ran = await exec("sh", ["-c", pluginCommand("generate")], { cwd: dir, env: { PATH: await pluginPath(t) } });
  t.is(ran.code, 0, ran.stderr);
  const ingress = (parseManifests(ran.stdout) as KubernetesObject[]).find((o) => o.kind === "Ingress");
  const expected = libraryRender(readManifests(dir), "web", { domain: "apps.example.com", ingressClassName: "nginx" }).find((o) => o.kind === "Ingress");
  t.is(ingress?.metadata.namespace, "web");
  t.deepEqual(ingress, expected);
});

test("the Argo CD plugin fails the sync with the render error on stderr when an App has no Config", async (t) => {
  const dir = tempCopy(t, join(repoRoot, "samples", "apps", "image-app"));
  rmSync(join(dir, "config.yaml"));
  const ran = await exec("sh", ["-c", pluginCommand("generate")], { cwd: dir, env: { PATH: await pluginPath(t), ARGOCD_APP_NAMESPACE: "shop" } });
  t.is(ran.code, 1);
  t.is(ran.stderr, 'error: App "image-app" has no Config: create a Config named "image-app" in namespace "shop" (App shop/image-app)\n');
  t.is(ran.stdout, "");
});
