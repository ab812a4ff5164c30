// Verifying push webhooks from Git hosts. Used by the GitOps sync (config repository pushes) and by builds
// (source repository pushes). Every comparison is constant-time so a wrong secret leaks nothing by timing.
import { createHmac, timingSafeEqual } from "node:crypto";

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

/** Signs a body the way `verifyWebhook` expects for the generic and GitHub forms: `sha256=<hex hmac>`. */
export function signWebhookBody(body: Buffer | string, secret: string): string {
  return `sha256=${hmacHex(secret, Buffer.isBuffer(body) ? body : Buffer.from(body))}`;
}
