// Builds against the real control plane and the real Tekton Pipelines controller and admission webhook:
// source repositories on a real Git server, push webhooks shaped and signed as GitHub, GitLab and Gitea send
// them, PipelineRuns admitted by Tekton's webhook and run by Tekton's controller with the sample Pipelines and
// Tasks (samples/tekton). The only simulated thing is running containers: kwok reports each TaskRun pod's steps
// as a kubelet would (e2e/controlplane/kwok/tekton.yaml), and the test names say "simulated steps" where a
// test chooses what they report (a failing step, a step that never ends).
import test from "ava";
import { startTricklingServer } from "../operator/local/trickling-server.js";
import type { KubeObject } from "../operator/kube.js";
import { giteaPush, githubPush, gitlabPush } from "../operator/builds/testdata/payloads.js";
import {
  applyYaml, condition, eventuallyApp, eventuallyFinished, eventuallyReleased, eventuallyRun, getApp, podDigest, pipelineRuns, releases,
  requireTekton, SECRET, setup, sourceAppYaml, sourceRepo, stopGitServer, succeeded, taskRuns,
} from "./builds-support.js";
import { controlPlane, waitFor } from "./harness/suite.js";

test.before(async () => {
  await requireTekton();
});
test.after.always(async () => {
  await stopGitServer();
});

const repoOf = (url: string, name: string) => ({ url, fullName: `acme/${name}`, id: 4242 });
/** A Config for the App: the operator releases a build only once the App has its Config. */
const configYaml = (app: string) => `apiVersion: slipway.dev/v1alpha1\nkind: Config\nmetadata: { name: ${app} }\nspec:\n  env: { MODE: test }\n`;

test("a GitHub push starts a Tekton v1 PipelineRun with the buildpacks params, the App's cache PVC, labels and owner, defaulted by Tekton's webhook", async (t) => {
  const env = await setup(t, { tasks: { "slipway-git-clone": { hang: true } } });
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
  // Set by Tekton's defaulting webhook (config-defaults), which the API server called on create.
  t.like(run.spec.taskRunTemplate, { serviceAccountName: "default" });
  t.like(run.metadata.labels, { "slipway.dev/app": "shop", "slipway.dev/commit": first });
  t.like(run.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: app.metadata.uid, controller: true });
  t.deepEqual(run.spec.workspaces[0], { name: "build", persistentVolumeClaim: { claimName: "shop-build-cache" } });
  const pvc = await env.kube.get<KubeObject>("v1", "PersistentVolumeClaim", env.ns, "shop-build-cache");
  t.like(pvc.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: app.metadata.uid });

  const running = await eventuallyRun(env, run.metadata.name, (r) => succeeded(r)?.reason === "Running", 60_000);
  t.like(succeeded(running), { status: "Unknown", reason: "Running" }, "Tekton's controller runs it");
  const building = await eventuallyApp(env, "shop", (a) => a.status?.latestBuild?.phase === "Running", "reported a running build");
  t.like(building.status?.latestBuild, { pipelineRun: run.metadata.name, commit: first, phase: "Running" });
  t.like(condition(building, "Built"), { status: "Unknown", reason: "Building" });
});

test("a push is built by Tekton's controller (TaskRuns, their pods on kwok, results) into a Release with the pod's digest, the cloned commit and the Procfile, and the operator rolls it out", async (t) => {
  const env = await setup(t, { operator: true });
  const src = await sourceRepo(t, `api-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./server --port $PORT\nworker: ./jobs\n" });
  await applyYaml(env, sourceAppYaml("api", src.url, "  processes:\n    web: { replicas: 1 }\n"));
  await applyYaml(env, "apiVersion: slipway.dev/v1alpha1\nkind: Config\nmetadata: { name: api }\nspec:\n  env: { MODE: production }\n");
  const pushed = Date.now();
  await env.deliver(githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET }));
  const name = `api-build-${commit.slice(0, 7)}`;

  const run = await eventuallyFinished(env, name);
  t.like(succeeded(run), { status: "True", reason: "Succeeded", message: "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0" });
  const tasks = await taskRuns(env, name);
  t.deepEqual(Object.keys(tasks).sort(), ["build", "clone"]);
  t.like(tasks.clone?.status?.conditions?.[0], { type: "Succeeded", status: "True", reason: "Succeeded" });
  t.deepEqual(tasks.clone?.status?.results?.find((r) => r.name === "commit")?.value, commit, "git-clone's result: the commit it was asked for");
  const digest = await podDigest(env, tasks.build?.status?.podName ?? "");
  t.deepEqual(run.status?.results, [
    { name: "APP_IMAGE_DIGEST", value: digest },
    { name: "APP_IMAGE_URL", value: `registry.slipway.local/${env.ns}/api:${commit.slice(0, 7)}` },
  ]);

  // The build controller records the build in the App's status; the App reconciler releases it and says so there.
  const app = await eventuallyReleased(env, "api", "v1");
  const image = `registry.slipway.local/${env.ns}/api@${digest}`;
  t.deepEqual(app.status?.latestBuild, {
    pipelineRun: name, commit, phase: "Succeeded", image, procfile: { web: "./server --port $PORT", worker: "./jobs" }, release: "v1", message: "released as v1",
  });
  t.like(condition(app, "Built"), { status: "True", reason: "Succeeded", message: `Built commit ${commit.slice(0, 7)} in PipelineRun ${name}: ${image}, released as v1` });
  const [v1, ...more] = await releases(env, "api");
  t.is(more.length, 0);
  t.like(v1?.spec, { app: "api", version: 1, cause: `deploy ${commit.slice(0, 7)}`, requestedBy: `build ${name}`, config: { env: { MODE: "production" } } });
  t.deepEqual(v1?.spec.build, { image, sourceCommit: commit, pipelineRun: name, procfile: { web: "./server --port $PORT", worker: "./jobs" } });
  t.like(v1?.metadata.ownerReferences?.[0], { kind: "App", name: "api", uid: app.metadata.uid, controller: true });
  await waitFor(async () => {
    const events = await env.kube.list<KubeObject & { reason?: string; note?: string; regarding?: { name?: string } }>("events.k8s.io/v1", "Event", env.ns);
    return events.items.some((e) => e.reason === "BuildSucceeded" && e.regarding?.name === "api" && e.note === `Built commit ${commit.slice(0, 7)} in PipelineRun ${name}; cut release v1 (${image})`);
  }, 15_000, () => "no Event BuildSucceeded about App api naming release v1");

  const rolledOut = await eventuallyApp(env, "api", (a) => a.status?.currentRelease === "v1" && condition(a, "Ready")?.status === "True", "rolled out v1", 60_000);
  t.is(rolledOut.status?.currentRelease, "v1");
  t.log(`push webhook → Ready with real Tekton (steps simulated, 1s per task): ${Date.now() - pushed} ms`);
  const deployment = await env.kube.get<KubeObject & { spec: { template: { spec: { containers: { image: string }[] } } } }>("apps/v1", "Deployment", env.ns, "api-web");
  t.is(deployment.spec.template.spec.containers[0]?.image, image);
  const recorded = await eventuallyRun(env, name, (r) => r.metadata.annotations?.["slipway.dev/build-recorded"] === "Succeeded");
  t.truthy(recorded);
});

test("a build whose step fails (simulated steps: buildpacks' create exits 1) is reported on the App with the step's name and a Warning Event, and the live release keeps serving", async (t) => {
  const env = await setup(t, { operator: true });
  const src = await sourceRepo(t, `cart-${env.ns}`);
  const good = await src.commit({ "Procfile": "web: ./cart\n" });
  await applyYaml(env, sourceAppYaml("cart", src.url));
  await applyYaml(env, configYaml("cart"));
  const repo = repoOf(src.url, src.name);
  await env.deliver(githubPush({ repo, branch: "main", before: "0".repeat(40), after: good, secret: SECRET }));
  await eventuallyReleased(env, "cart", "v1", 90_000);

  await env.kubectl(["label", "-n", env.ns, "task.tekton.dev", "slipway-buildpacks", "kwok.slipway.dev/fail-step=create"]);
  const bad = await src.commit({ "Procfile": "web: ./cart --broken\n" });
  await env.deliver(githubPush({ repo, branch: "main", before: good, after: bad, secret: SECRET }));
  const failing = `cart-build-${bad.slice(0, 7)}`;
  const run = await eventuallyFinished(env, failing);
  t.like(succeeded(run), { status: "False", reason: "Failed", message: "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 0" });
  const tasks = await taskRuns(env, failing);
  t.like(tasks.build?.status?.conditions?.[0], { status: "False", reason: "Failed", message: '"step-create" exited with code 1: Error' });

  const app = await eventuallyApp(env, "cart", (a) => a.status?.latestBuild?.phase === "Failed", "reported the failed build");
  t.is(app.status?.currentRelease, "v1");
  const built = condition(app, "Built");
  t.is(built?.status, "False");
  t.is(built?.reason, "BuildFailed");
  t.regex(built?.message ?? "", new RegExp(`PipelineRun ${failing} for commit ${bad.slice(0, 7)} failed \\(Failed\\)`));
  t.regex(built?.message ?? "", new RegExp(`task build \\(TaskRun ${failing}-build\\) Failed: "step-create" exited with code 1`));
  t.like(app.status?.latestBuild, { pipelineRun: failing, commit: bad, phase: "Failed" });
  const all = await releases(env, "cart");
  t.deepEqual(all.map((r) => [r.metadata.name, r.spec.build.sourceCommit]), [["cart-v1", good]], "no release for the failed build; v1 stays the live one");
  await waitFor(async () => {
    const events = await env.kube.list<KubeObject & { reason?: string; type?: string; note?: string; regarding?: { name?: string } }>("events.k8s.io/v1", "Event", env.ns);
    return events.items.some((e) => e.reason === "BuildFailed" && e.type === "Warning" && e.regarding?.name === "cart" && (e.note ?? "").includes("step-create"));
  }, 15_000, () => "no Warning Event BuildFailed about App cart naming the failed step");
  t.pass();
});

test("a build past its pipeline timeout (simulated steps that never end) is timed out by Tekton's controller and is a failed build", async (t) => {
  const env = await setup(t, { pipeline: { timeout: "10s" }, tasks: { "slipway-buildpacks": { hang: true } } });
  const src = await sourceRepo(t, `slow-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./slow\n" });
  await applyYaml(env, sourceAppYaml("slow", src.url));
  await env.deliver(gitlabPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET }));
  const name = `slow-build-${commit.slice(0, 7)}`;
  const run = await eventuallyFinished(env, name);
  t.like(succeeded(run), { status: "False", reason: "PipelineRunTimeout", message: `PipelineRun "${name}" failed to finish within "10s"` });
  const app = await eventuallyApp(env, "slow", (a) => condition(a, "Built")?.status === "False", "reported Built=False");
  t.is(condition(app, "Built")?.reason, "BuildFailed");
  t.regex(condition(app, "Built")?.message ?? "", /\(PipelineRunTimeout\): PipelineRun "slow-build-[0-9a-f]{7}" failed to finish within "10s"/);
  t.deepEqual(await releases(env, "slow"), []);
});

test("of two quick pushes Tekton's controller cancels the older build, and only the newer one deploys", async (t) => {
  // Steps take 4s, so the older run is still running when the second push supersedes it.
  const env = await setup(t, { operator: true, tasks: { "slipway-git-clone": { duration: "4s" } } });
  const src = await sourceRepo(t, `quick-${env.ns}`);
  const older = await src.commit({ "Procfile": "web: ./v1\n" });
  await applyYaml(env, sourceAppYaml("quick", src.url));
  await applyYaml(env, configYaml("quick"));
  const repo = repoOf(src.url, src.name);
  await env.deliver(giteaPush({ repo, branch: "main", before: "0".repeat(40), after: older, secret: SECRET }));
  const newer = await src.commit({ "Procfile": "web: ./v2\n" });
  await env.deliver(giteaPush({ repo, branch: "main", before: older, after: newer, secret: SECRET }));

  const olderRun = await eventuallyFinished(env, `quick-build-${older.slice(0, 7)}`);
  t.is(olderRun.spec.status, "Cancelled", "Slipway asked Tekton v1 to cancel it");
  t.like(succeeded(olderRun), { status: "False", reason: "Cancelled" }, "and Tekton's controller cancelled it");
  const newerRun = await eventuallyFinished(env, `quick-build-${newer.slice(0, 7)}`);
  t.like(succeeded(newerRun), { status: "True", reason: "Succeeded" });

  await eventuallyRun(env, `quick-build-${older.slice(0, 7)}`, (r) => r.metadata.annotations?.["slipway.dev/build-recorded"] === "Superseded");
  const app = await eventuallyReleased(env, "quick", "v1");
  t.is(app.status?.latestBuild?.commit, newer);
  const all = await releases(env, "quick");
  t.deepEqual(all.map((r) => [r.spec.version, r.spec.build.sourceCommit, r.spec.build.procfile]), [[1, newer, { web: "./v2" }]]);
});

test("a PipelineRun Tekton's admission webhook refuses (a negative pipeline timeout) is a failed build on the App with Tekton's message", async (t) => {
  const env = await setup(t, { pipeline: { timeout: "-5m" } });
  const src = await sourceRepo(t, `refused-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./r\n" });
  await applyYaml(env, sourceAppYaml("refused", src.url));
  await env.deliver(githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET }));
  const app = await eventuallyApp(env, "refused", (a) => a.status?.latestBuild?.phase === "Failed", "reported the refused build");
  const built = condition(app, "Built");
  t.like(built, { status: "False", reason: "BuildFailed" });
  t.regex(built?.message ?? "", new RegExp(`PipelineRun refused-build-${commit.slice(0, 7)} for commit ${commit.slice(0, 7)} failed \\(PipelineRunRefused\\): the API server refused the PipelineRun: admission webhook "validation.webhook.pipeline.tekton.dev" denied the request: `));
  t.log(built?.message);
  t.deepEqual(await pipelineRuns(env), [], "no PipelineRun exists");
  await env.builds.pollNow();
  t.is((await getApp(env, "refused")).status?.latestBuild?.phase, "Failed", "the refused commit is not retried");
});

test("a redelivered push webhook changes nothing: same PipelineRun, same App, no second Release", async (t) => {
  const env = await setup(t, { operator: true });
  const src = await sourceRepo(t, `again-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./again\n" });
  await applyYaml(env, sourceAppYaml("again", src.url));
  await applyYaml(env, configYaml("again"));
  const delivery = githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: SECRET });
  await env.deliver(delivery);
  const name = `again-build-${commit.slice(0, 7)}`;
  await eventuallyFinished(env, name);
  await eventuallyRun(env, name, (r) => r.metadata.annotations?.["slipway.dev/build-recorded"] === "Succeeded");
  await eventuallyReleased(env, "again", "v1");
  const runBefore = await eventuallyRun(env, name);
  const appBefore = await getApp(env, "again");
  const releasesBefore = await releases(env, "again");

  const again = await env.deliver(delivery);
  t.is(again.status, 202);
  await env.builds.pollNow();

  // What a redelivery could change: a new PipelineRun, a cancelled one (spec.status: a new generation), the
  // App's spec, or a new Release. Not resourceVersions, which status writes keep changing (the rollout).
  t.deepEqual((await pipelineRuns(env, "again")).map((r) => r.metadata.name), [name]);
  const run = await eventuallyRun(env, name);
  t.is(`${run.metadata.uid}/${run.metadata.generation}`, `${runBefore.metadata.uid}/${runBefore.metadata.generation}`);
  t.is((await getApp(env, "again")).metadata.generation, appBefore.metadata.generation);
  t.deepEqual((await releases(env, "again")).map((r) => `${r.metadata.name}@${r.metadata.uid}`), releasesBefore.map((r) => `${r.metadata.name}@${r.metadata.uid}`));
});

test("a push webhook with a bad signature is refused with 401 and starts nothing", async (t) => {
  const env = await setup(t);
  const src = await sourceRepo(t, `forged-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./x\n" });
  await applyYaml(env, sourceAppYaml("forged", src.url));
  const github = githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: "not-the-secret" });
  const res = await env.deliver(github);
  t.is(res.status, 401);
  t.deepEqual(res.body, { error: "the signature matches the webhook secret of no App that builds this repository and branch" });
  const gitlab = await env.deliver(gitlabPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: "wrong" }));
  t.is(gitlab.status, 401);
  const unsigned = await env.deliver({ headers: { "Content-Type": "application/json", "X-GitHub-Event": "push" }, body: github.body });
  t.is(unsigned.status, 401);
  t.deepEqual(await pipelineRuns(env), []);
});

test("each App has its own source webhook secret: a push signed with another App's secret, the platform's or a guess is refused with 401 and builds nothing", async (t) => {
  const env = await setup(t, { tasks: { "slipway-git-clone": { hang: true } } });
  const src = await sourceRepo(t, `teams-${env.ns}`);
  const commit = await src.commit({ "Procfile": "web: ./t\n" });
  // Two teams build the same repository and branch, each with its own Secret.
  await env.kubectl(["create", "secret", "generic", "alpha-hooks", "-n", env.ns, "--from-literal=secret=alpha-team-secret"]);
  await env.kubectl(["create", "secret", "generic", "beta-hooks", "-n", env.ns, "--from-literal=token=beta-team-secret"]);
  await applyYaml(env, sourceAppYaml("alpha", src.url, "    webhookSecret: { name: alpha-hooks }\n"));
  await applyYaml(env, sourceAppYaml("beta", src.url, "    webhookSecret: { name: beta-hooks, key: token }\n"));
  const push = (secret: string) => githubPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret });

  // The platform's fallback secret (SECRET here) signs only for Apps that name no secret of their own.
  for (const secret of [SECRET, "a guess"]) {
    const res = await env.deliver(push(secret));
    t.is(res.status, 401);
    t.deepEqual(res.body, { error: "the signature matches the webhook secret of no App that builds this repository and branch" });
  }
  t.deepEqual(await pipelineRuns(env), [], "nothing was built");

  // Signed with alpha's secret: alpha builds, and beta, which builds the same branch, does not.
  const alpha = await env.deliver(push("alpha-team-secret"));
  t.is(alpha.status, 202);
  t.deepEqual(alpha.body, { builds: [`${env.ns}/alpha-build-${commit.slice(0, 7)}`] });
  await eventuallyRun(env, `alpha-build-${commit.slice(0, 7)}`);
  t.deepEqual((await pipelineRuns(env)).map((r) => r.metadata.name), [`alpha-build-${commit.slice(0, 7)}`]);
  const beta = await env.deliver(gitlabPush({ repo: repoOf(src.url, src.name), branch: "main", before: "0".repeat(40), after: commit, secret: "beta-team-secret" }));
  t.is(beta.status, 202);
  await eventuallyRun(env, `beta-build-${commit.slice(0, 7)}`);
});

test("a push webhook for a commit that is no longer the branch head (an old or redelivered event) builds nothing, and the newer release stays live", async (t) => {
  // Only the newest finished PipelineRun is kept: the old commit's run is gone, so nothing but the head check
  // stands between the old event and a rebuild that would roll the App back.
  const env = await setup(t, { operator: true, pipeline: { keep: 1 } });
  const src = await sourceRepo(t, `stale-${env.ns}`);
  await applyYaml(env, sourceAppYaml("stale", src.url));
  await applyYaml(env, configYaml("stale"));
  const repo = repoOf(src.url, src.name);
  const old = await src.commit({ "Procfile": "web: ./old\n" });
  const oldPush = githubPush({ repo, branch: "main", before: "0".repeat(40), after: old, secret: SECRET });
  await env.deliver(oldPush);
  await eventuallyReleased(env, "stale", "v1");
  // Creation timestamps have one-second resolution; keep the runs' order unambiguous for pruning.
  await new Promise((r) => setTimeout(r, 1100));
  const newer = await src.commit({ "Procfile": "web: ./new\n" });
  await env.deliver(githubPush({ repo, branch: "main", before: old, after: newer, secret: SECRET }));
  await eventuallyReleased(env, "stale", "v2");
  const newerRun = `stale-build-${newer.slice(0, 7)}`;
  await waitFor(async () => (await pipelineRuns(env, "stale")).map((r) => r.metadata.name).join() === newerRun, 30_000,
    async () => `the old run was not pruned: ${(await pipelineRuns(env, "stale")).map((r) => r.metadata.name).join(", ")}`);

  const res = await env.deliver(oldPush);
  t.is(res.status, 202);
  t.deepEqual(res.body, { builds: [], notHead: [`${env.ns}/stale: ${old.slice(0, 7)} is not the head of branch main (the head is ${newer.slice(0, 7)}); not built`] });
  await env.builds.pollNow();
  t.deepEqual((await pipelineRuns(env, "stale")).map((r) => r.metadata.name), [newerRun], "no build of the old commit");
  t.deepEqual((await releases(env, "stale")).map((r) => [r.spec.version, r.spec.build.sourceCommit]), [[1, old], [2, newer]]);
  const app = await getApp(env, "stale");
  t.is(app.status?.currentRelease, "v2");
  t.is(app.status?.latestBuild?.commit, newer);
});

test("without a webhook, polling the source repository's refs finds a new commit and builds it (simulated clone steps that never end)", async (t) => {
  const env = await setup(t, { tasks: { "slipway-git-clone": { hang: true } } });
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

test("a source Git server that sends its answer a byte at a time and never finishes does not stop polling for other Apps (simulated clone steps that never end)", async (t) => {
  const env = await setup(t, { tasks: { "slipway-git-clone": { hang: true } }, gitTimeoutMs: 1_000 });
  // It starts its response and sends one byte of a header every 200 ms: never idle long enough for Node's
  // socket timeout (5 s), never done.
  const trickling = await startTricklingServer({ head: "HTTP/1.1 200 OK\r\nX-Slow: ", intervalMs: 200 });
  t.teardown(() => trickling.close());
  await applyYaml(env, sourceAppYaml("stuck", `http://127.0.0.1:${trickling.port}/stuck.git`));
  const src = await sourceRepo(t, `healthy-${env.ns}`);
  const first = await src.commit({ "Procfile": "web: ./p\n" });
  await applyYaml(env, sourceAppYaml("healthy", src.url));
  // A poll ends once every source has answered or failed: here after the 1 s timeout.
  const started = Date.now();
  await env.builds.pollNow();
  const took = Date.now() - started;
  t.true(took < 30_000, `the first poll took ${took} ms`);
  t.true(trickling.connections() > 0, "the poll never reached the trickling server");
  await eventuallyRun(env, `healthy-build-${first.slice(0, 7)}`);
  // The next poll runs, and finds the healthy App's next commit.
  const second = await src.commit({ "Procfile": "web: ./p2\n" });
  await env.builds.pollNow();
  await eventuallyRun(env, `healthy-build-${second.slice(0, 7)}`);
  t.is((await pipelineRuns(env, "stuck")).length, 0);
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

test("finished PipelineRuns are pruned to the last 3 per App", async (t) => {
  const env = await setup(t, { operator: true });
  const src = await sourceRepo(t, `prune-${env.ns}`);
  await applyYaml(env, sourceAppYaml("prune", src.url));
  await applyYaml(env, configYaml("prune"));
  const repo = repoOf(src.url, src.name);
  const commits: string[] = [];
  for (let i = 0; i < 5; i++) {
    const c = await src.commit({ "Procfile": `web: ./v${i}\n` });
    commits.push(c);
    await env.deliver(githubPush({ repo, branch: "main", before: "0".repeat(40), after: c, secret: SECRET }));
    const name = `prune-build-${c.slice(0, 7)}`;
    await eventuallyFinished(env, name);
    const released = await eventuallyReleased(env, "prune", `v${i + 1}`);
    t.is(released.status?.latestBuild?.commit, c);
    // Creation timestamps have one-second resolution; keep the order unambiguous.
    await new Promise((r) => setTimeout(r, 1100));
  }
  await env.builds.pollNow();
  await waitFor(async () => (await pipelineRuns(env, "prune")).length === 3, 15_000, async () => `runs: ${(await pipelineRuns(env, "prune")).map((r) => r.metadata.name)}`);
  t.deepEqual((await pipelineRuns(env, "prune")).map((r) => r.metadata.name).sort(), commits.slice(2).map((c) => `prune-build-${c.slice(0, 7)}`).sort());
  t.deepEqual((await releases(env, "prune")).map((r) => r.spec.version), [1, 2, 3, 4, 5]);
});

test("the sample Tekton Pipelines and Tasks are admitted by Tekton's webhook, declare exactly the params and results Slipway's PipelineRuns use, and both build", async (t) => {
  const env = await setup(t);
  // setup() applied samples/tekton; applying them again through admission must still succeed.
  await env.kubectl(["apply", "--server-side", "-k", "samples/tekton", "-n", env.ns]);
  const invalid = await (await controlPlane()).kubectl(["apply", "-n", env.ns, "-f", "-"], { input: `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: { name: bad-param-type }
spec:
  params: [{ name: level, type: number }]
  tasks: [{ name: clone, taskRef: { name: slipway-git-clone } }]
` });
  t.not(invalid.code, 0);
  t.regex(invalid.stderr, /admission webhook "validation\.webhook\.pipeline\.tekton\.dev" denied the request: validation failed: .*number/, "Tekton's webhook refuses an unknown param type");
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
    const finished = await eventuallyFinished(env, run.metadata.name);
    const why = Object.values(await taskRuns(env, run.metadata.name)).map((tr) => `${tr.metadata.name}: ${JSON.stringify(tr.status?.conditions)}`);
    t.like(succeeded(finished), { status: "True", reason: "Succeeded" }, `${pipeline.metadata.name} runs to the end in Tekton's controller; ${why.join("; ")}`);
    t.regex(finished.status?.results?.find((r) => r.name === "APP_IMAGE_DIGEST")?.value ?? "", /^sha256:[0-9a-f]{64}$/);
  }
});
