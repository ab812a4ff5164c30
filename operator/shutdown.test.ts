import test from "ava";
import { handleShutdown } from "./shutdown.js";
import { createLogger } from "./log.js";

// The failures these tests provoke are logged on purpose; keep them out of the test output.
const quiet = createLogger({ level: "silent" });

test("runs every cleanup once, in order, on SIGTERM and exits 0", async (t) => {
  const ran: string[] = [];
  const exits: number[] = [];
  const shutdown = handleShutdown({ signals: ["SIGTERM"], exit: (code) => exits.push(code), logger: quiet });
  t.teardown(() => shutdown.dispose());
  shutdown.add("leader election", async () => {
    await new Promise((r) => setTimeout(r, 20));
    ran.push("leader election");
  });
  shutdown.add("health server", () => {
    ran.push("health server");
  });

  process.emit("SIGTERM", "SIGTERM");
  process.emit("SIGTERM", "SIGTERM");
  t.is(await shutdown.shutdown("again"), 0);
  t.deepEqual(ran, ["leader election", "health server"]);
  t.deepEqual(exits, [0]);
});

test("a failing cleanup does not stop the others and exits 1", async (t) => {
  const ran: string[] = [];
  const exits: number[] = [];
  const shutdown = handleShutdown({ signals: [], exit: (code) => exits.push(code), logger: quiet });
  shutdown.add("queue", () => {
    throw new Error("queue already closed");
  });
  shutdown.add("health server", () => {
    ran.push("health server");
  });
  t.is(await shutdown.shutdown("test"), 1);
  t.deepEqual(ran, ["health server"]);
  t.deepEqual(exits, [1]);
});

test("exits 1 when the cleanups outlast the timeout", async (t) => {
  const exits: number[] = [];
  const shutdown = handleShutdown({ signals: [], timeoutMs: 50, exit: (code) => exits.push(code), logger: quiet });
  shutdown.add("stuck", () => new Promise<void>(() => undefined));
  const started = Date.now();
  t.is(await shutdown.shutdown("test"), 1);
  t.true(Date.now() - started < 1000);
  t.deepEqual(exits, [1]);
});

test("a shutdown for a failure exits with its code even when every cleanup finished, within its shorter deadline", async (t) => {
  const exits: number[] = [];
  const shutdown = handleShutdown({ signals: [], exit: (code) => exits.push(code), logger: quiet, timeoutMs: 10_000 });
  t.teardown(() => shutdown.dispose());
  shutdown.add("quick", () => undefined);
  t.is(await shutdown.shutdown("leader election lost", { exitCode: 1, timeoutMs: 100 }), 1);
  t.deepEqual(exits, [1]);

  const slow = handleShutdown({ signals: [], exit: (code) => exits.push(code), logger: quiet, timeoutMs: 10_000 });
  t.teardown(() => slow.dispose());
  slow.add("hangs", () => new Promise(() => undefined));
  const started = Date.now();
  t.is(await slow.shutdown("leader election lost", { exitCode: 1, timeoutMs: 200 }), 1);
  t.true(Date.now() - started < 2_000, "the shorter deadline applies");
});
