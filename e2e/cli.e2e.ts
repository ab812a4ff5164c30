// kubectl-slipway against a real control plane, spawned as a user types it (`node dist/cli/main.js`), with the
// operator running in-process. Users are ServiceAccounts bound to the slipway-developer / slipway-viewer
// ClusterRoles, with token kubeconfigs. Simulated by kwok: pods (Running without containers), their logs (every
// container "prints" SIMULATED_LOG_LINES) and the end of one-off pods (exit N when the command ends in "exit N").
import test, { type ExecutionContext } from "ava";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Watch, type V1Pod } from "@kubernetes/client-node";
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { shortImage } from "../operator/releases.js";
import { IMAGE, installCrdsAndUserRoles, json, kubectl, ok, runCli, setup, userWith, type User } from "./cli-support.js";
import { SIMULATED_LOG_LINES } from "../operator/local/kwok-logs.js";
import { controlPlane, waitFor } from "./harness/suite.js";

test.before(installCrdsAndUserRoles);

async function releasesUntil(t: ExecutionContext, user: User, app: string, count: number): Promise<Release[]> {
  let list: Release[] = [];
  await waitFor(async () => (list = await json<Release[]>(t, user, ["releases", app])).length >= count, 60_000,
    () => `expected ${count} releases of ${app}, have ${list.map((r) => `v${r.spec.version} ${r.spec.cause}`).join("; ") || "none"}`);
  return list;
}

async function liveRelease(t: ExecutionContext, user: User, app: string, version: string): Promise<void> {
  let current: string | undefined;
  await waitFor(async () => (current = (await json<{ app: App }>(t, user, ["info", app])).app.status?.currentRelease) === version, 60_000,
    () => `expected ${app} to run ${version}, it runs ${current ?? "nothing"}`);
}

async function createApp(t: ExecutionContext, user: User, app: string): Promise<void> {
  const r = ok(t, await user.slipway(["apps:create", app, "--image", IMAGE]), "apps:create");
  t.regex(r.stdout, new RegExp(`^Created app ${app} in namespace \\S+ from ${IMAGE.replace(/[.]/g, "\\.")}\\.\n$`));
  await liveRelease(t, user, app, "v1");
}

test("a developer creates an app, sets config, sees v2 with its cause and who asked, and rolls back to v1", async (t) => {
  const { ns, alice } = await setup(t);
  // Who asked is the user the API server authenticated: alice is a ServiceAccount here.
  const by = `system:serviceaccount:${ns}:alice`;
  await createApp(t, alice, "hello");
  t.deepEqual((await json<{ config: Config }>(t, alice, ["info", "hello"])).config.spec, {});

  const set = ok(t, await alice.slipway(["config:set", "hello", "GREETING=hi"]), "config:set");
  t.is(set.stdout, "=== hello Config\nKEY        VALUE\nGREETING   hi\n");
  const releases = await releasesUntil(t, alice, "hello", 2);
  t.deepEqual(releases.map((r) => [r.spec.version, r.spec.cause, r.spec.requestedBy]), [[2, "set GREETING", by], [1, `deploy ${shortImage(IMAGE)}`, by]]);
  await liveRelease(t, alice, "hello", "v2");
  const table = ok(t, await alice.slipway(["releases", "hello"]), "releases").stdout.split("\n");
  t.regex(table[0] ?? "", /^VERSION\s+CAUSE\s+BY\s+CREATED\s+COMMIT$/);
  t.regex(table[1] ?? "", new RegExp(`^v2 \\(live\\)\\s+set GREETING\\s+${by}\\s+\\d+s`));

  const rb = ok(t, await alice.slipway(["rollback", "hello"]), "rollback");
  t.true(rb.stdout.startsWith("Rolling back hello to v1"));
  const after = await releasesUntil(t, alice, "hello", 3);
  t.deepEqual([after[0]?.spec.version, after[0]?.spec.cause, after[0]?.spec.requestedBy, after[0]?.spec.rollbackOf], [3, "rollback to v1", by, 1]);
  await liveRelease(t, alice, "hello", "v3");
  // The Config comes back with the code: v1 had no GREETING.
  await waitFor(async () => JSON.stringify((await json<{ env: object }>(t, alice, ["config", "hello"])).env) === "{}", 30_000, () => "GREETING still set after the rollback");
});

test("a secret value set with config:set --secret reaches the Secret <app>-env and never the Config", async (t) => {
  const { ns, alice } = await setup(t);
  await createApp(t, alice, "hello");
  const r = ok(t, await alice.slipway(["config:set", "hello", "--secret", "DB_PASSWORD=s3cret"]), "config:set --secret");
  t.false(r.stdout.includes("s3cret"));
  t.deepEqual(await json(t, alice, ["config", "hello"]), { env: {}, secretEnv: { DB_PASSWORD: { secretName: "hello-env", key: "DB_PASSWORD" } } });
  t.false((await kubectl(["get", "configs.slipway.dev", "hello", "-n", ns, "-o", "yaml"])).includes("s3cret"));
  t.is(Buffer.from(await kubectl(["get", "secret", "hello-env", "-n", ns, "-o", "jsonpath={.data.DB_PASSWORD}"]), "base64").toString(), "s3cret");
  const [latest] = await releasesUntil(t, alice, "hello", 2);
  t.is(latest?.spec.cause, "set DB_PASSWORD (secret)");
});

test("changing a secret value, with config:set --secret or with kubectl, cuts a release and restarts the pods; the value stays in its Secret", async (t) => {
  const { ns, alice, operator } = await setup(t);
  const by = `system:serviceaccount:${ns}:alice`;
  const values = ["first-value-51c", "second-value-8e2", "third-value-07d"];
  await createApp(t, alice, "hello");
  ok(t, await alice.slipway(["config:set", "hello", "--secret", `TOKEN=${values[0]}`]), "config:set --secret");
  await releasesUntil(t, alice, "hello", 2);
  const checksum = () => kubectl(["get", "deployment", "hello-web", "-n", ns, "-o", "jsonpath={.spec.template.metadata.annotations.slipway\\.dev/secret-checksum}"]);
  // Every pod of the web process carries the checksum: they were started after the value was set.
  const podsStartedWith = async (want: string) => waitFor(async () => {
    const pods = (await kubectl(["get", "pods", "-n", ns, "-l", "slipway.dev/app=hello", "-o", "jsonpath={range .items[*]}{.metadata.annotations.slipway\\.dev/secret-checksum}{\"\\n\"}{end}"])).trim().split("\n");
    return pods.length > 0 && pods.every((c) => c === want);
  }, 60_000, async () => `pods do not all carry checksum ${want}: ${await kubectl(["get", "pods", "-n", ns, "-o", "wide", "--show-labels"])}`);
  let first = "";
  await waitFor(async () => /^[0-9a-f]{16}$/.test(first = await checksum()), 60_000, () => `no checksum on the pod template: "${first}"`);
  await podsStartedWith(first);

  ok(t, await alice.slipway(["config:set", "hello", "--secret", `TOKEN=${values[1]}`]), "config:set --secret of the same key");
  const [v3] = await releasesUntil(t, alice, "hello", 3);
  t.deepEqual([v3?.spec.version, v3?.spec.cause, v3?.spec.requestedBy], [3, "change secret TOKEN", by]);
  await liveRelease(t, alice, "hello", "v3");
  const second = await checksum();
  t.not(second, first);
  await podsStartedWith(second);

  // A plain kubectl change of the Secret is seen at the App's next pass (the operator does not watch Secrets; an
  // annotation asks for the pass now instead of at the resync), and credited to kubectl's field manager, not alice.
  await kubectl(["patch", "secret", "hello-env", "-n", ns, "--type=merge", "-p", JSON.stringify({ data: { TOKEN: Buffer.from(values[2] ?? "").toString("base64") } })]);
  await kubectl(["annotate", "apps.slipway.dev", "hello", "-n", ns, "--overwrite", `slipway.dev/reconcile-requested-at=${new Date().toISOString()}`]);
  const [v4] = await releasesUntil(t, alice, "hello", 4);
  t.deepEqual([v4?.spec.cause, v4?.spec.requestedBy], ["change secret TOKEN", "kubectl-patch"]);
  await liveRelease(t, alice, "hello", "v4");
  const third = await checksum();
  t.false([first, second].includes(third));
  await podsStartedWith(third);

  // A change of the Secret that changes no value cuts nothing.
  await kubectl(["label", "secret", "hello-env", "-n", ns, "team=a"]);
  await kubectl(["annotate", "apps.slipway.dev", "hello", "-n", ns, "--overwrite", `slipway.dev/reconcile-requested-at=${new Date().toISOString()}`]);
  await new Promise((r) => setTimeout(r, 3_000));
  t.is((await json<Release[]>(t, alice, ["releases", "hello"])).length, 4);

  // The values are in the Secret only: not in Releases, Deployments, pods or Events. The Config's mark is the
  // Secret's resourceVersion, and the operator keeps no watch of Secrets.
  const everything = await kubectl(["get", "apps.slipway.dev,configs.slipway.dev,releases.slipway.dev,deployments,replicasets,pods,events", "-n", ns, "-o", "json"]);
  for (const value of values) t.false(everything.includes(value), `${value} is outside its Secret`);
  t.regex(await kubectl(["get", "configs.slipway.dev", "hello", "-n", ns, "-o", "jsonpath={.metadata.annotations.slipway\\.dev/secret-version}"]), /^\d+$/);
  t.is(operator.informers.get("secrets"), undefined, "the operator watches no Secrets");
});

test("with watchSecrets (SLIPWAY_WATCH_SECRETS=true) a plain kubectl change of a secret value rolls out with no other change, and the watch holds no values", async (t) => {
  const { ns, alice, operator } = await setup(t, { watchSecrets: true });
  await createApp(t, alice, "hello");
  ok(t, await alice.slipway(["config:set", "hello", "--secret", "TOKEN=first-value-3a1"]), "config:set --secret");
  await releasesUntil(t, alice, "hello", 2);
  await kubectl(["patch", "secret", "hello-env", "-n", ns, "--type=merge", "-p", JSON.stringify({ data: { TOKEN: Buffer.from("second-value-9c4").toString("base64") } })]);
  const [v3] = await releasesUntil(t, alice, "hello", 3);
  t.deepEqual([v3?.spec.cause, v3?.spec.requestedBy], ["change secret TOKEN", "kubectl-patch"]);
  const watched = operator.informers.get("secrets")?.get("hello-env", ns);
  t.truthy(watched?.metadata.resourceVersion, "the operator watches the Secret");
  t.false("data" in (watched ?? {}), "the operator's watch holds the Secret's values");
});

test("config:set --secret KEY reads the value from stdin, and config:push --secret keeps the named keys in the Secret", async (t) => {
  const { ns, alice } = await setup(t);
  await createApp(t, alice, "hello");
  const secretValue = async (key: string) => Buffer.from(await kubectl(["get", "secret", "hello-env", "-n", ns, "-o", `jsonpath={.data.${key}}`]), "base64").toString();
  const r = ok(t, await alice.slipway(["config:set", "hello", "--secret", "DB_PASSWORD"], { input: "from-stdin-9f2\n" }), "config:set --secret from stdin");
  t.false(r.stdout.includes("from-stdin-9f2"));
  t.is(await secretValue("DB_PASSWORD"), "from-stdin-9f2", "one trailing newline is dropped");
  const empty = await alice.slipway(["config:set", "hello", "--secret", "OTHER"], { input: "" });
  t.is(empty.code, 2);
  t.is(empty.stderr, "error: no value given for OTHER: pass it on stdin or type it at the prompt\n");
  const two = await alice.slipway(["config:set", "hello", "--secret", "A", "--secret", "B"], { input: "x" });
  t.is(two.code, 2);
  t.regex(two.stderr, /^error: without a terminal, stdin holds the value of one --secret KEY, not of 2/);

  const dir = await mkdtemp(join(tmpdir(), "slipway-dotenv-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, ".env"), "GREETING=hi\nAPI_TOKEN=push-secret-4e1\nDB_URL=postgres://u:pw-77a@db/x\n");
  const unknown = await alice.slipway(["config:push", "hello", "--secret", "NOPE"], { cwd: dir });
  t.is(unknown.code, 2);
  t.is(unknown.stderr, `error: --secret NOPE: not set in ${join(dir, ".env")}\n`);
  ok(t, await alice.slipway(["config:push", "hello", "--secret", "API_TOKEN,DB_URL"], { cwd: dir }), "config:push --secret");
  const ref = (key: string) => ({ secretName: "hello-env", key });
  t.deepEqual(await json(t, alice, ["config", "hello"]), { env: { GREETING: "hi" }, secretEnv: { API_TOKEN: ref("API_TOKEN"), DB_PASSWORD: ref("DB_PASSWORD"), DB_URL: ref("DB_URL") } });
  t.is(await secretValue("API_TOKEN"), "push-secret-4e1");
  t.is(await secretValue("DB_URL"), "postgres://u:pw-77a@db/x");
  const config = await kubectl(["get", "configs.slipway.dev", "hello", "-n", ns, "-o", "yaml"]);
  t.false(["from-stdin-9f2", "push-secret-4e1", "pw-77a"].some((v) => config.includes(v)));
});

test("config:push sets values from a .env file and config:pull writes them back", async (t) => {
  const { alice } = await setup(t);
  await createApp(t, alice, "hello");
  const dir = await mkdtemp(join(tmpdir(), "slipway-dotenv-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, ".env"), "# app settings\nGREETING=hello world\nexport LEVEL=debug\n");
  ok(t, await alice.slipway(["config:push", "hello"], { cwd: dir }), "config:push");
  t.deepEqual((await json<{ env: object }>(t, alice, ["config", "hello"])).env, { GREETING: "hello world", LEVEL: "debug" });
  const refused = await alice.slipway(["config:pull", "hello"], { cwd: dir });
  t.is(refused.code, 1);
  t.is(refused.stderr, `error: ${join(dir, ".env")} exists: pass --overwrite to replace it\n`);
  ok(t, await alice.slipway(["config:pull", "hello", "--path", "pulled.env"], { cwd: dir }), "config:pull");
  t.is(await readFile(join(dir, "pulled.env"), "utf8"), `GREETING="hello world"\nLEVEL=debug\n`);
});

test("scale sets replicas without cutting a release, and ps lists the web pods kwok runs", async (t) => {
  const { alice } = await setup(t);
  await createApp(t, alice, "hello");
  t.is(ok(t, await alice.slipway(["scale", "hello", "web=3"]), "scale").stdout, "Scaled hello: web=3\n");
  let rows: { type: string; state: string; ready: string; release: string }[] = [];
  await waitFor(async () => {
    rows = await json(t, alice, ["ps", "hello"]);
    return rows.filter((p) => p.type === "web" && p.state === "Running" && p.ready === "1/1").length === 3;
  }, 60_000, () => `ps shows ${JSON.stringify(rows)}`);
  t.deepEqual(rows.map((p) => [p.type, p.release]), [["web", "v1"], ["web", "v1"], ["web", "v1"]]);
  t.is((await json<Release[]>(t, alice, ["releases", "hello"])).length, 1);
  const table = ok(t, await alice.slipway(["ps", "hello"]), "ps").stdout;
  t.true(table.startsWith("=== web (3/3 running)\nPOD"));
});

async function runningWebPods(t: ExecutionContext, user: User, app: string, count: number): Promise<string[]> {
  let names: string[] = [];
  await waitFor(async () => {
    const rows = await json<{ type: string; name: string; state: string }[]>(t, user, ["ps", app]);
    names = rows.filter((p) => p.type === "web" && p.state === "Running").map((p) => p.name);
    return names.length === count;
  }, 60_000, () => `expected ${count} running web pods, have ${names.join(", ") || "none"}`);
  return names.sort();
}

test("logs prints every line of every web pod prefixed web/<pod> (log content simulated by kwok)", async (t) => {
  const { alice } = await setup(t);
  await createApp(t, alice, "hello");
  ok(t, await alice.slipway(["scale", "hello", "web=2"]), "scale");
  const pods = await runningWebPods(t, alice, "hello", 2);
  const all = ok(t, await alice.slipway(["logs", "hello"]), "logs");
  t.deepEqual(all.stdout.split("\n").filter(Boolean).sort(), pods.flatMap((p) => SIMULATED_LOG_LINES.map((l) => `web/${p}: ${l}`)).sort());
  const tail = ok(t, await alice.slipway(["logs", "hello", "--type", "web", "--tail", "1"]), "logs --tail 1");
  t.deepEqual(tail.stdout.split("\n").filter(Boolean).sort(), pods.map((p) => `web/${p}: ${SIMULATED_LOG_LINES.at(-1)}`));
});

test("logs -f keeps streaming until interrupted", async (t) => {
  const { alice } = await setup(t);
  await createApp(t, alice, "hello");
  const [pod] = await runningWebPods(t, alice, "hello", 1);
  const follow = runCli(["logs", "hello", "-f"], { KUBECONFIG: alice.kubeconfig });
  let out = "";
  follow.child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  await waitFor(async () => out.split("\n").filter(Boolean).length === SIMULATED_LOG_LINES.length, 30_000, () => `logs -f printed ${JSON.stringify(out)}`);
  await new Promise((r) => setTimeout(r, 1000));
  t.is(follow.child.exitCode, null, "logs -f ended on its own");
  follow.child.kill("SIGINT");
  const r = await follow.done;
  t.is(r.code, 130);
  t.deepEqual(r.stdout.split("\n").filter(Boolean), SIMULATED_LOG_LINES.map((l) => `web/${pod}: ${l}`));
});

/** Records the one-off pods created in `ns` as they were created. */
async function recordPods(t: ExecutionContext, ns: string): Promise<V1Pod[]> {
  const cp = await controlPlane();
  const seen: V1Pod[] = [];
  const watch = await new Watch(cp.kubeConfig()).watch(`/api/v1/namespaces/${ns}/pods`, { labelSelector: "slipway.dev/run" },
    (type: string, pod: V1Pod) => {
      if (type === "ADDED") seen.push(pod);
    }, () => undefined);
  t.teardown(() => watch.abort());
  return seen;
}

test("run starts a one-off pod with the live release's image, env and exact command, streams its output and exits with its code (completion simulated by kwok)", async (t) => {
  const { ns, alice } = await setup(t);
  await createApp(t, alice, "hello");
  ok(t, await alice.slipway(["config:set", "hello", "GREETING=hi", "--secret", "DB_PASSWORD=s3cret"]), "config:set");
  await releasesUntil(t, alice, "hello", 2);
  await liveRelease(t, alice, "hello", "v2");
  const pods = await recordPods(t, ns);

  const r = await alice.slipway(["run", "hello", "--", "sh", "-c", "echo \"$GREETING\"; exit 3"]);
  t.is(r.code, 3, r.stderr);
  t.is(r.stdout, SIMULATED_LOG_LINES.map((l) => `${l}\n`).join(""));
  t.is(pods.length, 1);
  const pod = pods[0] as V1Pod;
  t.deepEqual(pod.metadata?.labels, { "slipway.dev/app": "hello", "slipway.dev/run": pod.metadata?.labels?.["slipway.dev/run"] ?? "?", "slipway.dev/release": "v2" });
  t.is(pod.spec?.restartPolicy, "Never");
  t.deepEqual(pod.spec?.containers.map((c) => ({ image: c.image, command: c.command, env: c.env })), [{
    image: IMAGE,
    command: ["sh", "-c", "echo \"$GREETING\"; exit 3"],
    env: [
      { name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "hello-env", key: "DB_PASSWORD" } } },
      { name: "GREETING", value: "hi" },
    ],
  }]);
  await waitFor(async () => (await kubectl(["get", "pods", "-n", ns, "-l", "slipway.dev/run", "-o", "name"])).trim() === "", 30_000,
    () => "the one-off pod was not deleted");

  const zero = await alice.slipway(["run", "hello", "--", "true"]);
  t.is(zero.code, 0, zero.stderr);
});

test("run deletes its one-off pod when interrupted with Ctrl-C", async (t) => {
  const { ns, alice } = await setup(t);
  await createApp(t, alice, "hello");
  const run = runCli(["run", "hello", "--", "sleep", "3600"], { KUBECONFIG: alice.kubeconfig });
  let said = "";
  run.child.stderr?.on("data", (d: Buffer) => (said += d.toString()));
  let exited = false;
  void run.done.then(() => (exited = true));
  // Polled rather than watched: a watch that drops under load would miss the pod.
  await waitFor(async () => exited || (await kubectl(["get", "pods", "-n", ns, "-l", "slipway.dev/run", "-o", "name"])).trim() !== "", 60_000,
    () => `no one-off pod was created; the CLI said: ${said}`);
  t.false(exited, `kubectl slipway run exited before Ctrl-C: ${said}`);
  run.child.kill("SIGINT");
  const r = await run.done;
  t.is(r.code, 130);
  await waitFor(async () => (await kubectl(["get", "pods", "-n", ns, "-l", "slipway.dev/run", "-o", "name"])).trim() === "", 30_000,
    () => "the one-off pod was not deleted after Ctrl-C");
});

test("apps:destroy asks for the name, then removes the app, its config, releases, secret and deployments", async (t) => {
  const { ns, alice } = await setup(t);
  await createApp(t, alice, "hello");
  ok(t, await alice.slipway(["config:set", "hello", "--secret", "TOKEN=x"]), "config:set --secret");
  await releasesUntil(t, alice, "hello", 2);
  await waitFor(async () => (await kubectl(["get", "deployments", "-n", ns, "-l", "slipway.dev/app=hello", "-o", "name"])).trim() !== "", 60_000, () => "no Deployment rendered");

  const refused = await alice.slipway(["apps:destroy", "hello"]);
  t.is(refused.code, 1);
  t.true(refused.stderr.endsWith("error: refusing to destroy hello without confirmation: re-run with --confirm hello\n"));
  const wrong = await alice.slipway(["apps:destroy", "hello", "--confirm", "other"]);
  t.is(wrong.stderr, `error: "other" does not match the app name "hello": nothing was destroyed\n`);
  t.is((await json<App[]>(t, alice, ["apps"])).length, 1);

  const r = ok(t, await alice.slipway(["apps:destroy", "hello", "--confirm", "hello"]), "apps:destroy");
  t.is(r.stdout, "Destroyed app hello (2 release(s)).\n");
  await waitFor(async () => (await kubectl(["get", "apps.slipway.dev,configs.slipway.dev,releases.slipway.dev,deployments,secrets", "-n", ns,
    "-l", "slipway.dev/app=hello", "-o", "name"])).trim() === "" &&
    (await kubectl(["get", "apps.slipway.dev,configs.slipway.dev,releases.slipway.dev", "-n", ns, "-o", "name"])).trim() === "" &&
    !(await kubectl(["get", "secrets", "-n", ns, "-o", "name"])).includes("secret/hello-env"), 60_000,
  async () => `left behind: ${await kubectl(["get", "apps.slipway.dev,configs.slipway.dev,releases.slipway.dev,deployments,secrets", "-n", ns, "-o", "name"])}`);
  const gone = await alice.slipway(["info", "hello"]);
  t.is(gone.stderr, `error: app "hello" not found in namespace "${ns}"\n`);
});

test("a viewer lists apps and releases but cannot change them, and is told which verb and resource are denied", async (t) => {
  const { ns, alice } = await setup(t);
  await createApp(t, alice, "hello");
  const viewer = await userWith(t, ns, "viewer", "slipway-viewer");
  t.deepEqual((await json<App[]>(t, viewer, ["apps"])).map((a) => a.metadata.name), ["hello"]);
  t.is((await json<Release[]>(t, viewer, ["releases", "hello"])).length, 1);
  const set = await viewer.slipway(["config:set", "hello", "A=1"]);
  t.is(set.code, 1);
  t.is(set.stderr, `error: permission denied: User "system:serviceaccount:${ns}:viewer" cannot patch configs.slipway.dev in namespace "${ns}"\n`);
  const scale = await viewer.slipway(["scale", "hello", "web=2"]);
  t.is(scale.stderr, `error: permission denied: User "system:serviceaccount:${ns}:viewer" cannot patch apps.slipway.dev in namespace "${ns}"\n`);
  const run = await viewer.slipway(["run", "hello", "--", "true"]);
  t.is(run.stderr, `error: permission denied: User "system:serviceaccount:${ns}:viewer" cannot create pods in namespace "${ns}"\n`);

  // An administrator acting as the viewer with --as gets the viewer's rights, not their own.
  const admin = { KUBECONFIG: (await controlPlane()).kubeconfigPath };
  const as = await runCli(["-n", ns, "--as", `system:serviceaccount:${ns}:viewer`, "config:set", "hello", "A=1"], admin).done;
  t.is(as.stderr, `error: permission denied: User "system:serviceaccount:${ns}:viewer" cannot patch configs.slipway.dev in namespace "${ns}"\n`);
  t.deepEqual((await json<{ env: object }>(t, viewer, ["config", "hello"])).env, {});
});

test("errors are one line: unknown app, invalid value from the API server, unreachable cluster", async (t) => {
  const { ns, alice } = await setup(t);
  await createApp(t, alice, "hello");
  const missing = await alice.slipway(["config:set", "nope", "A=1"]);
  t.is(missing.code, 1);
  t.is(missing.stderr, `error: app "nope" not found in namespace "${ns}"\n`);

  const invalid = await alice.slipway(["autoscale:set", "hello", "web", "--min", "1", "--max", "5", "--cpu-percent", "0"]);
  t.is(invalid.code, 2);
  t.is(invalid.stderr, `error: --cpu-percent must be a whole number of at least 1, got "0"\n`);
  const rejected = await alice.slipway(["domains:add", "hello", "Bad_Host.example.com"]);
  t.is(rejected.code, 1);
  t.regex(rejected.stderr, /^error: invalid: App\.slipway\.dev "hello" is invalid: spec\.routing\.domains\[0\]: Invalid value: [^\n]+\n$/);

  const dir = await mkdtemp(join(tmpdir(), "slipway-unreachable-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const unreachable = join(dir, "kubeconfig");
  await writeFile(unreachable, (await readFile(alice.kubeconfig, "utf8")).replace(/"server":"[^"]+"/, `"server":"https://127.0.0.1:1"`));
  const r = runCli(["apps"], { KUBECONFIG: unreachable });
  const down = await r.done;
  t.is(down.code, 1);
  t.regex(down.stderr, /^error: cannot reach the cluster at https:\/\/127\.0\.0\.1:1: [^\n]*ECONNREFUSED[^\n]*\n$/);
});

test("20 concurrent config:set of different keys all land, and every release cut says what it set", async (t) => {
  const { alice } = await setup(t);
  await createApp(t, alice, "busy");
  const values = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`KEY_${i}`, `value-${i}`]));
  const keys = Object.keys(values);
  const results = await Promise.all(keys.map((key) => alice.slipway(["config:set", "busy", `${key}=${values[key]}`])));
  for (const [i, r] of results.entries()) t.is(r.code, 0, `config:set ${keys[i]}: ${r.stderr}`);
  const env = await json<{ env: Record<string, string> }>(t, alice, ["config", "busy"]);
  t.deepEqual(env.env, values, "no key was dropped by a concurrent edit");
  let all: Release[] = [];
  await waitFor(async () => {
    all = await json<Release[]>(t, alice, ["releases", "busy"]);
    return Object.keys(all[0]?.spec.config?.env ?? {}).length === keys.length;
  }, 90_000, () => `the newest release has ${Object.keys(all[0]?.spec.config?.env ?? {}).length} of ${keys.length} keys`);
  t.deepEqual(all[0]?.spec.config.env, values, "the newest release has every key with its value");
  // Each release's config is its cause applied to the release before it: every key its cause names is in its env
  // with the value that was set, and nothing is claimed that is not there or silently lost.
  const ordered = [...all].sort((a, b) => a.spec.version - b.spec.version);
  for (let i = 1; i < ordered.length; i++) {
    const before = ordered[i - 1]?.spec.config.env ?? {};
    const after = ordered[i]?.spec.config.env ?? {};
    const added = Object.keys(after).filter((k) => !(k in before)).sort();
    const named = (ordered[i]?.spec.cause ?? "").replace(/^set /, "").split(", ").sort();
    t.deepEqual(named, added, `v${ordered[i]?.spec.version}: "${ordered[i]?.spec.cause}" names the keys it added`);
    for (const key of named) t.is(after[key], values[key], `v${ordered[i]?.spec.version} has ${key}=${values[key]}`);
    t.deepEqual(Object.keys(before).filter((k) => !(k in after)), [], `v${ordered[i]?.spec.version} keeps every earlier key`);
  }
});

test("10 concurrent domains:add and a scale of one app all land (App edits do not drop each other)", async (t) => {
  const { alice } = await setup(t);
  await createApp(t, alice, "hosts");
  const hosts = Array.from({ length: 10 }, (_, i) => `h${i}.example.com`);
  const results = await Promise.all([
    ...hosts.map((host) => alice.slipway(["domains:add", "hosts", host])),
    alice.slipway(["scale", "hosts", "web=2"]),
  ]);
  for (const r of results) t.is(r.code, 0, r.stderr);
  const { app } = await json<{ app: App }>(t, alice, ["info", "hosts"]);
  t.deepEqual([...(app.spec.routing?.domains ?? [])].sort(), hosts, "no domain was dropped by a concurrent edit");
  t.is(app.spec.processes?.web?.replicas, 2, "the scale was not dropped by a concurrent edit");
});

test("the CLI refuses an unknown process type, a bad app name and warns about an image tag, before calling the API", async (t) => {
  const { alice } = await setup(t);
  await createApp(t, alice, "web1");
  const scaled = await alice.slipway(["scale", "web1", "nosuch=2"]);
  t.is(scaled.code, 1);
  t.regex(scaled.stderr, /app web1 has no process type "nosuch"; its process types are: web/);
  t.is((await json<{ app: App }>(t, alice, ["info", "web1"])).app.spec.processes?.nosuch, undefined);

  const bad = await alice.slipway(["apps:create", "Bad_Name", "--image", IMAGE]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /"Bad_Name" is not a valid app name: app names are lowercase DNS labels .*try "bad-name"/);

  const tagged = await alice.slipway(["apps:create", "tagged", "--image", "nginx:latest"]);
  t.is(tagged.code, 0);
  t.regex(tagged.stderr, /warning: nginx:latest is not pinned by digest, so Slipway will not deploy it .*nginx@sha256:<digest>/);
});
