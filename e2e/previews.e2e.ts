// Pull-request previews against the real control plane: pull-request webhooks shaped and signed as GitHub,
// GitLab and Gitea send them, head branches pushed to a real Git server (a fork is a second repository).
// Previews are built by the real Tekton Pipelines controller and webhook with the sample Pipelines; only
// running containers are simulated (kwok reports each TaskRun pod's steps, e2e/controlplane/kwok/tekton.yaml).
import test from "ava";
import type { KubeObject } from "../operator/kube.js";
import { giteaPullRequest, githubPullRequest, gitlabMergeRequest, type PullRequestInput } from "../operator/builds/testdata/payloads.js";
import {
  applyYaml, eventuallyApp, eventuallyFinished, eventuallyRun, getApp, getConfig, pipelineRuns, podDigest, releases, requireTekton,
  SECRET, setup, sourceAppYaml, sourceRepo, stopGitServer, succeeded, taskRuns, type Env, type SourceRepo,
} from "./builds-support.js";
import { waitFor } from "./harness/suite.js";

test.before(async () => {
  await requireTekton();
});
test.after.always(async () => {
  await stopGitServer();
});

/** A parent App "shop" with previews on, a Config with env and secret env, and its source repository. */
async function parentApp(t: Parameters<typeof setup>[0], env: Env, previews = "    enabled: true\n    domainTemplate: \"{app}-pr-{pr}.{namespace}.preview.example.com\"\n") {
  const src = await sourceRepo(t, `shop-${env.ns}`);
  const base = await src.commit({ "Procfile": "web: ./shop\n" });
  await applyYaml(env, `apiVersion: v1\nkind: Secret\nmetadata: { name: shop-db }\nstringData: { password: hunter2 }\n`);
  await applyYaml(env, sourceAppYaml("shop", src.url, `  processes:\n    web: { replicas: 1 }\n  routing:\n    domains: [shop.example.com]\n  previews:\n${previews}`));
  await applyYaml(env, `apiVersion: slipway.dev/v1alpha1
kind: Config
metadata: { name: shop }
spec:
  env: { MODE: production }
  secretEnv:
    DB_PASSWORD: { secretName: shop-db, key: password }
`);
  return { src, base };
}

function prInput(src: SourceRepo, base: string, head: { repo?: SourceRepo; sha: string; branch?: string; id?: number }, number = 7): PullRequestInput {
  const baseRepo = { url: src.url, fullName: "acme/shop", id: 101 };
  const headRepo = head.repo ? { url: head.repo.url, fullName: "mallory/shop", id: head.id ?? 202, fork: true } : baseRepo;
  return { number, base: { repo: baseRepo, branch: "main", sha: base }, head: { repo: headRepo, branch: head.branch ?? "feature", sha: head.sha }, secret: SECRET };
}

test("a GitHub pull request opened creates preview App shop-pr-7 at its own host with the parent's Config, built from the head commit by Tekton's controller and rolled out", async (t) => {
  const env = await setup(t, { operator: true });
  const { src, base } = await parentApp(t, env);
  const head = await src.commit({ "Procfile": "web: ./shop --preview\n" }, "feature");

  const res = await env.deliver(githubPullRequest("opened", prInput(src, base, { sha: head })));
  t.is(res.status, 202);
  t.deepEqual(res.body, { previews: [`${env.ns}/shop-pr-7`] });

  const preview = await getApp(env, "shop-pr-7");
  const parent = await getApp(env, "shop");
  t.is(preview.metadata.labels?.["slipway.dev/preview"], "shop");
  t.like(preview.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: parent.metadata.uid });
  t.deepEqual(preview.spec.source, { git: src.url, branch: "feature" });
  t.deepEqual(preview.spec.routing, { domains: [`shop-pr-7.${env.ns}.preview.example.com`] });
  t.is(preview.spec.previews, undefined);
  t.deepEqual((await getConfig(env, "shop-pr-7"))?.spec, { env: { MODE: "production" }, secretEnv: { DB_PASSWORD: { secretName: "shop-db", key: "password" } } });

  const run = await eventuallyRun(env, `shop-pr-7-build-${head.slice(0, 7)}`);
  const param = (name: string) => run.spec.params.find((p) => p.name === name)?.value;
  t.is(param("APP_IMAGE"), `registry.slipway.local/${env.ns}/shop-pr-7:${head.slice(0, 7)}`);
  t.is(param("git-url"), src.url);
  t.is(param("git-revision"), head);
  const finished = await eventuallyFinished(env, run.metadata.name);
  t.like(succeeded(finished), { status: "True", reason: "Succeeded" });
  const digest = await podDigest(env, (await taskRuns(env, run.metadata.name)).build?.status?.podName ?? "");
  const [v1] = await waitForReleases(env, "shop-pr-7", 1);
  t.like(v1?.metadata.ownerReferences?.[0], { kind: "App", name: "shop-pr-7", uid: preview.metadata.uid, controller: true }, "the release goes with the preview");
  t.is(v1?.spec.requestedBy, `build ${run.metadata.name}`);
  t.deepEqual(v1?.spec.build, { image: `registry.slipway.local/${env.ns}/shop-pr-7@${digest}`, sourceCommit: head, pipelineRun: run.metadata.name, procfile: { web: "./shop --preview" } });
  const live = await eventuallyApp(env, "shop-pr-7", (a) => a.status?.currentRelease === "v1", "rolled out v1", 60_000);
  t.is(live.status?.currentRelease, "v1");
  t.deepEqual(await releases(env, "shop"), [], "the parent App is not deployed by its pull request");
});

async function waitForReleases(env: Env, app: string, n: number) {
  await waitFor(async () => (await releases(env, app)).length === n, 90_000, async () => `releases of ${app}: ${JSON.stringify((await releases(env, app)).map((r) => r.spec))}`);
  return releases(env, app);
}

test("a GitHub pull request synchronize rebuilds the preview from the new head with Tekton's controller and redeploys it", async (t) => {
  const env = await setup(t, { operator: true });
  const { src, base } = await parentApp(t, env);
  const first = await src.commit({ "Procfile": "web: ./one\n" }, "feature");
  await env.deliver(githubPullRequest("opened", prInput(src, base, { sha: first })));
  await eventuallyFinished(env, (await eventuallyRun(env, `shop-pr-7-build-${first.slice(0, 7)}`)).metadata.name);
  await waitForReleases(env, "shop-pr-7", 1);

  const second = await src.commit({ "Procfile": "web: ./two\n" }, "feature");
  await env.deliver(githubPullRequest("synchronize", prInput(src, base, { sha: second })));
  const run = await eventuallyRun(env, `shop-pr-7-build-${second.slice(0, 7)}`);
  t.is((await getApp(env, "shop-pr-7")).metadata.annotations?.["slipway.dev/preview-commit"], second);
  await eventuallyFinished(env, run.metadata.name);
  const all = await waitForReleases(env, "shop-pr-7", 2);
  t.deepEqual(all.map((r) => [r.spec.version, r.spec.build.sourceCommit, r.spec.build.procfile]), [[1, first, { web: "./one" }], [2, second, { web: "./two" }]]);
});

test("a GitHub pull request closed deletes the preview App, and with it its Config and PipelineRuns", async (t) => {
  const env = await setup(t, { operator: true });
  const { src, base } = await parentApp(t, env);
  const head = await src.commit({ "Procfile": "web: ./x\n" }, "feature");
  await env.deliver(githubPullRequest("opened", prInput(src, base, { sha: head })));
  await eventuallyRun(env, `shop-pr-7-build-${head.slice(0, 7)}`);
  t.truthy(await getConfig(env, "shop-pr-7"));

  const res = await env.deliver(githubPullRequest("closed", { ...prInput(src, base, { sha: head }), merged: true }));
  t.is(res.status, 202);
  await waitFor(async () => (await env.kube.getIfExists("slipway.dev/v1alpha1", "App", env.ns, "shop-pr-7")) === undefined, 30_000, () => "preview App shop-pr-7 still exists");
  await waitFor(async () => (await getConfig(env, "shop-pr-7")) === undefined && (await pipelineRuns(env, "shop-pr-7")).length === 0, 60_000,
    async () => `left behind: Config ${JSON.stringify(await getConfig(env, "shop-pr-7"))}, runs ${(await pipelineRuns(env, "shop-pr-7")).map((r) => r.metadata.name)}`);
  t.truthy(await getApp(env, "shop"), "the parent App stays");
});

test("a pull request from a fork gets a preview built from the fork whose Config has no secret env", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env);
  const fork = await sourceRepo(t, `fork-${env.ns}`);
  const head = await fork.commit({ "Procfile": "web: ./evil\n" }, "main");

  await env.deliver(githubPullRequest("opened", prInput(src, base, { repo: fork, sha: head, branch: "main" }, 9)));
  const preview = await getApp(env, "shop-pr-9");
  t.deepEqual(preview.spec.source, { git: fork.url, branch: "main" });
  t.is(preview.metadata.annotations?.["slipway.dev/preview-fork"], "true");
  const config = await getConfig(env, "shop-pr-9");
  t.deepEqual(config?.spec, { env: { MODE: "production" } });
  const run = await eventuallyRun(env, `shop-pr-9-build-${head.slice(0, 7)}`);
  t.like(run.spec.params.find((p) => p.name === "git-url"), { value: fork.url });
});

test("a redelivered pull request webhook changes nothing", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env);
  const head = await src.commit({ "Procfile": "web: ./x\n" }, "feature");
  const delivery = githubPullRequest("opened", prInput(src, base, { sha: head }));
  await env.deliver(delivery);
  const run = await eventuallyRun(env, `shop-pr-7-build-${head.slice(0, 7)}`);
  await eventuallyApp(env, "shop-pr-7", (a) => a.status?.latestBuild?.pipelineRun === run.metadata.name, "recorded its build");
  // What a redelivery could change: the preview's spec (generation), and the PipelineRuns (a new one, or a
  // cancelled one, whose spec.status changes its generation). Not resourceVersions: Tekton's controller keeps
  // writing the running build's status, and the operator the App's.
  const snapshot = async () => [
    (await getApp(env, "shop-pr-7")).metadata.generation,
    (await getConfig(env, "shop-pr-7"))?.metadata.generation,
    ...(await pipelineRuns(env)).map((r) => `${r.metadata.name}@${r.metadata.uid}/${r.metadata.generation}`),
  ];
  const before = await snapshot();

  t.is((await env.deliver(delivery)).status, 202);
  t.is((await env.deliver(githubPullRequest("reopened", prInput(src, base, { sha: head })))).status, 202);

  t.deepEqual(await snapshot(), before);
});

test("a GitLab merge request opens a preview and merging it removes the preview", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env);
  const head = await src.commit({ "Procfile": "web: ./x\n" }, "feature");
  await env.deliver(gitlabMergeRequest("open", prInput(src, base, { sha: head }, 3)));
  await eventuallyRun(env, `shop-pr-3-build-${head.slice(0, 7)}`);
  t.is((await getApp(env, "shop-pr-3")).spec.routing?.domains?.[0], `shop-pr-3.${env.ns}.preview.example.com`);
  await env.deliver(gitlabMergeRequest("merge", prInput(src, base, { sha: head }, 3)));
  await waitFor(async () => (await env.kube.getIfExists("slipway.dev/v1alpha1", "App", env.ns, "shop-pr-3")) === undefined, 30_000, () => "preview shop-pr-3 still exists");
  t.pass();
});

test("a Gitea pull request opens a preview at the default host when the App has no domain template", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env, "    enabled: true\n");
  const head = await src.commit({ "Procfile": "web: ./x\n" }, "feature");
  await env.deliver(giteaPullRequest("opened", prInput(src, base, { sha: head }, 11)));
  await eventuallyRun(env, `shop-pr-11-build-${head.slice(0, 7)}`);
  t.deepEqual((await getApp(env, "shop-pr-11")).spec.routing?.domains, ["shop-pr-11.preview.example.com"]);
});

test("a preview with no new commit within its TTL is removed by the next poll", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env, "    enabled: true\n    ttl: 8s\n");
  const head = await src.commit({ "Procfile": "web: ./x\n" }, "feature");
  await env.deliver(githubPullRequest("opened", prInput(src, base, { sha: head })));
  const updatedAt = Date.parse((await getApp(env, "shop-pr-7")).metadata.annotations?.["slipway.dev/preview-updated-at"] ?? "");
  await env.builds.pollNow();
  if (Date.now() < updatedAt + 7_000) {
    t.truthy(await env.kube.getIfExists<KubeObject>("slipway.dev/v1alpha1", "App", env.ns, "shop-pr-7"), "still within its TTL");
  }
  await new Promise((r) => setTimeout(r, Math.max(0, updatedAt + 9_000 - Date.now())));
  await env.builds.pollNow();
  await waitFor(async () => (await env.kube.getIfExists("slipway.dev/v1alpha1", "App", env.ns, "shop-pr-7")) === undefined, 15_000, () => "expired preview still exists");
  t.truthy(await getApp(env, "shop"));
});

test("no preview for an App without previews, nor for a pull request webhook with a bad signature (401)", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env, "    enabled: false\n");
  const head = await src.commit({ "Procfile": "web: ./x\n" }, "feature");
  const disabled = await env.deliver(githubPullRequest("opened", prInput(src, base, { sha: head })));
  t.deepEqual(disabled.body, { previews: [] });
  await env.kubectl(["patch", "apps.slipway.dev", "shop", "-n", env.ns, "--type=merge", "-p", '{"spec":{"previews":{"enabled":true}}}']);
  const forged = await env.deliver(githubPullRequest("opened", { ...prInput(src, base, { sha: head }), secret: "guessed" }));
  t.is(forged.status, 401);
  t.deepEqual((await env.kube.list("slipway.dev/v1alpha1", "App", env.ns)).items.map((a) => a.metadata.name), ["shop"]);
  t.deepEqual(await pipelineRuns(env), []);
});
