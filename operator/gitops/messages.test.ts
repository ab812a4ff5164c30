import test from "ava";
import { commitMessage, gitCredit } from "./messages.js";

const commit = (message: string, email = "alice@example.com", bySlipway = false) =>
  ({ oid: "2c0d82e9f1aa00000000000000000000000000ff", author: { name: "Alice", email }, message, bySlipway });

test("a pushed commit credits its author's email; a revert of a release commit names the release", (t) => {
  t.deepEqual(gitCredit(commit("greet from git\n")), { by: "alice@example.com", commit: "2c0d82e" });
  t.deepEqual(gitCredit(commit('Revert "team/shop: release v2: set GREETING (by bob)"\n\nThis reverts commit 1234567.\n')),
    { by: "alice@example.com", commit: "2c0d82e", revertOf: "v2" });
  t.deepEqual(gitCredit(commit('Revert "notes: add a README"\n')), { by: "alice@example.com", commit: "2c0d82e" });
});

test("a commit of Slipway's own credits the requester its Changed-by trailer names", (t) => {
  const own = commit("team/shop: release v3: set FOO (by bob)\n\nRelease: v3\nChanged-by: bob\n", "slipway@slipway.dev", true);
  t.is(gitCredit(own).by, "bob");
});

test("a release whose cause names its Git commit and author is not credited twice in the subject", (t) => {
  const release = { kind: "Release" as const, path: "apps/team/shop/releases/v3.yaml", before: undefined, meta: undefined,
    after: { apiVersion: "slipway.dev/v1alpha1", kind: "Release", metadata: { name: "shop-v3" },
      spec: { app: "shop", version: 3, cause: "revert of v2 (git 2c0d82e by alice@example.com)", requestedBy: "alice@example.com", build: { image: "i" }, config: {} } } };
  t.is(commitMessage("team", "shop", [release]).split("\n")[0], "team/shop: release v3: revert of v2 (git 2c0d82e by alice@example.com)");
});
