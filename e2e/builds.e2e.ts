// Builds against the real control plane: source repositories on a real Git server, push webhooks shaped and
// signed as GitHub, GitLab and Gitea send them, Tekton v1 PipelineRuns created through the API server. There
// is no Tekton controller: where a test name says "the Tekton stand-in", the test itself writes the run's
// status through the status subresource, as Tekton does when a run ends.
import test from "ava";
import type { KubeObject } from "../operator/kube.js";
import { giteaPush, githubPush, gitlabPush } from "../operator/builds/testdata/payloads.js";
import {
  applyYaml, completeRun, condition, digest, eventuallyApp, eventuallyRun, getApp, installTekton, pipelineRuns, releases,
  SECRET, setup, sourceAppYaml, sourceRepo, stopGitServer,
} from "./builds-support.js";
import { waitFor } from "./harness/suite.js";

test.before(async () => {
  await installTekton();
});
test.after.always(async () => {
  await stopGitServer();
});

const repoOf = (url: string, name: string) => ({ url, fullName: `acme/${name}`, id: 4242 });

test("a GitHub push starts a Tekton v1 PipelineRun with the buildpacks params, the App's cache PVC, labels and owner", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `shop-${env.ns}`);
  const first = await src.commit({ "web/Procfile": "web: node server.js\n", "web/server.js": "// v1\n" });
  await applyYaml(env, sourceAppYaml("shop", src.url, "    path: web\n    builder: paketobuildpacks/builder-jammy-tiny:latest\n"));
  const app = await getApp(env, "shop");

  const res = await env.deliver(githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: first, secret: SECRET }));
  t.is(res.status, 202);
  t.deepEqual(res.body, { builds: [`${env.ns}/shop-build-${first.slice(0, 7)}`] });

  const run = await eventuallyRun(env, `shop-build-${first.slice(0, 7)}`);
  t.deepEqual(run.spec.pipelineRef, { name: "slipway-buildpacks" });
  t.deepEqual(run.spec.params, [
    { name: "APP_IMAGE", value: `registry.slipway.local/${env.ns}/shop:${first.slice(0, 7)}` },
    { name: "BUILDER_IMAGE", value: "paketobuildpacks/builder-jammy-tiny:latest" },
    { name: "SOURCE_SUBPATH", value: "web" },
    { name: "git-url", value: src.url },
    { name: "git-revision", value: first },
  ]);
  t.like(run.metadata.labels, { "slipway.dev/app": "shop", "slipway.dev/commit": first });
  t.like(run.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: app.metadata.uid, controller: true });
  t.like(run.spec.workspaces[1], { name: "cache", persistentVolumeClaim: { claimName: "shop-build-cache" } });
  const pvc = await env.kube.get<KubeObject>("v1", "PersistentVolumeClaim", env.ns, "shop-build-cache");
  t.like(pvc.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: app.metadata.uid });

  const building = await eventuallyApp(env, "shop", (a) => a.status?.latestBuild?.phase === "Running", "reported a running build");
  t.like(building.status?.latestBuild, { pipelineRun: run.metadata.name, commit: first, phase: "Running" });
  t.like(condition(building, "Built"), { status: "Unknown", reason: "Building" });
});

test("a run completed by the Tekton stand-in cuts a Release with the image digest, source commit and Procfile, and the operator rolls it out", async (t) => {
  const env = await setup(t, { operator: true });
  const src = await sourceRepo(t, `api-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./server --port $PORT\nworker: ./jobs\n" });
  await applyYaml(env, sourceAppYaml("api", src.url, "  processes:\n    web: { replicas: 1 }\n"));
  await applyYaml(env, "apiVersion: slipway.dev/v1alpha1\nkind: Config\nmetadata: { name: api }\nspec:\n  env: { MODE: production }\n");
  await env.deliver(githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET }));
  const name = `api-build-${commit.slice(0, 7)}`;
  await eventuallyRun(env, name);

  await completeRun(env, name, { succeeded: true, digest: digest("d") });

  const app = await eventuallyApp(env, "api", (a) => a.status?.latestBuild?.phase === "Succeeded", "reported the succeeded build");
  const image = `registry.slipway.local/${env.ns}/api@${digest("d")}`;
  t.like(app.status?.latestBuild, { pipelineRun: name, commit, phase: "Succeeded", image });
  t.like(condition(app, "Built"), { status: "True", reason: "Succeeded" });
  const [v1, ...more] = await releases(env, "api");
  t.is(more.length, 0);
  t.like(v1?.spec, { app: "api", version: 1, cause: `deploy ${commit.slice(0, 7)}`, config: { env: { MODE: "production" } } });
  t.deepEqual(v1?.spec.build, { image, sourceCommit: commit, pipelineRun: name, procfile: { web: "./server --port $PORT", worker: "./jobs" } });

  const rolledOut = await eventuallyApp(env, "api", (a) => a.status?.currentRelease === "v1" && condition(a, "Ready")?.status === "True", "rolled out v1", 60_000);
  t.is(rolledOut.status?.currentRelease, "v1");
  const deployment = await env.kube.get<KubeObject & { spec: { template: { spec: { containers: { image: string }[] } } } }>("apps/v1", "Deployment", env.ns, "api-web");
  t.is(deployment.spec.template.spec.containers[0]?.image, image);
  const recorded = await eventuallyRun(env, name, (r) => r.metadata.annotations?.["slipway.dev/build-recorded"] === "Succeeded");
  t.truthy(recorded);
});

test("a build the Tekton stand-in fails is reported on the App with a Warning Event, and the live release keeps serving", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `cart-${env.ns}`);
  const good = await src.commit({ "Procfile": "web: ./cart\n" });
  await applyYaml(env, sourceAppYaml("cart", src.url));
  const repo = repoOf(src.url, src.name);
  await env.deliver(githubPush({ repo, branch: "main", before: "0".repeat(40), after: good, secret: SECRET }));
  await eventuallyRun(env, `cart-build-${good.slice(0, 7)}`);
  await completeRun(env, `cart-build-${good.slice(0, 7)}`, { succeeded: true, digest: digest("1") });
  await eventuallyApp(env, "cart", (a) => a.status?.latestBuild?.phase === "Succeeded", "built the good commit");

  const bad = await src.commit({ "Procfile": "web: ./cart --broken\n" });
  await env.deliver(githubPush({ repo, branch: "main", before: good, after: bad, secret: SECRET }));
  const failing = `cart-build-${bad.slice(0, 7)}`;
  await eventuallyRun(env, failing);
  await completeRun(env, failing, { succeeded: false, reason: "Failed" });

  const app = await eventuallyApp(env, "cart", (a) => a.status?.latestBuild?.phase === "Failed", "reported the failed build");
  const built = condition(app, "Built");
  t.is(built?.status, "False");
  t.is(built?.reason, "BuildFailed");
  t.regex(built?.message ?? "", new RegExp(`PipelineRun ${failing} for commit ${bad.slice(0, 7)} failed \\(Failed\\)`));
  t.like(app.status?.latestBuild, { pipelineRun: failing, commit: bad, phase: "Failed" });
  const all = await releases(env, "cart");
  t.deepEqual(all.map((r) => [r.metadata.name, r.spec.build.sourceCommit]), [["cart-v1", good]], "no release for the failed build; v1 stays the live one");
  await waitFor(async () => {
    const events = await env.kube.list<KubeObject & { reason?: string; type?: string; note?: string; regarding?: { name?: string } }>("events.k8s.io/v1", "Event", env.ns);
    return events.items.some((e) => e.reason === "BuildFailed" && e.type === "Warning" && e.regarding?.name === "cart" && (e.note ?? "").includes(failing));
  }, 15_000, () => "no Warning Event BuildFailed about App cart naming the PipelineRun");
  t.pass();
});

test("a build that Tekton times out (the Tekton stand-in reports PipelineRunTimeout) is a failed build", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `slow-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./slow\n" });
  await applyYaml(env, sourceAppYaml("slow", src.url));
  await env.deliver(gitlabPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET }));
  const name = `slow-build-${commit.slice(0, 7)}`;
  await eventuallyRun(env, name);
  await completeRun(env, name, { succeeded: false, reason: "PipelineRunTimeout" });
  const app = await eventuallyApp(env, "slow", (a) => condition(a, "Built")?.status === "False", "reported Built=False");
  t.is(condition(app, "Built")?.reason, "BuildFailed");
  t.regex(condition(app, "Built")?.message ?? "", /\(PipelineRunTimeout\): PipelineRun "slow-build-[0-9a-f]{7}" failed to finish within "1h0m0s"/);
  t.deepEqual(await releases(env, "slow"), []);
});

test("of two quick pushes the older build is cancelled and only the newer one, completed by the Tekton stand-in, deploys", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `quick-${env.ns}`);
  const older = await src.commit({ "Procfile": "web: ./v1\n" });
  await applyYaml(env, sourceAppYaml("quick", src.url));
  const repo = repoOf(src.url, src.name);
  await env.deliver(giteaPush({ repo, branch: "main", before: "0".repeat(40), after: older, secret: SECRET }));
  const newer = await src.commit({ "Procfile": "web: ./v2\n" });
  await env.deliver(giteaPush({ repo, branch: "main", before: older, after: newer, secret: SECRET }));

  const olderRun = await eventuallyRun(env, `quick-build-${older.slice(0, 7)}`, (r) => r.spec.status === "Cancelled");
  t.is(olderRun.spec.status, "Cancelled", "Tekton v1 cancels a run whose spec.status is Cancelled");
  await eventuallyRun(env, `quick-build-${newer.slice(0, 7)}`);
  // The stand-in finishes both, the older one last, as a slow Tekton might.
  await completeRun(env, `quick-build-${newer.slice(0, 7)}`, { succeeded: true, digest: digest("2") });
  await completeRun(env, `quick-build-${older.slice(0, 7)}`, { succeeded: true, digest: digest("1") });

  await eventuallyRun(env, `quick-build-${older.slice(0, 7)}`, (r) => r.metadata.annotations?.["slipway.dev/build-recorded"] === "Superseded");
  const app = await eventuallyApp(env, "quick", (a) => a.status?.latestBuild?.phase === "Succeeded", "deployed the newer build");
  t.is(app.status?.latestBuild?.commit, newer);
  const all = await releases(env, "quick");
  t.deepEqual(all.map((r) => [r.spec.version, r.spec.build.sourceCommit, r.spec.build.procfile]), [[1, newer, { web: "./v2" }]]);
});

test("a redelivered push webhook changes nothing: same PipelineRun, same App, no second Release", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `again-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./again\n" });
  await applyYaml(env, sourceAppYaml("again", src.url));
  const delivery = githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET });
  await env.deliver(delivery);
  const name = `again-build-${commit.slice(0, 7)}`;
  await eventuallyRun(env, name);
  await completeRun(env, name, { succeeded: true, digest: digest("a") });
  await eventuallyRun(env, name, (r) => r.metadata.annotations?.["slipway.dev/build-recorded"] === "Succeeded");
  const runBefore = await eventuallyRun(env, name);
  const appBefore = await getApp(env, "again");
  const releasesBefore = await releases(env, "again");

  const again = await env.deliver(delivery);
  t.is(again.status, 202);
  await env.builds.pollNow();

  t.deepEqual((await pipelineRuns(env, "again")).map((r) => r.metadata.name), [name]);
  t.is((await eventuallyRun(env, name)).metadata.resourceVersion, runBefore.metadata.resourceVersion);
  t.is((await getApp(env, "again")).metadata.resourceVersion, appBefore.metadata.resourceVersion);
  t.deepEqual((await releases(env, "again")).map((r) => r.metadata.resourceVersion), releasesBefore.map((r) => r.metadata.resourceVersion));
});

test("a push webhook with a bad signature is refused with 401 and starts nothing", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `forged-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./x\n" });
  await applyYaml(env, sourceAppYaml("forged", src.url));
  const github = githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: "not-the-secret" });
  const res = await env.deliver(github);
  t.is(res.status, 401);
  t.deepEqual(res.body, { error: "github signature does not match the body" });
  const gitlab = await env.deliver(gitlabPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: "wrong" }));
  t.is(gitlab.status, 401);
  const unsigned = await env.deliver({ headers: { "Content-Type": "application/json", "X-GitHub-Event": "push" }, body: github.body });
  t.is(unsigned.status, 401);
  t.deepEqual(await pipelineRuns(env), []);
});

test("without a webhook, polling the source repository's refs finds a new commit and builds it", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `polled-${env.ns}`);
  const first = await src.commit({ "Procfile": "web: ./p\n" });
  await applyYaml(env, sourceAppYaml("polled", src.url));
  await env.builds.pollNow();
  await eventuallyRun(env, `polled-build-${first.slice(0, 7)}`);
  const second = await src.commit({ "Procfile": "web: ./p2\n" });
  await env.builds.pollNow();
  await eventuallyRun(env, `polled-build-${second.slice(0, 7)}`);
  t.is((await eventuallyRun(env, `polled-build-${first.slice(0, 7)}`)).spec.status, "Cancelled");
  await env.builds.pollNow();
  t.is((await pipelineRuns(env, "polled")).length, 2, "polling the same head again starts nothing");
});

test("a push to another branch or another repository starts no build", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `other-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./o\n" });
  await applyYaml(env, sourceAppYaml("other", src.url));
  const onBranch = await env.deliver(githubPush({ repo: repoOf(src.url, src.name), branch: "develop", before: "0".repeat(40), after: commit, secret: SECRET }));
  t.deepEqual(onBranch.body, { builds: [] });
  const elsewhere = await env.deliver(githubPush({ repo: repoOf(`${src.url.replace(/\.git$/, "")}-fork.git`, "fork"), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET }));
  t.deepEqual(elsewhere.body, { builds: [] });
  t.deepEqual(await pipelineRuns(env), []);
});

test("finished PipelineRuns are pruned to the last 3 per App (completed by the Tekton stand-in)", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `prune-${env.ns}`);
  await applyYaml(env, sourceAppYaml("prune", src.url));
  const repo = repoOf(src.url, src.name);
  const commits: string[] = [];
  for (let i = 0; i < 5; i++) {
    const c = await src.commit({ "Procfile": `web: ./v${i}\n` });
    commits.push(c);
    await env.deliver(githubPush({ repo, branch: "main", before: "0".repeat(40), after: c, secret: SECRET }));
    const name = `prune-build-${c.slice(0, 7)}`;
    await eventuallyRun(env, name);
    await completeRun(env, name, { succeeded: true, digest: digest(String(i)) });
    await eventuallyApp(env, "prune", (a) => a.status?.latestBuild?.commit === c && a.status.latestBuild.phase === "Succeeded", `deployed commit ${i}`);
    // Creation timestamps have one-second resolution; keep the order unambiguous.
    await new Promise((r) => setTimeout(r, 1100));
  }
  await env.builds.pollNow();
  await waitFor(async () => (await pipelineRuns(env, "prune")).length === 3, 15_000, async () => `runs: ${(await pipelineRuns(env, "prune")).map((r) => r.metadata.name)}`);
  t.deepEqual((await pipelineRuns(env, "prune")).map((r) => r.metadata.name).sort(), commits.slice(2).map((c) => `prune-build-${c.slice(0, 7)}`).sort());
  t.deepEqual((await releases(env, "prune")).map((r) => r.spec.version), [1, 2, 3, 4, 5]);
});

test("the sample Tekton Pipelines install and declare exactly the params and results Slipway's PipelineRuns use", async (t) => {
  const env = await setup(t);
  await env.kubectl(["apply", "-k", "samples/tekton", "-n", env.ns]);
  const src = await sourceRepo(t, `sample-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./s\n", "Dockerfile": "FROM scratch\n" });
  await applyYaml(env, sourceAppYaml("cnb", src.url));
  await applyYaml(env, sourceAppYaml("docker", src.url, "    strategy: dockerfile\n"));
  await env.deliver(githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET }));
  for (const app of ["cnb", "docker"]) {
    const run = await eventuallyRun(env, `${app}-build-${commit.slice(0, 7)}`);
    const pipeline = await env.kube.get<KubeObject & { spec: { params: { name: string; default?: string }[]; workspaces: { name: string }[]; results: { name: string }[] } }>(
      "tekton.dev/v1", "Pipeline", env.ns, run.spec.pipelineRef.name);
    const passed = run.spec.params.map((p) => p.name).sort();
    const required = pipeline.spec.params.filter((p) => p.default === undefined).map((p) => p.name);
    t.deepEqual(passed, pipeline.spec.params.map((p) => p.name).sort(), `${pipeline.metadata.name} declares exactly the params Slipway passes`);
    t.true(required.every((p) => passed.includes(p)));
    t.true(run.spec.workspaces.every((w) => pipeline.spec.workspaces.some((pw) => pw.name === w.name)));
    t.deepEqual(pipeline.spec.results.map((r) => r.name).sort(), ["APP_IMAGE_DIGEST", "APP_IMAGE_URL"]);
  }
});
