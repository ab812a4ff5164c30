// Webhook bodies are bounded before they are read: the operator process, as deployed, refuses an oversized
// body with 413 and a body that trickles in with 408, on both of its webhook endpoints, and still takes a
// valid delivery afterwards.
import { request } from "node:http";
import test, { type ExecutionContext } from "ava";
import { signWebhookBody, WEBHOOK_BODY_LIMIT, WEBHOOK_BODY_TIMEOUT_MS } from "../operator/webhooks.js";
import { freePort } from "../operator/local/controlplane.js";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { Operators, type OperatorProcess } from "./harness/operator-process.js";
import { controlPlane, freshNamespace, installCrds } from "./harness/suite.js";

const SECRET = "webhook-secret";
const ENDPOINTS = ["/webhooks/config", "/webhooks/source"] as const;

let server: GitServer;
test.before(async () => {
  await installCrds();
  server = await startGitServer();
});
test.after.always(async () => {
  await server?.stop();
});

interface Answer {
  status: number;
  body: string;
  /** How long after the request started the answer came. */
  ms: number;
}

/**
 * Sends a POST whose body `send` writes, and resolves with the answer (or rejects if the connection closes
 * without one). The request is abandoned once answered: an attacker does not finish either.
 */
function post(port: number, path: string, headers: Record<string, string | number>, send: (write: (chunk: Buffer) => boolean) => Promise<void>): Promise<Answer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "POST", headers }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body, ms: Date.now() - started });
        req.destroy();
      });
    });
    req.on("error", (err) => reject(err));
    void send((chunk) => !req.destroyed && req.write(chunk)).catch(() => undefined);
  });
}

async function operatorWithWebhooks(t: ExecutionContext): Promise<{ operator: OperatorProcess; port: number }> {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  await server.createBareRepo(ns);
  const port = await freePort();
  const operators = new Operators(cp, ns);
  t.teardown(() => operators.cleanup());
  const operator = await operators.spawn("operator", {
    SLIPWAY_GIT_URL: server.url(ns), SLIPWAY_GIT_DIR: `/tmp/slipway-webhook-limits-${ns}`, SLIPWAY_GIT_POLL_SECONDS: "3600",
    SLIPWAY_CONFIG_WEBHOOK_SECRET: SECRET, SLIPWAY_SOURCE_WEBHOOK_SECRET: SECRET, SLIPWAY_BUILDS: "true", WEBHOOK_PORT: String(port),
  });
  await operator.ready();
  return { operator, port };
}

/** A valid, signed push delivery still gets 202 (nothing was lost to the refused ones). */
async function validDelivery(port: number, path: string): Promise<number> {
  const body = JSON.stringify({ ref: "refs/heads/main" });
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: "POST", body, headers: { "content-type": "application/json", "x-slipway-signature": signWebhookBody(body, SECRET) },
  });
  return res.status;
}

test("a webhook body over the 10 MiB limit is refused with 413 before it is read, declared or streamed, on both endpoints", async (t) => {
  const { port } = await operatorWithWebhooks(t);
  for (const path of ENDPOINTS) {
    // Declared: 50 MiB announced, 1 KiB sent; the answer comes without waiting for the rest.
    const declared = await post(port, path, { "content-type": "application/json", "content-length": 50 * 1024 * 1024 }, async (write) => {
      write(Buffer.alloc(1024, 0x20));
    });
    t.is(declared.status, 413, `${path}: ${declared.body}`);
    t.regex(declared.body, /over the 10485760-byte limit/);
    // Streamed without a length (chunked): cut off at the first chunk past the limit.
    const streamed = await post(port, path, { "content-type": "application/json", "transfer-encoding": "chunked" }, async (write) => {
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      for (let sent = 0; sent <= WEBHOOK_BODY_LIMIT + chunk.length; sent += chunk.length) {
        if (!write(chunk)) await new Promise((r) => setTimeout(r, 5));
      }
    });
    t.is(streamed.status, 413, `${path}: ${streamed.body}`);
    t.is(await validDelivery(port, path), 202, `${path}: a valid delivery after the refusals`);
  }
});

test("a webhook body that trickles in is refused with 408 once the 10 s a Git host waits have passed", async (t) => {
  const { port } = await operatorWithWebhooks(t);
  const answers = await Promise.all(ENDPOINTS.map((path) =>
    post(port, path, { "content-type": "application/json", "content-length": 1000 }, async (write) => {
      // One byte a second: never the whole body.
      for (let i = 0; i < 60 && write(Buffer.from(" ")); i++) await new Promise((r) => setTimeout(r, 1000));
    })));
  for (const [i, answer] of answers.entries()) {
    t.is(answer.status, 408, `${ENDPOINTS[i]}: ${answer.body}`);
    t.true(answer.ms >= WEBHOOK_BODY_TIMEOUT_MS && answer.ms < WEBHOOK_BODY_TIMEOUT_MS + 10_000, `${ENDPOINTS[i]} answered after ${answer.ms} ms`);
  }
  for (const path of ENDPOINTS) t.is(await validDelivery(port, path), 202, `${path}: a valid delivery after the refusal`);
});
