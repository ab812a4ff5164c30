// GIVEN an App, its Config and its live Release, WHEN rendered, THEN these are the objects that run it.
// Golden files: functions/testdata/golden/; regenerate with UPDATE_GOLDEN=1 and review the diff.
import test from "ava";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { collectInputs, slipwayObjects } from "./inputs.js";
import { readManifests, toYaml } from "./manifests.js";
import { type KubernetesObject, type PlatformSettings, type RenderInput, quantityValue, render, routeHosts } from "./render.js";

// Tests run from dist/functions; sources and goldens are read from the checkout.
const root = join(import.meta.dirname, "..", "..");
const goldenDir = join(root, "functions", "testdata", "golden");

function appDirs(base: string): string[] {
  const dir = join(root, base);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => join(base, d.name))
    .sort();
}

// Samples leave the namespace to `kubectl apply -n`; their goldens are rendered in "default".
function inputFrom(dir: string): RenderInput {
  const [input] = collectInputs(slipwayObjects(readManifests(join(root, dir)) as App[], "default"));
  if (input === undefined) throw new Error(`no App in ${dir}`);
  return input;
}

function assertGolden(t: import("ava").ExecutionContext, name: string, actual: string): void {
  const file = join(goldenDir, name);
  if (process.env.UPDATE_GOLDEN) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
  }
  if (!existsSync(file)) {
    t.fail(`no golden file ${file}: run with UPDATE_GOLDEN=1 and review it`);
    return;
  }
  t.is(actual, readFileSync(file, "utf8"));
}

const ingressGateway: Partial<PlatformSettings> = { routing: "gateway", gateway: { name: "public", namespace: "gateways" }, domain: "apps.example.com" };

// One golden per sample app (samples/apps/*) and per fixture of this package (functions/testdata/apps/*).
for (const dir of [...appDirs("samples/apps"), ...appDirs("functions/testdata/apps")]) {
  test(`renders ${dir} as its golden file`, (t) => {
    const outcome = render(inputFrom(dir));
    t.deepEqual(outcome.errors, []);
    assertGolden(t, `${dir.replace(/^functions\/testdata\//, "")}.yaml`, toYaml(outcome.objects));
  });
}

test("renders an HTTPRoute attached to the platform's Gateway when routing is gateway", (t) => {
  const outcome = render(inputFrom("functions/testdata/apps/shop"), ingressGateway);
  t.deepEqual(outcome.errors, []);
  t.false(outcome.objects.some((o) => o.kind === "Ingress"));
  assertGolden(t, "apps/shop.gateway.yaml", toYaml(outcome.objects));
});

// ----------------------------------------------------------------------------------- small fixtures

function app(spec: App["spec"] = {}, name = "api"): App {
  return { apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name, namespace: "team" }, spec };
}
function config(spec: Config["spec"] = {}, name = "api"): Config {
  return { apiVersion: "slipway.dev/v1alpha1", kind: "Config", metadata: { name, namespace: "team" }, spec };
}
function release(spec: Partial<Release["spec"]> = {}, app = "api"): Release {
  const version = spec.version ?? 3;
  return {
    apiVersion: "slipway.dev/v1alpha1",
    kind: "Release",
    metadata: { name: `${app}-v${version}`, namespace: "team" },
    spec: { app, version, cause: "deploy abc1234", build: { image: "r.example/api@sha256:" + "a".repeat(64) }, config: {}, ...spec },
  };
}
function find(objects: KubernetesObject[], kind: string, name: string): KubernetesObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (found === undefined) throw new Error(`no ${kind} ${name} in ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
  return found;
}
function container(d: KubernetesObject): Record<string, unknown> {
  const spec = d.spec as { template: { spec: { containers: Array<Record<string, unknown>> } } };
  return spec.template.spec.containers[0] ?? {};
}
function messages(input: RenderInput, platform?: Partial<PlatformSettings>): string[] {
  const outcome = render(input, platform);
  if (outcome.errors.length > 0 && outcome.objects.length > 0) throw new Error("errors came with objects");
  return outcome.errors.map((e) => e.message);
}

// ------------------------------------------------------------------------------------------- behaviour

test("renders the same bytes when rendering the same input twice", (t) => {
  const input = inputFrom("functions/testdata/apps/shop");
  t.is(JSON.stringify(render(input)), JSON.stringify(render(structuredClone(input))));
});

test("puts apiVersion, kind and metadata first in every object", (t) => {
  for (const o of render(inputFrom("functions/testdata/apps/shop")).objects) {
    t.deepEqual(Object.keys(o).slice(0, 3), ["apiVersion", "kind", "metadata"]);
  }
});

test("uses the release's config snapshot, not the live Config", (t) => {
  const outcome = render({
    app: app(),
    config: config({ env: { LOG_LEVEL: "debug" } }),
    release: release({ config: { env: { LOG_LEVEL: "info" } } }),
  });
  t.deepEqual(container(find(outcome.objects, "Deployment", "api-web")).env, [
    { name: "LOG_LEVEL", value: "info" },
    { name: "PORT", value: "8080" },
  ]);
});

test("reads secret env from Secret keys and never copies secret values", (t) => {
  const outcome = render({
    app: app(),
    config: config(),
    release: release({ config: { secretEnv: { DATABASE_URL: { secretName: "api-db", key: "url" } } } }),
  });
  t.deepEqual(container(find(outcome.objects, "Deployment", "api-web")).env, [
    { name: "DATABASE_URL", valueFrom: { secretKeyRef: { name: "api-db", key: "url" } } },
    { name: "PORT", value: "8080" },
  ]);
});

test("never copies Argo CD or Flux tracking labels or annotations onto rendered objects", (t) => {
  const input = inputFrom("functions/testdata/apps/shop");
  t.truthy(input.app.metadata.labels?.["argocd.argoproj.io/instance"], "the fixture carries tracking labels");
  for (const o of render(input).objects) {
    const keys = [...Object.keys(o.metadata.labels ?? {}), ...Object.keys(o.metadata.annotations ?? {})];
    const template = (o.spec as { template?: { metadata: { labels: Record<string, string> } } }).template;
    keys.push(...Object.keys(template?.metadata.labels ?? {}));
    t.deepEqual(keys.filter((k) => /^(argocd\.argoproj\.io|kustomize\.toolkit\.fluxcd\.io|helm\.toolkit\.fluxcd\.io)\/|^app\.kubernetes\.io\/instance$/.test(k)), [], `${o.kind}/${o.metadata.name}`);
    t.is(o.metadata.labels?.team, "checkout", "the App's own labels carry over");
  }
});

test("runs an image-only app without Procfile or processes as web with the image's own command", (t) => {
  const outcome = render({ app: app({ image: "r.example/api:1" }), config: config(), release: release() });
  t.deepEqual(
    outcome.objects.map((o) => `${o.kind}/${o.metadata.name}`),
    ["Deployment/api-web", "Service/api", "Ingress/api"],
  );
  t.false("command" in container(find(outcome.objects, "Deployment", "api-web")));
});

test("runs a Procfile line through /bin/sh and lets the App's command override it", (t) => {
  const outcome = render({
    app: app({ processes: { worker: { command: ["bin/worker", "--fast"] } } }),
    config: config(),
    release: release({ build: { image: "r.example/api@sha256:" + "b".repeat(64), procfile: { web: "bin/web -p $PORT", worker: "bin/worker" } } }),
  });
  t.deepEqual(container(find(outcome.objects, "Deployment", "api-web")).command, ["/bin/sh", "-c", "bin/web -p $PORT"]);
  t.deepEqual(container(find(outcome.objects, "Deployment", "api-worker")).command, ["bin/worker", "--fast"]);
});

test("scales web to 1 and other process types to 0 unless replicas are declared", (t) => {
  const outcome = render({
    app: app({ processes: { clock: { replicas: 2 } } }),
    config: config(),
    release: release({ build: { image: "r.example/api@sha256:" + "b".repeat(64), procfile: { web: "w", worker: "k", clock: "c" } } }),
  });
  const replicas = (name: string): unknown => (find(outcome.objects, "Deployment", name).spec as { replicas?: number }).replicas;
  t.deepEqual([replicas("api-web"), replicas("api-worker"), replicas("api-clock")], [1, 0, 2]);
});

test("leaves replicas to the HPA for an autoscaled process type", (t) => {
  const outcome = render({ app: app({ processes: { web: { replicas: 3, autoscale: { min: 2, max: 4 } } } }), config: config(), release: release() });
  t.false("replicas" in (find(outcome.objects, "Deployment", "api-web").spec as object));
  t.deepEqual(find(outcome.objects, "HorizontalPodAutoscaler", "api-web").spec, {
    scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "api-web" },
    minReplicas: 2,
    maxReplicas: 4,
    metrics: [{ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 80 } } }],
  });
});

test("runs a pull-request preview at one replica per process type, without an HPA, within the preview resource limits", (t) => {
  const preview: App = { ...app({ processes: { web: { replicas: 3 }, worker: { autoscale: { min: 2, max: 9 } } } }, "api-pr-7"), metadata: { name: "api-pr-7", namespace: "team", labels: { "slipway.dev/preview": "api" } } };
  const outcome = render({
    app: preview,
    config: config({}, "api-pr-7"),
    release: release({
      build: { image: "r.example/api@sha256:" + "b".repeat(64), procfile: { web: "w", worker: "k", clock: "c" } },
      config: { resources: { web: { requests: { cpu: "2", memory: "256Mi" }, limits: { cpu: "4", memory: "300Mi" } } } },
    }, "api-pr-7"),
  });
  t.deepEqual(outcome.errors, []);
  const replicas = (name: string): unknown => (find(outcome.objects, "Deployment", name).spec as { replicas?: number }).replicas;
  t.deepEqual([replicas("api-pr-7-web"), replicas("api-pr-7-worker"), replicas("api-pr-7-clock")], [1, 1, 0]);
  t.false(outcome.objects.some((o) => o.kind === "HorizontalPodAutoscaler"));
  t.deepEqual(container(find(outcome.objects, "Deployment", "api-pr-7-web")).resources, { requests: { cpu: "500m", memory: "256Mi" }, limits: { cpu: "500m", memory: "300Mi" } });
  t.deepEqual(container(find(outcome.objects, "Deployment", "api-pr-7-clock")).resources, { limits: { cpu: "500m", memory: "512Mi" } }, "a process type without resources gets the limits");
  const platform = render({ app: preview, config: config({}, "api-pr-7"), release: release({}, "api-pr-7") }, { previewLimits: { cpu: "1", memory: "1Gi" } });
  t.deepEqual(container(find(platform.objects, "Deployment", "api-pr-7-web")).resources, { limits: { cpu: "1", memory: "1Gi" } });
});

test("mounts no ServiceAccount token into the pods of a fork's preview, and leaves other Apps' pods as they are", (t) => {
  const podSpec = (labels: Record<string, string>, annotations: Record<string, string>): Record<string, unknown> => {
    const a: App = { ...app({}, "api-pr-7"), metadata: { name: "api-pr-7", namespace: "team", labels, annotations } };
    const d = find(render({ app: a, config: config({}, "api-pr-7"), release: release({}, "api-pr-7") }).objects, "Deployment", "api-pr-7-web");
    return (d.spec as { template: { spec: Record<string, unknown> } }).template.spec;
  };
  t.is(podSpec({ "slipway.dev/preview": "api" }, { "slipway.dev/preview-fork": "true" }).automountServiceAccountToken, false);
  t.false("automountServiceAccountToken" in podSpec({ "slipway.dev/preview": "api" }, { "slipway.dev/preview-fork": "false" }));
  t.false("automountServiceAccountToken" in podSpec({}, { "slipway.dev/preview-fork": "true" }), "only previews carry the fork annotation's meaning");
});

test("reads Kubernetes quantities", (t) => {
  t.deepEqual(["500m", "1", "1.5", "2k", "512Mi", "1Gi", "1e3", ".5", "lots", "1 Gi"].map(quantityValue), [0.5, 1, 1.5, 2000, 512 * 2 ** 20, 2 ** 30, 1000, 0.5, NaN, NaN]);
});

test("keeps Deployment selectors the same from one release to the next", (t) => {
  const selector = (version: number): unknown =>
    (find(render({ app: app(), config: config(), release: release({ version }) }).objects, "Deployment", "api-web").spec as { selector: unknown }).selector;
  t.deepEqual(selector(4), selector(3));
  t.deepEqual(selector(3), { matchLabels: { "slipway.dev/app": "api", "slipway.dev/process": "web" } });
});

test("shortens names longer than 63 characters with a hash, keeping them DNS labels", (t) => {
  const name = "a".repeat(60);
  const outcome = render({ app: app({}, name), config: config({}, name), release: release({}, name) });
  const deployment = outcome.objects.find((o) => o.kind === "Deployment");
  t.regex(deployment?.metadata.name ?? "", /^a{54}-[0-9a-f]{8}$/);
});

test("routes the web process with the platform's ingress class, domain and path", (t) => {
  const outcome = render(
    { app: app({ routing: { path: "/api", port: 3000 } }), config: config(), release: release() },
    { ingressClassName: "nginx", domain: "apps.example.com" },
  );
  t.deepEqual(find(outcome.objects, "Ingress", "api").spec, {
    ingressClassName: "nginx",
    rules: [{ host: "api.team.apps.example.com", http: { paths: [{ path: "/api", pathType: "Prefix", backend: { service: { name: "api", port: { number: 80 } } } }] } }],
  });
  t.deepEqual((find(outcome.objects, "Service", "api").spec as { ports: unknown }).ports, [{ name: "http", port: 80, targetPort: 3000, protocol: "TCP" }]);
});

test("renders no Service or route when routing is disabled", (t) => {
  const outcome = render({ app: app({ routing: { enabled: false } }), config: config(), release: release() });
  t.deepEqual(outcome.objects.map((o) => o.kind), ["Deployment"]);
});

test("sets the platform's progress deadline on every Deployment", (t) => {
  const outcome = render({ app: app(), config: config(), release: release() }, { progressDeadlineSeconds: 120 });
  t.is((find(outcome.objects, "Deployment", "api-web").spec as { progressDeadlineSeconds: number }).progressDeadlineSeconds, 120);
});

test("does not set ownerReferences, which are the operator's", (t) => {
  for (const o of render(inputFrom("functions/testdata/apps/shop")).objects) t.false("ownerReferences" in o.metadata);
});

// ------------------------------------------------------------------------------------------ validation

test("refuses an App without a Config", (t) => {
  t.deepEqual(messages({ app: app(), release: release() }), ['App "api" has no Config: create a Config named "api" in namespace "team"']);
});

test("refuses an App without a release yet", (t) => {
  t.deepEqual(messages({ app: app(), config: config() }), ['App "api" has no release yet: nothing to run until a build or an image deploy cuts v1']);
});

test("refuses a release that belongs to another app", (t) => {
  const outcome = render({ app: app(), config: config(), release: release({}, "billing") });
  t.deepEqual(outcome.errors, [
    {
      message: 'Release "billing-v3" belongs to app "billing" in namespace "team", not to App "api" in namespace "team"',
      field: "spec.app",
      object: { kind: "Release", name: "billing-v3", namespace: "team" },
    },
  ]);
});

test("refuses resources for a process type that does not exist", (t) => {
  const outcome = render({ app: app(), config: config({ resources: { wroker: { limits: { memory: "1Gi" } } } }), release: release() });
  t.deepEqual(outcome.errors, [
    {
      message: 'unknown process type "wroker" in resources: the app\'s process types are web',
      field: "spec.resources.wroker",
      object: { kind: "Config", name: "api", namespace: "team" },
    },
  ]);
});

test("refuses health checks for a process type that is not in the Procfile", (t) => {
  const outcome = render({
    app: app({ processes: { wroker: { readiness: { path: "/ready" } } } }),
    config: config(),
    release: release({ build: { image: "r.example/api@sha256:" + "b".repeat(64), procfile: { web: "w", worker: "k" } } }),
  });
  t.deepEqual(outcome.errors, [
    {
      message: 'unknown process type "wroker": it is not in release v3\'s Procfile (web, worker) and has no command',
      field: "spec.processes.wroker",
      object: { kind: "App", name: "api", namespace: "team" },
    },
  ]);
});

test("refuses a domain listed twice", (t) => {
  t.deepEqual(messages({ app: app({ routing: { domains: ["api.example.com", "api.example.com"] } }), config: config(), release: release() }), [
    'conflicting routes: domain "api.example.com" is already routed as spec.routing.domains[0]',
  ]);
});

test("refuses a domain equal to the default host", (t) => {
  t.deepEqual(messages({ app: app({ routing: { domains: ["api.team.slipway.local"] } }), config: config(), release: release() }), [
    'conflicting routes: domain "api.team.slipway.local" is already routed as the default host',
  ]);
});

test("refuses PORT in the config because Slipway sets it from the routing port", (t) => {
  t.deepEqual(messages({ app: app(), config: config(), release: release({ config: { env: { PORT: "9000" } } }) }), [
    'env "PORT" is set by Slipway from spec.routing.port of the App; remove it from the Config',
  ]);
});

test("refuses an env name set both as a plain value and from a Secret", (t) => {
  t.deepEqual(messages({ app: app(), config: config({ env: { TOKEN: "x" }, secretEnv: { TOKEN: { secretName: "s", key: "k" } } }), release: release() }), [
    'env "TOKEN" is set both as a plain value and from a Secret',
  ]);
});

test("refuses autoscaling with max below min", (t) => {
  t.deepEqual(messages({ app: app({ processes: { web: { autoscale: { min: 3, max: 2 } } } }), config: config(), release: release() }), [
    'autoscale max of process type "web" (2) must be a whole number >= min (3)',
  ]);
});

test("refuses gateway routing without a Gateway to attach to", (t) => {
  t.deepEqual(messages({ app: app(), config: config(), release: release() }, { routing: "gateway" }), [
    'platform routing "gateway" needs a gateway name for the HTTPRoute parentRef',
  ]);
});

test("an App's route hosts are its default host, then its domains, and none with routing off", (t) => {
  const app = (routing: App["spec"]["routing"]): App => ({ apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "shop", namespace: "team-a" }, spec: { image: "x", routing } });
  t.deepEqual(routeHosts(app({ domains: ["shop.example.com"] }), { domain: "apps.example.net" }), ["shop.team-a.apps.example.net", "shop.example.com"]);
  t.deepEqual(routeHosts(app(undefined)), ["shop.team-a.slipway.local"]);
  t.deepEqual(routeHosts(app({ enabled: false, domains: ["shop.example.com"] })), []);
});

// --------------------------------------------------------------------------------------------- placement

function podSpec(d: KubernetesObject): Record<string, unknown> {
  return (d.spec as { template: { spec: Record<string, unknown> } }).template.spec;
}

test("the platform's placement puts every process type's pods on the chosen nodes, beside the Config's nodeSelector", (t) => {
  const placement = {
    nodeSelector: { "slipway.dev/node-kind": "real", disk: "ssd" },
    tolerations: [{ key: "slipway.dev/real-node", operator: "Equal" as const, value: "true", effect: "NoSchedule" as const }, { key: "spot", operator: "Exists" as const }],
  };
  const input = { app: app({ processes: { web: {}, worker: { command: ["work"], replicas: 1 } } }), config: config(), release: release({ config: { nodeSelector: { disk: "hdd", zone: "a" } } }) };
  const { objects, errors } = render(input, { placement });
  t.deepEqual(errors, []);
  for (const name of ["api-web", "api-worker"]) {
    const spec = podSpec(find(objects, "Deployment", name));
    // The platform's value wins on a key both set; keys sorted.
    t.deepEqual(spec.nodeSelector, { disk: "ssd", "slipway.dev/node-kind": "real", zone: "a" });
    t.deepEqual(spec.tolerations, [
      { key: "slipway.dev/real-node", operator: "Equal", value: "true", effect: "NoSchedule" },
      { key: "spot", operator: "Exists" },
    ]);
  }
});

test("without a placement the pods carry no tolerations and only the Config's nodeSelector, as before", (t) => {
  const plain = render({ app: app(), config: config(), release: release() });
  t.false("nodeSelector" in podSpec(find(plain.objects, "Deployment", "api-web")));
  t.false("tolerations" in podSpec(find(plain.objects, "Deployment", "api-web")));
  const tagged = render({ app: app(), config: config(), release: release({ config: { nodeSelector: { zone: "a" } } }) }, { placement: {} });
  t.deepEqual(podSpec(find(tagged.objects, "Deployment", "api-web")).nodeSelector, { zone: "a" });
  t.false("tolerations" in podSpec(find(tagged.objects, "Deployment", "api-web")));
});

test("a placement a pod spec would refuse is a render error naming the key, the value or the toleration", (t) => {
  const input = { app: app(), config: config(), release: release() };
  t.deepEqual(messages(input, { placement: { nodeSelector: { "bad key!": "x", ok: "not ok" } } }), [
    'placement nodeSelector key "bad key!" is not a label key',
    'placement nodeSelector value "not ok" of "ok" is not a label value',
  ]);
  t.deepEqual(messages(input, { placement: { tolerations: [{ key: "a", operator: "Exists", value: "v" }, { value: "x" }, { key: "b", effect: "Never" as "NoSchedule" }] } }), [
    "placement toleration 1: operator Exists takes no value",
    "placement toleration 2: a toleration without a key must use operator Exists",
    'placement toleration 3: effect must be one of NoSchedule, PreferNoSchedule, NoExecute, not "Never"',
  ]);
});
