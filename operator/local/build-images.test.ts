import test from "ava";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { MIRRORED_REGISTRIES, PROCFILE_BUILDPACK, PROCFILE_BUILDPACK_DIR, TOOLBOX_NAMES, toolboxFiles } from "./build-images.js";
import { repoRoot } from "./tools.js";

const run = promisify(execFile);

type Task = { spec: { params?: { name: string; default?: string }[]; steps: { name: string; image: string }[] } };
const task = async (file: string) => parseAllDocuments(await readFile(join(repoRoot, "samples", "tekton", file), "utf8"))[0]?.toJS() as Task;

test("the toolbox stands in for every step image the sample buildpacks Pipeline's Tasks name, and for Tekton's shell image", async (t) => {
  const clone = await task("git-clone-task.yaml");
  const buildpacks = await task("buildpacks-task.yaml");
  const named = new Set<string>();
  for (const step of [...clone.spec.steps, ...buildpacks.spec.steps]) {
    // $(params.X): the param's default (the builder image is the platform's, not the toolbox).
    const param = /^\$\(params\.([A-Za-z_-]+)\)$/.exec(step.image)?.[1];
    if (param === "BUILDER_IMAGE") continue;
    named.add(param ? [...clone.spec.params ?? [], ...buildpacks.spec.params ?? []].find((p) => p.name === param)?.default ?? step.image : step.image);
  }
  const tekton = await readFile(join(repoRoot, "operator", "local", "tekton.ts"), "utf8");
  named.add(/"-shell-image", "([^"]+)"/.exec(tekton)?.[1] ?? "no -shell-image");
  t.deepEqual([...named].sort(), [...TOOLBOX_NAMES].sort());
  for (const image of TOOLBOX_NAMES) t.true(MIRRORED_REGISTRIES.some((r) => image.startsWith(`${r}/`)), `${image} is pulled from the local registry`);
});

test("the toolbox holds this machine's bash, sh, coreutils, grep, find and git with git's HTTP helper, and the libraries they link", async (t) => {
  const files = await toolboxFiles();
  const paths = new Set(files.map((f) => f.path));
  for (const p of ["/usr/bin/bash", "/usr/bin/env", "/usr/bin/chown", "/usr/bin/grep", "/usr/bin/cut", "/usr/bin/git", "/usr/lib/git-core/git-remote-http", "/bin/sh"]) t.true(paths.has(p), p);
  t.true(files.some((f) => /\/libc\.so\.6$/.test(f.path)), "libc");
  t.true(files.some((f) => /\/libcurl[^/]*\.so/.test(f.path)), "git-remote-http's libcurl");
});

/** Runs the buildpack's bin/build on a Procfile with this machine's sh; returns launch.toml, or the failure. */
async function build(procfile: string): Promise<{ launch: string; stdout: string } | { error: string }> {
  const dir = await mkdtemp(join(tmpdir(), "slipway-procfile-"));
  try {
    await writeFile(join(dir, "Procfile"), procfile);
    const r = await run("/bin/sh", [join(PROCFILE_BUILDPACK_DIR, "bin", "build")], { cwd: dir, env: { CNB_LAYERS_DIR: dir, PATH: "" } })
      .catch((err: { stderr: string }) => ({ error: err.stderr.trim() }));
    if ("error" in r) return r;
    return { launch: await readFile(join(dir, "launch.toml"), "utf8"), stdout: r.stdout };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("slipway/procfile turns each Procfile line into a launch.toml process run by /bin/sh -c, the command as written, with shell builtins only", async (t) => {
  const r = await build("web: node server.js --port \"$PORT\"\n# a comment\n\nworker:   node worker.js \\\\ 2\n");
  if ("error" in r) return t.fail(r.error);
  t.is(r.launch, [
    "[[processes]]", 'type = "web"', `command = ["/bin/sh", "-c", '''node server.js --port "$PORT"''']`, "default = true", "",
    "[[processes]]", 'type = "worker"', `command = ["/bin/sh", "-c", '''node worker.js \\\\ 2''']`, "default = false", "", "",
  ].join("\n"));
  t.regex(r.stdout, /process type web: node server\.js/);
});

test("slipway/procfile refuses a Procfile without process types, a bad type name, and a command launch.toml cannot quote", async (t) => {
  t.deepEqual(await build("# nothing\n"), { error: "slipway/procfile: the Procfile declares no process type" });
  t.deepEqual(await build("web server: node s.js\n"), { error: 'slipway/procfile: Procfile line "web server: node s.js": a process type is letters, digits, - and _' });
  t.deepEqual(await build("web: echo '''\n"), { error: "slipway/procfile: the web command holds ''', which launch.toml cannot quote" });
});

test("slipway/procfile's buildpack.toml names the id and version the builder's order.toml uses", async (t) => {
  const toml = await readFile(join(PROCFILE_BUILDPACK_DIR, "buildpack.toml"), "utf8");
  t.regex(toml, new RegExp(`id = "${PROCFILE_BUILDPACK.id}"`));
  t.regex(toml, new RegExp(`version = "${PROCFILE_BUILDPACK.version}"`));
  t.regex(toml, /^api = "0\.10"$/m);
});
