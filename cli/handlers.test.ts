import test from "ava";
import type { App } from "../crds/v1alpha1.js";
import { UsageError } from "./errors.js";
import { checkAppName, processTypes, unpinnedImageWarning } from "./handlers.js";

test("app names follow the App CRD's rule, and a bad one is refused with a suggestion", (t) => {
  t.notThrows(() => checkAppName("web-1"));
  const err = t.throws(() => checkAppName("Bad_Name"), { instanceOf: UsageError });
  t.regex(err?.message ?? "", /^"Bad_Name" is not a valid app name: app names are lowercase DNS labels of at most 40 characters.*try "bad-name"$/);
  t.throws(() => checkAppName("1web"), { instanceOf: UsageError });
  t.throws(() => checkAppName("web-"), { instanceOf: UsageError });
  t.throws(() => checkAppName("a".repeat(41)), { instanceOf: UsageError });
});

test("an image without a digest gets a warning that says how to pin it; a digest gets none", (t) => {
  t.regex(unpinnedImageWarning("nginx:latest") ?? "", /^warning: nginx:latest is not pinned by digest.*ImageNotPinned.*nginx@sha256:<digest>/);
  t.regex(unpinnedImageWarning("registry.example:5000/team/web") ?? "", /registry\.example:5000\/team\/web@sha256:<digest>/);
  t.is(unpinnedImageWarning(`nginx@sha256:${"a".repeat(64)}`), undefined);
});

test("an App's process types are those declared and those rolled out, web by default", (t) => {
  const app = (spec: App["spec"], status?: App["status"]): App => ({ apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "a" }, spec, status });
  t.deepEqual(processTypes(app({ image: "x" })), ["web"]);
  t.deepEqual(processTypes(app({ image: "x", processes: { worker: { replicas: 1 } } }, { processes: { web: { desired: 1, available: 1, updated: 1 } } })), ["web", "worker"]);
});
