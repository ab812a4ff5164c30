// GIVEN a ResourceList on stdin, WHEN the compiled slipway-render executable runs, THEN stdout is the
// ResourceList with the rendered objects appended, or with error results and a non-zero exit.
import test from "ava";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { parse } from "yaml";
import { collectInputs } from "./inputs.js";
import { parseManifests, readManifests, toYaml } from "./manifests.js";
import { render } from "./render.js";

const root = join(import.meta.dirname, "..", "..");
const main = join(import.meta.dirname, "main.js");
const fixture = (name: string): unknown[] => readManifests(join(root, "functions", "testdata", "apps", name));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runMain(input: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main], { env: { PATH: process.env.PATH, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.on("error", () => undefined); // EPIPE when the function exits without reading: its exit code tells
    child.stdin.end(input);
  });
}

function resourceList(items: unknown[], functionConfig?: unknown): string {
  return JSON.stringify({ apiVersion: "config.kubernetes.io/v1", kind: "ResourceList", items, ...(functionConfig ? { functionConfig } : {}) });
}

interface Output {
  items: Array<{ apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: Record<string, unknown> }>;
  results?: Array<{ severity: string; message: string; resourceRef?: unknown; field?: unknown }>;
}

const keyOf = (o: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }): string =>
  `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

test("writes an empty ResourceList for an empty input", async (t) => {
  const run = await runMain(resourceList([]));
  t.is(run.code, 0);
  t.is(run.stdout, "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nmetadata:\n  name: output\nitems: []\n");
});

test("appends exactly what the library renders for every App in the ResourceList", async (t) => {
  const input = [...fixture("shop"), ...fixture("hello-image")];
  const run = await runMain(resourceList(input));
  t.is(run.code, 0, run.stderr);
  const output = parse(run.stdout) as Output;
  const expected = collectInputs(input).flatMap((i) => render(i).objects);
  const byKey = new Map(output.items.map((o) => [keyOf(o), o]));
  for (const o of expected) t.deepEqual(byKey.get(keyOf(o)), o, keyOf(o));
  t.is(output.items.length, input.length + expected.length);
  t.is(output.results, undefined);
});

test("renders the highest release version as the live release", async (t) => {
  const run = await runMain(resourceList(fixture("shop")));
  const web = (parse(run.stdout) as Output).items.find((o) => o.kind === "Deployment" && o.metadata.name === "shop-web");
  t.is(web?.metadata.labels?.["slipway.dev/release"], "v2");
});

test("reports an App without a Config as an error result and exits non-zero without a stack trace", async (t) => {
  const input = fixture("hello-image").filter((o) => (o as { kind: string }).kind !== "Config");
  const run = await runMain(resourceList(input));
  t.is(run.code, 1);
  t.notRegex(run.stderr, /\n\s+at /);
  const output = parse(run.stdout) as Output;
  t.deepEqual(output.results, [
    {
      severity: "error",
      message: 'App "hello" has no Config: create a Config named "hello" in namespace "demo"',
      resourceRef: { apiVersion: "slipway.dev/v1alpha1", kind: "App", name: "hello", namespace: "demo" },
    },
  ]);
  t.is(output.items.length, input.length, "nothing is rendered for the failing App");
});

test("names the offending field of an invalid App in its error result", async (t) => {
  const input = fixture("hello-image").map((o) => {
    const obj = o as { kind: string; spec: Record<string, unknown> };
    return obj.kind === "App" ? { ...obj, spec: { ...obj.spec, routing: { domains: ["a.example.com", "a.example.com"] } } } : obj;
  });
  const run = await runMain(resourceList(input));
  t.is(run.code, 1);
  t.deepEqual((parse(run.stdout) as Output).results, [
    {
      severity: "error",
      message: 'conflicting routes: domain "a.example.com" is already routed as spec.routing.domains[0] (spec.routing.domains[1])',
      resourceRef: { apiVersion: "slipway.dev/v1alpha1", kind: "App", name: "hello", namespace: "demo" },
      field: { path: "spec.routing.domains[1]" },
    },
  ]);
});

test("reports an unknown functionConfig key as an error result", async (t) => {
  const run = await runMain(resourceList(fixture("hello-image"), { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "fc" }, data: { domian: "x.example" } }));
  t.is(run.code, 1);
  t.deepEqual((parse(run.stdout) as Output).results, [
    {
      severity: "error",
      message: 'functionConfig has an unknown key "domian"; known keys: domain, routing, ingressClassName, gatewayName, gatewayNamespace, progressDeadlineSeconds, namespace',
    },
  ]);
});

test("takes the domain, ingress class and progress deadline from a ConfigMap functionConfig", async (t) => {
  const fc = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "fc" }, data: { domain: "apps.example.com", ingressClassName: "nginx", progressDeadlineSeconds: "90" } };
  const run = await runMain(resourceList(fixture("hello-image"), fc));
  t.is(run.code, 0, run.stdout);
  const items = (parse(run.stdout) as Output).items;
  const ingress = items.find((o) => o.kind === "Ingress");
  t.is((ingress?.spec as { ingressClassName: string }).ingressClassName, "nginx");
  t.is((ingress?.spec as { rules: Array<{ host: string }> }).rules[0]?.host, "hello.demo.apps.example.com");
  t.is((items.find((o) => o.kind === "Deployment")?.spec as { progressDeadlineSeconds: number }).progressDeadlineSeconds, 90);
});

test("renders HTTPRoutes when a PlatformSettings functionConfig asks for gateway routing", async (t) => {
  const fc = { apiVersion: "fn.slipway.dev/v1alpha1", kind: "PlatformSettings", metadata: { name: "fc" }, routing: "gateway", gateway: { name: "public", namespace: "gateways" } };
  const run = await runMain(resourceList(fixture("hello-image"), fc));
  t.is(run.code, 0, run.stdout);
  const route = (parse(run.stdout) as Output).items.find((o) => o.kind === "HTTPRoute");
  t.deepEqual(route?.spec?.parentRefs, [{ group: "gateway.networking.k8s.io", kind: "Gateway", name: "public", namespace: "gateways" }]);
});

test("places objects without a namespace in Argo CD's application namespace", async (t) => {
  const input = fixture("hello-image").map((o) => {
    const obj = structuredClone(o) as { metadata: { namespace?: string } };
    delete obj.metadata.namespace;
    return obj;
  });
  const run = await runMain(resourceList(input), { ARGOCD_APP_NAMESPACE: "prod" });
  t.is(run.code, 0, run.stdout);
  const rendered = (parse(run.stdout) as Output).items.filter((o) => o.apiVersion !== "slipway.dev/v1alpha1");
  t.deepEqual(rendered.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort(), ["Deployment/prod/hello-web", "Ingress/prod/hello", "Service/prod/hello"]);
});

test("reports unreadable input in one line, without a stack trace", async (t) => {
  const run = await runMain("items: [");
  t.not(run.code, 0);
  t.regex(run.stderr, /^YAMLException: unexpected end of the stream/);
  t.notRegex(run.stderr, /\n\s+at /);
});

function runManifests(input: string, args: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, "--manifests", ...args], { env: { PATH: process.env.PATH } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.on("error", () => undefined); // EPIPE when the function exits without reading: its exit code tells
    child.stdin.end(input);
  });
}

test("turns a plain YAML stream into the same stream plus the rendered objects with --manifests", async (t) => {
  const input = fixture("hello-image");
  const run = await runManifests(toYaml(input));
  t.is(run.code, 0, run.stderr);
  const output = parseManifests(run.stdout) as Output["items"];
  const expected = collectInputs(input).flatMap((i) => render(i).objects);
  t.deepEqual(output.map(keyOf).sort(), [...input, ...expected].map((o) => keyOf(o as Output["items"][number])).sort());
  const byKey = new Map(output.map((o) => [keyOf(o), o]));
  for (const o of expected) t.deepEqual(byKey.get(keyOf(o)), o, keyOf(o));
});

test("prints render errors one per line and exits 1 with --manifests", async (t) => {
  const input = fixture("hello-image").filter((o) => (o as { kind: string }).kind !== "Release");
  const run = await runManifests(toYaml(input));
  t.is(run.code, 1);
  t.is(run.stdout, "");
  t.is(run.stderr, 'error: App "hello" has no release yet: nothing to run until a build or an image deploy cuts v1 (App demo/hello)\n');
});
