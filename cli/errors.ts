// One error type per failure kind the user can act on; each prints as one line on stderr.
import { KubeError } from "../operator/kube.js";

/** A failure to report as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, opts: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = "CliError";
    this.exitCode = opts.exitCode ?? 1;
  }
}

/** The command line itself is wrong (exit code 2, as in kubectl and most Unix tools). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
    this.name = "UsageError";
  }
}

/** What was being attempted when a request failed, to name it in the message. */
export interface RequestContext {
  verb: string;
  /** Plural resource with group, e.g. "apps.slipway.dev", "pods/log". */
  resource: string;
  name?: string;
  namespace: string;
  server: string;
}

interface StatusBody {
  message?: string;
  reason?: string;
}

const NETWORK_CODES = ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT", "ECONNRESET", "EAI_AGAIN", "ENETUNREACH", "CERT_", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SELF_SIGNED_CERT"];

/**
 * A 404 for the path itself rather than for one object: the API server does not serve the kind (its CRD is not
 * installed) and answers "404 page not found" as plain text, where a missing object gets a Status, reason NotFound.
 */
export function isNotServed(e: unknown): boolean {
  return e instanceof KubeError && e.code === 404 && (e.reason !== "NotFound" || e.status.includes("the server could not find the requested resource"));
}

/** Maps an error from the Kubernetes client to a one-line CliError that says what to do or what failed. */
export function toCliError(e: unknown, ctx: RequestContext): CliError {
  if (e instanceof CliError) return e;
  // KubeError (the operator's client: writes, reads) carries the API server's message; client-node's errors (logs,
  // watches) carry the Status body.
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined;
  const body = e instanceof KubeError ? { message: e.status, reason: e.reason } : statusBody(typeof e === "object" && e !== null ? (e as { body?: unknown }).body : undefined);
  const message = e instanceof Error ? e.message : String(e);
  const target = `${ctx.resource}${ctx.name ? ` "${ctx.name}"` : ""}`;

  // No HTTP answer at all (refused, reset, TLS, timed out): say so with the innermost cause.
  if (e instanceof KubeError && e.code === 0) {
    return new CliError(`cannot reach the cluster at ${ctx.server}: ${innermost(e).message}`, { cause: e });
  }
  if (isNotServed(e) && ctx.resource.endsWith("slipway.dev")) {
    return new CliError(`the cluster at ${ctx.server} does not serve ${ctx.resource}: are the Slipway CRDs installed?`, { cause: e });
  }
  if (typeof code === "number") {
    switch (code) {
      case 401:
        return new CliError(`unauthorized: the cluster at ${ctx.server} rejected your credentials (check your kubeconfig)`, { cause: e });
      case 403: {
        const who = body.message?.match(/User "([^"]*)" cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?/);
        if (who) {
          const [, user, verb, resource, group] = who;
          return new CliError(`permission denied: User "${user}" cannot ${verb} ${resource}${group ? `.${group}` : ""} in namespace "${ctx.namespace}"`, { cause: e });
        }
        return new CliError(`permission denied: you cannot ${ctx.verb} ${target} in namespace "${ctx.namespace}"`, { cause: e });
      }
      case 404:
        return new CliError(`${target} not found in namespace "${ctx.namespace}"`, { cause: e });
      case 409:
      case 422:
        return new CliError(`invalid: ${body.message ?? `${ctx.verb} ${target} was rejected`}`, { cause: e });
      default:
        return new CliError(`${ctx.verb} ${target} failed: ${body.message ?? `HTTP ${code}`}`, { cause: e });
    }
  }
  const causeCode = networkCode(e);
  if (causeCode) {
    const reason = message.match(/reason: (.*)$/)?.[1] ?? message;
    return new CliError(`cannot reach the cluster at ${ctx.server}: ${reason}`, { cause: e });
  }
  return new CliError(`${ctx.verb} ${target} failed: ${message}`, { cause: e });
}

function statusBody(body: unknown): StatusBody {
  if (typeof body === "string") {
    try {
      return statusBody(JSON.parse(body));
    } catch {
      return body.trim() ? { message: body.trim() } : {};
    }
  }
  if (typeof body === "object" && body !== null) {
    const b = body as { message?: unknown; reason?: unknown };
    return {
      message: typeof b.message === "string" ? b.message : undefined,
      reason: typeof b.reason === "string" ? b.reason : undefined,
    };
  }
  return {};
}

/** The deepest Error in a chain of causes. */
function innermost(e: Error): Error {
  let cur = e;
  for (let depth = 0; cur.cause instanceof Error && depth < 5; depth++) cur = cur.cause;
  return cur;
}

function networkCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const c = (cur as { code?: unknown }).code;
    const text = `${typeof c === "string" ? c : ""} ${cur instanceof Error ? cur.message : ""}`;
    const hit = NETWORK_CODES.find((n) => text.includes(n));
    if (hit) return hit;
    if (cur instanceof Error && cur.name === "FetchError") return "FetchError";
  }
  return undefined;
}
