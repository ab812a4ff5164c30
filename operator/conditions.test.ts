import test from "ava";
import type { Condition } from "../crds/v1alpha1.js";
import { findCondition, sameConditions, setCondition, summarize } from "./conditions.js";

const t0 = new Date("2025-01-01T00:00:00.000Z");
const t1 = new Date("2025-01-01T00:05:00.000Z");

test("setting a condition to the same status keeps its transition time", (t) => {
  const before = setCondition(undefined, { type: "Ready", status: "False", reason: "Progressing", message: "a" }, t0);
  const after = setCondition(before, { type: "Ready", status: "False", reason: "Progressing", message: "b" }, t1);
  t.is(after[0]!.lastTransitionTime, "2025-01-01T00:00:00Z");
  t.is(after[0]!.message, "b");
});

test("changing a condition's status moves its transition time", (t) => {
  const before = setCondition(undefined, { type: "Ready", status: "False", reason: "Progressing", message: "" }, t0);
  const after = setCondition(before, { type: "Ready", status: "True", reason: "RolloutComplete", message: "" }, t1);
  t.is(after[0]!.lastTransitionTime, "2025-01-01T00:05:00Z");
});

test("a ready summary sets Ready=True and drops Reconciling and Stalled", (t) => {
  const stalled = summarize(undefined, { state: "stalled", reason: "InvalidSpec", message: "bad" }, 3, t0);
  const ready = summarize(stalled, { state: "ready", reason: "RolloutComplete", message: "v1 is live" }, 4, t1);
  t.deepEqual(ready, [
    { type: "Ready", status: "True", reason: "RolloutComplete", message: "v1 is live", observedGeneration: 4, lastTransitionTime: "2025-01-01T00:05:00Z" },
  ]);
});

test("a progressing summary sets Reconciling=True and Ready=Unknown at the generation", (t) => {
  const conditions = summarize(undefined, { state: "progressing", reason: "RollingOut", message: "rolling out v2" }, 7, t0);
  t.deepEqual(
    conditions.map((c) => [c.type, c.status, c.reason, c.observedGeneration]),
    [["Ready", "Unknown", "RollingOut", 7], ["Reconciling", "True", "RollingOut", 7]],
  );
});

test("a waiting summary keeps reconciling with Ready=False, as when an App awaits its first build", (t) => {
  const conditions = summarize(undefined, { state: "waiting", reason: "AwaitingBuild", message: "waiting for the first build" }, 1, t0);
  t.deepEqual(conditions.map((c) => `${c.type}=${c.status}/${c.reason}`), ["Ready=False/AwaitingBuild", "Reconciling=True/AwaitingBuild"]);
});

test("a retrying summary says ProgressingWithRetry and keeps the failure on Ready", (t) => {
  const conditions = summarize(undefined, { state: "retrying", reason: "ApplyFailed", message: "timeout" }, 2, t0);
  t.is(findCondition(conditions, "Reconciling")?.reason, "ProgressingWithRetry");
  t.is(findCondition(conditions, "Ready")?.status, "False");
  t.is(findCondition(conditions, "Ready")?.reason, "ApplyFailed");
});

test("a stalled summary sets Stalled=True and Ready=False and drops Reconciling", (t) => {
  const progressing = summarize(undefined, { state: "progressing", reason: "RollingOut", message: "" }, 1, t0);
  const stalled = summarize(progressing, { state: "stalled", reason: "ImageNotPinned", message: "give a digest" }, 1, t1);
  t.deepEqual(stalled.map((c) => `${c.type}=${c.status}/${c.reason}`), ["Ready=False/ImageNotPinned", "Stalled=True/ImageNotPinned"]);
});

test("summaries keep conditions owned by others, such as Built", (t) => {
  const built: Condition = { type: "Built", status: "True", reason: "Succeeded", message: "", lastTransitionTime: "2024-12-31T00:00:00Z" };
  const conditions = summarize([built], { state: "ready", reason: "RolloutComplete", message: "" }, 1, t0);
  t.deepEqual(findCondition(conditions, "Built"), built);
});

test("condition lists that differ only in transition times are the same", (t) => {
  const a = summarize(undefined, { state: "ready", reason: "RolloutComplete", message: "m" }, 1, t0);
  const b = summarize(undefined, { state: "ready", reason: "RolloutComplete", message: "m" }, 1, t1);
  const c = summarize(undefined, { state: "ready", reason: "RolloutComplete", message: "m" }, 2, t1);
  t.true(sameConditions(a, b));
  t.false(sameConditions(a, c));
});
