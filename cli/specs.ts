// Pure edits of App and Config specs, and the merge patch that removes what an apply could not.
import { UsageError } from "./errors.js";
import type { ConfigSpec, HttpProbe } from "../crds/v1alpha1.js";
import { checkProcessType, parseAssignments, type FlagValue, parseInteger, stringFlag } from "./parse.js";

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

const QUANTITY = /^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei|[eE][0-9]+)?$/;

/**
 * The JSON merge patch that takes `actual` to `desired` by removing keys only: an apply that leaves out a key
 * removes it only when no other field manager (kubectl, Git sync) also owns it, and a merge patch removes it anyway.
 * Returns undefined when nothing is left to remove.
 */
export function removalPatch(desired: unknown, actual: unknown): Record<string, Json> | undefined {
  if (!isObject(desired) || !isObject(actual)) return undefined;
  const patch: Record<string, Json> = {};
  for (const [k, v] of Object.entries(actual)) {
    if (!(k in desired)) patch[k] = null;
    else {
      const sub = removalPatch(desired[k], v);
      if (sub) patch[k] = sub;
    }
  }
  return Object.keys(patch).length ? patch : undefined;
}

/**
 * The removals from `before` to `desired` that leave an object empty (`routing` after tls:unset, a process type
 * after autoscale:unset). Server-side apply turns an object it empties into null, which the CRD rejects; a merge
 * patch leaves it empty, so these go first.
 */
export function emptyingRemovals(desired: unknown, before: unknown): Record<string, Json> | undefined {
  if (!isObject(desired) || !isObject(before)) return undefined;
  const patch: Record<string, Json> = {};
  for (const [k, v] of Object.entries(desired)) {
    if (!(k in before)) continue;
    const sub = isObject(v) && Object.keys(v).length === 0 ? removalPatch(v, before[k]) : emptyingRemovals(v, before[k]);
    if (sub) patch[k] = sub;
  }
  return Object.keys(patch).length ? patch : undefined;
}

/** The removals from `before` to `desired` that `after` (the object as applied) still shows. */
export function pendingRemovals(desired: unknown, before: unknown, after: unknown): Record<string, Json> | undefined {
  const removed = removalPatch(desired, before);
  return removed ? stillPresent(removed, after) : undefined;
}

function stillPresent(patch: Record<string, Json>, after: unknown): Record<string, Json> | undefined {
  if (!isObject(after)) return undefined;
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (!(k in after)) continue;
    if (v === null) out[k] = null;
    else if (isObject(v)) {
      const sub = stillPresent(v as Record<string, Json>, after[k]);
      if (sub) out[k] = sub;
    }
  }
  return Object.keys(out).length ? out : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Sets plain env values; a key that was secret becomes plain. */
export function setEnv(spec: ConfigSpec, values: Record<string, string>): ConfigSpec {
  const env = { ...spec.env, ...values };
  const secretEnv = without(spec.secretEnv, Object.keys(values));
  return clean({ ...spec, env, secretEnv });
}

/** Points keys at the Secret that holds their values; a key that was plain becomes secret. */
export function setSecretEnv(spec: ConfigSpec, secretName: string, keys: string[]): ConfigSpec {
  const secretEnv = { ...spec.secretEnv };
  for (const k of keys) secretEnv[k] = { secretName, key: k };
  return clean({ ...spec, env: without(spec.env, keys), secretEnv });
}

/** Removes keys from env and secret env. Throws when none of them is set, so a typo does not pass silently. */
export function unsetEnv(spec: ConfigSpec, keys: string[]): ConfigSpec {
  const unknown = keys.filter((k) => !(k in (spec.env ?? {})) && !(k in (spec.secretEnv ?? {})));
  if (unknown.length === keys.length) throw new UsageError(`not set: ${unknown.join(", ")}`);
  return clean({ ...spec, env: without(spec.env, keys), secretEnv: without(spec.secretEnv, keys) });
}

export function setLimits(spec: ConfigSpec, memory: string[], cpu: string[]): ConfigSpec {
  if (memory.length === 0 && cpu.length === 0) throw new UsageError("limits:set needs TYPE=MEMORY and/or --cpu TYPE=CPU");
  const resources = structuredClone(spec.resources ?? {});
  for (const [which, words] of [["memory", memory], ["cpu", cpu]] as const) {
    for (const [type, amount] of Object.entries(parseAssignments(words, { noun: `TYPE=${which.toUpperCase()}` }))) {
      checkProcessType(type);
      if (!QUANTITY.test(amount)) throw new UsageError(`"${amount}" is not a ${which} quantity (e.g. ${which === "cpu" ? "500m or 1" : "512Mi or 1Gi"})`);
      const r = (resources[type] ??= {});
      r.limits = { ...r.limits, [which]: amount };
    }
  }
  return { ...spec, resources };
}

export function setTags(spec: ConfigSpec, words: string[]): ConfigSpec {
  const tags = parseAssignments(words, { noun: "KEY=VALUE" });
  return { ...spec, nodeSelector: { ...spec.nodeSelector, ...tags } };
}

export function unsetTags(spec: ConfigSpec, keys: string[]): ConfigSpec {
  const missing = keys.filter((k) => !(k in (spec.nodeSelector ?? {})));
  if (missing.length) throw new UsageError(`no such tag: ${missing.join(", ")}`);
  return clean({ ...spec, nodeSelector: without(spec.nodeSelector, keys) });
}

/** An HTTP probe from healthchecks:set flags. */
export function probeFromFlags(flags: Record<string, FlagValue>): HttpProbe {
  const path = stringFlag(flags, "path");
  if (path !== undefined && !path.startsWith("/")) throw new UsageError(`--path must start with /, got "${path}"`);
  const probe: HttpProbe = {
    path,
    port: parseInteger("port", flags.port, 1),
    initialDelaySeconds: parseInteger("initial-delay", flags["initial-delay"], 0),
    periodSeconds: parseInteger("period", flags.period, 1),
    timeoutSeconds: parseInteger("timeout", flags.timeout, 1),
    failureThreshold: parseInteger("failure-threshold", flags["failure-threshold"], 1),
  };
  return Object.fromEntries(Object.entries(probe).filter(([, v]) => v !== undefined)) as HttpProbe;
}

function without<T>(map: Record<string, T> | undefined, keys: string[]): Record<string, T> | undefined {
  if (!map) return undefined;
  return Object.fromEntries(Object.entries(map).filter(([k]) => !keys.includes(k)));
}

/** Drops empty maps so an applied Config does not grow `env: {}` noise in Git. */
function clean(spec: ConfigSpec): ConfigSpec {
  const out: ConfigSpec = {};
  for (const [k, v] of Object.entries(spec) as [keyof ConfigSpec, ConfigSpec[keyof ConfigSpec]][]) {
    if (v === undefined || (isObject(v) && Object.keys(v).length === 0)) continue;
    (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
