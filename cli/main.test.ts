import test from "ava";
import { main } from "./main.js";
import type { Io } from "./handlers.js";
import { completionScript } from "./completion.js";
import { oneOffPod } from "./handlers.js";
import type { Release } from "../crds/v1alpha1.js";

function io(): Io & { stdout: string; stderr: string } {
  const o = {
    stdout: "", stderr: "",
    out(s: string) { o.stdout += s; },
    err(s: string) { o.stderr += s; },
    now: () => new Date("2025-06-01T12:00:00Z"),
    ask: async () => undefined,
    readSecrets: async () => ({}),
    cwd: "/",
    onInterrupt: () => () => undefined,
  };
  return o;
}

test("--help on a command prints its usage and flags and exits 0", async (t) => {
  const o = io();
  t.is(await main(["logs", "--help"], o), 0);
  t.true(o.stdout.includes("Usage: kubectl slipway logs NAME [-f] [--type TYPE] [--tail N]"));
  t.true(o.stdout.includes("-f, --follow"));
  t.is(o.stderr, "");
});

test("every command has --help", async (t) => {
  const { COMMANDS } = await import("./commands.js");
  for (const c of COMMANDS) {
    const o = io();
    t.is(await main([c.name, "--help"], o), 0, c.name);
    t.true(o.stdout.includes(`Usage: kubectl slipway ${c.usage}`), c.name);
  }
});

test("a usage error is one line on stderr with exit code 2", async (t) => {
  const o = io();
  t.is(await main(["scale", "hello", "web=many"], o), 2);
  t.is(o.stderr, `error: replicas for "web" must be a whole number, got "many"\n`);
  t.is(o.stdout, "");
});

test("an unreadable kubeconfig is one line on stderr", async (t) => {
  const o = io();
  t.is(await main(["apps", "--kubeconfig", "/nonexistent/kubeconfig"], o), 1);
  t.regex(o.stderr, /^error: cannot read kubeconfig \/nonexistent\/kubeconfig: ENOENT[^\n]*\n$/);
});

test("bash and zsh completion complete command names and flags", async (t) => {
  const bash = completionScript("bash");
  t.true(bash.includes("complete -F _kubectl_slipway kubectl-slipway"));
  t.true(bash.includes("config:set"));
  t.true(bash.includes(`logs) flags="--follow -f --type --tail"`));
  t.true(completionScript("zsh").startsWith("#compdef kubectl-slipway\nautoload -U +X bashcompinit && bashcompinit\n"));
  const o = io();
  t.is(await main(["completion", "fish"], o), 2);
  t.is(o.stderr, `error: completion supports bash and zsh, not "fish"\n`);
});

test("a one-off pod runs the release's image and env with the command exactly as given", (t) => {
  const release: Release = {
    apiVersion: "slipway.dev/v1alpha1", kind: "Release", metadata: { name: "hello-v4" },
    spec: {
      app: "hello", version: 4, cause: "set B", build: { image: "ghcr.io/acme/hello@sha256:" + "b".repeat(64) },
      config: { env: { B: "2", A: "1" }, secretEnv: { PASSWORD: { secretName: "hello-env", key: "PASSWORD" } } },
    },
  };
  t.deepEqual(oneOffPod("hello", release, ["sh", "-c", "echo $A && exit 3"], "abc123"), {
    apiVersion: "v1", kind: "Pod",
    metadata: { name: "hello-run-abc123", labels: { "slipway.dev/app": "hello", "slipway.dev/run": "abc123", "slipway.dev/release": "v4" } },
    spec: {
      restartPolicy: "Never",
      containers: [{
        name: "run", image: "ghcr.io/acme/hello@sha256:" + "b".repeat(64), command: ["sh", "-c", "echo $A && exit 3"],
        env: [
          { name: "A", value: "1" }, { name: "B", value: "2" },
          { name: "PASSWORD", valueFrom: { secretKeyRef: { name: "hello-env", key: "PASSWORD" } } },
        ],
      }],
    },
  });
});

test("a one-off pod is placed where the app's processes run: their nodeSelector beside the release's tags, and their tolerations", (t) => {
  const release: Release = {
    apiVersion: "slipway.dev/v1alpha1", kind: "Release", metadata: { name: "hello-v4" },
    spec: { app: "hello", version: 4, cause: "tag", build: { image: "ghcr.io/acme/hello@sha256:" + "b".repeat(64) }, config: { nodeSelector: { zone: "a" } } },
  };
  const placement = {
    nodeSelector: { "slipway.dev/node-kind": "real", zone: "a" },
    tolerations: [{ key: "slipway.dev/real-node", operator: "Equal", value: "true", effect: "NoSchedule" }],
  };
  const pod = oneOffPod("hello", release, ["env"], "abc123", placement);
  t.deepEqual(pod.spec.nodeSelector, { zone: "a", "slipway.dev/node-kind": "real" });
  t.deepEqual(pod.spec.tolerations, placement.tolerations);
  const bare = oneOffPod("hello", release, ["env"], "abc123");
  t.deepEqual(bare.spec.nodeSelector, { zone: "a" });
  t.false("tolerations" in bare.spec);
});
