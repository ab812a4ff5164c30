// `npm start`: Slipway on its embedded default. A local control plane (etcd, kube-apiserver, controller
// manager, scheduler, kwok), a local Git server holding the config repository and a sample source
// repository, Tekton Pipelines' controller and webhook, the operator with GitOps and builds, and the sample
// apps. Beside the kwok nodes, one real node (operator/local/realnode.ts) with Traefik in front of it
// (operator/local/ingress.ts), where the echo sample really runs and answers at its URL; on a machine that cannot
// run one (or with SLIPWAY_REAL_NODE=off) one line says why and everything runs on kwok. Ctrl-C stops
// everything. Simulated, and said so: the containers of the apps on kwok nodes (kwok marks pods Running without
// them, and reports a build's steps as finished, e2e/controlplane/kwok/tekton.yaml). SLIPWAY_OPERATOR=pod runs the
// operator as the install's pods on the real node instead of in this process (local/operator-pod.ts).
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import type { IngressController } from "./ingress.js";
import type { RealNode } from "./realnode.js";
import type { Platform } from "../platform.js";
import type { PipelineSettings } from "../builds/pipelinerun.js";

// The operator's JSON logs would drown the walkthrough printed here; LOG_LEVEL=info shows them.
process.env.LOG_LEVEL ??= "warn";
const { startControlPlane, repoRoot } = await import("./controlplane.js");
const { startGitServer } = await import("./gitserver.js");
const { kubectlPath } = await import("./tools.js");
const { log } = await import("../log.js");
const { startPlatform, listenForWebhooks } = await import("../platform.js");
const { startRealNode, RealNodeUnavailable, REAL_NODE_LABEL, REAL_NODE_LABEL_VALUE } = await import("./realnode.js");
const { startIngressController } = await import("./ingress.js");
const { buildEchoImage } = await import("./echo-image.js");
const { installOperatorPods, OPERATOR_NAMESPACE, OPERATOR_POD_SELECTOR } = await import("./operator-pod.js");
const { buildVolume, lifecycleBinaries, pushBuildImages, pushSampleSource } = await import("./build-images.js");
const { tektonBinaries } = await import("./tekton.js");
const { cacheClaimName } = await import("../builds/pipelinerun.js");
const { Kube } = await import("../kube.js");

const run = promisify(execFile);
const NAMESPACE = "demo";
const say = (line = "") => process.stdout.write(`${line}\n`);

/**
 * The samples that run on the real node, with their images built from samples/images/echo: echo needs it (its
 * Config asks for the node, so it is left out without one); image-app runs there when there is one (its Config
 * gets the node's nodeSelector here) and is simulated on the kwok nodes otherwise.
 */
const REAL_SAMPLE = "echo";
const REAL_WHEN_POSSIBLE = "image-app";
/** Built from samples/source/source-app on the real node when there is one, by Tekton with the buildpacks lifecycle. */
const BUILT_SAMPLE = "source-app";

/**
 * The sample apps' App, Config and Secret objects (not their Releases: the operator cuts those). source-app's
 * repository is the local Git server's; echo's and image-app's images are the ones built here (`images`, by
 * sample), and without them echo is left out.
 */
async function sampleObjects(sourceUrl: string, images: ReadonlyMap<string, string>, onRealNode: ReadonlySet<string>): Promise<string> {
  const docs: string[] = [];
  const samples = join(repoRoot, "samples", "apps");
  for (const name of (await readdir(samples)).sort()) {
    if (name === REAL_SAMPLE && !images.has(name)) continue;
    for (const file of ["secret.yaml", "config.yaml", "app.yaml"]) {
      const text = await readFile(join(samples, name, file), "utf8").catch(() => undefined);
      if (!text) continue;
      for (const doc of parseAllDocuments(text)) {
        const kind = doc.get("kind");
        const image = images.get(name);
        if (kind === "App" && doc.hasIn(["spec", "source", "git"])) doc.setIn(["spec", "source", "git"], sourceUrl);
        if (kind === "App" && image) doc.setIn(["spec", "image"], image);
        if (kind === "Config" && onRealNode.has(name)) doc.setIn(["spec", "nodeSelector"], { [REAL_NODE_LABEL]: REAL_NODE_LABEL_VALUE });
        docs.push(doc.toString());
      }
    }
  }
  return docs.join("---\n");
}

/**
 * Waits up to a minute until the config repository holds a release commit for `apps` Apps (the operator in its
 * pods commits on its own time; in this process, GitOps' idle() says when).
 */
async function releaseCommits(url: string, apps: number, dir: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    await rm(dir, { recursive: true, force: true });
    const log = await run("git", ["clone", "-q", url, dir]).then(() => run("git", ["-C", dir, "log", "--format=%s"])).catch(() => ({ stdout: "" }));
    if (new Set(log.stdout.match(/^[^ ]+(?=: release v)/gm) ?? []).size >= apps) return;
    await new Promise((r) => setTimeout(r, 2_000));
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const work = await mkdtemp(join(tmpdir(), "slipway-local-"));
  const cleanups: (() => Promise<void> | void)[] = [() => rm(work, { recursive: true, force: true })];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say("\nStopping Slipway …");
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch((err: unknown) => log.error({ err }, "cleanup failed"));
    say("Stopped: every process ended and temporary files removed.");
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  try {
    say("Starting Slipway on its embedded default (a local control plane with kwok nodes and one real node, Tekton, Traefik).");
    // Each kwok node takes 110 pods; SLIPWAY_NODES sets how many (default 4: room for 440 pods).
    const nodes = Number(process.env.SLIPWAY_NODES ?? 4);
    if (!Number.isInteger(nodes) || nodes < 1) throw new Error(`SLIPWAY_NODES must be a whole number of nodes, 1 or more; got "${process.env.SLIPWAY_NODES}"`);
    const cp = await startControlPlane({ nodes, tekton: true, progress: (line) => say(`  ${line}`) });
    cleanups.push(() => cp.stop());

    // The real node and Traefik. PreferNoSchedule: only the pods whose Config asks for the node by its label (the
    // echo and image-app samples') land there; every other pod stays on the kwok nodes.
    let ingress: IngressController | undefined;
    const images = new Map<string, string>();
    let realNode: RealNode | undefined;
    let realNodeNote = "";
    const operatorAsPods = process.env.SLIPWAY_OPERATOR === "pod";
    if (process.env.SLIPWAY_REAL_NODE === "off") {
      realNodeNote = "no real node (SLIPWAY_REAL_NODE=off)";
    } else {
      try {
        say("  starting the real node (the first run on a machine builds it and Traefik from the Go module proxy)");
        const node = await startRealNode(cp, { taintEffect: "PreferNoSchedule", progress: (line) => say(`  ${line}`) });
        realNode = node;
        cleanups.push(() => node.stop());
        // One image for both: image-app's web process is the echo server, its worker the same program as bin/worker.
        const echoImage = await buildEchoImage(node, "slipway-samples/echo", { PATH: "/bin" });
        say(`  built the echo and image-app samples' image: ${echoImage}`);
        for (const sample of [REAL_SAMPLE, REAL_WHEN_POSSIBLE]) images.set(sample, echoImage);
        ingress = await startIngressController(cp, { progress: (line) => say(`  ${line}`) });
        const started = ingress;
        cleanups.push(() => started.stop());
      } catch (err) {
        if (!(err instanceof RealNodeUnavailable)) throw err;
        realNodeNote = err.message;
        say(`  ${err.message}: every app runs on the kwok nodes (simulated)`);
      }
    }
    say("  installing the Slipway CRDs and, for builds, the sample Tekton Pipelines and Tasks");
    await cp.kubectlOk(["apply", "--server-side", "-f", "crds/"]);
    await cp.kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    await cp.kubectlOk(["create", "namespace", NAMESPACE]);
    await cp.kubectlOk(["apply", "--server-side", "-n", NAMESPACE, "-k", "samples/tekton"]);

    say("  starting the local Git server (git http-backend) with the config repository and a sample source repository");
    const git = await startGitServer();
    cleanups.push(() => git.stop());
    await git.createBareRepo("slipway-config");
    await pushSampleSource(git, BUILT_SAMPLE, work);
    let sourceUrl = git.url(BUILT_SAMPLE);
    // The real node's pods reach the Git server, on loopback, through a forward on the node's bridge address.
    let podGitUrl = (repo: string) => git.url(repo);
    // With the real node, source-app is built there for real, and it and image-app run there.
    const onRealNode = new Set<string>();
    let pipeline: PipelineSettings | undefined;
    if (realNode) {
      const node = realNode;
      const gitPort = await node.forward({ host: "127.0.0.1", port: git.port });
      podGitUrl = (repo: string) => git.url(repo).replace(/^http:\/\/[^/]+/, `http://${node.nodeIP}:${gitPort}`);
      sourceUrl = podGitUrl(BUILT_SAMPLE);
      say("  building what a source build runs on the real node: Tekton's images, the sample Tasks' step images and a buildpacks builder");
      const built = await pushBuildImages(node, {
        tektonBinDir: await tektonBinaries(), tektonVersion: cp.tekton?.version ?? "", lifecycleDir: await lifecycleBinaries(),
      });
      say(`  builder ${built.builder}`);
      const volume = await buildVolume(node, NAMESPACE, cacheClaimName(BUILT_SAMPLE));
      await cp.kubectlOk(["apply", "-f", "-"], { input: JSON.stringify(volume) });
      pipeline = { registry: built.registry, builderImage: built.builder, podTemplate: { nodeSelector: { [REAL_NODE_LABEL]: REAL_NODE_LABEL_VALUE } } };
      for (const sample of [REAL_WHEN_POSSIBLE, BUILT_SAMPLE]) onRealNode.add(sample);
    }

    let platform: Platform | undefined;
    let webhooksAt: string;
    if (operatorAsPods && !realNode) say(`  SLIPWAY_OPERATOR=pod needs the real node; ${realNodeNote}: the operator runs in this process`);
    if (operatorAsPods && realNode) {
      say("  installing Slipway (operator/deploy) with the operator as pods on the real node, its image assembled from operator/Dockerfile without Docker");
      const pods = await installOperatorPods(cp, realNode, {
        base: join(repoRoot, "operator", "deploy"),
        settings: {
          SLIPWAY_GIT_URL: podGitUrl("slipway-config"), SLIPWAY_GIT_POLL_SECONDS: "5", SLIPWAY_SOURCE_POLL_SECONDS: "5",
          SLIPWAY_CONFIG_WEBHOOK_SECRET: "local-webhook-secret", SLIPWAY_SOURCE_WEBHOOK_SECRET: "local-webhook-secret",
          ...(ingress ? { SLIPWAY_INGRESS_CLASS: ingress.ingressClassName } : {}),
          ...(pipeline ? {
            SLIPWAY_BUILD_REGISTRY: pipeline.registry ?? "", SLIPWAY_BUILDER_IMAGE: pipeline.builderImage ?? "",
            SLIPWAY_BUILD_POD_TEMPLATE: JSON.stringify(pipeline.podTemplate),
          } : {}),
        },
        progress: (line) => say(`  ${line}`),
      });
      cleanups.push(() => pods.remove());
      const podIp = (await cp.kubectlOk(["get", "pods", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_POD_SELECTOR, "-o", "jsonpath={.items[0].status.podIP}"])).trim();
      webhooksAt = `http://${podIp}:9090`;
    } else {
      say("  starting the operator, GitOps (sync mode) and builds");
      const started = await startPlatform({
        kube: new Kube(cp.kubeConfig()),
        // Routes through Traefik's IngressClass when it runs.
        platform: ingress ? { ingressClassName: ingress.ingressClassName } : undefined,
        gitops: { repo: { url: git.url("slipway-config"), dir: join(work, "config-clone") }, mode: "sync", pollIntervalMs: 5000 },
        builds: { pollIntervalMs: 5000, pipeline },
        // One secret for both on this one machine; every sample App names none, so the fallback signs their pushes.
        webhookSecrets: { config: "local-webhook-secret", sourceFallback: "local-webhook-secret" },
      });
      platform = started;
      cleanups.push(() => started.stop());
      const webhooks = await listenForWebhooks(0, () => started.webhookHandler);
      cleanups.push(() => webhooks.close());
      webhooksAt = `http://127.0.0.1:${webhooks.port}`;
    }

    say(`  applying the sample apps into namespace "${NAMESPACE}"`);
    const samples = await sampleObjects(sourceUrl, images, onRealNode);
    await cp.kubectlOk(["apply", "--server-side", "--field-manager=slipway-samples", "-n", NAMESPACE, "-f", "-"], { input: samples });
    const ready = await cp.kubectl(["wait", "--for=condition=Ready", "--timeout=120s", "-n", NAMESPACE, "apps.slipway.dev", "--all"]);
    if (platform) await platform.gitops?.idle();
    else await releaseCommits(git.url("slipway-config"), (samples.match(/^kind: App$/gm) ?? []).length, join(work, "config-wait"));

    const bin = join(work, "bin");
    await mkdir(bin);
    // kubectl finds plugins (and their completion) by these names on PATH.
    const shims: [string, string][] = [["kubectl-slipway", "main.js"], ["kubectl_complete-slipway", "kubectl_complete-slipway.js"]];
    for (const [name, file] of shims) {
      await writeFile(join(bin, name), `#!/bin/sh\nexec node ${JSON.stringify(join(repoRoot, "dist", "cli", file))} "$@"\n`);
      await chmod(join(bin, name), 0o755);
    }
    // The kubectl this ran (built by e2e/controlplane/build.sh, the control plane's version), so the commands
    // below work on a machine that has no kubectl installed.
    await symlink(kubectlPath(), join(bin, "kubectl"));

    say("");
    say(ready.code === 0 ? `Slipway is up in ${Math.round((Date.now() - started) / 1000)}s; every sample app is Ready:` : "Slipway is up, but not every sample app became Ready within 2 minutes:");
    say((await cp.kubectl(["get", "apps.slipway.dev", "-n", NAMESPACE])).stdout.trimEnd());
    say("");
    say("Releases the operator cut:");
    say((await cp.kubectl(["get", "releases.slipway.dev", "-n", NAMESPACE])).stdout.trimEnd());
    const clone = join(work, "config-view");
    await run("git", ["clone", "-q", git.url("slipway-config"), clone]);
    say("");
    say("Commits in the config repository (git log):");
    say((await run("git", ["-C", clone, "log", "--format=  %h %s"])).stdout.trimEnd());
    let realApp = "";
    if (ingress) {
      const lines: string[] = [];
      for (const sample of [REAL_SAMPLE, REAL_WHEN_POSSIBLE, ...(onRealNode.has(BUILT_SAMPLE) ? [BUILT_SAMPLE] : [])]) {
        const host = `${sample}.${NAMESPACE}.slipway.local`;
        // Traefik follows Ingresses and EndpointSlices by watch: a release that just went Ready may need a moment.
        let answer = { status: 0, body: "" };
        for (const deadline = Date.now() + 15_000; ;) {
          answer = await ingress.get(host).catch((err: unknown) => ({ status: 0, body: String(err) }));
          if (answer.status === 200 || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 500));
        }
        lines.push(`  curl --resolve ${host}:${ingress.port}:127.0.0.1 http://${host}:${ingress.port}/`,
          `  → ${answer.status === 200 ? answer.body.trim() : `(answered ${answer.status}: ${answer.body.trim()})`}`);
      }
      realApp = `
Running for real, on the real node behind Traefik ${ingress.version} on ${ingress.address}: the echo sample,
image-app's web process and its worker, and source-app's, built from samples/source/source-app by Tekton on
the real node (git clone, then the buildpacks lifecycle with samples/buildpacks/procfile):
${lines.join("\n")}
`;
    }
    say(`${realApp}
Simulated here: the containers of the apps on the kwok nodes${ingress ? " (autoscale, config-env and custom-domain)" : ` (${realNodeNote})`}. kwok
marks their pods Running and Ready without running them${ingress ? "" : `, and reports the steps of each build's TaskRun
pods as a kubelet would (exit 0, Tekton's results; the image digest is derived from the pod)`}. Everything else is real,
Tekton Pipelines ${cp.tekton?.version ?? ""} included: its controller ran the builds and its webhook admitted them.

Try it:
  export KUBECONFIG=${cp.kubeconfigPath}
  export PATH=${bin}:$PATH
  kubectl get apps,releases -n ${NAMESPACE}
  kubectl slipway -n ${NAMESPACE} config:set image-app GREETING=hello
  kubectl slipway -n ${NAMESPACE} releases image-app
  kubectl slipway -n ${NAMESPACE} rollback image-app${ingress ? `
  kubectl slipway -n ${NAMESPACE} config:set ${REAL_SAMPLE} MESSAGE=hello-again   # then the curl above answers hello-again
  kubectl slipway -n ${NAMESPACE} logs ${REAL_SAMPLE}
  kubectl slipway -n ${NAMESPACE} logs ${REAL_WHEN_POSSIBLE} --type worker -f   # a job every 2 s` : ""}${onRealNode.has(BUILT_SAMPLE) ? `
  kubectl get pipelineruns,taskruns -n ${NAMESPACE}   # source-app's build, run on the real node
  kubectl slipway -n ${NAMESPACE} logs ${BUILT_SAMPLE} --type worker   # built from samples/source/source-app` : ""}
  git clone ${git.url("slipway-config")} && git -C slipway-config log --stat
Webhooks: POST ${webhooksAt}/webhooks/config and /webhooks/source (secret "local-webhook-secret")${platform ? "" : `
The operator runs as pods on the real node: kubectl logs -n ${OPERATOR_NAMESPACE} deploy/slipway-operator`}

Press Ctrl-C to stop.`);
  } catch (err) {
    log.error({ err }, "Slipway failed to start");
    process.stderr.write(`\nSlipway failed to start: ${(err as Error).message}\n`);
    await stop(1);
  }
}

await main();
