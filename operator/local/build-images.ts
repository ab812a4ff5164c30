// What a source build needs on the real node, made here: no image can be pulled from the internet, so the images
// that Tekton and the sample Tasks (samples/tekton) name are built locally and the node is told to pull them
// from its local registry (containerd's registry hosts, as a cluster without internet access mirrors them).
//
// - Tekton's own pod images (ghcr.io/tektoncd/pipeline/cmd/entrypoint, nop, workingdirinit, sidecarlogresults at
//   the pinned version): FROM scratch, each the static program `build.sh --tekton` builds, at /ko-app/<name>,
//   where Tekton's controller runs it.
// - The step images the sample Tasks name (docker.io/library/bash:5.2, the git-init image, and the shell image
//   Tekton's place-scripts uses): one toolbox of this machine's own bash, dash, coreutils, grep, findutils and
//   git, with the shared libraries they link. Not the images those names stand for, but what their steps run.
// - A buildpacks builder and its run image, for the buildpacks strategy: the Cloud Native Buildpacks lifecycle
//   (github.com/buildpacks/lifecycle, built from the Go module proxy by `build.sh --node`), whose creator really
//   detects, builds and exports the app image to the registry, and one buildpack, slipway/procfile (below), that
//   turns a Procfile into the image's process types. The run image holds Node.js (this machine's node and the
//   libraries it links) and a shell, so a Procfile line such as `node server.js` runs.
import { execFile } from "node:child_process";
import { access, chmod, cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { GitServer } from "./gitserver.js";
import { buildImage, type LayerFile } from "./images.js";
import { buildInBackground, repoRoot } from "./tools.js";

const execFileAsync = promisify(execFile);
import { hostProgramFiles, nodeRuntimeFiles } from "./operator-image.js";
import type { RealNode } from "./realnode.js";

/** The registries whose images the node pulls from its local registry instead. */
export const MIRRORED_REGISTRIES = ["docker.io", "ghcr.io", "cgr.dev"] as const;

/** The programs Tekton puts in a TaskRun's pod, built by `build.sh --tekton`; their images are `ghcr.io/tektoncd/pipeline/cmd/<name>:<version>`. */
export const TEKTON_POD_PROGRAMS = ["entrypoint", "nop", "workingdirinit", "sidecarlogresults"] as const;

/**
 * The step images the sample buildpacks Pipeline's Tasks name (samples/tekton/git-clone-task.yaml,
 * buildpacks-task.yaml) and the shell image of Tekton's place-scripts (operator/local/tekton.ts), all served by
 * the toolbox image. A unit test checks this list against the Tasks.
 */
export const TOOLBOX_NAMES = [
  "docker.io/library/bash:5.2",
  "ghcr.io/tektoncd/github.com/tektoncd/pipeline/cmd/git-init:v0.59.0",
  "cgr.dev/chainguard/busybox:latest",
] as const;

/** The programs of the toolbox, found on this machine's PATH; git's helpers come from its exec path. */
const TOOLBOX_PROGRAMS = ["bash", "dash", "env", "cat", "touch", "chmod", "chown", "mkdir", "rm", "ls", "cut", "tr", "head", "grep", "find", "git"];
const GIT_EXEC_PATH = "/usr/lib/git-core";

/** The stack the builder and run image belong to (io.buildpacks.stack.id). */
export const STACK_ID = "dev.slipway.local";
/** The buildpack that turns a Procfile into process types (samples/buildpacks/procfile). */
export const PROCFILE_BUILDPACK = { id: "slipway/procfile", version: "0.1.0" } as const;
/** The user builds and apps run as (the sample buildpacks Task's USER_ID and GROUP_ID). */
const CNB_UID = 1000;

/** The buildpack the builder holds (its buildpack.toml, bin/detect and bin/build), in the repository. */
export const PROCFILE_BUILDPACK_DIR = join(repoRoot, "samples", "buildpacks", "procfile");

export const ORDER_TOML = `[[order]]

  [[order.group]]
    id = "${PROCFILE_BUILDPACK.id}"
    version = "${PROCFILE_BUILDPACK.version}"
`;

/** The images a build on the real node uses, by the names pods pull them by. */
export interface BuildImages {
  /** The registry as pods reach it (host:port on the node's IP); builds push there. */
  registry: string;
  /** The buildpacks builder, by digest, at `registry`. */
  builder: string;
  /** The run image apps are built on, by digest, at `registry`. */
  runImage: string;
}

/**
 * Builds and pushes everything a buildpacks build on `node` pulls, and has the node pull the mirrored names
 * from its registry. `tektonBinDir` holds the programs of TEKTON_POD_PROGRAMS, `lifecycleDir` the lifecycle
 * and launcher.
 */
export async function pushBuildImages(node: RealNode, opts: { tektonBinDir: string; tektonVersion: string; lifecycleDir: string }): Promise<BuildImages> {
  const crane = join(node.binDir, "crane");
  const registry = await node.podRegistry();
  // Pushed to the loopback address (the same registry), named as pods and the node pull them.
  const push = (spec: Parameters<typeof buildImage>[2]) => buildImage(crane, node.registry, spec);
  const repoOf = (image: string) => image.replace(/^[^/]+\//, "").replace(/:[^:/]+$/, "");
  const tagOf = (image: string) => /:([^:/]+)$/.exec(image)?.[1] ?? "latest";

  for (const program of TEKTON_POD_PROGRAMS) {
    await push({
      name: `tektoncd/pipeline/cmd/${program}`, tag: opts.tektonVersion,
      files: [{ path: `/ko-app/${program}`, source: { file: join(opts.tektonBinDir, program) }, mode: 0o755 }],
      entrypoint: [`/ko-app/${program}`],
    });
  }

  const toolbox = await toolboxFiles();
  for (const image of TOOLBOX_NAMES) {
    await push({ name: repoOf(image), tag: tagOf(image), files: toolbox, env: { PATH: "/usr/bin:/bin", GIT_EXEC_PATH } });
  }
  await node.mirror([...MIRRORED_REGISTRIES]);

  const passwd = `root:x:0:0:root:/root:/bin/sh\ncnb:x:${CNB_UID}:${CNB_UID}:cnb:/home/cnb:/bin/sh\n`;
  const group = `root:x:0:\ncnb:x:${CNB_UID}:\n`;
  // This machine's bash as /bin/sh: Slipway runs a Procfile line as `/bin/sh -c <line>`, and bash execs a line that
  // is one command, so the app is the container's first process and gets the kubelet's SIGTERM. Debian's dash
  // 0.5.12 and u-root's gosh (the echo image's shell) stay the app's parent and do not pass the signal on.
  const base: LayerFile[] = [
    ...(await hostProgramFiles(await onPath("bash"), "/bin/sh")),
    { path: "/etc/passwd", source: { content: passwd } },
    { path: "/etc/group", source: { content: group } },
    { path: "/tmp", source: { directory: true }, mode: 0o1777 },
    { path: "/home/cnb", source: { directory: true }, uid: CNB_UID, gid: CNB_UID },
  ];
  const stackLabels = { "io.buildpacks.stack.id": STACK_ID };
  const runLocal = await push({
    name: "slipway/run-node", files: [...base, ...(await nodeRuntimeFiles(process.execPath))],
    env: { PATH: "/usr/local/bin:/usr/bin:/bin" }, user: `${CNB_UID}:${CNB_UID}`, labels: stackLabels,
  });
  const runImage = runLocal.replace(node.registry, registry);

  const lifecycle = join(opts.lifecycleDir, "lifecycle");
  const phases = ["detector", "analyzer", "restorer", "builder", "exporter", "creator", "rebaser"];
  const bp = `/cnb/buildpacks/${PROCFILE_BUILDPACK.id.replace("/", "_")}/${PROCFILE_BUILDPACK.version}`;
  const runToml = `[[images]]\n  image = "${runImage}"\n`;
  const stackToml = `[run-image]\n  image = "${runImage}"\n`;
  const builderLocal = await push({
    name: "slipway/builder",
    files: [
      ...base,
      { path: "/cnb/lifecycle/lifecycle", source: { file: lifecycle }, mode: 0o755 },
      ...phases.map((p): LayerFile => ({ path: `/cnb/lifecycle/${p}`, source: { symlink: "lifecycle" } })),
      { path: "/cnb/lifecycle/launcher", source: { file: join(opts.lifecycleDir, "launcher") }, mode: 0o755 },
      { path: `${bp}/buildpack.toml`, source: { file: join(PROCFILE_BUILDPACK_DIR, "buildpack.toml") } },
      { path: `${bp}/bin/detect`, source: { file: join(PROCFILE_BUILDPACK_DIR, "bin", "detect") }, mode: 0o755 },
      { path: `${bp}/bin/build`, source: { file: join(PROCFILE_BUILDPACK_DIR, "bin", "build") }, mode: 0o755 },
      { path: "/cnb/order.toml", source: { content: ORDER_TOML } },
      { path: "/cnb/run.toml", source: { content: runToml } },
      { path: "/cnb/stack.toml", source: { content: stackToml } },
      { path: "/layers", source: { directory: true }, uid: CNB_UID, gid: CNB_UID },
      { path: "/workspace", source: { directory: true }, uid: CNB_UID, gid: CNB_UID },
    ],
    env: {
      PATH: "/cnb/lifecycle:/usr/bin:/bin", CNB_USER_ID: String(CNB_UID), CNB_GROUP_ID: String(CNB_UID), CNB_STACK_ID: STACK_ID,
      // The registry is plain HTTP: the lifecycle reads and writes it without TLS.
      CNB_INSECURE_REGISTRIES: registry,
    },
    user: `${CNB_UID}:${CNB_UID}`, labels: stackLabels,
  });
  return { registry, builder: builderLocal.replace(node.registry, registry), runImage };
}

/** This machine's programs of TOOLBOX_PROGRAMS in /usr/bin (dash as /bin/sh), git's HTTP helpers, and their libraries. */
export async function toolboxFiles(): Promise<LayerFile[]> {
  const files = new Map<string, LayerFile>();
  const add = async (executable: string, at: string) => {
    for (const f of await hostProgramFiles(executable, at)) files.set(f.path, f);
  };
  for (const program of TOOLBOX_PROGRAMS) await add(await onPath(program), `/usr/bin/${program}`);
  for (const helper of ["git-remote-http"]) await add(join(GIT_EXEC_PATH, helper), `${GIT_EXEC_PATH}/${helper}`);
  const links: LayerFile[] = [
    { path: "/bin/sh", source: { symlink: "/usr/bin/dash" } },
    { path: "/bin/bash", source: { symlink: "/usr/bin/bash" } },
    { path: `${GIT_EXEC_PATH}/git-remote-https`, source: { symlink: "git-remote-http" } },
    { path: "/tmp", source: { directory: true }, mode: 0o1777 },
  ];
  return [...files.values(), ...links];
}

/** The program's path on this machine's PATH. */
async function onPath(program: string): Promise<string> {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":").filter(Boolean)) {
    const path = join(dir, program);
    try {
      await access(path);
      return path;
    } catch {
      // not here
    }
  }
  throw new Error(`the build toolbox image needs ${program}, which is not on this machine's PATH`);
}

/**
 * A hostPath PersistentVolume pre-bound to an App's build claim (`<app>-build-cache`) in `namespace`: this control
 * plane runs no storage provisioner. Its directory, under the node's, holds source/ and cache/ open to the
 * Tasks' non-root user (1000, the clone's and the lifecycle's; a hostPath volume ignores fsGroup).
 */
export async function buildVolume(node: RealNode, namespace: string, claim: string, size = "2Gi"): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(node.dir, `pv-${claim}-`));
  await chmod(dir, 0o777);
  for (const sub of ["source", "cache"]) {
    await mkdir(join(dir, sub));
    await chmod(join(dir, sub), 0o777);
  }
  await writeFile(join(dir, "README"), `The build volume of claim ${namespace}/${claim} on the real node.\n`);
  return {
    apiVersion: "v1", kind: "PersistentVolume",
    metadata: { name: `${namespace}-${claim}`, labels: { "app.kubernetes.io/part-of": "slipway-local-real-node" } },
    spec: {
      capacity: { storage: size }, accessModes: ["ReadWriteOnce"], persistentVolumeReclaimPolicy: "Retain",
      storageClassName: "", hostPath: { path: dir, type: "Directory" },
      claimRef: { namespace, name: claim },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [node.nodeName] }] }] } },
    },
  };
}

/** Removes a build volume's directory (the PersistentVolume object is the caller's). */
export async function removeBuildVolume(pv: Record<string, unknown>): Promise<void> {
  const path = (pv.spec as { hostPath: { path: string } }).hostPath.path;
  await rm(path, { recursive: true, force: true });
}

/** Runs build.sh --lifecycle (builds once per machine) and returns the directory holding lifecycle and launcher. */
export function lifecycleBinaries(progress?: (line: string) => void): Promise<string> {
  return buildInBackground("--lifecycle", progress);
}

/** The source-app sample's source (samples/source/source-app), the repository `samples/apps/source-app` builds. */
export const SAMPLE_SOURCE_DIR = join(repoRoot, "samples", "source", "source-app");

/**
 * Pushes samples/source/source-app as the first commit of `branch` main of the Git server's repository `repo`
 * (created here), from a working copy under `work`; returns the commit.
 */
export async function pushSampleSource(git: GitServer, repo: string, work: string): Promise<string> {
  await git.createBareRepo(repo);
  const dir = join(work, repo);
  await cp(SAMPLE_SOURCE_DIR, dir, { recursive: true });
  const g = async (...args: string[]) => (await execFileAsync("git", ["-C", dir, "-c", "user.name=Slipway Sample", "-c", "user.email=sample@slipway.dev", ...args])).stdout;
  await g("init", "-q", "-b", "main");
  await g("add", ".");
  await g("commit", "-q", "-m", "source-app: a Node.js app with a Procfile");
  await g("push", "-q", git.url(repo), "main");
  return (await g("rev-parse", "HEAD")).trim();
}
