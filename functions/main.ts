#!/usr/bin/env node
// slipway-render: the render function as a KRM function. Reads a ResourceList, renders every App found
// (with its Config and live Release) and appends the rendered objects. Runs under `kpt fn eval --exec`,
// as a kustomize exec function and as an Argo CD Config Management Plugin.
import { readFileSync, realpathSync } from "node:fs";
import { Configs, LEGACY_SOURCE_PATH_ANNOTATION, SOURCE_PATH_ANNOTATION, generalResult, getAnnotation, run, runFnWithConfigs } from "kpt-functions";
import type { KptFunc, KubernetesObject as KptObject, Result } from "kpt-functions";
import { collectInputs, slipwayObjects } from "./inputs.js";
import { parseManifests, toYaml } from "./manifests.js";
import { render } from "./render.js";
import type { PlatformSettings, RenderError } from "./render.js";

export const usage = `Renders Slipway Apps (App + Config + live Release) into Deployments, Services, Ingresses or
HTTPRoutes and HPAs, appended to the input. Configure it with a ConfigMap (all keys optional):

apiVersion: v1
kind: ConfigMap
metadata:
  name: slipway-render
data:
  domain: apps.example.com          # default host <app>.<namespace>.<domain>; default slipway.local
  routing: ingress                  # ingress | gateway
  ingressClassName: nginx
  gatewayName: public               # parentRef of HTTPRoutes when routing is gateway
  gatewayNamespace: gateways
  progressDeadlineSeconds: "600"
  namespace: shop                   # for App/Config/Release without metadata.namespace

or with a PlatformSettings object:

apiVersion: fn.slipway.dev/v1alpha1
kind: PlatformSettings
metadata:
  name: slipway-render
domain: apps.example.com
routing: gateway
gateway: { name: public, namespace: gateways }
namespace: shop

Without a namespace setting, the environment variable ARGOCD_APP_NAMESPACE (set by Argo CD for plugins)
is used for objects without a namespace.

slipway-render --manifests [--function-config FILE] reads and writes a plain multi-document YAML stream
instead of a ResourceList, e.g. \`kustomize build . | slipway-render --manifests\` (the Argo CD plugin).`;

const CONFIG_MAP_KEYS = ["domain", "routing", "ingressClassName", "gatewayName", "gatewayNamespace", "progressDeadlineSeconds", "namespace"];
const SETTINGS_KEYS = ["apiVersion", "kind", "metadata", "domain", "routing", "ingressClassName", "gateway", "progressDeadlineSeconds", "namespace"];

interface FunctionSettings {
  platform: Partial<PlatformSettings>;
  namespace?: string;
}

/** Reads the functionConfig; problems are returned as messages naming the offending key. */
export function readSettings(fc: Record<string, unknown> | undefined): { settings: FunctionSettings; problems: string[] } {
  const problems: string[] = [];
  const platform: Partial<PlatformSettings> = {};
  const settings: FunctionSettings = { platform };
  if (fc === undefined) return { settings, problems };

  const str = (key: string, value: unknown): string | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "string") problems.push(`functionConfig ${key} must be a string`);
    return typeof value === "string" ? value : undefined;
  };
  const num = (key: string, value: unknown): number | undefined => {
    if (value === undefined || value === null) return undefined;
    const n = typeof value === "number" ? value : typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n <= 0) problems.push(`functionConfig ${key} must be a positive whole number, not ${JSON.stringify(value)}`);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  };
  const routing = (value: string | undefined): PlatformSettings["routing"] | undefined => {
    if (value === undefined) return undefined;
    if (value === "ingress" || value === "gateway") return value;
    problems.push(`functionConfig routing must be "ingress" or "gateway", not "${value}"`);
    return undefined;
  };

  let gatewayName: string | undefined;
  let gatewayNamespace: string | undefined;
  let raw: Record<string, unknown>;
  if (fc.kind === "ConfigMap" && fc.apiVersion === "v1") {
    raw = (fc.data ?? {}) as Record<string, unknown>;
    for (const key of Object.keys(raw)) {
      if (!CONFIG_MAP_KEYS.includes(key)) problems.push(`functionConfig has an unknown key "${key}"; known keys: ${CONFIG_MAP_KEYS.join(", ")}`);
    }
    gatewayName = str("gatewayName", raw.gatewayName);
    gatewayNamespace = str("gatewayNamespace", raw.gatewayNamespace);
  } else {
    raw = fc;
    for (const key of Object.keys(raw)) {
      if (!SETTINGS_KEYS.includes(key)) problems.push(`functionConfig has an unknown field "${key}"; known fields: ${SETTINGS_KEYS.slice(3).join(", ")}`);
    }
    const gateway = raw.gateway;
    if (gateway !== undefined && (typeof gateway !== "object" || gateway === null)) problems.push("functionConfig gateway must be an object with name and namespace");
    else if (gateway) {
      gatewayName = str("gateway.name", (gateway as Record<string, unknown>).name);
      gatewayNamespace = str("gateway.namespace", (gateway as Record<string, unknown>).namespace);
    }
  }

  const domain = str("domain", raw.domain);
  const route = routing(str("routing", raw.routing));
  const ingressClassName = str("ingressClassName", raw.ingressClassName);
  const deadline = num("progressDeadlineSeconds", raw.progressDeadlineSeconds);
  const namespace = str("namespace", raw.namespace);
  if (domain !== undefined) platform.domain = domain;
  if (route !== undefined) platform.routing = route;
  if (ingressClassName !== undefined) platform.ingressClassName = ingressClassName;
  if (gatewayName !== undefined) platform.gateway = gatewayNamespace !== undefined ? { name: gatewayName, namespace: gatewayNamespace } : { name: gatewayName };
  if (deadline !== undefined) platform.progressDeadlineSeconds = deadline;
  if (namespace !== undefined) settings.namespace = namespace;
  return { settings, problems };
}

/** A KRM result for a render error; it points at the file of the offending object when the input says. */
function errorResult(e: RenderError, sources: readonly KptObject[]): Result {
  const message = e.field && e.object ? `${e.message} (${e.field})` : e.message;
  if (e.object === undefined) return generalResult(message, "error");
  const { kind, name, namespace } = e.object;
  const source = sources.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace ?? undefined) === namespace);
  const result: Result = {
    severity: "error",
    message,
    resourceRef: { apiVersion: "slipway.dev/v1alpha1", kind, namespace: namespace ?? "", name },
  };
  const path = source ? (getAnnotation(source, SOURCE_PATH_ANNOTATION) ?? getAnnotation(source, LEGACY_SOURCE_PATH_ANNOTATION)) : undefined;
  if (path) result.file = { path };
  if (e.field) result.field = { path: e.field };
  return result;
}

// The kpt runner keys objects by apiVersion/kind/namespace/name; a re-render replaces the earlier output and
// keeps its file annotations, so `kpt fn eval` on a directory is idempotent.
const FILE_ANNOTATION = /^(internal\.)?config\.kubernetes\.io\/|^config\.k8s\.io\/id$/;

export const slipwayRender: KptFunc = async (configs: Configs) => {
  try {
    const { settings, problems } = readSettings(configs.getFunctionConfig() as Record<string, unknown> | undefined);
    if (problems.length > 0) {
      configs.addResults(...problems.map((p) => generalResult(p, "error")));
      return;
    }
    const namespace = settings.namespace ?? (process.env.ARGOCD_APP_NAMESPACE || undefined);
    const sources = slipwayObjects(configs.getAll(), namespace);
    const existing = new Map(configs.getAll().map((o) => [key(o), o]));
    for (const input of collectInputs(sources)) {
      const outcome = render(input, settings.platform);
      configs.addResults(...outcome.errors.map((e) => errorResult(e, sources)));
      for (const object of outcome.objects) {
        const previous = existing.get(key(object));
        const kept = Object.entries(previous?.metadata.annotations ?? {}).filter(([k]) => FILE_ANNOTATION.test(k));
        if (kept.length > 0) object.metadata.annotations = { ...object.metadata.annotations, ...Object.fromEntries(kept) };
        configs.insert(object as unknown as KptObject);
      }
    }
  } catch (err) {
    // A bug must still come out as a result, never as a stack trace in someone's CI log.
    configs.addResults(generalResult(`slipway-render failed: ${err instanceof Error ? err.message : String(err)}`, "error"));
  }
};
slipwayRender.usage = usage;

function key(o: { apiVersion: string; kind: string; metadata: { name?: string; namespace?: string } }): string {
  return `${o.apiVersion}|${o.kind}|${o.metadata.namespace ?? ""}|${o.metadata.name ?? ""}`;
}

/**
 * `slipway-render --manifests [--function-config FILE]`: a plain YAML stream in and out, for pipelines such as
 * `kustomize build . | slipway-render --manifests` (the Argo CD plugin). The same function runs inside;
 * error results go to stderr, one line each, with exit code 1.
 */
export async function renderManifests(input: string, functionConfig: string | undefined): Promise<{ stdout: string; stderr: string; code: number }> {
  let configs: Configs;
  try {
    const fc = functionConfig === undefined ? undefined : (parseManifests(functionConfig)[0] as KptObject | undefined);
    configs = new Configs(parseManifests(input) as KptObject[], fc);
  } catch (err) {
    return { stdout: "", stderr: `error: ${err instanceof Error ? err.message : String(err)}\n`, code: 1 };
  }
  await runFnWithConfigs(slipwayRender, configs);
  const errors = configs.getResults().filter((r) => r.severity === "error");
  const stderr = errors.map((r) => `error: ${r.message}${r.resourceRef ? ` (${r.resourceRef.kind} ${r.resourceRef.namespace}/${r.resourceRef.name})` : ""}\n`).join("");
  if (errors.length > 0) return { stdout: "", stderr, code: 1 };
  return { stdout: toYaml(configs.getAll()), stderr, code: 0 };
}

// Run only as the executable, not when imported by tests.
if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${realpath(process.argv[1])}`).href) {
  // The runner prints err.stack for unreadable input (bad YAML): keep that to the message alone.
  Error.stackTraceLimit = 0;
  const args = process.argv.slice(2);
  if (args[0] === "--manifests") {
    const fcIndex = args.findIndex((a) => a === "--function-config" || a === "-f");
    const fcPath = fcIndex >= 0 ? args[fcIndex + 1] : undefined;
    const out = await renderManifests(readFileSync(0, "utf8"), fcPath === undefined ? undefined : readFileSync(fcPath, "utf8"));
    process.stdout.write(out.stdout);
    process.stderr.write(out.stderr);
    process.exitCode = out.code;
  } else {
    await run(slipwayRender);
  }
}

function realpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
