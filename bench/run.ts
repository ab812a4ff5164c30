// `npm run bench`: speed and memory figures, printed as a table. Targets live here, never in timed tests.
import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { startControlPlane } from "../e2e/harness/controlplane.js";

interface Row { benchmark: string; value: string; target: string; ok: boolean }
const rows: Row[] = [];
const record = (benchmark: string, value: number, unit: string, target: number, lowerIsBetter = true) =>
  rows.push({ benchmark, value: `${value.toFixed(value < 10 ? 2 : 0)} ${unit}`, target: `${lowerIsBetter ? "≤" : "≥"} ${target} ${unit}`,
    ok: lowerIsBetter ? value <= target : value >= target });

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function controlPlane(): Promise<void> {
  const t0 = performance.now();
  const cp = await startControlPlane();
  record("control plane warm start (binaries cached)", (performance.now() - t0) / 1000, "s", 20);
  try {
    const ns = "bench";
    await cp.kubectl(["create", "namespace", ns]);
    const dep = (i: number) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: d${i} }
spec:
  replicas: 3
  selector: { matchLabels: { app: d${i} } }
  template:
    metadata: { labels: { app: d${i} } }
    spec: { containers: [{ name: c, image: "registry.example/x@sha256:${"b".repeat(64)}" }] }
`;
    await new Promise((r) => setTimeout(r, 1000));
    const t1 = performance.now();
    await cp.kubectl(["apply", "-n", ns, "-f", "-"], { input: Array.from({ length: 10 }, (_, i) => dep(i)).join("---\n") });
    for (let i = 0; i < 10; i++) await cp.kubectl(["rollout", "status", "-n", ns, `deployment/d${i}`, "--timeout=120s"]);
    record("10 Deployments × 3 replicas rolled out (kwok pods)", (performance.now() - t1) / 1000, "s", 30);
    const pids = await import("node:child_process").then(({ execFileSync }) =>
      execFileSync("pgrep", ["-f", cp.dir]).toString().trim().split("\n").map(Number));
    let total = 0;
    for (const pid of pids) {
      const cmd = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0")[0]?.split("/").pop() ?? String(pid);
      const mib = await rssMiB(pid);
      total += mib;
      record(`RSS ${cmd}`, mib, "MiB", cmd === "kube-apiserver" ? 600 : 300);
    }
    record("RSS control plane total", total, "MiB", 1200);
  } finally {
    await cp.stop();
  }
}

await controlPlane();

const w = [52, 12, 14];
console.log(`${"benchmark".padEnd(w[0]!)} ${"value".padStart(w[1]!)} ${"target".padStart(w[2]!)}  ok`);
for (const r of rows) console.log(`${r.benchmark.padEnd(w[0]!)} ${r.value.padStart(w[1]!)} ${r.target.padStart(w[2]!)}  ${r.ok ? "yes" : "NO"}`);
process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
