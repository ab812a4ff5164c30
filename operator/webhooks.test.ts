import test from "ava";
import { createHmac } from "node:crypto";
import { signWebhookBody, verifyWebhook } from "./webhooks.js";

const secret = "s3cret-webhook";
const body = Buffer.from(JSON.stringify({ ref: "refs/heads/main", after: "1a2b3c" }));
const hex = (key: string, data: Buffer) => createHmac("sha256", key).update(data).digest("hex");

test("accepts a GitHub push signed with X-Hub-Signature-256", (t) => {
  t.deepEqual(verifyWebhook({ "x-hub-signature-256": `sha256=${hex(secret, body)}` }, body, secret), {
    ok: true,
    provider: "github",
  });
});

test("accepts a Gitea push signed with X-Gitea-Signature", (t) => {
  t.deepEqual(verifyWebhook({ "X-Gitea-Signature": hex(secret, body) }, body, secret), { ok: true, provider: "gitea" });
});

test("accepts a GitLab push carrying the secret in X-Gitlab-Token", (t) => {
  t.deepEqual(verifyWebhook({ "x-gitlab-token": secret }, body, secret), { ok: true, provider: "gitlab" });
});

test("accepts a generic push signed with X-Slipway-Signature", (t) => {
  t.deepEqual(verifyWebhook({ "x-slipway-signature": signWebhookBody(body, secret) }, body, secret), {
    ok: true,
    provider: "generic",
  });
});

test("rejects a GitHub signature made with another secret", (t) => {
  const verdict = verifyWebhook({ "x-hub-signature-256": `sha256=${hex("other", body)}` }, body, secret);
  t.false(verdict.ok);
});

test("rejects a GitHub signature over a different body", (t) => {
  const verdict = verifyWebhook({ "x-hub-signature-256": `sha256=${hex(secret, body)}` }, Buffer.from("{}"), secret);
  t.false(verdict.ok);
});

test("rejects a Gitea signature made with another secret", (t) => {
  t.false(verifyWebhook({ "x-gitea-signature": hex("other", body) }, body, secret).ok);
});

test("rejects a wrong GitLab token", (t) => {
  t.false(verifyWebhook({ "x-gitlab-token": "guess" }, body, secret).ok);
});

test("rejects a generic signature without the sha256= prefix", (t) => {
  t.false(verifyWebhook({ "x-slipway-signature": hex(secret, body) }, body, secret).ok);
});

test("rejects a request without any signature header and says which headers it expected", (t) => {
  const verdict = verifyWebhook({ "content-type": "application/json" }, body, secret);
  t.false(verdict.ok);
  if (!verdict.ok) t.regex(verdict.reason, /X-Hub-Signature-256/);
});

test("rejects everything when no secret is configured", (t) => {
  t.false(verifyWebhook({ "x-gitlab-token": "" }, body, "").ok);
});
