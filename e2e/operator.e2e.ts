// The operator against a real control plane: App + Config → Release → Deployments rolled out by kwok → Ready,
// config changes, scaling, rollbacks, invalid specs, stuck rollouts, deletion, and restarts. Each test runs its
// own operator in-process, scoped to a fresh namespace.
import net from "node:net";
import { shortImage } from "../operator/releases.js";
import test, { type ExecutionContext } from "ava";
import { KubeConfig } from "@kubernetes/client-node";
import type { App, Condition, Config, Release } from "../crds/v1alpha1.js";
import { Kube, type KubeObject } from "../operator/kube.js";
import { createLogger } from "../operator/log.js";
import { startOperator, type OperatorHandle } from "../operator/controller.js";
import type { PlatformSettings } from "../functions/render.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";

const IMAGE_A = `registry.example/shop@sha256:${"a".repeat(64)}`;
const IMAGE_B = `registry.example/shop@sha256:${"b".repeat(64)}`;
const USER = "e2e-user";

test.before(async () => {
  await installCrds();
});

interface Env {
  ns: string;
  kube: Kube;
  operator: OperatorHandle;
  /** Starts another operator for the namespace (after stopping the first: a restart). */
  restart(): Promise<OperatorHandle>;
}

async function setup(t: ExecutionContext, platform: Partial<PlatformSettings> = {}, operatorKubeConfig?: KubeConfig): Promise<Env> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const kube = new Kube(cp.kubeConfig());
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "silent" });
  const start = () => startOperator({ kube: new Kube(operatorKubeConfig ?? cp.kubeConfig()), namespace: ns, platform, logger, concurrency: 2 });
  const env: Env = {
    ns,
    kube,
    operator: await start(),
    async restart() {
      await env.operator.stop();
      env.operator = await start();
      return env.operator;
    },
  };
  t.teardown(async () => {
    // Delete the Apps first, so the garbage collector takes their Releases and children before the namespace goes.
    await cp.kubectl(["delete", "apps.slipway.dev", "--all", "-n", ns, "--timeout=30s"]);
    await env.operator.stop();
  });
  return env;
}

/** `kubectl apply --server-side` as the user, so the user is the field manager that asked for the change. */
async function apply(ns: string, yaml: string, manager = USER): Promise<void> {
  const cp = await controlPlane();
  await cp.kubectlOk(["apply", "--server-side", `--field-manager=${manager}`, "-n", ns, "-f", "-"], { input: yaml });
}

async function kubectl(args: string[]): Promise<string> {
  return (await controlPlane()).kubectlOk(args);
}

function appYaml(name: string, image: string, extra = ""): string {
  return `apiVersion: slipway.dev/v1alpha1
kind: App
metadata:
  name: ${name}
spec:
  image: ${image}
${extra}`;
}

function configYaml(name: string, env: Record<string, string>, extra = ""): string {
  const lines = Object.entries(env).map(([k, v]) => `    ${k}: "${v}"`);
  return `apiVersion: slipway.dev/v1alpha1
kind: Config
metadata:
  name: ${name}
spec:
  env:${lines.length ? `\n${lines.join("\n")}` : " {}"}
${extra}`;
}

const getApp = (env: Env, name: string) => env.kube.get<App & KubeObject>("slipway.dev/v1alpha1", "App", env.ns, name);

async function releases(env: Env, app: string): Promise<Release[]> {
  const list = await env.kube.list<Release & KubeObject>("slipway.dev/v1alpha1", "Release", env.ns);
  return list.items.filter((r) => r.spec.app === app).sort((a, b) => a.spec.version - b.spec.version);
}

const condition = (app: App, type: string): Condition | undefined => app.status?.conditions?.find((c) => c.type === type);

/** Waits until the App is Ready for its current generation with `release` live, and returns it. */
async function eventuallyReady(env: Env, name: string, release: string, timeoutMs = 60_000): Promise<App> {
  let last: App | undefined;
  await waitFor(
    async () => {
      last = await getApp(env, name);
      const ready = condition(last, "Ready");
      return (
        ready?.status === "True" &&
        ready.observedGeneration === last.metadata.generation &&
        last.status?.observedGeneration === last.metadata.generation &&
        last.status?.currentRelease === release
      );
    },
    timeoutMs,
    () => `App ${name} not Ready with ${release}; status: ${JSON.stringify(last?.status)}`,
  );
  return last!;
}

async function eventuallyStalled(env: Env, name: string, reason: string, timeoutMs = 60_000): Promise<App> {
  let last: App | undefined;
  await waitFor(
    async () => {
      last = await getApp(env, name);
      return condition(last, "Stalled")?.status === "True" && condition(last, "Stalled")?.reason === reason;
    },
    timeoutMs,
    () => `App ${name} not Stalled with ${reason}; status: ${JSON.stringify(last?.status)}`,
  );
  return last!;
}

interface EventObject extends KubeObject {
  reason?: string;
  note?: string;
  type?: string;
  regarding?: { kind?: string; name?: string };
}

async function eventsFor(env: Env, name: string): Promise<EventObject[]> {
  const list = await env.kube.list<EventObject>("events.k8s.io/v1", "Event", env.ns);
  return list.items.filter((e) => e.regarding?.kind === "App" && e.regarding.name === name);
}

async function eventuallyEvent(env: Env, name: string, reason: string, type: "Normal" | "Warning"): Promise<EventObject> {
  let found: EventObject | undefined;
  await waitFor(
    async () => {
      found = (await eventsFor(env, name)).find((e) => e.reason === reason && e.type === type);
      return found !== undefined;
    },
    20_000,
    async () => `no ${type} Event ${reason} for App ${name}; events: ${JSON.stringify((await eventsFor(env, name)).map((e) => [e.type, e.reason, e.note]))}`,
  );
  return found!;
}

interface Deployment extends KubeObject {
  spec: { replicas?: number; template: { spec: { containers: { image: string; env?: { name: string; value?: string }[] }[] } } };
  status?: { availableReplicas?: number; updatedReplicas?: number };
}

const getDeployment = (env: Env, name: string) => env.kube.get<Deployment>("apps/v1", "Deployment", env.ns, name);

/** The App "shop" with image A and FOO unset, rolled out as v1. */
async function deployShop(env: Env, configEnv: Record<string, string> = { GREETING: "hello" }): Promise<App> {
  await apply(env.ns, configYaml("shop", configEnv));
  await apply(env.ns, appYaml("shop", IMAGE_A));
  return eventuallyReady(env, "shop", "v1");
}

test("an App with an image digest and a Config is rolled out as release v1 and becomes Ready", async (t) => {
  const env = await setup(t);
  const app = await deployShop(env);

  const [v1, ...others] = await releases(env, "shop");
  t.is(others.length, 0);
  t.is(v1!.metadata.name, "shop-v1");
  t.like(v1!.spec, { app: "shop", version: 1, cause: `deploy ${shortImage(IMAGE_A)}`, requestedBy: USER, build: { image: IMAGE_A } });
  t.deepEqual(v1!.spec.config, { env: { GREETING: "hello" } });

  t.like(condition(app, "Ready"), { status: "True", reason: "RolloutComplete", message: "release v1 is rolled out: web 1/1" });
  t.is(condition(app, "Reconciling"), undefined);
  t.is(condition(app, "Stalled"), undefined);
  t.like(app.status, {
    currentRelease: "v1",
    latestReleaseNumber: 1,
    url: `http://shop.${env.ns}.slipway.local`,
    processes: { web: { desired: 1, available: 1, updated: 1 } },
  });

  const deployment = await getDeployment(env, "shop-web");
  t.like(deployment.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: app.metadata.uid, controller: true });
  t.is(deployment.spec.template.spec.containers[0]?.image, IMAGE_A);
  t.is(deployment.status?.availableReplicas, 1);
  await env.kube.get("v1", "Service", env.ns, "shop");
  await env.kube.get("networking.k8s.io/v1", "Ingress", env.ns, "shop");

  const created = await eventuallyEvent(env, "shop", "ReleaseCreated", "Normal");
  t.is(created.note, `Release v1: deploy ${shortImage(IMAGE_A)} (requested by ${USER})`);
  await eventuallyEvent(env, "shop", "RolloutComplete", "Normal");
});

test("setting a config value cuts v2 with cause 'set FOO' and rolls it out", async (t) => {
  const env = await setup(t);
  await deployShop(env);

  await apply(env.ns, configYaml("shop", { GREETING: "hello", FOO: "bar" }), "alice-cli");
  const app = await eventuallyReady(env, "shop", "v2");

  const all = await releases(env, "shop");
  t.deepEqual(all.map((r) => r.spec.version), [1, 2]);
  t.like(all[1]!.spec, { cause: "set FOO", requestedBy: "alice-cli", build: { image: IMAGE_A } });
  t.deepEqual(all[1]!.spec.config, { env: { FOO: "bar", GREETING: "hello" } });
  t.is(app.status?.latestReleaseNumber, 2);
  const container = (await getDeployment(env, "shop-web")).spec.template.spec.containers[0];
  t.deepEqual(container?.env?.find((e) => e.name === "FOO"), { name: "FOO", value: "bar" });
});

test("scaling a process type changes its replicas and cuts no release", async (t) => {
  const env = await setup(t);
  await deployShop(env);

  await apply(env.ns, appYaml("shop", IMAGE_A, "  processes:\n    web:\n      replicas: 3\n"));
  let app: App | undefined;
  await waitFor(
    async () => {
      app = await getApp(env, "shop");
      const ready = condition(app, "Ready");
      return ready?.status === "True" && ready.observedGeneration === 2 && app.status?.processes?.web?.available === 3;
    },
    60_000,
    () => `web not scaled to 3: ${JSON.stringify(app?.status)}`,
  );
  t.deepEqual(app!.status?.processes, { web: { desired: 3, available: 3, updated: 3 } });
  t.is(condition(app!, "Ready")?.observedGeneration, 2);
  t.is((await getDeployment(env, "shop-web")).spec.replicas, 3);
  t.deepEqual((await releases(env, "shop")).map((r) => r.spec.version), [1]);
});

test("the rollback annotation cuts v3 that reuses v1's image and config and resets the App and Config", async (t) => {
  const env = await setup(t);
  await deployShop(env, { FOO: "one" });
  await apply(env.ns, appYaml("shop", IMAGE_B));
  await eventuallyReady(env, "shop", "v2");
  await apply(env.ns, configYaml("shop", { FOO: "two" }));
  await eventuallyReady(env, "shop", "v3");

  // As carol: admission refuses a changed-by that names anyone but the requester (operator/deploy/admission.yaml).
  await kubectl(["annotate", "--as=carol", "--as-group=system:masters", "-n", env.ns, "apps.slipway.dev/shop", "slipway.dev/rollback-to=v1", "slipway.dev/changed-by=carol"]);
  const app = await eventuallyReady(env, "shop", "v4");

  const all = await releases(env, "shop");
  t.deepEqual(all.map((r) => r.spec.version), [1, 2, 3, 4]);
  t.like(all[3]!.spec, { cause: "rollback to v1", rollbackOf: 1, requestedBy: "carol", build: { image: IMAGE_A } });
  t.deepEqual(all[3]!.spec.config, { env: { FOO: "one" } });
  t.is(app.spec.image, IMAGE_A, "the App's image is back at v1's");
  t.is(app.metadata.annotations?.["slipway.dev/rollback-to"], undefined, "the annotation is removed");
  const config = await env.kube.get<Config & KubeObject>("slipway.dev/v1alpha1", "Config", env.ns, "shop");
  t.deepEqual(config.spec.env, { FOO: "one" });
  t.is((await getDeployment(env, "shop-web")).spec.template.spec.containers[0]?.image, IMAGE_A);
});

test("rolling back to a release that does not exist stalls the App with a Warning Event", async (t) => {
  const env = await setup(t);
  await deployShop(env);
  await kubectl(["annotate", "-n", env.ns, "apps.slipway.dev/shop", "slipway.dev/rollback-to=v9"]);
  const app = await eventuallyStalled(env, "shop", "RollbackTargetNotFound");
  t.like(condition(app, "Ready"), { status: "False", reason: "RollbackTargetNotFound" });
  t.regex(condition(app, "Stalled")!.message, /App shop has no release v9 \(known releases: v1\)/);
  const event = await eventuallyEvent(env, "shop", "RollbackTargetNotFound", "Warning");
  t.regex(event.note ?? "", /no release v9/);
  t.deepEqual((await releases(env, "shop")).map((r) => r.spec.version), [1]);
});

test("an invalid spec stalls its App with a Warning Event while another App still becomes Ready", async (t) => {
  const env = await setup(t);
  await apply(env.ns, configYaml("broken", { PORT: "9000" }));
  await apply(env.ns, appYaml("broken", IMAGE_A));
  await deployShop(env);

  const broken = await eventuallyStalled(env, "broken", "InvalidSpec");
  t.is(broken.status?.observedGeneration, broken.metadata.generation);
  t.like(condition(broken, "Ready"), { status: "False", reason: "InvalidSpec", observedGeneration: broken.metadata.generation });
  t.regex(condition(broken, "Stalled")!.message, /env "PORT" is set by Slipway from spec.routing.port/);
  t.is(condition(broken, "Reconciling"), undefined);
  const event = await eventuallyEvent(env, "broken", "InvalidSpec", "Warning");
  t.regex(event.note ?? "", /env "PORT" is set by Slipway/);
  t.deepEqual(await releases(env, "broken"), [], "no release is cut for a spec that cannot run");

  // Fixing the spec is what makes it go again.
  await apply(env.ns, configYaml("broken", { LISTEN: "9000" }));
  const fixed = await eventuallyReady(env, "broken", "v1");
  t.deepEqual(fixed.status?.processes, { web: { desired: 1, available: 1, updated: 1 } });
});

test("an image given by tag is not deployed and the App asks for a digest", async (t) => {
  const env = await setup(t);
  await apply(env.ns, configYaml("shop", {}));
  await apply(env.ns, appYaml("shop", "registry.example/shop:1.2"));
  const app = await eventuallyStalled(env, "shop", "ImageNotPinned");
  t.regex(condition(app, "Stalled")!.message, /image "registry.example\/shop:1.2" is not pinned by digest.*@sha256/);
  t.deepEqual(await releases(env, "shop"), []);
});

test("a rollout that passes its progress deadline stalls the App naming the deployment and release", async (t) => {
  const env = await setup(t, { progressDeadlineSeconds: 5 });
  await deployShop(env);
  // No node can fit this: the new pods stay Pending while v1's pod keeps serving.
  await apply(env.ns, configYaml("shop", { GREETING: "hello" }, "  resources:\n    web:\n      requests:\n        cpu: \"1000\"\n"));
  const app = await eventuallyStalled(env, "shop", "RolloutStalled", 90_000);
  t.is(app.status?.currentRelease, "v2");
  t.regex(condition(app, "Stalled")!.message, /Deployment shop-web of release v2 made no progress within its deadline/);
  // It says why, in the scheduler's words, and which release keeps serving.
  t.regex(condition(app, "Stalled")!.message, /pod shop-web-[a-z0-9-]+ is not scheduled: Unschedulable: 0\/1 nodes are available: 1 Insufficient cpu/);
  t.regex(condition(app, "Stalled")!.message, /the previous release v1 keeps serving$/);
  t.like(condition(app, "Ready"), { status: "False", reason: "RolloutStalled" });
  t.is((await getDeployment(env, "shop-web")).status?.availableReplicas, 1, "the previous release keeps serving");
  await eventuallyEvent(env, "shop", "RolloutStalled", "Warning");
});

test("deleting an App removes its workloads and its Releases, also one it adopted, and an App of the same name made again starts at v1", async (t) => {
  const env = await setup(t);
  const first = await deployShop(env);
  // A Release without an owner, as GitOps applies one from Git: the next pass adopts it.
  await kubectl(["patch", "-n", env.ns, "releases.slipway.dev/shop-v1", "--type=json", "-p", '[{"op":"remove","path":"/metadata/ownerReferences"}]']);
  await apply(env.ns, configYaml("shop", { FOO: "x" }));
  await eventuallyReady(env, "shop", "v2");
  for (const r of await releases(env, "shop")) {
    t.like(r.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: first.metadata.uid, controller: true }, `${r.metadata.name} is owned by the App`);
  }

  await kubectl(["delete", "-n", env.ns, "apps.slipway.dev/shop", "--timeout=60s"]);
  t.is(await env.kube.getIfExists("slipway.dev/v1alpha1", "App", env.ns, "shop"), undefined);
  // Made again at once, while the garbage collector may still be deleting the old App's Releases.
  await apply(env.ns, appYaml("shop", IMAGE_B));
  const again = await eventuallyReady(env, "shop", "v1");
  t.not(again.metadata.uid, first.metadata.uid);
  const describe = async () => JSON.stringify((await releases(env, "shop")).map((r) => [r.spec.version, r.spec.build.image, r.metadata.ownerReferences?.[0]?.uid]));
  await waitFor(async () => (await describe()) === JSON.stringify([[1, IMAGE_B, again.metadata.uid]]), 30_000,
    async () => `the new App's only Release should be its v1; there are ${await describe()}`);

  await kubectl(["delete", "-n", env.ns, "apps.slipway.dev/shop", "--timeout=60s"]);
  await waitFor(
    async () => {
      const left = [
        ...(await env.kube.list("apps/v1", "Deployment", env.ns)).items,
        ...(await env.kube.list("v1", "Service", env.ns)).items,
        ...(await env.kube.list("networking.k8s.io/v1", "Ingress", env.ns)).items,
        ...(await releases(env, "shop")),
      ];
      return left.length === 0;
    },
    60_000,
    async () => `children or Releases of the deleted App are still there: ${await kubectl(["get", "deploy,svc,ing,releases.slipway.dev", "-n", env.ns, "-o", "name"])}`,
  );
  t.is(await env.kube.getIfExists("slipway.dev/v1alpha1", "App", env.ns, "shop"), undefined);
});

test("after restarts release numbers neither repeat nor skip, even when status lost the latest number", async (t) => {
  const env = await setup(t);
  await deployShop(env);

  // A change made while the operator is down is released once by the next one.
  await env.operator.stop();
  await apply(env.ns, configYaml("shop", { GREETING: "hello", FOO: "1" }));
  await env.restart();
  await eventuallyReady(env, "shop", "v2");
  t.deepEqual((await releases(env, "shop")).map((r) => r.spec.version), [1, 2]);

  // A crash between creating v2 and recording it in status: status still says 1.
  await env.operator.stop();
  await kubectl(["patch", "-n", env.ns, "apps.slipway.dev/shop", "--subresource=status", "--type=merge", "-p", '{"status":{"latestReleaseNumber":1}}']);
  await env.restart();
  await waitFor(async () => (await getApp(env, "shop")).status?.latestReleaseNumber === 2, 30_000, () => "latestReleaseNumber not restored");
  t.deepEqual((await releases(env, "shop")).map((r) => r.spec.version), [1, 2], "the same change is not released twice");

  await apply(env.ns, configYaml("shop", { GREETING: "hello", FOO: "1", BAR: "2" }));
  await eventuallyReady(env, "shop", "v3");
  const all = await releases(env, "shop");
  t.deepEqual(all.map((r) => r.spec.version), [1, 2, 3]);
  t.is(all[2]!.spec.cause, "set BAR");
});

/** A TCP relay to the API server that can drop every connection and refuse new ones, like a network outage. */
async function outageProxy(t: ExecutionContext, server: string): Promise<{ kubeConfig: KubeConfig; cut(): Promise<void>; restore(): Promise<void> }> {
  const target = new URL(server);
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  const port = (relay.address() as net.AddressInfo).port;
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    relay.close();
  });
  const cp = await controlPlane();
  const original = cp.kubeConfig();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: original.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${port}` })),
    users: original.users,
    contexts: original.contexts,
    currentContext: original.currentContext,
  });
  return {
    kubeConfig,
    cut: () =>
      new Promise<void>((resolve) => {
        relay.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
    restore: () => new Promise<void>((resolve) => relay.listen(port, "127.0.0.1", resolve)),
  };
}

test("changes made while the API server is unreachable are picked up when the watches resume", async (t) => {
  const cp = await controlPlane();
  const proxy = await outageProxy(t, cp.server);
  const env = await setup(t, {}, proxy.kubeConfig);
  await deployShop(env);

  await proxy.cut();
  await apply(env.ns, configYaml("shop", { GREETING: "hello", FOO: "during-outage" }));
  await new Promise((resolve) => setTimeout(resolve, 3000));
  await proxy.restore();

  await eventuallyReady(env, "shop", "v2");
  const all = await releases(env, "shop");
  t.deepEqual(all.map((r) => r.spec.version), [1, 2]);
  t.is(all[1]!.spec.cause, "set FOO");
});

test("removing a process type and turning routing off prunes the children the App no longer needs", async (t) => {
  const env = await setup(t);
  await apply(env.ns, configYaml("shop", {}));
  await apply(env.ns, appYaml("shop", IMAGE_A, "  processes:\n    web: {}\n    worker:\n      command: [\"worker\"]\n      replicas: 1\n"));
  await eventuallyReady(env, "shop", "v1");
  await getDeployment(env, "shop-worker");

  await apply(env.ns, appYaml("shop", IMAGE_A, "  processes:\n    web: {}\n  routing:\n    enabled: false\n"));
  let app: App | undefined;
  await waitFor(
    async () => {
      app = await getApp(env, "shop");
      return condition(app, "Ready")?.status === "True" && condition(app, "Ready")?.observedGeneration === 2;
    },
    60_000,
    () => `App not Ready at generation 2: ${JSON.stringify(app?.status)}`,
  );
  t.is(await env.kube.getIfExists("apps/v1", "Deployment", env.ns, "shop-worker"), undefined);
  t.is(await env.kube.getIfExists("v1", "Service", env.ns, "shop"), undefined);
  t.is(await env.kube.getIfExists("networking.k8s.io/v1", "Ingress", env.ns, "shop"), undefined);
  await getDeployment(env, "shop-web");
  t.deepEqual(app!.status?.processes, { web: { desired: 1, available: 1, updated: 1 } }, "the worker's progress is gone from status");
  t.is(app!.status?.url, undefined, "an App without routing has no URL");
  t.deepEqual((await releases(env, "shop")).map((r) => r.spec.version), [1]);
});

test("an App in another namespace cannot take a host another App routes: it is Stalled HostTaken naming the owner, the owner's Ingress is unchanged, and both keep serving", async (t) => {
  const cp = await controlPlane();
  const [first, second] = [await freshNamespace(t), await freshNamespace(t)];
  // One operator for both namespaces (as in a cluster), reconciling only this test's Apps.
  const run = `run-${first.slice(-6)}`;
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? "silent" });
  const operator = await startOperator({ kube: new Kube(cp.kubeConfig()), appLabelSelector: `e2e.slipway.dev/run=${run}`, logger, concurrency: 2 });
  t.teardown(async () => {
    for (const ns of [first, second]) await cp.kubectl(["delete", "apps.slipway.dev", "--all", "-n", ns, "--timeout=30s"]);
    await operator.stop();
  });
  const kube = new Kube(cp.kubeConfig());
  const team = (ns: string): Env => ({ ns, kube, operator, restart: () => Promise.reject(new Error("not here")) });
  const [owner, rival] = [team(first), team(second)];
  const host = `shop-${run}.example.com`;
  const labelled = (name: string, extra = "") => appYaml(name, IMAGE_A, extra).replace(`name: ${name}\n`, `name: ${name}\n  labels: { e2e.slipway.dev/run: ${run} }\n`);

  // The rival App is older: it exists before the owner claims the host.
  await apply(second, configYaml("storefront", {}));
  await apply(second, labelled("storefront"));
  await eventuallyReady(rival, "storefront", "v1");
  const rivalIngress = await kube.get<KubeObject>("networking.k8s.io/v1", "Ingress", second, "storefront");
  await apply(first, configYaml("shop", {}));
  await apply(first, labelled("shop", `  routing:\n    domains: [${host}]\n`));
  await eventuallyReady(owner, "shop", "v1");
  const ownerIngress = await kube.get<KubeObject & { spec: unknown }>("networking.k8s.io/v1", "Ingress", first, "shop");
  t.true(JSON.stringify(ownerIngress.spec).includes(host));

  // The attack: the rival claims the host the owner routes.
  await apply(second, labelled("storefront", `  routing:\n    domains: [${host}]\n`));
  const stalled = await eventuallyStalled(rival, "storefront", "HostTaken");
  t.like(condition(stalled, "Ready"), { status: "False", reason: "HostTaken" });
  t.regex(condition(stalled, "Stalled")!.message, new RegExp(`host "${host.replaceAll(".", "\\.")}" belongs to App ${first}/shop, which routes it already`));
  const event = await eventuallyEvent(rival, "storefront", "HostTaken", "Warning");
  t.regex(event.note ?? "", new RegExp(`belongs to App ${first}/shop`));

  // Nothing of the owner changed, and the rival's own route still serves its own host only.
  const ownerAfter = await kube.get<KubeObject>("networking.k8s.io/v1", "Ingress", first, "shop");
  t.is(ownerAfter.metadata.resourceVersion, ownerIngress.metadata.resourceVersion, "the owner's Ingress is unchanged");
  t.is((await getApp(owner, "shop")).status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
  const rivalAfter = await kube.get<KubeObject & { spec: unknown }>("networking.k8s.io/v1", "Ingress", second, "storefront");
  t.is(rivalAfter.metadata.resourceVersion, rivalIngress.metadata.resourceVersion, "the rival's Ingress was not given the host");
  t.false(JSON.stringify(rivalAfter.spec).includes(host));
  t.deepEqual((await releases(rival, "storefront")).map((r) => r.spec.version), [1]);

  // Giving the host up makes the rival go again.
  await apply(second, labelled("storefront"));
  await eventuallyReady(rival, "storefront", "v1");
});

test("the operator never takes over a Deployment or Service it did not create: the App is Stalled NotOwned naming it, and the object is left unchanged", async (t) => {
  const env = await setup(t);
  // Objects of someone else, named as Slipway would name App shop's Deployment and App api's Service.
  await apply(env.ns, `apiVersion: apps/v1
kind: Deployment
metadata: { name: shop-web, labels: { team: payments } }
spec:
  replicas: 1
  selector: { matchLabels: { team: payments } }
  template:
    metadata: { labels: { team: payments } }
    spec: { containers: [{ name: main, image: registry.example/payments@sha256:${"c".repeat(64)} }] }
`, "payments-team");
  await apply(env.ns, `apiVersion: v1
kind: Service
metadata: { name: api }
spec:
  selector: { team: payments }
  ports: [{ port: 443, targetPort: 8443 }]
`, "payments-team");
  // What an owner sees as "their object": its spec, generation, labels, annotations, owners and the managers of
  // every field but status. The deployment controller writes the Deployment's revision annotation once and its
  // status as kwok's pods come up (one CI run took the snapshot before those writes and saw them as a change),
  // so the snapshot is taken once that controller has caught up, and status is left out.
  type Owned = KubeObject & { spec: unknown; status?: { observedGeneration?: number } };
  await waitFor(async () => {
    const d = await env.kube.get<Owned>("apps/v1", "Deployment", env.ns, "shop-web");
    return d.metadata.annotations?.["deployment.kubernetes.io/revision"] !== undefined && d.status?.observedGeneration === d.metadata.generation;
  }, 30_000, () => "the deployment controller did not observe Deployment shop-web");
  const snapshot = async (kind: string, apiVersion: string, name: string) => {
    const o = await env.kube.get<Owned>(apiVersion, kind, env.ns, name);
    const m = o.metadata;
    return {
      spec: o.spec, generation: m.generation, labels: m.labels, annotations: m.annotations, ownerReferences: m.ownerReferences,
      managedFields: ((m.managedFields ?? []) as { subresource?: string }[]).filter((f) => f.subresource !== "status"),
    };
  };
  const deploymentBefore = await snapshot("Deployment", "apps/v1", "shop-web");
  const serviceBefore = await snapshot("Service", "v1", "api");

  for (const name of ["shop", "api"]) {
    await apply(env.ns, configYaml(name, {}));
    await apply(env.ns, appYaml(name, IMAGE_A));
  }
  const shop = await eventuallyStalled(env, "shop", "NotOwned");
  t.like(condition(shop, "Ready"), { status: "False", reason: "NotOwned" });
  t.regex(condition(shop, "Stalled")!.message, /^Deployment shop-web already exists and is not this App's \(it has no controller owner reference\): Slipway never takes over an object it did not create/);
  const api = await eventuallyStalled(env, "api", "NotOwned");
  t.regex(condition(api, "Stalled")!.message, /^Service api already exists and is not this App's/);
  const event = await eventuallyEvent(env, "shop", "NotOwned", "Warning");
  t.regex(event.note ?? "", /Deployment shop-web/);

  // The objects are exactly as their owner left them: no field, owner or manager added.
  t.deepEqual(await snapshot("Deployment", "apps/v1", "shop-web"), deploymentBefore);
  t.deepEqual(await snapshot("Service", "v1", "api"), serviceBefore);
  // Nothing else of either App was applied beside them.
  t.is(await env.kube.getIfExists("v1", "Service", env.ns, "shop"), undefined);
  t.is(await env.kube.getIfExists("apps/v1", "Deployment", env.ns, "api-web"), undefined);
});
