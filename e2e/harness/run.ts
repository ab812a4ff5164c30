// `npm run test:e2e`: starts one real control plane (with Tekton Pipelines' controller and webhook, for the build and
// preview tests), runs every e2e file against it with ava, stops it.
// If the control plane cannot start, this fails loudly with the component's last log lines: e2e is never skipped.
import { spawn, type ChildProcess } from "node:child_process";
import { readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { ENV_DIR, ENV_KUBECONFIG, startControlPlane, repoRoot } from "../../operator/local/controlplane.js";
import { argocdDir, ENV_ARGOCD_DIR } from "./argocd.js";
import { ENV_FLUX_DIR, fluxBinDir } from "./flux.js";
import { ENV_TOOLS_DIR, pathWithTools, toolsDir } from "../../operator/local/tools.js";

const started = Date.now();
let cp;
try {
  cp = await startControlPlane({ tekton: true, progress: (line) => console.log(`e2e: ${line}`) });
} catch (e) {
  console.error(`e2e: FAILED to start the control plane — the e2e suite did not run.\n${(e as Error).message}`);
  process.exit(1);
}
const version = await cp.kubectl(["version", "-o", "json"]);
const server = (JSON.parse(version.stdout || "{}") as { serverVersion?: { gitVersion?: string } }).serverVersion?.gitVersion;
console.log(`e2e: control plane ready in ${((Date.now() - started) / 1000).toFixed(1)}s — kube-apiserver ${server} at ${cp.server}`);

const files = process.argv.slice(2);
// Flux's controllers (e2e/flux.e2e.ts) and Argo CD (e2e/argocd.e2e.ts) are built before the files run: a first
// build takes many minutes, far past ava's timeout for a hook. Later runs only find them in the cache.
let fluxDir: string | undefined;
let argoDir: string | undefined;
try {
  if (files.length === 0 || files.some((f) => f.includes("flux"))) fluxDir = fluxBinDir();
  if (files.length === 0 || files.some((f) => f.includes("argocd"))) argoDir = argocdDir();
} catch (e) {
  console.error(`e2e: FAILED to build Flux's or Argo CD's controllers — the e2e suite did not run.\n${(e as Error).message}`);
  await cp.stop();
  process.exit(1);
}
// Every e2e file runs operators, Git servers and kubectl against one control plane; on a 2-core machine more
// than two files at once starve each other's timers (leases, commit settling) and make failures meaningless.
const concurrency = process.env.SLIPWAY_E2E_CONCURRENCY ?? "2";
// The files that start the machine's one real node (operator/local/realnode.ts: one at a time) run after the
// others, one file at a time.
const all = files.length ? files : (await readdir(join(repoRoot, "dist", "e2e"))).filter((f) => f.endsWith(".e2e.js")).sort().map((f) => join("dist", "e2e", f));
const usesRealNode = (f: string) => basename(f).startsWith("realnode");
const groups = [
  { files: all.filter((f) => !usesRealNode(f)), concurrency },
  { files: all.filter(usesRealNode), concurrency: "1" },
].filter((g) => g.files.length > 0);
const env = {
  ...process.env, PATH: pathWithTools(), [ENV_TOOLS_DIR]: toolsDir(), [ENV_KUBECONFIG]: cp.kubeconfigPath, [ENV_DIR]: cp.dir,
  ...(fluxDir ? { [ENV_FLUX_DIR]: fluxDir } : {}),
  ...(argoDir ? { [ENV_ARGOCD_DIR]: argoDir } : {}),
};
let ava: ChildProcess | undefined;
process.on("SIGINT", () => ava?.kill("SIGINT"));
process.on("SIGTERM", () => ava?.kill("SIGTERM"));
let failed = false;
for (const group of groups) {
  // The built kubectl and kpt first on PATH: no test runs the machine's own (or needs it installed).
  const run = spawn(process.execPath, [`${repoRoot}/node_modules/ava/entrypoints/cli.mjs`, `--concurrency=${group.concurrency}`, ...group.files], {
    stdio: "inherit", cwd: repoRoot, env,
  });
  ava = run;
  const code = await new Promise<number>((resolve) => run.on("close", (c) => resolve(c ?? 1)));
  if (code !== 0) failed = true;
}
await cp.stop();
process.exit(failed ? 1 : 0);
