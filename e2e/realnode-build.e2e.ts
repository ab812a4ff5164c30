// source-app built from its Git repository for real: the operator (`node dist/operator/main.js`, builds on) sees
// the commit, Tekton's controller runs the sample buildpacks Pipeline (samples/tekton), and the kubelet of the real
// node runs its TaskRuns' pods: Tekton's entrypoint, git clone of the sample source (samples/source/source-app)
// from the local Git server, and the Cloud Native Buildpacks lifecycle, whose creator detects the Procfile
// (samples/buildpacks/procfile), builds, and exports the image to the node's registry. The Release that follows
// carries that image's digest and the Procfile, and its web and worker processes run from it on the real node.
// What is asserted comes from Tekton's own status (PipelineRun, TaskRuns, results), the kubelet's (the pods' steps
// and their exit codes), the registry's (the pushed image's digest) and the apps' own answers and logs. Nothing
// here is simulated; operator/local/build-images.ts says what the images are made of.
//
// The tests run in order on one App. If this machine cannot run a real node the before hook fails with the
// reason and so does every test here: they are never skipped.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import type { App, Condition as AppCondition, Release } from "../crds/v1alpha1.js";
import { buildVolume, lifecycleBinaries, pushBuildImages, pushSampleSource, removeBuildVolume, type BuildImages } from "../operator/local/build-images.js";
import { repoRoot } from "../operator/local/controlplane.js";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { realNodePlacement } from "../operator/local/realnode.js";
import { tektonBinaries, tektonModuleDir } from "../operator/local/tekton.js";
import { requireTekton } from "./builds-support.js";
import { controlPlane, realNodeTest, waitFor } from "./harness/suite.js";
import { RealNodeFixture } from "./harness/realnode-app.js";

const run = promisify(execFile);
const APP = "source-app";
/** samples/apps/source-app routes to 8080; Slipway sets $PORT to it and server.js listens there. */
const PORT = 8080;
const fixture = new RealNodeFixture("realnode-build", APP, PORT, {}, { ingress: { gateway: "slipway" } });
/** The Deployments' progress deadline the operator is given: a release that cannot become Ready stalls after it. */
const DEADLINE = 20;

let images: BuildImages;
let git: GitServer;
let work = "";
let sourceUrl = "";
let first = "";
let volume: Record<string, unknown> | undefined;

type Condition = { type: string; status: string; reason?: string; message?: string };
type TektonRun = { metadata: { name: string; labels?: Record<string, string> }; status?: { conditions?: Condition[]; results?: { name: string; value: string }[]; podName?: string; childReferences?: { name: string; pipelineTaskName: string }[] } };

const kubectl = async (args: string[], input?: string): Promise<string> => (await controlPlane()).kubectlOk(args, { input });

realNodeTest.before("start the real node, Traefik, the build images, the source repository and the operator with builds on", async (t) => {
  t.timeout(45 * 60_000, "building and starting the real node");
  await requireTekton();
  await fixture.start();
  const node = fixture.node;
  if (!node) throw new Error("the real node did not start");
  const started = Date.now();
  const { version } = await tektonModuleDir();
  images = await pushBuildImages(node, { tektonBinDir: await tektonBinaries(), tektonVersion: version, lifecycleDir: await lifecycleBinaries() });
  fixture.log(`build images pushed in ${((Date.now() - started) / 1000).toFixed(1)}s: builder ${images.builder}`);

  git = await startGitServer();
  work = await mkdtemp(join(tmpdir(), "slipway-realnode-build-"));
  first = await pushSampleSource(git, APP, work);
  // The TaskRun pods clone through a forward on the node's address; the operator polls the same URL.
  sourceUrl = `http://${node.nodeIP}:${await node.forward({ host: "127.0.0.1", port: git.port })}/${APP}.git`;
  if (!git.url(APP).endsWith(`/${APP}.git`)) throw new Error(`unexpected Git URL ${git.url(APP)}`);

  const ns = fixture.namespace;
  await kubectl(["apply", "-k", join(repoRoot, "samples", "tekton"), "-n", ns]);
  volume = await buildVolume(node, ns, `${APP}-build-cache`);
  await kubectl(["apply", "-f", "-"], JSON.stringify(volume));
  await fixture.restartOperator({
    SLIPWAY_BUILDS: "true", SLIPWAY_SOURCE_POLL_SECONDS: "2", SLIPWAY_PROGRESS_DEADLINE_SECONDS: String(DEADLINE),
    SLIPWAY_BUILD_REGISTRY: images.registry, SLIPWAY_BUILDER_IMAGE: images.builder,
    SLIPWAY_BUILD_POD_TEMPLATE: JSON.stringify({ nodeSelector: realNodePlacement.nodeSelector, tolerations: realNodePlacement.tolerations }),
  });

  // The sample's own App and Config, pointed at the local repository (and without previews: no pull requests here).
  const docs = (file: string) => readFile(join(repoRoot, "samples", "apps", APP, file), "utf8").then((text) => parseAllDocuments(text).map((d) => d.toJS() as Record<string, unknown>));
  const [app] = (await docs("app.yaml")) as unknown as App[];
  const [config] = await docs("config.yaml");
  if (!app?.spec.source) throw new Error("samples/apps/source-app/app.yaml has no source");
  app.spec.source.git = sourceUrl;
  delete app.spec.previews;
  await kubectl(["apply", "-n", ns, "-f", "-"], JSON.stringify(config));
  await kubectl(["apply", "-n", ns, "-f", "-"], JSON.stringify(app));
});

realNodeTest.afterAlways("stop the operator, the Git server and the real node", async () => {
  await fixture.stop();
  if (volume) {
    await (await controlPlane()).kubectl(["delete", "persistentvolume", (volume.metadata as { name: string }).name, "--wait=false"]);
    await removeBuildVolume(volume);
  }
  await git?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function pipelineRun(name: string, done: (r: TektonRun) => boolean, what: string): Promise<TektonRun> {
  let found: TektonRun | undefined;
  await waitFor(async () => {
    const r = await (await controlPlane()).kubectl(["get", "pipelineruns.tekton.dev", name, "-n", fixture.namespace, "-o", "json"]);
    found = r.code === 0 ? JSON.parse(r.stdout) as TektonRun : undefined;
    return found !== undefined && done(found);
  }, 10 * 60_000, async () => `PipelineRun ${name} ${what}: ${JSON.stringify(found?.status?.conditions)}\n${await explainBuild(name)}`);
  if (!found) throw new Error(`no PipelineRun ${name}`);
  return found;
}

/** The TaskRuns' conditions and their pods' container states, and the kubelet's log: what a failed build shows. */
async function explainBuild(pipelineRunName: string): Promise<string> {
  const cp = await controlPlane();
  const taskRuns = await cp.kubectl(["get", "taskruns.tekton.dev", "-n", fixture.namespace, "-l", `tekton.dev/pipelineRun=${pipelineRunName}`, "-o", "json"]);
  const pods = await cp.kubectl(["get", "pods", "-n", fixture.namespace, "-l", `tekton.dev/pipelineRun=${pipelineRunName}`, "-o", "json"]);
  const podItems = pods.code === 0 ? (JSON.parse(pods.stdout) as { items: V1Pod[] }).items : [];
  const podLines = pods.code === 0 ? podItems.map((p) =>
    `${p.metadata?.name} on ${p.spec?.nodeName}: ${JSON.stringify([...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].map((c) => ({ name: c.name, state: c.state })))}`) : [pods.stderr];
  const logs: string[] = [];
  for (const p of podItems) {
    const l = await cp.kubectl(["logs", "-n", fixture.namespace, p.metadata?.name ?? "", "--all-containers", "--tail=20"]);
    logs.push(`--- ${p.metadata?.name}\n${l.stdout}${l.stderr}`);
  }
  const trs = taskRuns.code === 0 ? (JSON.parse(taskRuns.stdout) as { items: TektonRun[] }).items.map((r) => `${r.metadata.name}: ${JSON.stringify(r.status?.conditions)}`) : [taskRuns.stderr];
  return [...trs, ...podLines, ...logs, `kubelet:\n${await fixture.node?.logTail("kubelet", 10)}`].join("\n");
}

let firstRelease: Release | undefined;

realNodeTest.serial("source-app is built from its Git repository on the real node: Tekton's TaskRuns succeed with steps the kubelet ran (git clone, the buildpacks lifecycle), and the Release carries the digest the registry holds and the Procfile", async (t) => {
  const name = `${APP}-build-${first.slice(0, 7)}`;
  const done = await pipelineRun(name, (r) => r.status?.conditions?.some((c) => c.type === "Succeeded" && c.status !== "Unknown") === true, "did not finish");
  t.like(done.status?.conditions?.find((c) => c.type === "Succeeded"), { status: "True", reason: "Succeeded" }, await explainBuild(name));

  // Tekton's TaskRuns, and the kubelet's pods that ran their steps: on the real node, every step exited 0.
  const cp = await controlPlane();
  // The TaskRuns' pods (not the affinity assistant's, which holds the build volume on the node meanwhile).
  const pods = (JSON.parse((await cp.kubectl(["get", "pods", "-n", fixture.namespace, "-l", `tekton.dev/pipelineRun=${name},tekton.dev/taskRun`, "-o", "json"])).stdout) as { items: V1Pod[] }).items;
  t.deepEqual(pods.map((p) => p.metadata?.labels?.["tekton.dev/pipelineTask"]).sort(), ["build", "clone"]);
  for (const pod of pods) {
    t.is(pod.spec?.nodeName, fixture.node?.nodeName, `${pod.metadata?.name} ran on the real node`);
    const steps = pod.status?.containerStatuses ?? [];
    t.true(steps.length > 0);
    for (const s of steps) t.is(s.state?.terminated?.exitCode, 0, `${pod.metadata?.name} step ${s.name}: ${JSON.stringify(s.state)}`);
  }
  const buildPod = pods.find((p) => p.metadata?.labels?.["tekton.dev/pipelineTask"] === "build");
  const createLog = (await cp.kubectl(["logs", "-n", fixture.namespace, buildPod?.metadata?.name ?? "", "-c", "step-create"])).stdout;
  t.regex(createLog, /slipway\/procfile: process type web: node server\.js/, createLog);
  t.regex(createLog, /slipway\/procfile: process type worker: node worker\.js/);

  // The image the lifecycle pushed, as the registry has it, is the one Tekton's result and the Release name.
  const digest = done.status?.results?.find((r) => r.name === "APP_IMAGE_DIGEST")?.value ?? "";
  t.regex(digest, /^sha256:[0-9a-f]{64}$/);
  const node = fixture.node;
  if (!node) return t.fail("no real node");
  const tag = `${node.registry}/${fixture.namespace}/${APP}:${first.slice(0, 7)}`;
  const registryDigest = (await run(join(node.binDir, "crane"), ["digest", "--insecure", tag])).stdout.trim();
  t.is(registryDigest, digest);
  const config = JSON.parse((await run(join(node.binDir, "crane"), ["config", "--insecure", tag])).stdout) as { config?: { Labels?: Record<string, string> } };
  t.truthy(config.config?.Labels?.["io.buildpacks.lifecycle.metadata"], "the image was exported by the buildpacks lifecycle");

  firstRelease = await fixture.app.releaseBy((r) => r.spec.build?.sourceCommit === first, `of commit ${first.slice(0, 7)}`);
  t.is(firstRelease.spec.build?.image, `${images.registry}/${fixture.namespace}/${APP}@${digest}`);
  t.deepEqual(firstRelease.spec.build?.procfile, { web: "node server.js", worker: "node worker.js" });
});

realNodeTest.serial("the built source-app runs on the real node: its web process answers through Traefik and its worker process logs its jobs", async (t) => {
  if (!firstRelease) return t.fail("the build did not release");
  const [web] = await fixture.app.liveAndReady(t, firstRelease.spec.version);
  t.is(web?.spec?.nodeName, fixture.node?.nodeName);
  t.is(web?.status?.containerStatuses?.[0]?.imageID?.split("@")[1], firstRelease.spec.build?.image.split("@")[1], "the kubelet ran the built image");
  await fixture.app.urlAnswers("hello from source-app");
  // The Procfile line runs as `/bin/sh -c "node server.js"`, and the shell execs node: node is the container's first
  // process, the one the kubelet's SIGTERM reaches when a release replaces the pod.
  const pid1 = await (await controlPlane()).kubectl(["exec", "-n", fixture.namespace, web?.metadata?.name ?? "", "--",
    "node", "-e", "process.stdout.write(require('fs').readFileSync('/proc/1/cmdline', 'utf8').split('\\0').join(' ').trim())"]);
  t.is(pid1.stdout, "node server.js", pid1.stderr);
  await waitFor(async () => /source-app worker: job \d+ done/.test((await fixture.app.slipway(["logs", APP, "--type", "worker"])).stdout), 60_000,
    async () => `the worker logged no job: ${(await fixture.app.slipway(["logs", APP, "--type", "worker"])).stdout}`);
  t.pass();
});

/** Commits `files` (path → content) to the sample's working copy and pushes them; returns the commit. */
async function pushCommit(files: Record<string, string>, message: string): Promise<string> {
  const dir = join(work, APP);
  const g = async (...args: string[]) => (await run("git", ["-C", dir, "-c", "user.name=Ada", "-c", "user.email=ada@example.com", ...args])).stdout;
  for (const [path, content] of Object.entries(files)) await writeFile(join(dir, path), content);
  await g("commit", "-q", "-am", message);
  await g("push", "-q", git.url(APP), "main");
  return (await g("rev-parse", "HEAD")).trim();
}

/** The build of `commit`, once Tekton says it succeeded, and the Release cut from it. */
async function builtAndReleased(commit: string): Promise<Release> {
  const name = `${APP}-build-${commit.slice(0, 7)}`;
  const done = await pipelineRun(name, (r) => r.status?.conditions?.some((c) => c.type === "Succeeded" && c.status !== "Unknown") === true, "did not finish");
  const succeeded = done.status?.conditions?.find((c) => c.type === "Succeeded");
  if (succeeded?.status !== "True") throw new Error(`PipelineRun ${name} failed: ${JSON.stringify(succeeded)}\n${await explainBuild(name)}`);
  return fixture.app.releaseBy((r) => r.spec.build?.sourceCommit === commit, `of commit ${commit.slice(0, 7)}`);
}

let crashing: Release | undefined;

realNodeTest.serial("a commit whose Procfile names a script that is not there is built on the same build volume, and its release stalls with the kubelet's CrashLoopBackOff and node's exit code 1, while the previous build keeps answering", async (t) => {
  t.timeout(10 * 60_000, "a build and a rollout on the real node");
  if (!firstRelease) return t.fail("the first build did not release");
  const commit = await pushCommit({ Procfile: "web: node missing.js\nworker: node worker.js\n" }, "web runs a script that is not there");
  crashing = await builtAndReleased(commit);
  t.deepEqual(crashing.spec.build?.procfile, { web: "node missing.js", worker: "node worker.js" });
  let app: App | undefined;
  const stalled = (a: App | undefined) => a?.status?.conditions?.find((c: AppCondition) => c.type === "Stalled");
  await waitFor(async () => {
    app = await fixture.app.app();
    return app.status?.currentRelease === `v${crashing?.spec.version}` && stalled(app)?.status === "True";
  }, (DEADLINE + 120) * 1_000, () => `App ${APP} did not stall on v${crashing?.spec.version}: ${JSON.stringify(app?.status)}`);
  const message = stalled(app)?.message ?? "";
  t.log(`Stalled: ${message}`);
  t.regex(message, /container web of pod \S+ (is CrashLoopBackOff \(exit code 1\)|exited: Error \(exit code 1\)|is running again after it exited: Error \(exit code 1\))/, message);
  t.true(message.endsWith(`; the previous release v${firstRelease.spec.version} keeps serving`), message);
  // What node said, through the kubelet: the module it could not find.
  const [pod] = (await fixture.app.getJson<{ items: V1Pod[] }>(["get", "pods", "-l", `slipway.dev/app=${APP},slipway.dev/process=web,slipway.dev/release=v${crashing.spec.version}`])).items;
  // The container restarts meanwhile: its current run's log or its previous one's, whichever the kubelet has now.
  let logs = "";
  await waitFor(async () => {
    for (const previous of [[], ["--previous"]]) {
      const r = await (await controlPlane()).kubectl(["logs", "-n", fixture.namespace, pod?.metadata?.name ?? "", ...previous]);
      logs = `${r.stdout}${r.stderr}`;
      if (/Error: Cannot find module/.test(logs)) return true;
    }
    return false;
  }, 60_000, () => `the crashing container logged no "Cannot find module": ${logs}`);
  t.regex(logs, /Error: Cannot find module '\/workspace\/\S*missing\.js'/, logs);
  await fixture.app.urlAnswers("hello from source-app");
});

realNodeTest.serial("a fix pushed after the crash is built again and its release answers through Traefik with the new code", async (t) => {
  t.timeout(10 * 60_000, "a build and a rollout on the real node");
  if (!crashing) return t.fail("the crashing build did not release");
  const commit = await pushCommit({
    Procfile: "web: node server.js\nworker: node worker.js\n",
    "server.js": (await readFile(join(work, APP, "server.js"), "utf8")).replace('"hello from source-app"', '"hello from source-app, fixed"'),
  }, "web runs server.js again, with a new greeting");
  const fixed = await builtAndReleased(commit);
  t.true(fixed.spec.version > crashing.spec.version);
  await fixture.app.liveAndReady(t, fixed.spec.version);
  await fixture.app.urlAnswers("hello from source-app, fixed");
});
