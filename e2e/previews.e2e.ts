// Pull-request previews against the real control plane: pull-request webhooks shaped and signed as GitHub,
// GitLab and Gitea send them, head branches pushed to a real Git server (a fork is a second repository).
// Previews are built by the real Tekton Pipelines controller and webhook with the sample Pipelines; only
// running containers are simulated (kwok reports each TaskRun pod's steps, e2e/controlplane/kwok/tekton.yaml).
import test from "ava";
import type { KubeObject } from "../operator/kube.js";
import type { App } from "../crds/v1alpha1.js";
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

/**
 * A parent App "shop" with previews on, a Config with env and secret env, and its source repository. With
 * `secrets`, the App also names Git credentials and a TLS Secret, which a fork's preview must never get.
 */
async function parentApp(t: Parameters<typeof setup>[0], env: Env, previews = "    enabled: true\n    domainTemplate: \"{app}-pr-{pr}.{namespace}.preview.example.com\"\n",
  { secrets = false, processes = "    web: { replicas: 1 }\n" } = {}) {
  const src = await sourceRepo(t, `shop-${env.ns}`);
  const base = await src.commit({ "Procfile": "web: ./shop\n" });
  await applyYaml(env, `apiVersion: v1\nkind: Secret\nmetadata: { name: shop-db }\nstringData: { password: hunter2 }\n`);
  if (secrets) {
    await applyYaml(env, `apiVersion: v1\nkind: Secret\nmetadata: { name: shop-git }\nstringData: { username: shop-bot, password: git-token-of-acme }\n`);
    await applyYaml(env, `apiVersion: v1\nkind: Secret\nmetadata: { name: shop-tls }\ntype: kubernetes.io/tls\nstringData: { tls.crt: cert, tls.key: key }\n`);
  }
  const app = sourceAppYaml("shop", src.url, `  processes:\n${processes}  routing:\n    domains: [shop.example.com]\n${secrets ? "    tls: { secretName: shop-tls }\n" : ""}  previews:\n${previews}`);
  await applyYaml(env, secrets ? app.replace("    branch: main\n", "    branch: main\n    credentialsSecret: shop-git\n") : app);
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
  // Ready, not only currentRelease: the reconciler records the release it rolls out before it applies the children.
  const live = await eventuallyApp(env, "shop-pr-7", rolledOut("v1"), "rolled out v1", 60_000);
  t.is(live.status?.currentRelease, "v1");
  const deployment = await env.kube.get<KubeObject & { spec: { replicas?: number; template: { spec: { containers: { resources?: unknown }[] } } } }>("apps/v1", "Deployment", env.ns, "shop-pr-7-web");
  t.is(deployment.spec.replicas, 1);
  t.deepEqual(deployment.spec.template.spec.containers[0]?.resources, { limits: { cpu: "500m", memory: "512Mi" } }, "a preview runs within the preview limits");
  t.deepEqual(await releases(env, "shop"), [], "the parent App is not deployed by its pull request");
});

/** The App is Ready with `release` rolled out: its children are applied. */
const rolledOut = (release: string) => (a: App) =>
  a.status?.currentRelease === release && (a.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");

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
  const synced = await env.deliver(githubPullRequest("synchronize", prInput(src, base, { sha: second })));
  t.deepEqual(synced.body, { previews: [`${env.ns}/shop-pr-7`] }, "the synchronize is taken, not refused");
  // The head commit is checked against the branch on the Git server before the build (a loaded run took over 30 s).
  const run = await eventuallyRun(env, `shop-pr-7-build-${second.slice(0, 7)}`, undefined, 60_000);
  t.is((await getApp(env, "shop-pr-7")).metadata.annotations?.["slipway.dev/preview-commit"], second);
  await eventuallyFinished(env, run.metadata.name);
  const all = await waitForReleases(env, "shop-pr-7", 2);
  t.deepEqual(all.map((r) => [r.spec.version, r.spec.build.sourceCommit, r.spec.build.procfile]), [[1, first, { web: "./one" }], [2, second, { web: "./two" }]]);
});

test("pull request synchronizes are taken while the preview App is being changed by others (it is written with its uid, not its resourceVersion)", async (t) => {
  const env = await setup(t, { operator: true });
  const { src, base } = await parentApp(t, env);
  const first = await src.commit({ "Procfile": "web: ./one\n" }, "feature");
  t.deepEqual((await env.deliver(githubPullRequest("opened", prInput(src, base, { sha: first })))).body, { previews: [`${env.ns}/shop-pr-7`] });
  // The preview's own status updates change its resourceVersion at any time; here an annotation does it 10 times a second.
  let writing = true;
  let writes = 0;
  const writer = (async () => {
    while (writing) {
      await env.kube.mergePatch({ apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { namespace: env.ns, name: "shop-pr-7" } },
        { metadata: { annotations: { "e2e.slipway.dev/tick": String(++writes) } } });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    for (let i = 0; i < 12; i++) {
      const head = await src.commit({ "Procfile": `web: ./v${i}\n` }, "feature");
      const synced = await env.deliver(githubPullRequest("synchronize", prInput(src, base, { sha: head })));
      t.deepEqual(synced.body, { previews: [`${env.ns}/shop-pr-7`] }, `synchronize ${i} is taken`);
      t.is((await getApp(env, "shop-pr-7")).metadata.annotations?.["slipway.dev/preview-commit"], head);
    }
  } finally {
    writing = false;
    await writer;
  }
  t.true(writes > 12, `the App was changed while the synchronizes were written (${writes} changes)`);
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

interface EventObject extends KubeObject { reason?: string; type?: string; note?: string; regarding?: { kind?: string; name?: string } }

/** The Events about App `app` with this reason, oldest first. */
async function appEvents(env: Env, app: string, reason: string): Promise<EventObject[]> {
  const list = await env.kube.list<EventObject>("events.k8s.io/v1", "Event", env.ns);
  return list.items.filter((e) => e.regarding?.kind === "App" && e.regarding.name === app && e.reason === reason)
    .sort((a, b) => String(a.metadata.creationTimestamp ?? "").localeCompare(String(b.metadata.creationTimestamp ?? "")) || a.metadata.name.localeCompare(b.metadata.name));
}

const APP = "slipway.dev/v1alpha1";

test("a pull request from a fork by an untrusted author builds nothing and gets no preview until labelled slipway/ok-to-preview; then it builds as the fork ServiceAccount without the parent's credentials, secret env or TLS Secret", async (t) => {
  const env = await setup(t, { operator: true });
  const { src, base } = await parentApp(t, env, undefined, { secrets: true });
  const fork = await sourceRepo(t, `fork-${env.ns}`);
  const head = await fork.commit({ "Procfile": "web: ./evil\n" }, "main");
  const pr = (labels: string[]) => ({ ...prInput(src, base, { repo: fork, sha: head, branch: "main" }, 9), author: "mallory", association: "NONE", labels });

  const opened = await env.deliver(githubPullRequest("opened", pr([])));
  t.is(opened.status, 202);
  t.deepEqual(opened.body.previews, []);
  t.regex(String((opened.body.refused as string[])[0]), /^[^/]+\/shop-pr-9: pull request #9 comes from the fork .* by mallory \(NONE\)/);
  await env.deliver(githubPullRequest("labeled", { ...pr(["bug"]), label: "bug" }));
  t.is(await env.kube.getIfExists(APP, "App", env.ns, "shop-pr-9"), undefined, "no preview App");
  t.is(await getConfig(env, "shop-pr-9"), undefined, "no preview Config");
  t.deepEqual(await pipelineRuns(env), [], "nothing built");
  const waiting = await appEvents(env, "shop", "PreviewAwaitingApproval");
  t.is(waiting.length, 2);
  t.is(waiting[0]?.type, "Normal");
  t.regex(waiting[0]?.note ?? "", /pull request #9 .* add the label slipway\/ok-to-preview to the pull request, or list its author in spec\.previews\.trustedAuthors of App shop/);

  const labeled = await env.deliver(githubPullRequest("labeled", { ...pr(["bug", "slipway/ok-to-preview"]), label: "slipway/ok-to-preview" }));
  t.deepEqual(labeled.body, { previews: [`${env.ns}/shop-pr-9`] });
  const preview = await getApp(env, "shop-pr-9");
  t.deepEqual(preview.spec.source, { git: fork.url, branch: "main" }, "no credentialsSecret");
  t.deepEqual(preview.spec.routing, { domains: [`shop-pr-9.${env.ns}.preview.example.com`] }, "no TLS Secret");
  t.is(preview.metadata.annotations?.["slipway.dev/preview-fork"], "true");
  t.deepEqual((await getConfig(env, "shop-pr-9"))?.spec, { env: { MODE: "production" } }, "no secret env");
  const run = await eventuallyRun(env, `shop-pr-9-build-${head.slice(0, 7)}`);
  t.is(run.spec.taskRunTemplate?.serviceAccountName, "slipway-fork-build");
  t.deepEqual(run.spec.workspaces.map((w) => w.name), ["build"], "no basic-auth workspace");
  t.like(run.spec.params.find((p) => p.name === "git-url"), { value: fork.url });
  t.false(JSON.stringify(run).includes("shop-git") || JSON.stringify(run).includes("shop-tls") || JSON.stringify(run).includes("shop-db"));
  const finished = await eventuallyFinished(env, run.metadata.name);
  t.like(succeeded(finished), { status: "True" }, "Tekton runs the build as slipway-fork-build");
  // The TaskRuns' pods, where the fork's code runs (not Tekton's affinity assistant, which runs no step).
  const pods = await env.kube.list<KubeObject & { spec: { serviceAccountName?: string; volumes?: { secret?: { secretName?: string } }[] } }>("v1", "Pod", env.ns, `tekton.dev/pipelineRun=${run.metadata.name},tekton.dev/taskRun`);
  t.true(pods.items.length > 0);
  for (const pod of pods.items) {
    t.is(pod.spec.serviceAccountName, "slipway-fork-build", pod.metadata.name);
    t.false((pod.spec.volumes ?? []).some((v) => ["shop-git", "shop-tls", "shop-db"].includes(v.secret?.secretName ?? "")), pod.metadata.name);
  }

  // What runs the fork's code: no secret env, no ServiceAccount token, no TLS Secret on its route.
  await eventuallyApp(env, "shop-pr-9", rolledOut("v1"), "rolled out v1", 60_000);
  const deployment = await env.kube.get<KubeObject & { spec: { template: { spec: { automountServiceAccountToken?: boolean; containers: { env?: { valueFrom?: unknown }[] }[] } } } }>("apps/v1", "Deployment", env.ns, "shop-pr-9-web");
  t.is(deployment.spec.template.spec.automountServiceAccountToken, false);
  t.false(deployment.spec.template.spec.containers.some((c) => (c.env ?? []).some((e) => e.valueFrom !== undefined)));
  const ingress = await env.kube.get<KubeObject & { spec: { tls?: unknown } }>("networking.k8s.io/v1", "Ingress", env.ns, "shop-pr-9");
  t.is(ingress.spec.tls, undefined);

  const parent = await getApp(env, "shop");
  t.is(parent.spec.source?.credentialsSecret, "shop-git", "the parent keeps its credentials");
  t.deepEqual(parent.spec.routing?.tls, { secretName: "shop-tls" });
  t.deepEqual((await getConfig(env, "shop"))?.spec.secretEnv, { DB_PASSWORD: { secretName: "shop-db", key: "password" } });

  // Removing the label withdraws the approval: the preview and its builds go, the parent stays.
  await env.deliver(githubPullRequest("unlabeled", { ...pr(["bug"]), label: "slipway/ok-to-preview" }));
  await waitFor(async () => (await env.kube.getIfExists(APP, "App", env.ns, "shop-pr-9")) === undefined && (await pipelineRuns(env, "shop-pr-9")).length === 0, 30_000,
    () => "preview shop-pr-9 or its PipelineRun still exists after the label was removed");
  t.regex((await appEvents(env, "shop", "PreviewAwaitingApproval")).at(-1)?.note ?? "", /its preview shop-pr-9 was removed$/);
  t.truthy(await getApp(env, "shop"));
});

test("a pull request from a fork by a trusted association (GitHub) or a trusted author (Gitea) gets a preview without the label", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env, "    enabled: true\n    trustedAuthors: [eve]\n");
  const fork = await sourceRepo(t, `fork-${env.ns}`);
  const head = await fork.commit({ "Procfile": "web: ./x\n" }, "main");
  const input = (n: number, author: string, association: string) => ({ ...prInput(src, base, { repo: fork, sha: head, branch: "main" }, n), author, association });

  t.deepEqual((await env.deliver(githubPullRequest("opened", input(3, "grace", "MEMBER")))).body, { previews: [`${env.ns}/shop-pr-3`] });
  t.deepEqual((await env.deliver(giteaPullRequest("opened", input(4, "eve", "NONE")))).body, { previews: [`${env.ns}/shop-pr-4`] });
  t.like((await env.deliver(githubPullRequest("opened", input(5, "trent", "CONTRIBUTOR")))).body, { previews: [] });
  await eventuallyRun(env, `shop-pr-3-build-${head.slice(0, 7)}`);
  await eventuallyRun(env, `shop-pr-4-build-${head.slice(0, 7)}`);
  t.deepEqual((await pipelineRuns(env)).map((r) => r.metadata.name), [`shop-pr-3-build-${head.slice(0, 7)}`, `shop-pr-4-build-${head.slice(0, 7)}`]);
});

test("previews are capped per App: the pull request over spec.previews.max gets none and an Event, the others stay; each preview runs one replica and is not autoscaled", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env, "    enabled: true\n    max: 2\n", { processes: "    web: { replicas: 3 }\n    worker: { autoscale: { min: 2, max: 8 } }\n" });
  const heads: string[] = [];
  for (const n of [1, 2, 3]) heads.push(await src.commit({ "Procfile": `web: ./pr${n}\nworker: ./w\n` }, `feature-${n}`));
  const open = (n: number) => env.deliver(githubPullRequest("opened", prInput(src, base, { sha: heads[n - 1] ?? "", branch: `feature-${n}` }, n)));
  await open(1);
  await open(2);
  const runs = await Promise.all([1, 2].map((n) => eventuallyRun(env, `shop-pr-${n}-build-${heads[n - 1]?.slice(0, 7)}`)));

  const over = await open(3);
  t.deepEqual(over.body.previews, []);
  t.is(await env.kube.getIfExists(APP, "App", env.ns, "shop-pr-3"), undefined);
  const [limit] = await appEvents(env, "shop", "PreviewLimitReached");
  t.is(limit?.type, "Warning");
  t.is(limit?.note, "pull request #3 gets no preview: App shop has 2 previews (shop-pr-1, shop-pr-2), its limit spec.previews.max is 2; close a pull request or raise the limit");
  for (const [i, n] of [1, 2].entries()) {
    const preview = await getApp(env, `shop-pr-${n}`);
    t.deepEqual(preview.spec.processes, { web: { replicas: 1 }, worker: { replicas: 1 } });
    const run = await env.kube.get<KubeObject>("tekton.dev/v1", "PipelineRun", env.ns, runs[i]?.metadata.name ?? "");
    t.is(run.metadata.uid, runs[i]?.metadata.uid, "the existing previews' builds stay");
  }
  t.deepEqual((await pipelineRuns(env)).map((r) => r.metadata.name).filter((n) => n.startsWith("shop-pr-3")), []);

  // Once a pull request closes, the next one gets its preview.
  await env.deliver(githubPullRequest("closed", prInput(src, base, { sha: heads[0] ?? "", branch: "feature-1" }, 1)));
  await waitFor(async () => (await env.kube.getIfExists(APP, "App", env.ns, "shop-pr-1")) === undefined, 30_000, () => "shop-pr-1 still exists");
  t.deepEqual((await open(3)).body, { previews: [`${env.ns}/shop-pr-3`] });
});

test("a pull request never replaces or deletes an App that is not its preview, nor takes another App's host; each refusal is an Event", async (t) => {
  const env = await setup(t);
  const { src, base } = await parentApp(t, env);
  const image = `registry.example.com/team/shop-pr-7@sha256:${"e".repeat(64)}`;
  await applyYaml(env, `apiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata: { name: shop-pr-7 }\nspec:\n  image: ${image}\n`);
  await applyYaml(env, `apiVersion: slipway.dev/v1alpha1\nkind: Config\nmetadata: { name: shop-pr-7 }\nspec:\n  env: { OWNER: team-b }\n`);
  await applyYaml(env, `apiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata: { name: blog }\nspec:\n  image: ${image}\n  routing:\n    domains: [shop-pr-8.${env.ns}.preview.example.com]\n`);
  const snapshot = async () => Promise.all(["shop-pr-7", "blog"].map(async (name) => {
    const app = await env.kube.getIfExists<KubeObject>(APP, "App", env.ns, name);
    return { app: app && { uid: app.metadata.uid, resourceVersion: app.metadata.resourceVersion, labels: app.metadata.labels, owners: app.metadata.ownerReferences, spec: app.spec },
      config: (await getConfig(env, name))?.metadata.resourceVersion };
  }));
  const before = await snapshot();
  const head = await src.commit({ "Procfile": "web: ./x\n" }, "feature");

  const opened = await env.deliver(githubPullRequest("opened", prInput(src, base, { sha: head }, 7)));
  t.deepEqual(opened.body.previews, []);
  t.deepEqual(opened.body.refused, [`${env.ns}/shop-pr-7: App shop-pr-7 exists and is not the preview of pull request #7 of App shop: it is left unchanged and the pull request gets no preview`]);
  await env.deliver(githubPullRequest("synchronize", prInput(src, base, { sha: head }, 7)));
  await env.deliver(githubPullRequest("closed", prInput(src, base, { sha: head }, 7)));
  const hostTaken = await env.deliver(githubPullRequest("opened", prInput(src, base, { sha: head }, 8)));
  t.deepEqual(hostTaken.body.refused, [`${env.ns}/shop-pr-8: pull request #8 gets no preview: its host shop-pr-8.${env.ns}.preview.example.com is App ${env.ns}/blog's`]);
  t.is(await env.kube.getIfExists(APP, "App", env.ns, "shop-pr-8"), undefined);

  t.deepEqual(await snapshot(), before, "App shop-pr-7, its Config and App blog are untouched");
  t.deepEqual(await pipelineRuns(env), [], "nothing was built for them");
  const taken = await appEvents(env, "shop", "PreviewNameTaken");
  t.is(taken.length, 3, "opened, synchronize and closed were each refused");
  t.true(taken.every((e) => e.type === "Warning" && e.note?.startsWith("App shop-pr-7 exists and is not the preview of pull request #7")));
  t.is((await appEvents(env, "shop", "PreviewHostTaken")).length, 1);
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
