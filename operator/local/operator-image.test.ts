import test from "ava";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { finalStage } from "./dockerfile.js";
import { elfInterpreter, nodeRuntimeFiles, operatorImageSpec } from "./operator-image.js";
import { repoRoot } from "./tools.js";

test("the image's Node is this machine's, at /usr/local/bin/node, with the loader its ELF names and the libraries it links", async (t) => {
  const files = await nodeRuntimeFiles(process.execPath);
  t.deepEqual(files[0], { path: "/usr/local/bin/node", source: { file: process.execPath }, mode: 0o755 });
  const loader = await elfInterpreter(process.execPath);
  if (loader === undefined) {
    t.is(files.length, 1, "a static Node needs nothing else");
    return;
  }
  t.regex(loader, /^\/.*ld-linux.*\.so\.\d$/);
  const paths = files.map((f) => f.path);
  t.true(paths.includes(loader), paths.join(" "));
  t.true(paths.some((p) => p.endsWith("/libc.so.6")), paths.join(" "));
  t.is(new Set(paths).size, paths.length, "no file twice");
  for (const f of files) t.true("file" in f.source && existsSync(f.source.file), f.path);
  await t.throwsAsync(elfInterpreter(join(repoRoot, "package.json")), { message: /is not an ELF file/ });
});

test("the operator image follows operator/Dockerfile's final stage, with package.json, the compiled operator and production node_modules only in /app", async (t) => {
  const work = await mkdtemp(join(tmpdir(), "slipway-operator-image-test-"));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const { spec } = await operatorImageSpec("slipway/operator", work);
  const stage = finalStage(readFileSync(join(repoRoot, "operator", "Dockerfile"), "utf8"));
  t.deepEqual(spec.env, { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...stage.env });
  t.is(spec.workdir, "/app");
  t.is(spec.user, "10001:10001");
  t.deepEqual(spec.exposedPorts, ["8080/tcp"]);
  t.deepEqual(spec.entrypoint, ["node", "dist/operator/main.js"]);

  const paths = new Set(spec.files.map((f) => f.path));
  t.true(paths.has("/app/package.json"));
  t.true(paths.has("/app/dist/operator/main.js"), "the entrypoint's script is there");
  t.true(paths.has("/app/node_modules/@kubernetes/client-node/package.json"));
  t.true(paths.has("/app/node_modules/pino/package.json"));
  const app = [...paths].filter((p) => p.startsWith("/app/"));
  const devOnly = ["typescript", "ava", "eslint", "typescript-eslint", "@types/tar-stream"];
  t.deepEqual(app.filter((p) => devOnly.some((d) => p.startsWith(`/app/node_modules/${d}/`))), [], "no devDependency is shipped");
  t.deepEqual(app.filter((p) => /^\/app\/dist\/(.*\.test\.js|e2e\/|cli\/|bench\/)/.test(p)), [], "dist holds the operator alone");
  t.deepEqual([...paths].filter((p) => !p.startsWith("/app/") && !p.startsWith("/lib") && p !== "/usr/local/bin/node"), ["/etc/nsswitch.conf"]);
  // The container runs as 10001 and reads files owned by root: every file must be readable by others.
  t.deepEqual(spec.files.filter((f) => f.mode !== undefined && (f.mode & 0o004) === 0).map((f) => f.path), []);
});
