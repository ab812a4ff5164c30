// Container images built without docker, for the real node (local/realnode.ts): a layer tarball made here from
// files, then crane (built by e2e/controlplane/build.sh --node) appends it to an empty (FROM scratch) image, sets
// its entrypoint, environment, working directory and platform, and pushes it to the local registry. The image is
// returned pinned by digest, as the platform deploys every image.
import { execFile } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { pack, type Pack } from "tar-stream";
import { repoRoot } from "./tools.js";

const execFileAsync = promisify(execFile);

/** One file of a layer: its path in the image (absolute), where its content comes from, and its mode. */
export interface LayerFile {
  path: string;
  /** A file on this machine whose content is copied, the content itself, a symbolic link's target, or a directory. */
  source: { file: string } | { content: string | Buffer } | { symlink: string } | { directory: true };
  /** Permission bits; 0o755 for a program or a directory, 0o644 otherwise by default. */
  mode?: number;
  /** Owner; root (0) by default. */
  uid?: number;
  gid?: number;
}

export interface ImageSpec {
  /** Repository name in the registry, e.g. "echo". */
  name: string;
  /** Tag pushed beside the digest (the returned reference is by digest); default "latest". */
  tag?: string;
  files: LayerFile[];
  entrypoint?: string[];
  cmd?: string[];
  env?: Record<string, string>;
  workdir?: string;
  /** The user the container runs as, `uid[:gid]`. */
  user?: string;
  /** Ports the image documents, as `8080/tcp`. */
  exposedPorts?: string[];
  /** Labels in the image's config. */
  labels?: Record<string, string>;
}

export class ImageBuildError extends Error {
  constructor(readonly image: string, readonly step: string, cause: unknown) {
    const detail = cause instanceof Error ? ((cause as { stderr?: string }).stderr?.trim() || cause.message) : String(cause);
    super(`image ${image}: ${step} failed: ${detail.split("\n").slice(-5).join(" / ")}`, { cause });
    this.name = "ImageBuildError";
  }
}

/**
 * Builds a FROM scratch image of `spec.files` with crane and pushes it to `registry` (host:port, plain HTTP on
 * loopback). Returns `registry/name@sha256:…`.
 */
export async function buildImage(crane: string, registry: string, spec: ImageSpec): Promise<string> {
  const tagged = `${registry}/${spec.name}:${spec.tag ?? "latest"}`;
  const dir = await mkdtemp(join(tmpdir(), "slipway-image-"));
  const run = async (step: string, args: string[]) => {
    try {
      return (await execFileAsync(crane, [...args, "--insecure"], { maxBuffer: 16 << 20 })).stdout.trim();
    } catch (cause) {
      throw new ImageBuildError(tagged, step, cause);
    }
  };
  try {
    const layer = join(dir, "layer.tar");
    // Streamed to the file: an image holding a Node runtime and node_modules is some 200 MB.
    await writeLayer(spec.files, layer);
    await run("crane append", ["append", "--oci-empty-base", "--new_layer", layer, "--new_tag", tagged]);
    const mutate = ["mutate", tagged, "--tag", tagged, "--set-platform", "linux/amd64"];
    // crane splits each of these flags' values at commas.
    const listed = [...(spec.entrypoint ?? []), ...(spec.cmd ?? [])];
    if (listed.some((a) => a.includes(","))) throw new ImageBuildError(tagged, "crane mutate", new Error("an entrypoint or cmd element holds a comma, which crane would split"));
    if (spec.entrypoint) mutate.push(`--entrypoint=${spec.entrypoint.join(",")}`);
    if (spec.cmd) mutate.push(`--cmd=${spec.cmd.join(",")}`);
    for (const [k, v] of Object.entries(spec.env ?? {})) mutate.push("--env", `${k}=${v}`);
    if (spec.workdir) mutate.push("--workdir", spec.workdir);
    if (spec.user) mutate.push("--user", spec.user);
    if (spec.exposedPorts?.length) mutate.push(`--exposed-ports=${spec.exposedPorts.join(",")}`);
    for (const [k, v] of Object.entries(spec.labels ?? {})) mutate.push("--label", `${k}=${v}`);
    // crane mutate pushes the new image under the tag and prints it by digest: registry/name@sha256:….
    const pinned = (await run("crane mutate", mutate)).split("\n").pop() ?? "";
    if (!new RegExp(`^${registry.replace(/\./g, "\\.")}/${spec.name}@sha256:[0-9a-f]{64}$`).test(pinned)) {
      throw new ImageBuildError(tagged, "crane mutate", new Error(`printed ${JSON.stringify(pinned)}, not the image by digest`));
    }
    return pinned;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Builds the static Go program of a module in the repository (CGO_ENABLED=0, from the Go build cache after the
 * first time) into `outDir` and returns the binary's path. `moduleDir` is relative to the repository root.
 */
export async function buildGoProgram(moduleDir: string, outDir: string, name: string): Promise<string> {
  const out = join(outDir, name);
  try {
    await execFileAsync("go", ["build", "-trimpath", "-ldflags=-s -w", "-o", out, "."], {
      cwd: join(repoRoot, moduleDir),
      env: { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=readonly" },
    });
  } catch (cause) {
    const stderr = (cause as { stderr?: string }).stderr?.trim() ?? "";
    throw new Error(`cannot build ${moduleDir} with go: ${stderr || (cause as Error).message}`, { cause });
  }
  return out;
}

/**
 * An uncompressed POSIX ustar archive of `files` (tar-stream's pack), with a directory entry for each parent
 * directory, owned by root, dated at the epoch (so the same files make the same layer digest).
 */
export async function tarball(files: LayerFile[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on("data", (chunk: unknown) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    archive.on("end", resolve);
    archive.on("error", reject);
  });
  await fill(archive, files);
  await ended;
  return Buffer.concat(chunks);
}

/** The same archive as tarball(files), streamed to the file `path`. */
export async function writeLayer(files: LayerFile[], path: string): Promise<void> {
  const archive = pack();
  await Promise.all([pipeline(archive, createWriteStream(path)), fill(archive, files)]);
}

/** Adds `files` and their parent directories to `archive` and finalizes it; destroys it on an error. */
async function fill(archive: Pack, files: LayerFile[]): Promise<void> {
  const root = { uid: 0, gid: 0, uname: "root", gname: "root", mtime: new Date(0) };
  const ownerOf = (f: LayerFile) => ({ ...root, uid: f.uid ?? 0, gid: f.gid ?? 0, uname: f.uid ? "" : "root", gname: f.gid ? "" : "root" });
  // Directories listed as files keep their own mode and owner, also where they are another file's parent.
  const listed = new Map(files.filter((f) => "directory" in f.source).map((f) => [`${f.path.slice(1).replace(/\/+$/, "")}/`, f]));
  const dirs = new Set<string>();
  const directory = (d: string) => {
    if (dirs.has(d)) return;
    dirs.add(d);
    const own = listed.get(d);
    archive.entry({ ...(own ? ownerOf(own) : root), name: d, type: "directory", mode: own?.mode ?? 0o755 });
  };
  try {
    for (const f of files) {
      if (!f.path.startsWith("/")) throw new Error(`layer file ${f.path}: the path must be absolute`);
      const rel = f.path.slice(1).replace(/\/+$/, "");
      const parts = rel.split("/");
      for (let i = 1; i < parts.length; i++) directory(`${parts.slice(0, i).join("/")}/`);
      const owner = ownerOf(f);
      if ("directory" in f.source) {
        directory(`${rel}/`);
        continue;
      }
      if ("symlink" in f.source) {
        archive.entry({ ...owner, name: rel, type: "symlink", linkname: f.source.symlink, mode: 0o777 });
        continue;
      }
      const content = "file" in f.source ? await readFile(f.source.file) : Buffer.from(f.source.content);
      const mode = f.mode ?? ("file" in f.source && ((await stat(f.source.file)).mode & 0o111) !== 0 ? 0o755 : 0o644);
      // Each entry is written before the next file is read, so only one file's content is held at a time.
      await new Promise<void>((resolve, reject) =>
        archive.entry({ ...owner, name: rel, type: "file", mode, size: content.length }, content, (err) => (err ? reject(err) : resolve())));
    }
  } catch (err) {
    archive.destroy();
    throw err;
  }
  archive.finalize();
}
