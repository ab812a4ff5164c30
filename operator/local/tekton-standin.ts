// The embedded default has no Tekton controller and no container runtime. This stand-in finishes every
// PipelineRun the way a successful buildpacks run reports it (condition Succeeded, results APP_IMAGE_DIGEST
// and APP_IMAGE_URL), with a digest derived from the app and commit. It is only used by `npm start`, and
// says so in its log lines.
import { createHash } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import { Kube, type KubeObject } from "../kube.js";
import { log as rootLog } from "../log.js";

const log = rootLog.child({ module: "tekton-stand-in" });

interface PipelineRun extends KubeObject {
  spec: { params?: { name: string; value: string }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

export interface StandIn {
  stop(): void;
}

export function startTektonStandIn(kubeConfig: KubeConfig, namespace: string, delayMs = 3000): StandIn {
  const kube = new Kube(kubeConfig);
  const finishing = new Set<string>();
  const tick = async () => {
    const runs = await kube.list<PipelineRun>("tekton.dev/v1", "PipelineRun", namespace);
    for (const run of runs.items) {
      const name = run.metadata.name;
      const done = run.status?.conditions?.some((c) => c.type === "Succeeded" && c.status !== "Unknown");
      if (done || finishing.has(name)) continue;
      finishing.add(name);
      setTimeout(() => void finish(run).finally(() => finishing.delete(name)), delayMs);
    }
  };
  const finish = async (run: PipelineRun) => {
    const param = (n: string) => run.spec.params?.find((p) => p.name === n)?.value ?? "";
    const commit = run.metadata.labels?.["slipway.dev/commit"] ?? param("revision");
    const digest = `sha256:${createHash("sha256").update(`${run.metadata.name}/${commit}`).digest("hex")}`;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    await kube.patchStatus(run, {
      startTime: now,
      completionTime: now,
      conditions: [{ type: "Succeeded", status: "True", reason: "Succeeded", message: "Simulated by the local Tekton stand-in", lastTransitionTime: now }],
      results: [{ name: "APP_IMAGE_DIGEST", value: digest }, { name: "APP_IMAGE_URL", value: param("APP_IMAGE") }],
    });
    log.info({ pipelineRun: run.metadata.name, digest }, "simulated build finished (no Tekton controller here)");
  };
  const timer = setInterval(() => void tick().catch((err: unknown) => log.debug({ err }, "stand-in tick failed")), 1000);
  return { stop: () => clearInterval(timer) };
}
