import test from "ava";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { answerBodyError, hasSignature, readWebhookBody, signWebhookBody, verifyWebhook, type WebhookBodyError } from "./webhooks.js";

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

/** A server whose handler reads the body with readWebhookBody(limit, timeout) and answers what it got. */
async function bodyServer(limit: number, timeoutMs: number): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    readWebhookBody(req, { limit, timeoutMs }).then((body) => res.end(`read ${body.length}`), (err: WebhookBodyError) => answerBodyError(res, err));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => server.close() };
}

test("a webhook body within the limit is read whole", async (t) => {
  const s = await bodyServer(100, 5000);
  t.teardown(s.close);
  const res = await fetch(s.url, { method: "POST", body: "x".repeat(100) });
  t.is(res.status, 200);
  t.is(await res.text(), "read 100");
});

test("a webhook body declared or streamed over the limit is refused with 413", async (t) => {
  const s = await bodyServer(100, 5000);
  t.teardown(s.close);
  const declared = await fetch(s.url, { method: "POST", body: "x".repeat(101) });
  t.is(declared.status, 413);
  t.regex(await declared.text(), /101 bytes is over the 100-byte limit/);
  const streamed = await fetch(s.url, {
    method: "POST", duplex: "half",
    body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("x".repeat(60))); c.enqueue(new TextEncoder().encode("x".repeat(60))); c.close(); } }),
  } as RequestInit);
  t.is(streamed.status, 413);
});

/**
 * Sends a request head and `size` bytes of a chunked body at once, as a Git host's client writes before it
 * reads, then reads for `readAfterMs` later: what it got and how the connection ended (a reset or a close).
 */
function sendThenRead(url: string, size: number, readAfterMs: number): Promise<{ answer: string; ended: "close" | string }> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), "127.0.0.1");
    let answer = "";
    socket.pause();
    socket.on("data", (d: Buffer) => (answer += d.toString()));
    socket.on("error", (err: NodeJS.ErrnoException) => resolve({ answer, ended: err.code ?? err.message }));
    socket.on("end", () => {
      resolve({ answer, ended: "close" });
      socket.destroy();
    });
    socket.write(`POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${size.toString(16)}\r\n`);
    socket.write(Buffer.alloc(size, 0x20), () => undefined);
    setTimeout(() => socket.resume(), readAfterMs);
  });
}

test("a sender still writing when its body is refused reads the 413 and a clean close, not a reset: the server half-closes and discards the rest (RFC 9112, 9.6)", async (t) => {
  const s = await bodyServer(64 * 1024, 5000);
  t.teardown(s.close);
  // The server stops reading at 64 KiB with megabytes unread; a plain close would answer the rest with a reset.
  const { answer, ended } = await sendThenRead(s.url, 4 * 1024 * 1024, 300);
  t.regex(answer, /^HTTP\/1\.1 413 /);
  t.regex(answer, /over the 65536-byte limit/);
  t.is(ended, "close");
});

test("a webhook body that does not arrive in time is refused with 408", async (t) => {
  const s = await bodyServer(100, 300);
  t.teardown(s.close);
  const started = Date.now();
  const res = await fetch(s.url, {
    method: "POST", duplex: "half",
    body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("x")); } }),
  } as RequestInit);
  t.is(res.status, 408);
  t.true(Date.now() - started >= 300);
});

test("tells a request with any signature header, in any case, from one with none", (t) => {
  t.true(hasSignature({ "X-Hub-Signature-256": "sha256=00" }));
  t.true(hasSignature({ "x-gitea-signature": "00" }));
  t.true(hasSignature({ "X-Gitlab-Token": "t" }));
  t.true(hasSignature({ "x-slipway-signature": "sha256=00" }));
  t.false(hasSignature({ "content-type": "application/json", "x-github-event": "push", "x-hub-signature": "sha1=00" }));
});
