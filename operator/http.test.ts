import test from "ava";
import { startHealthServer } from "./http.js";
import { reconcileTotal } from "./metrics.js";

test("/healthz answers 200 while the process is alive", async (t) => {
  const server = await startHealthServer({ port: 0, host: "127.0.0.1", ready: () => false });
  t.teardown(() => server.close());
  const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
  t.is(res.status, 200);
  t.is(await res.text(), "ok\n");
});

test("/readyz answers 503 with a reason until the operator is ready, then 200", async (t) => {
  let ready = false;
  const server = await startHealthServer({ port: 0, host: "127.0.0.1", ready: () => ready });
  t.teardown(() => server.close());
  const before = await fetch(`http://127.0.0.1:${server.port}/readyz`);
  t.is(before.status, 503);
  t.regex(await before.text(), /^not ready: /);

  ready = true;
  const after = await fetch(`http://127.0.0.1:${server.port}/readyz`);
  t.is(after.status, 200);
  t.is(await after.text(), "ok\n");
});

test("/readyz reports the error of a readiness check that throws", async (t) => {
  const server = await startHealthServer({
    port: 0,
    host: "127.0.0.1",
    ready: async () => {
      throw new Error("informer cache for App not synced");
    },
  });
  t.teardown(() => server.close());
  const res = await fetch(`http://127.0.0.1:${server.port}/readyz`);
  t.is(res.status, 503);
  t.is(await res.text(), "not ready: informer cache for App not synced\n");
});

test("/metrics serves the reconcile counters in Prometheus text format", async (t) => {
  reconcileTotal.inc({ kind: "App", result: "success" });
  const server = await startHealthServer({ port: 0, host: "127.0.0.1", ready: () => true });
  t.teardown(() => server.close());
  const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  t.is(res.status, 200);
  t.regex(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const body = await res.text();
  t.regex(body, /^slipway_reconcile_total\{kind="App",result="success"\} [1-9]/m);
  t.regex(body, /^# TYPE slipway_reconcile_duration_seconds histogram$/m);
  t.regex(body, /^process_cpu_seconds_total /m);
});

test("unknown paths answer 404", async (t) => {
  const server = await startHealthServer({ port: 0, host: "127.0.0.1", ready: () => true });
  t.teardown(() => server.close());
  const res = await fetch(`http://127.0.0.1:${server.port}/nope`);
  t.is(res.status, 404);
});

test("a port already in use is reported with its cause", async (t) => {
  const first = await startHealthServer({ port: 0, host: "127.0.0.1", ready: () => true });
  t.teardown(() => first.close());
  const err = await t.throwsAsync(startHealthServer({ port: first.port, host: "127.0.0.1", ready: () => true }));
  t.regex(err?.message ?? "", new RegExp(`:${first.port} for health checks`));
  t.is((err?.cause as NodeJS.ErrnoException | undefined)?.code, "EADDRINUSE");
});

test("close() frees the port", async (t) => {
  const server = await startHealthServer({ port: 0, host: "127.0.0.1", ready: () => true });
  await fetch(`http://127.0.0.1:${server.port}/healthz`);
  await server.close();
  await t.throwsAsync(fetch(`http://127.0.0.1:${server.port}/healthz`));
});

test("/readyz gives the reason the readiness check states, ready or not", async (t) => {
  let answer = { ready: false, reason: "could not start as the leader (the config repository is unreachable)" };
  const server = await startHealthServer({ port: 0, host: "127.0.0.1", ready: () => answer });
  t.teardown(() => server.close());
  const before = await fetch(`http://127.0.0.1:${server.port}/readyz`);
  t.is(before.status, 503);
  t.is(await before.text(), "not ready: could not start as the leader (the config repository is unreachable)\n");

  answer = { ready: true, reason: "standby: operator-a leads" };
  const after = await fetch(`http://127.0.0.1:${server.port}/readyz`);
  t.is(after.status, 200);
  t.is(await after.text(), "standby: operator-a leads\n");
});
