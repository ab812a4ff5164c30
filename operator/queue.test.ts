import test from "ava";
import { Resync, WorkQueue } from "./queue.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A promise with its resolve function, to hold a handler until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

async function eventually(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(5);
  }
}

test("events for one key that arrive while it waits are handled in one run", async (t) => {
  const runs: string[] = [];
  const hold = gate();
  const queue = new WorkQueue(async (key) => {
    if (key === "ns/blocker") await hold.promise;
    runs.push(key);
  }, { concurrency: 1 });
  void queue.enqueue("ns/blocker");
  const settled = [queue.enqueue("ns/app"), queue.enqueue("ns/app"), queue.enqueue("ns/app")];
  t.is(queue.depth, 1);
  hold.open();
  await Promise.all(settled);
  t.deepEqual(runs, ["ns/blocker", "ns/app"]);
  await queue.stop();
});

test("a key enqueued while it runs runs again afterwards, never twice at once", async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  let runs = 0;
  const queue = new WorkQueue(async () => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(20);
    runs++;
    inFlight--;
  }, { concurrency: 4 });
  const first = queue.enqueue("ns/app");
  await sleep(5);
  const second = queue.enqueue("ns/app");
  const third = queue.enqueue("ns/app");
  await Promise.all([first, second, third]);
  t.is(maxInFlight, 1);
  t.is(runs, 2);
  await queue.stop();
});

test("different keys run concurrently up to the bound", async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  const queue = new WorkQueue(async () => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(30);
    inFlight--;
  }, { concurrency: 3 });
  await Promise.all(["a", "b", "c", "d", "e", "f"].map((k) => queue.enqueue(`ns/${k}`)));
  t.is(maxInFlight, 3);
  await queue.stop();
});

test("a failing key is retried with exponential backoff up to the cap", async (t) => {
  const times: number[] = [];
  const delays: number[] = [];
  const queue = new WorkQueue(async () => {
    times.push(Date.now());
    if (times.length < 5) throw new Error("API server unavailable");
  }, { baseDelayMs: 20, maxDelayMs: 60, onError: (_key, _err, retryInMs) => delays.push(retryInMs) });
  void queue.enqueue("ns/app");
  await eventually(() => times.length === 5);
  t.deepEqual(delays, [20, 40, 60, 60], "20, 40, then capped at 60");
  // Timers may fire late on a loaded machine, never early.
  const gaps = times.slice(1).map((time, i) => time - times[i]!);
  gaps.forEach((gap, i) => t.true(gap >= delays[i]! - 1, `retry ${i + 1} after ${gap}ms, not before its ${delays[i]}ms`));
  t.is(queue.failures("ns/app"), 0, "a success resets the failure count");
  await queue.stop();
});

test("a key that keeps failing or hangs does not hold up other keys", async (t) => {
  const handled: string[] = [];
  const hang = gate();
  const queue = new WorkQueue(async (key) => {
    if (key === "ns/broken") throw new Error("invalid");
    if (key === "ns/slow") await hang.promise;
    handled.push(key);
  }, { concurrency: 2, baseDelayMs: 1 });
  void queue.enqueue("ns/slow");
  void queue.enqueue("ns/broken");
  await Promise.all(["ns/a", "ns/b", "ns/c"].map((k) => queue.enqueue(k)));
  t.deepEqual(handled, ["ns/a", "ns/b", "ns/c"]);
  t.true(queue.failures("ns/broken") >= 1);
  hang.open();
  await queue.stop();
});

test("a handler can ask to be run again after a delay", async (t) => {
  let runs = 0;
  const queue = new WorkQueue(async () => {
    runs++;
    return runs === 1 ? { requeueAfterMs: 10 } : undefined;
  });
  await queue.enqueue("ns/app");
  await eventually(() => runs === 2);
  await sleep(30);
  t.is(runs, 2);
  await queue.stop();
});

test("the queue depth is reported as keys wait and drain", async (t) => {
  const depths: number[] = [];
  const hold = gate();
  const queue = new WorkQueue(async () => hold.promise, { concurrency: 1, onDepth: (d) => depths.push(d) });
  void queue.enqueue("ns/a");
  void queue.enqueue("ns/b");
  void queue.enqueue("ns/c");
  t.is(queue.depth, 2);
  hold.open();
  await eventually(() => queue.depth === 0);
  t.is(depths.at(-1), 0);
  t.true(depths.includes(2));
  await queue.stop();
});

test("stop waits for the run in flight and drops waiting keys and retries", async (t) => {
  const handled: string[] = [];
  const queue = new WorkQueue(async (key) => {
    await sleep(30);
    handled.push(key);
    if (key === "ns/a") throw new Error("retry me");
  }, { concurrency: 1, baseDelayMs: 1 });
  void queue.enqueue("ns/a");
  void queue.enqueue("ns/b");
  await sleep(5);
  await queue.stop();
  t.deepEqual(handled, ["ns/a"]);
  await sleep(50);
  t.deepEqual(handled, ["ns/a"]);
});

test("a resync spreads its keys evenly over the round's ticks and enqueues each once per round, with the keys listed at the round's start", (t) => {
  let keys = Array.from({ length: 3000 }, (_, i) => `ns/app-${i}`);
  const enqueued: string[][] = [];
  const resync = new Resync(() => keys, (key) => enqueued.at(-1)?.push(key), 600);
  for (let i = 0; i < 600; i++) {
    enqueued.push([]);
    resync.tick();
  }
  t.true(enqueued.every((tick) => tick.length === 5), "3,000 keys over 600 ticks: 5 a tick, never a burst");
  t.deepEqual(enqueued.flat(), keys, "every key once, in order");

  // A key added during a round waits for the next; a round of 7 keys over 3 ticks hands over 3, 2 and 2.
  keys = ["a", "b", "c", "d", "e", "f", "g"];
  const small: string[][] = [];
  const three = new Resync(() => keys, (key) => small.at(-1)?.push(key), 3);
  small.push([]);
  three.tick();
  keys = [...keys, "h"];
  for (let i = 0; i < 2; i++) {
    small.push([]);
    three.tick();
  }
  t.deepEqual(small, [["a", "b", "c"], ["d", "e"], ["f", "g"]]);
  small.push([]);
  three.tick();
  t.deepEqual(small.at(-1), ["a", "b", "c"], "the next round lists the keys again");
});
