// Verifying push webhooks from Git hosts. Used by the GitOps sync (config repository pushes) and by builds
// (source repository pushes). Every comparison is constant-time so a wrong secret leaks nothing by timing.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

export type WebhookProvider = "github" | "gitlab" | "gitea" | "generic";

export type WebhookVerdict = { ok: true; provider: WebhookProvider } | { ok: false; reason: string };

export type WebhookHeaders = Record<string, string | string[] | undefined>;

function header(headers: WebhookHeaders, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== wanted) continue;
    return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

function hmacHex(secret: string, body: Buffer): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  // timingSafeEqual needs equal lengths; compare against itself to keep the time independent of the guess.
  if (left.length !== right.length) {
    timingSafeEqual(right, right);
    return false;
  }
  return timingSafeEqual(left, right);
}

function checkHmac(provider: WebhookProvider, given: string, secret: string, body: Buffer, prefix: string): WebhookVerdict {
  if (prefix && !given.startsWith(prefix)) return { ok: false, reason: `${provider} signature does not start with "${prefix}"` };
  const hex = given.slice(prefix.length).trim().toLowerCase();
  return sameText(hex, hmacHex(secret, body))
    ? { ok: true, provider }
    : { ok: false, reason: `${provider} signature does not match the body` };
}

/**
 * Checks that a webhook request was signed with `secret`. Recognises GitHub (`X-Hub-Signature-256:
 * sha256=<hmac>`), Gitea (`X-Gitea-Signature: <hex hmac>`), GitLab (`X-Gitlab-Token: <secret>`) and Slipway's
 * generic form (`X-Slipway-Signature: sha256=<hmac>`). Header names are case-insensitive.
 */
export function verifyWebhook(headers: WebhookHeaders, body: Buffer, secret: string): WebhookVerdict {
  if (!secret) return { ok: false, reason: "no webhook secret is configured" };
  const github = header(headers, "x-hub-signature-256");
  if (github !== undefined) return checkHmac("github", github, secret, body, "sha256=");
  const gitea = header(headers, "x-gitea-signature");
  if (gitea !== undefined) return checkHmac("gitea", gitea, secret, body, "");
  const gitlab = header(headers, "x-gitlab-token");
  if (gitlab !== undefined) {
    return sameText(gitlab, secret) ? { ok: true, provider: "gitlab" } : { ok: false, reason: "gitlab token does not match" };
  }
  const generic = header(headers, "x-slipway-signature");
  if (generic !== undefined) return checkHmac("generic", generic, secret, body, "sha256=");
  return {
    ok: false,
    reason: "no signature header (X-Hub-Signature-256, X-Gitea-Signature, X-Gitlab-Token or X-Slipway-Signature)",
  };
}

/**
 * Whether a request carries any of the signature headers `verifyWebhook` checks: a request with none is refused
 * before its body is parsed or any secret is read.
 */
export function hasSignature(headers: WebhookHeaders): boolean {
  return ["x-hub-signature-256", "x-gitea-signature", "x-gitlab-token", "x-slipway-signature"].some((name) => header(headers, name) !== undefined);
}

/** Signs a body the way `verifyWebhook` expects for the generic and GitHub forms: `sha256=<hex hmac>`. */
export function signWebhookBody(body: Buffer | string, secret: string): string {
  return `sha256=${hmacHex(secret, Buffer.isBuffer(body) ? body : Buffer.from(body))}`;
}

/**
 * The largest webhook body read: 10 MiB. Slipway reads a few fields of a push or pull-request event, and
 * GitHub's push payloads list at most 20 commits, so real deliveries are far smaller; GitHub's own cap is
 * 25 MB. A bigger body is refused with 413 before it is buffered, and the change still arrives by polling.
 */
export const WEBHOOK_BODY_LIMIT = 10 * 1024 * 1024;
/** How long a webhook body may take to arrive: GitHub gives up on a delivery after 10 s, so no sender waits longer. */
export const WEBHOOK_BODY_TIMEOUT_MS = 10_000;

/** Why a body was not read: 413 (too large) or 408 (too slow), with a message for the sender. */
export class WebhookBodyError extends Error {
  constructor(readonly status: 408 | 413, message: string) {
    super(message);
    this.name = "WebhookBodyError";
  }
}

/**
 * Reads a webhook's body with bounded memory and time: refuses a declared Content-Length over `limit` before
 * reading anything, stops at the first byte past it, and gives up after `timeoutMs`. On a refusal the request
 * is no longer read; answer with `answerBodyError`, which closes the connection.
 */
export function readWebhookBody(req: IncomingMessage,
  { limit = WEBHOOK_BODY_LIMIT, timeoutMs = WEBHOOK_BODY_TIMEOUT_MS }: { limit?: number; timeoutMs?: number } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > limit) return reject(new WebhookBodyError(413, `webhook body of ${declared} bytes is over the ${limit}-byte limit`));
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: WebhookBodyError) => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      if (err) {
        req.pause();
        reject(err);
      } else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return done(new WebhookBodyError(413, `webhook body is over the ${limit}-byte limit`));
      chunks.push(chunk);
    };
    const onEnd = () => done();
    const onError = () => done(new WebhookBodyError(408, "webhook body was not received"));
    const timer = setTimeout(() => done(new WebhookBodyError(408, `webhook body not received within ${timeoutMs / 1000} s`)), timeoutMs);
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/** How long the rest of a refused body is read and dropped after the answer, before the connection is cut. */
export const WEBHOOK_LINGER_MS = 2_000;

/**
 * Answers a refused body (413 or 408) and closes the connection, so the rest of the body is never kept.
 *
 * The close is the one RFC 9112 section 9.6 asks for: the answer, then a FIN, then whatever the sender still
 * sends is read and dropped for at most WEBHOOK_LINGER_MS. http.Server would otherwise close a `connection:
 * close` response with destroySoon(), and closing a socket whose received bytes are unread makes the kernel
 * send a reset, which loses the answer: a sender still writing saw EPIPE or ECONNRESET, never the 413.
 */
export function answerBodyError(res: ServerResponse, err: WebhookBodyError): void {
  if (!res.headersSent) {
    res.writeHead(err.status, { "content-type": "application/json", connection: "close" });
  }
  const socket = res.socket;
  if (socket) {
    const cut = setTimeout(() => socket.destroy(), WEBHOOK_LINGER_MS);
    socket.once("close", () => clearTimeout(cut));
    // http.Server calls this once the answer is written: send the FIN only, and let the cut above close.
    socket.destroySoon = () => socket.end();
    res.req.resume();
  }
  res.end(JSON.stringify({ error: err.message }));
}
