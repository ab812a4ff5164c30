// Tekton Pipelines' real controller and admission webhook, run as processes beside the local control plane
// (like kube-scheduler), built from the Go module proxy by `e2e/controlplane/build.sh --tekton`. Tekton's CRDs,
// RBAC, ConfigMaps and webhook configurations are applied from the same module's config/ directory in the Go
// module cache, not from copies: only the Deployments, Services and the HorizontalPodAutoscaler (what would
// run Tekton as pods) are left out. Pods of TaskRuns are reported by kwok (e2e/controlplane/kwok/tekton.yaml).
//
// How the API server reaches the webhook on loopback: Tekton's webhook reconciles its own webhook
// configurations and CRD conversion settings, and refuses any that does not name a Service (knative's
// "missing service reference for webhook"), so a `url:` clientConfig cannot be used. The Service
// tekton-pipelines-webhook is therefore of type ExternalName, 127.0.0.1: kube-apiserver resolves an
// ExternalName Service to that name and the port the clientConfig names, and still checks the webhook's
// certificate against tekton-pipelines-webhook.tekton-pipelines.svc, the name Tekton's own certificate is
// issued for. The port is the webhook process's, set in the clientConfigs as they are applied. (The
// `--enable-aggregator-routing` alternative resolves through Endpoints, which refuse loopback addresses.)
import { execFile } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import type { ControlPlane } from "./controlplane.js";
import { buildInBackground, repoRoot } from "./tools.js";

const execFileAsync = promisify(execFile);

export const TEKTON_NAMESPACE = "tekton-pipelines";
const MODULE = "github.com/tektoncd/pipeline";
const WEBHOOK_SERVICE = "tekton-pipelines-webhook";
/** Kinds in config/ that would run Tekton as pods; the harness runs the processes instead. */
const LEFT_OUT = new Set(["Deployment", "Service", "HorizontalPodAutoscaler"]);

/** Runs build.sh --tekton (builds once per machine) and returns the directory holding tekton-controller and tekton-webhook. */
export function tektonBinaries(progress?: (line: string) => void): Promise<string> {
  return buildInBackground("--tekton", progress);
}

/** The pinned Tekton module's directory in the Go module cache (`go mod download -json` in its wrapper module). */
export async function tektonModuleDir(): Promise<{ dir: string; version: string }> {
  const wrapper = join(repoRoot, "e2e", "controlplane", "tekton");
  try {
    const { stdout } = await execFileAsync("go", ["mod", "download", "-json", MODULE], {
      cwd: wrapper, env: { ...process.env, GOFLAGS: "-mod=readonly" }, maxBuffer: 1 << 20,
    });
    const info = JSON.parse(stdout) as { Dir?: string; Version?: string; Error?: string };
    if (!info.Dir || !info.Version) throw new Error(info.Error ?? `no Dir in ${stdout}`);
    return { dir: info.Dir, version: info.Version };
  } catch (cause) {
    throw new Error(`tekton: cannot find ${MODULE} in the Go module cache (go mod download -json in ${wrapper})`, { cause });
  }
}

type Doc = Record<string, unknown> & { kind?: string; metadata?: { name?: string } };
type ClientConfig = { service?: { name?: string; namespace?: string; port?: number } };

/**
 * Tekton's release objects from config/ (without resolvers/), in path order, without what would run as
 * pods, with the webhook's clientConfigs pointed at `webhookPort`; and the ExternalName Service that routes
 * the API server's calls to the webhook process.
 */
export async function tektonObjects(configDir: string, webhookPort: number): Promise<Doc[]> {
  // What Tekton's release is made of: config/ and its directories (100-namespace, 300-crds), in path order,
  // which puts the Namespace first; not resolvers/, which Tekton releases separately.
  const files = (await readdir(configDir, { recursive: true }))
    .filter((f) => f.endsWith(".yaml") && !f.startsWith("resolvers/"))
    .sort()
    .map((f) => join(configDir, f));
  const docs: Doc[] = [];
  for (const file of files) {
    for (const parsed of parseAllDocuments(await readFile(file, "utf8"))) {
      if (parsed.errors.length) throw new Error(`tekton: cannot parse ${file}: ${parsed.errors[0]?.message}`);
      const doc = parsed.toJS() as Doc | null;
      if (!doc?.kind || LEFT_OUT.has(doc.kind)) continue;
      const atWebhook = (cc: ClientConfig | undefined) => {
        if (cc?.service?.name === WEBHOOK_SERVICE) cc.service.port = webhookPort;
      };
      for (const hook of (doc.webhooks as { clientConfig?: ClientConfig }[] | undefined) ?? []) atWebhook(hook.clientConfig);
      atWebhook((doc.spec as { conversion?: { webhook?: { clientConfig?: ClientConfig } } } | undefined)?.conversion?.webhook?.clientConfig);
      docs.push(doc);
    }
  }
  docs.push({
    apiVersion: "v1", kind: "Service",
    metadata: { name: WEBHOOK_SERVICE, namespace: TEKTON_NAMESPACE, labels: { "app.kubernetes.io/part-of": "slipway-local-control-plane" } },
    spec: { type: "ExternalName", externalName: "127.0.0.1" },
  } as Doc);
  return docs;
}

/** A component the control plane starts: name (its log file), binary, arguments, environment. */
export interface TektonProcess {
  name: "tekton-controller" | "tekton-webhook";
  binary: string;
  args: string[];
  env: Record<string, string>;
  /** http://127.0.0.1:<probes port>/ answers 200 once it is up. */
  probeUrl: string;
}

/** Image references for the controller's flags. Nothing pulls them: kwok runs no containers. */
function imageFlags(version: string): string[] {
  const image = (cmd: string) => `ghcr.io/tektoncd/pipeline/cmd/${cmd}:${version}`;
  return [
    "-entrypoint-image", image("entrypoint"), "-nop-image", image("nop"),
    "-sidecarlogresults-image", image("sidecarlogresults"), "-workingdirinit-image", image("workingdirinit"),
    "-shell-image", "cgr.dev/chainguard/busybox:latest", "-shell-image-win", "mcr.microsoft.com/powershell:nanoserver",
  ];
}

/**
 * The controller's and webhook's command lines, with the environment their Deployments in config/ set and
 * every port (probes, profiling, webhook) on a free loopback port, so several control planes on one machine
 * never collide. Metrics are off (knative's Prometheus exporter takes a fixed port). Each runs with a token of
 * its own ServiceAccount, so Tekton's RBAC from config/ is what authorizes it.
 */
export function tektonProcesses(opts: {
  binDir: string; version: string; kubeconfigs: { controller: string; webhook: string };
  ports: { webhook: number; webhookProbes: number; webhookProfiling: number; controllerProbes: number; controllerProfiling: number };
}): TektonProcess[] {
  const common = {
    SYSTEM_NAMESPACE: TEKTON_NAMESPACE, KUBERNETES_MIN_VERSION: "v1.28.0", CONFIG_LOGGING_NAME: "config-logging",
    CONFIG_OBSERVABILITY_NAME: "config-observability", CONFIG_FEATURE_FLAGS_NAME: "feature-flags",
    METRICS_DOMAIN: "tekton.dev/pipeline", DEFAULT_METRICS_BACKEND: "none",
  };
  const { ports } = opts;
  return [
    {
      name: "tekton-webhook",
      binary: join(opts.binDir, "tekton-webhook"),
      args: [`--kubeconfig=${opts.kubeconfigs.webhook}`],
      env: {
        ...common, CONFIG_LEADERELECTION_NAME: "config-leader-election-webhook",
        WEBHOOK_PORT: String(ports.webhook), PROBES_PORT: String(ports.webhookProbes), PROFILING_PORT: String(ports.webhookProfiling),
        WEBHOOK_ADMISSION_CONTROLLER_NAME: "webhook.pipeline.tekton.dev", WEBHOOK_SERVICE_NAME: WEBHOOK_SERVICE,
        WEBHOOK_SECRET_NAME: "webhook-certs",
      },
      probeUrl: `http://127.0.0.1:${ports.webhookProbes}/readiness`,
    },
    {
      name: "tekton-controller",
      binary: join(opts.binDir, "tekton-controller"),
      args: [`--kubeconfig=${opts.kubeconfigs.controller}`, ...imageFlags(opts.version)],
      env: {
        ...common, CONFIG_DEFAULTS_NAME: "config-defaults", CONFIG_LEADERELECTION_NAME: "config-leader-election-controller",
        CONFIG_SPIRE: "config-spire", PROBES_PORT: String(ports.controllerProbes), PROFILING_PORT: String(ports.controllerProfiling),
      },
      probeUrl: `http://127.0.0.1:${ports.controllerProbes}/readiness`,
    },
  ];
}

/** A kubeconfig for `serviceAccount` in tekton-pipelines, with a token the API server issues for it. */
export async function serviceAccountKubeconfig(
  kubectlOk: ControlPlane["kubectlOk"],
  server: string, caFile: string, serviceAccount: string, path: string,
): Promise<string> {
  const token = await kubectlOk(["create", "token", serviceAccount, "-n", TEKTON_NAMESPACE, "--duration=8760h"],
    { what: `tekton: cannot issue a token for ServiceAccount ${TEKTON_NAMESPACE}/${serviceAccount}` });
  const ca = (await readFile(caFile)).toString("base64");
  await writeFile(path, `apiVersion: v1
kind: Config
clusters:
- name: slipway-local
  cluster: { server: ${JSON.stringify(server)}, certificate-authority-data: ${ca} }
users:
- name: ${serviceAccount}
  user: { token: ${JSON.stringify(token.trim())} }
contexts:
- name: ${serviceAccount}
  context: { cluster: slipway-local, user: ${serviceAccount} }
current-context: ${serviceAccount}
`, { mode: 0o600 });
  return path;
}
