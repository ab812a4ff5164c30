// `run` and Ctrl-C, against a stand-in for the cluster whose answers arrive when the test says so: the process
// exits as soon as the handler returns, so the one-off pod must be deleted by then, however slow the API server.
import test from "ava";
import type { V1Pod } from "@kubernetes/client-node";
import type { App, Release } from "../crds/v1alpha1.js";
import { HANDLERS, type Io } from "./handlers.js";
import type { Session } from "./kube.js";
import { parseArgv } from "./parse.js";

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

/** A cluster with App "hello" at v1; creating and deleting the one-off pod wait for `createAnswer` / `deleteAnswer`. */
function cluster() {
  const events: string[] = [];
  const createAnswer = deferred();
  const deleteAnswer = deferred();
  let created: V1Pod | undefined;
  const release = { spec: { app: "hello", version: 1, build: { image: "registry.example/hello:1" }, config: {} } } as unknown as Release;
  const kube = {
    namespace: "team-a",
    app: async () => ({ metadata: { name: "hello" }, spec: {}, status: { currentRelease: "v1" } }) as unknown as App,
    list: async (kind: string) => (kind === "Release" ? [release] : []),
    async create(pod: V1Pod) {
      events.push("create sent");
      await createAnswer.promise;
      created = pod;
      events.push("create answered");
      return pod;
    },
    get: async () => (created ? { ...created, status: { phase: "Pending" } } : undefined),
    async delete(_kind: string, name: string) {
      events.push(`delete ${name} sent`);
      await deleteAnswer.promise;
      events.push(`delete ${name} answered`);
      return true;
    },
  };
  return { events, createAnswer, deleteAnswer, kube: kube as unknown as Session, podName: () => created?.metadata?.name };
}

function io(): Io & { interrupt(): Promise<void> } {
  const cleanups: (() => Promise<void>)[] = [];
  return {
    out: () => undefined, err: () => undefined, now: () => new Date(), ask: async () => undefined, readSecrets: async () => ({}), cwd: "/",
    onInterrupt(cleanup) {
      cleanups.push(cleanup);
      return () => void cleanups.splice(cleanups.indexOf(cleanup), 1);
    },
    // What the SIGINT handler does: run every registered cleanup.
    interrupt: async () => void (await Promise.all(cleanups.map((c) => c()))),
  };
}

function runHello(o: Io, c: ReturnType<typeof cluster>): Promise<number | void> {
  const inv = parseArgv(["run", "hello", "--", "sleep", "3600"]);
  if (inv.kind !== "command") throw new Error("not a command");
  return (HANDLERS.run as NonNullable<(typeof HANDLERS)["run"]>)(inv.command, o, () => c.kube);
}

test("Ctrl-C while the one-off pod is being created deletes it once the create succeeds", async (t) => {
  const c = cluster();
  const o = io();
  const result = runHello(o, c);
  while (!c.events.includes("create sent")) await tick();
  const interrupted = o.interrupt();
  c.createAnswer.resolve();
  c.deleteAnswer.resolve();
  await interrupted;
  t.is(await result, 130);
  t.deepEqual(c.events, ["create sent", "create answered", `delete ${c.podName()} sent`, `delete ${c.podName()} answered`]);
});

test("after Ctrl-C, run returns only once the one-off pod's deletion is answered", async (t) => {
  const c = cluster();
  const o = io();
  c.createAnswer.resolve();
  let returned = false;
  const result = runHello(o, c).finally(() => (returned = true));
  while (!c.events.includes("create answered")) await tick();
  void o.interrupt();
  // Longer than run's 250 ms poll: the API server is slow to answer the delete.
  await new Promise((r) => setTimeout(r, 600));
  t.false(returned, "run returned (and the process would exit) before the delete was answered");
  c.deleteAnswer.resolve();
  t.is(await result, 130);
  t.deepEqual(c.events.filter((e) => e.startsWith("delete")), [`delete ${c.podName()} sent`, `delete ${c.podName()} answered`]);
});
