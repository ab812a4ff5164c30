import test from "ava";
import { completionOutput, completionRequest, complete } from "./complete.js";
import type { Session } from "./kube.js";

test("an empty word after `kubectl slipway` completes every command name, files not offered", (t) => {
  const req = completionRequest([""]);
  t.true(req.candidates.includes("apps:create") && req.candidates.includes("limits:set") && req.candidates.includes("help"));
  t.is(req.directive, 4);
});

test("a prefix narrows the command names", (t) => {
  t.deepEqual(completionRequest(["autos"]).candidates, ["autoscale:set", "autoscale:unset"]);
});

test("a dash completes the command's flags and the global ones; -o only for read commands", (t) => {
  t.deepEqual(completionRequest(["autoscale:set", "hello", "web", "--m"]).candidates, ["--min", "--max"]);
  t.true(completionRequest(["info", "-"]).candidates.includes("--output"));
  t.false(completionRequest(["scale", "-"]).candidates.includes("--output"));
});

test("flag values: -o json|yaml, files for --path and --kubeconfig", (t) => {
  t.deepEqual(completionRequest(["apps", "-o", ""]).candidates, ["json", "yaml"]);
  t.like(completionRequest(["config:push", "hello", "--path", ""]), { candidates: [], directive: 0 });
});

test("positionals: App names and process types come from the cluster, in the namespace given by -n", (t) => {
  t.like(completionRequest(["-n", "team-b", "info", "he"]), { fromCluster: { what: "apps" }, toComplete: "he", connect: { namespace: "team-b" } });
  t.like(completionRequest(["scale", "hello", ""]), { candidates: [] });
  t.like(completionRequest(["autoscale:set", "hello", ""]), { fromCluster: { what: "processTypes", app: "hello" } });
  t.deepEqual(completionRequest(["healthchecks:set", "hello", "r"]).candidates, ["readiness"]);
  t.deepEqual(completionRequest(["completion", ""]).candidates, ["bash", "zsh"]);
  t.deepEqual(completionRequest(["url", "hello", ""]).candidates, []);
  t.like(completionRequest(["run", "hello", "--", ""]), { candidates: [], directive: 0 });
});

test("the answer is one candidate a line, then :<directive>; an unreachable cluster gives no candidates, not an error", async (t) => {
  t.is(completionOutput(["a", "b"], 4), "a\nb\n:4\n");
  const broken = () => ({ list: async () => { throw new Error("ECONNREFUSED"); } }) as unknown as Session;
  t.is(await complete(["info", ""], broken), ":4\n");
  const cluster = () => ({ list: async () => [{ metadata: { name: "hello" } }, { metadata: { name: "shop" } }] }) as unknown as Session;
  t.is(await complete(["info", "s"], cluster), "shop\n:4\n");
});
