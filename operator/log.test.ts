import { Writable } from "node:stream";
import test from "ava";
import { createLogger, partLogger } from "./log.js";

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const lines = (): Record<string, unknown>[] =>
    chunks.join("").trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stream, lines };
}

test("writes one JSON line with the component, level, message and the given fields", (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ level: "info", destination: stream });
  log.info({ app: "web-shop", release: "v3" }, "release rolled out");
  const [line, ...rest] = lines();
  t.is(rest.length, 0);
  t.like(line, { component: "slipway-operator", level: "info", msg: "release rolled out", app: "web-shop", release: "v3" });
  t.regex(String(line?.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test("a part's lines name it as logger, beside the process's component, each key once", (t) => {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  partLogger(createLogger({ level: "info", destination: stream }), "gitops").info("pushed");
  const raw = chunks.join("");
  t.is(raw.match(/"component":/g)?.length, 1, raw);
  t.like(JSON.parse(raw) as Record<string, unknown>, { component: "slipway-operator", logger: "gitops", msg: "pushed" });
});

test("serializes an error with its message, stack and cause chain", (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ level: "info", destination: stream });
  const err = new Error("cannot apply Deployment web-shop-web", { cause: new Error("connection refused") });
  log.error({ err, app: "web-shop" }, "reconcile failed");
  const line = lines()[0] as { err: { message: string; stack: string; cause: { message: string } } };
  t.is(line.err.message, "cannot apply Deployment web-shop-web");
  t.regex(line.err.stack, /cannot apply Deployment/);
  t.is(line.err.cause.message, "connection refused");
});

test("drops messages below the configured level", (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ level: "warn", destination: stream });
  log.info("not shown");
  log.warn("shown");
  t.deepEqual(lines().map((l) => l.msg), ["shown"]);
});

test("a URL's user and password never reach a log line, in the message, a field or an error's cause", (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ level: "info", destination: stream });
  const url = "https://deploy:hunter2@git.example.com/acme/shop.git";
  const err = new Error(`cannot fetch ${url}`, { cause: new Error(`401 from ${url}`) });
  log.warn({ err, source: url }, `polling ${url} failed`);
  const text = JSON.stringify(lines());
  t.false(text.includes("hunter2"));
  t.false(text.includes("deploy:"));
  t.like(lines()[0], { source: "https://***@git.example.com/acme/shop.git", msg: "polling https://***@git.example.com/acme/shop.git failed" });
});
