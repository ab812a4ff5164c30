import test from "ava";
import { execFile } from "node:child_process";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startGitServer, type GitServer } from "../local/gitserver.js";
import { kubectlPath } from "../local/tools.js";
import { renderObject, type StoredObject } from "./layout.js";
import { GitTimeoutError } from "../git-http.js";
import { ConfigRepo, PushRejectedError } from "./repo.js";

const run = promisify(execFile);
let server: GitServer;
const temps: string[] = [];

test.before(async () => {
  server = await startGitServer();
});
test.after.always(async () => {
  await server.stop();
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

async function temp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "slipway-repo-test-"));
  temps.push(dir);
  return dir;
}

async function remoteRepo(name: string): Promise<string> {
  await server.createBareRepo(name);
  return server.url(name);
}

async function gitCli(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", ...args], { cwd });
  return stdout;
}

/** A user's commit of everything in their clone, pushed by hand. */
async function pushByHand(clone: string, message: string): Promise<void> {
  await gitCli(clone, "add", "-A");
  await gitCli(clone, "commit", "-qm", message);
  await gitCli(clone, "push", "-q", "origin", "HEAD:main");
}

/** What a sync does with a push: fetch it, move the branch there, and name the directories it changed. */
async function takePush(repo: ConfigRepo): Promise<{ head: string; dirs: Set<string> }> {
  const before = await repo.head();
  const head = await repo.fetch();
  if (!before || !head) throw new Error("no head");
  await repo.resetTo(head);
  return { head, dirs: await repo.changedDirs(before, head) };
}

const app = (name: string, image: string): StoredObject => ({
  apiVersion: "slipway.dev/v1alpha1",
  kind: "App",
  metadata: { name, namespace: "team-a" },
  spec: { image },
});
const release = (appName: string, version: number): StoredObject => ({
  apiVersion: "slipway.dev/v1alpha1",
  kind: "Release",
  metadata: { name: `${appName}-v${version}`, namespace: "team-a" },
  spec: { app: appName, version, cause: "deploy", build: { image: "r/x@sha256:" + "a".repeat(64) }, config: {} },
});

test("an empty remote gets a first commit with a root kustomization", async (t) => {
  const url = await remoteRepo("empty");
  await ConfigRepo.open({ url, dir: await temp() });
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  t.regex(await readFile(join(clone, "kustomization.yaml"), "utf8"), /kind: Kustomization/);
  t.is((await gitCli(clone, "log", "--format=%s")).trim(), "Initialize the Slipway config repository");
});

test("a committed App, Config and releases build with kubectl kustomize as they are", async (t) => {
  const url = await remoteRepo("layout");
  const repo = await ConfigRepo.open({ url, dir: await temp() });
  const config: StoredObject = {
    apiVersion: "slipway.dev/v1alpha1",
    kind: "Config",
    metadata: { name: "web", namespace: "team-a" },
    spec: { env: { GREETING: "hi" } },
  };
  await repo.commit(
    new Map([
      ["apps/team-a/web/app.yaml", renderObject(app("web", "r/x@sha256:" + "a".repeat(64)))],
      ["apps/team-a/web/config.yaml", renderObject(config)],
      ["apps/team-a/web/releases/v1.yaml", renderObject(release("web", 1))],
      ["apps/team-a/web/releases/v2.yaml", renderObject(release("web", 2))],
      ["apps/team-a/web/releases/v10.yaml", renderObject(release("web", 10))],
      ["apps/team-b/api/app.yaml", renderObject({ ...app("api", "r/y@sha256:" + "b".repeat(64)), metadata: { name: "api", namespace: "team-b" } })],
    ]),
    "add apps",
  );
  await repo.push();
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  t.is(
    await readFile(join(clone, "apps/team-a/web/releases/kustomization.yaml"), "utf8"),
    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - v1.yaml\n  - v2.yaml\n  - v10.yaml\n",
  );
  // The kubectl e2e/controlplane/build.sh builds (the version the control plane runs), not the machine's.
  const { stdout } = await run(kubectlPath(), ["kustomize", clone]);
  const kinds = [...stdout.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]).sort();
  t.deepEqual(kinds, ["App", "App", "Config", "Release", "Release", "Release"]);
  t.notRegex(stdout, /status:|uid:|resourceVersion:/);
});

test("committing content that is already in Git makes no commit", async (t) => {
  const url = await remoteRepo("idempotent");
  const repo = await ConfigRepo.open({ url, dir: await temp() });
  const file = renderObject(app("web", "img@sha256:" + "c".repeat(64)));
  const first = await repo.commit(new Map([["apps/team-a/web/app.yaml", file]]), "create App");
  const second = await repo.commit(new Map([["apps/team-a/web/app.yaml", file]]), "create App again");
  t.truthy(first);
  t.is(second, undefined);
  t.is(await repo.head(), first);
});

test("a commit is contained in itself and its descendants, not in its ancestors; an unknown tip contains it", async (t) => {
  const url = await remoteRepo("contains");
  const repo = await ConfigRepo.open({ url, dir: await temp() });
  const first = await repo.commit(new Map([["apps/team-a/web/app.yaml", renderObject(app("web", "img@sha256:" + "c".repeat(64)))]]), "one");
  const second = await repo.commit(new Map([["apps/team-a/web/app.yaml", renderObject(app("web", "img@sha256:" + "d".repeat(64)))]]), "two");
  if (!first || !second) return t.fail("no commits made");
  t.true(await repo.contains(second, second));
  t.true(await repo.contains(second, first));
  t.false(await repo.contains(first, second));
  // The remote moved past this clone (main only moves forward).
  t.true(await repo.contains("0".repeat(40), first));
});

test("a clone reopened after a restart continues from the remote's head", async (t) => {
  const url = await remoteRepo("restart");
  const dir = await temp();
  const repo = await ConfigRepo.open({ url, dir });
  const oid = await repo.commit(new Map([["apps/team-a/web/app.yaml", renderObject(app("web", "i"))]]), "create App");
  await repo.push();
  const again = await ConfigRepo.open({ url, dir });
  t.is(await again.head(), oid);
  t.regex((await again.readFile("apps/team-a/web/app.yaml")) ?? "", /image: i/);
});

test("removing an App's last file removes its directories and kustomization entries", async (t) => {
  const url = await remoteRepo("remove");
  const repo = await ConfigRepo.open({ url, dir: await temp() });
  await repo.commit(new Map([["apps/team-a/web/app.yaml", renderObject(app("web", "i"))]]), "create");
  await repo.commit(new Map([["apps/team-a/web/app.yaml", null]]), "delete");
  t.deepEqual([...(await repo.files()).keys()], ["kustomization.yaml"]);
  t.regex((await repo.readFile("kustomization.yaml")) ?? "", /resources: \[\]/);
});

test("a push after someone else pushed is rejected, and a replay on the fetched head keeps both changes", async (t) => {
  const url = await remoteRepo("race");
  const ours = await ConfigRepo.open({ url, dir: await temp() });
  // A user pushes with the git CLI meanwhile.
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  await mkdir(join(clone, "apps/team-b/api"), { recursive: true });
  await writeFile(join(clone, "apps/team-b/api/app.yaml"), renderObject({ ...app("api", "u"), metadata: { name: "api", namespace: "team-b" } }));
  await pushByHand(clone, "user adds api");

  const change = new Map([["apps/team-a/web/app.yaml", renderObject(app("web", "ours"))]]);
  const refused = (await ours.commit(change, "operator adds web")) ?? "";
  await t.throwsAsync(ours.push(), { instanceOf: PushRejectedError });
  // The refused commit can still go to a branch of its own, though the remote moved since our last fetch.
  await ours.pushNewBranch("conflict/refused", refused);
  t.is((await gitCli(join(server.root, "race.git"), "rev-parse", "conflict/refused")).trim(), refused);
  await gitCli(join(server.root, "race.git"), "fsck", "--strict", "--no-progress", "--no-dangling");

  const remoteHead = await ours.fetch();
  t.truthy(remoteHead);
  await ours.resetTo(remoteHead ?? "");
  await ours.commit(change, "operator adds web");
  await ours.push();

  await gitCli(clone, "pull", "-q", "origin", "main");
  t.deepEqual((await gitCli(clone, "log", "--format=%s")).trim().split("\n"), [
    "operator adds web",
    "user adds api",
    "Initialize the Slipway config repository",
  ]);
  t.regex(await readFile(join(clone, "apps/kustomization.yaml"), "utf8"), /- team-a\n {2}- team-b/);
});

test("credentials are sent to a server that requires them", async (t) => {
  const guarded = await startGitServer({ auth: { username: "slipway", password: "pw" } });
  try {
    await guarded.createBareRepo("private");
    const url = guarded.url("private");
    await t.throwsAsync(ConfigRepo.open({ url, dir: await temp() }));
    const repo = await ConfigRepo.open({ url, dir: await temp(), credentials: { username: "slipway", password: "pw" } });
    t.truthy(await repo.head());
    await repo.commit(new Map([["apps/team-a/web/app.yaml", renderObject(app("web", "i"))]]), "create App");
    await repo.push();
    // Credentials in the URL, as git takes them, work too.
    const inUrl = await ConfigRepo.open({ url: url.replace("http://", "http://slipway:pw@"), dir: await temp() });
    t.is(await inUrl.head(), await repo.head());
    await inUrl.commit(new Map([["apps/team-a/web/app.yaml", null]]), "delete App");
    await inUrl.push();
  } finally {
    await guarded.stop();
  }
});

const obj = (kind: "App" | "Config", namespace: string, name: string, value = "1"): string =>
  renderObject({ apiVersion: "slipway.dev/v1alpha1", kind, metadata: { name, namespace }, spec: { image: `i${value}` } });
const rel = (namespace: string, appName: string, version: number): string =>
  renderObject({ ...release(appName, version), metadata: { name: `${appName}-v${version}`, namespace } });

test("a commit rewrites only the changed paths and gives the tree a regeneration of every kustomization.yaml gives", async (t) => {
  const url = await remoteRepo("incremental");
  const dir = await temp();
  const repo = await ConfigRepo.open({ url, dir });
  const base = await repo.commit(
    new Map([
      ["README.md", "# config\n"],
      ["apps/team-a/web/app.yaml", obj("App", "team-a", "web")],
      ["apps/team-a/web/config.yaml", obj("Config", "team-a", "web")],
      ["apps/team-a/web/releases/v1.yaml", rel("team-a", "web", 1)],
      ["apps/team-a/web/releases/v2.yaml", rel("team-a", "web", 2)],
      ["apps/team-a/web/releases/v10.yaml", rel("team-a", "web", 10)],
      ["apps/team-a/web/notes.txt", "hand-written\n"],
      ["apps/team-a/api/app.yaml", obj("App", "team-a", "api")],
      ["apps/team-a/cfg/config.yaml", obj("Config", "team-a", "cfg")],
      ["apps/team-b/db/app.yaml", obj("App", "team-b", "db")],
      ["apps/team-b/db/config.yaml", obj("Config", "team-b", "db")],
      ["apps/team-c/only-releases/releases/v3.yaml", rel("team-c", "only-releases", 3)],
      ["apps/team-d/docs/README.md", "no objects here\n"],
      ["docs/kustomization.yaml", "not generated: left alone\n"],
    ]),
    "base",
  );
  t.truthy(base);
  const tree = async (oid: string | undefined) => (oid ? (await gitCli(dir, "rev-parse", `${oid}^{tree}`)).trim() : undefined);
  const cases: [string, [string, string | null][]][] = [
    ["add an app to a namespace", [["apps/team-a/new/app.yaml", obj("App", "team-a", "new")]]],
    ["add an app in a new namespace", [["apps/team-e/x/app.yaml", obj("App", "team-e", "x")]]],
    ["add a Config-only app", [["apps/team-b/c/config.yaml", obj("Config", "team-b", "c")]]],
    ["add a file that is no object to a new app", [["apps/team-b/later/README.md", "soon\n"]]],
    ["add an object to an app that had none", [["apps/team-d/docs/app.yaml", obj("App", "team-d", "docs")]]],
    ["remove an app", [["apps/team-a/api/app.yaml", null]]],
    ["remove the last app of a namespace", [["apps/team-b/db/app.yaml", null], ["apps/team-b/db/config.yaml", null]]],
    ["remove an app's App, keeping its Config", [["apps/team-b/db/app.yaml", null]]],
    ["remove an app whose other file stays", [["apps/team-a/web/app.yaml", null], ["apps/team-a/web/config.yaml", null],
      ["apps/team-a/web/releases/v1.yaml", null], ["apps/team-a/web/releases/v2.yaml", null], ["apps/team-a/web/releases/v10.yaml", null]]],
    ["remove every app", [["apps/team-a/web/app.yaml", null], ["apps/team-a/web/config.yaml", null], ["apps/team-a/web/releases/v1.yaml", null],
      ["apps/team-a/web/releases/v2.yaml", null], ["apps/team-a/web/releases/v10.yaml", null], ["apps/team-a/api/app.yaml", null],
      ["apps/team-a/cfg/config.yaml", null], ["apps/team-b/db/app.yaml", null], ["apps/team-b/db/config.yaml", null],
      ["apps/team-c/only-releases/releases/v3.yaml", null]]],
    ["change a Config", [["apps/team-a/web/config.yaml", obj("Config", "team-a", "web", "2")]]],
    ["add a release", [["apps/team-a/web/releases/v11.yaml", rel("team-a", "web", 11)], ["apps/team-a/web/config.yaml", obj("Config", "team-a", "web", "3")]]],
    ["add the first release of an app", [["apps/team-a/api/releases/v1.yaml", rel("team-a", "api", 1)]]],
    ["remove an app's last release", [["apps/team-c/only-releases/releases/v3.yaml", null]]],
    ["remove every release of an app", [["apps/team-a/web/releases/v1.yaml", null], ["apps/team-a/web/releases/v2.yaml", null], ["apps/team-a/web/releases/v10.yaml", null]]],
    ["a file outside apps/", [["README.md", "# changed\n"], ["docs/kustomization.yaml", "changed too\n"]]],
    ["writes to generated kustomization.yaml files", [["apps/team-a/kustomization.yaml", "garbage"], ["kustomization.yaml", "x"],
      ["apps/team-a/web/releases/kustomization.yaml", "y"], ["apps/team-a/web/extra/kustomization.yaml", "z"],
      ["apps/team-a/web/config.yaml", obj("Config", "team-a", "web", "4")]]],
    ["a file that is no release in releases/", [["apps/team-a/api/releases/notes.md", "n\n"]]],
  ];
  for (const [what, changes] of cases) {
    const incremental = await repo.commit(new Map(changes), what, { parent: base, ref: "refs/test/incremental" });
    const full = await repo.commit(new Map(changes), what, { parent: base, ref: "refs/test/full", regenerateAll: true });
    t.truthy(incremental, what);
    t.is(await tree(incremental), await tree(full), what);
  }
  t.is(await repo.head(), base, "commits with another ref leave the branch alone");
  const generatedOnly = new Map([["apps/team-a/kustomization.yaml", "garbage"], ["apps/team-a/web/kustomization.yaml", "x"]]);
  t.is(await repo.commit(generatedOnly, "only generated files"), undefined, "they are regenerated as they were");

  // The same changes one after another, each on the last: the tree stays what a regeneration gives.
  let head = base;
  for (const [what, changes] of cases) {
    const next = await repo.commit(new Map(changes), what);
    if (!next) continue;
    t.is(await tree(next), await tree(await repo.commit(new Map(), "regenerate", { parent: next, ref: "refs/test/full", allowEmpty: true })), what);
    t.is(await repo.commit(new Map(), "regenerate"), undefined, `${what}: nothing left to regenerate`);
    head = next;
  }
  t.is(await repo.head(), head);
  // Changes that change nothing make no commit.
  t.is(await repo.commit(new Map([["apps/none/x/app.yaml", null], ["apps/team-a/zzz/releases/v1.yaml", null]]), "remove what is not there"), undefined);
  t.is(await repo.commit(new Map([["apps/team-e/x/app.yaml", obj("App", "team-e", "x")]]), "again"), undefined);
  await gitCli(dir, "fsck", "--strict", "--no-progress");
});

/** The remote's bare repository on disk, for the git CLI. */
const bareOf = (name: string) => join(server.root, `${name}.git`);

test("after commits and pushes of every kind the remote has every object: fsck is clean, a clone has the whole history", async (t) => {
  const url = await remoteRepo("complete");
  const dir = await temp();
  const repo = await ConfigRepo.open({ url, dir });
  const steps: [string, [string, string | null][]][] = [
    ["add apps", [["apps/team-a/web/app.yaml", obj("App", "team-a", "web")], ["apps/team-b/db/config.yaml", obj("Config", "team-b", "db")]]],
    ["release", [["apps/team-a/web/releases/v1.yaml", rel("team-a", "web", 1)], ["apps/team-a/web/config.yaml", obj("Config", "team-a", "web")]]],
    ["change", [["apps/team-a/web/config.yaml", obj("Config", "team-a", "web", "2")]]],
    ["remove an app", [["apps/team-b/db/config.yaml", null]]],
    ["bring a file back as it was", [["apps/team-b/db/config.yaml", obj("Config", "team-b", "db")]]],
  ];
  const subjects = ["Initialize the Slipway config repository"];
  for (const [what, changes] of steps) {
    t.truthy(await repo.commit(new Map(changes), what));
    await repo.push();
    subjects.unshift(what);
  }
  // Two commits pushed at once.
  await repo.commit(new Map([["apps/team-c/x/app.yaml", obj("App", "team-c", "x")]]), "two at once 1");
  await repo.commit(new Map([["apps/team-c/x/app.yaml", obj("App", "team-c", "x", "2")]]), "two at once 2");
  await repo.push();
  subjects.unshift("two at once 1");
  subjects.unshift("two at once 2");
  await repo.push(); // nothing new: a no-op

  // A conflict branch on top of the head, and one on the head itself (no new object at all).
  const head = (await repo.head()) ?? "";
  const side = (await repo.commit(new Map([["apps/team-a/web/config.yaml", obj("Config", "team-a", "web", "cluster")]]), "kept",
    { parent: head, ref: "refs/slipway/conflict", allowEmpty: true })) ?? "";
  t.truthy(side);
  await repo.pushNewBranch("conflict/team-a-config-web", side);
  await repo.pushNewBranch("conflict/same-as-main", head);

  const bare = bareOf("complete");
  await gitCli(bare, "fsck", "--strict", "--no-progress", "--no-dangling");
  t.is((await gitCli(bare, "rev-parse", "main")).trim(), head);
  t.is((await gitCli(bare, "rev-parse", "conflict/same-as-main")).trim(), head);
  t.is((await gitCli(bare, "rev-parse", "conflict/team-a-config-web")).trim(), side);
  const clone = await temp();
  await run("git", ["clone", "-q", "--no-local", url, clone]);
  t.deepEqual((await gitCli(clone, "log", "--format=%s")).trim().split("\n"), subjects);
  t.regex(await readFile(join(clone, "apps/team-b/db/config.yaml"), "utf8"), /kind: Config/);
  t.is((await gitCli(clone, "show", "origin/conflict/team-a-config-web:apps/team-a/web/config.yaml")), obj("Config", "team-a", "web", "cluster"));
  await gitCli(clone, "fsck", "--strict", "--no-progress");
  // The clone's tracking ref follows the pushes: nothing left to fetch.
  t.is(await repo.fetch(), head);
});

test("a push that is no fast-forward is rejected even when the clone has the remote's head", async (t) => {
  const url = await remoteRepo("behind");
  const repo = await ConfigRepo.open({ url, dir: await temp() });
  const first = (await repo.head()) ?? "";
  await repo.commit(new Map([["apps/team-a/web/app.yaml", obj("App", "team-a", "web")]]), "ahead");
  await repo.push();
  await repo.resetTo(first);
  await repo.commit(new Map([["apps/team-a/api/app.yaml", obj("App", "team-a", "api")]]), "on an old head");
  await t.throwsAsync(repo.push(), { instanceOf: PushRejectedError, message: /not-fast-forward/ });
  // Refused by the server too (as a push after someone else's would be, were the remote to move meanwhile).
  t.not((await gitCli(bareOf("behind"), "rev-parse", "main")).trim(), await repo.head());
});

test("after a rejected push, a fetch downloads only the commits the clone lacks", async (t) => {
  const url = await remoteRepo("fetch-little");
  const bare = bareOf("fetch-little");
  // 300 commits of history, then our clone.
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  await mkdir(join(clone, "apps/team-a/web"), { recursive: true });
  for (let i = 0; i < 300; i++) {
    await writeFile(join(clone, "apps/team-a/web/notes.txt"), `${i}\n`);
    await gitCli(clone, "add", ".");
    await gitCli(clone, "commit", "-qm", `user ${i}`);
  }
  await gitCli(clone, "push", "-q", "origin", "HEAD:main");
  const dir = await temp();
  const ours = await ConfigRepo.open({ url, dir });
  // The user pushes one more; our push on the old head is rejected; the fetch then takes one commit.
  await writeFile(join(clone, "apps/team-a/web/notes.txt"), "last\n");
  await pushByHand(clone, "user last");
  await ours.commit(new Map([["apps/team-a/web/app.yaml", obj("App", "team-a", "web")]]), "ours");
  await t.throwsAsync(ours.push(), { instanceOf: PushRejectedError });
  const packs = async () => new Set((await run("ls", [join(dir, ".git/objects/pack")])).stdout.split("\n").filter((f) => f.endsWith(".idx")));
  const before = await packs();
  t.is(await ours.fetch(), (await gitCli(bare, "rev-parse", "main")).trim());
  const fetched = [...(await packs())].filter((f) => !before.has(f));
  t.is(fetched.length, 1);
  const { stdout } = await run("sh", ["-c", `git show-index < ${join(dir, ".git/objects/pack", fetched[0] ?? "")} | wc -l`]);
  t.true(Number(stdout.trim()) <= 10, `the fetch brought ${stdout.trim()} objects`);
});

test("the newest commit of Slipway's that changed a file is found past other people's commits, and not past a stop", async (t) => {
  const url = await remoteRepo("history");
  const ours = await ConfigRepo.open({ url, dir: await temp() });
  const path = "apps/team-a/web/app.yaml";
  const first = (await ours.commit(new Map([[path, renderObject(app("web", "one"))]]), "web one")) ?? "";
  const second = (await ours.commit(new Map([[path, renderObject(app("web", "two"))]]), "web two")) ?? "";
  // Slipway changes another file, then a user changes web's file and pushes with the git CLI.
  await ours.commit(new Map([["apps/team-a/api/app.yaml", renderObject(app("api", "x"))]]), "api");
  await ours.push();
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  await writeFile(join(clone, path), renderObject(app("web", "user")));
  await pushByHand(clone, "user edits web");
  const head = (await ours.fetch()) ?? "";
  await ours.resetTo(head);

  t.is(await ours.lastChangeBySlipway(path, head, { depth: 100 }), second);
  t.is(await ours.lastChangeBySlipway(path, head, { depth: 100, stopAt: second }), undefined, "the recorded commit is newer or the same");
  t.is(await ours.lastChangeBySlipway(path, head, { depth: 2 }), undefined, "not past the depth");
  t.is(await ours.lastChangeBySlipway(path, second, { depth: 100, stopAt: first }), second);
  t.is(await ours.lastChangeBySlipway("apps/team-a/none/app.yaml", head, { depth: 100 }), undefined);
});

test("changedDirs names the App directories a push changed, and filesIn reads one App's files only", async (t) => {
  const url = await remoteRepo("changed-dirs");
  const repo = await ConfigRepo.open({ url, dir: await temp() });
  const files = new Map<string, string>();
  for (const name of ["a", "b", "c", "e"]) {
    files.set(`apps/team-a/${name}/app.yaml`, renderObject(app(name, "r/x@sha256:" + "1".repeat(64))));
    files.set(`apps/team-a/${name}/releases/v1.yaml`, renderObject(release(name, 1)));
  }
  const first = await repo.commit(files, "four apps");
  if (!first) throw new Error("no commit");
  await repo.push();

  // A user edits b, removes c, adds team-b/d and leaves e a note but no object, by hand, without touching any
  // kustomization.yaml.
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  await rm(join(clone, "apps/team-a/e/app.yaml"));
  await rm(join(clone, "apps/team-a/e/releases"), { recursive: true });
  await writeFile(join(clone, "apps/team-a/e/NOTES.md"), "retired\n");
  await writeFile(join(clone, "apps/team-a/b/app.yaml"), renderObject(app("b", "r/x@sha256:" + "2".repeat(64))));
  await rm(join(clone, "apps/team-a/c"), { recursive: true });
  await mkdir(join(clone, "apps/team-b/d"), { recursive: true });
  await writeFile(join(clone, "apps/team-b/d/app.yaml"), renderObject({ ...app("d", "r/x@sha256:" + "3".repeat(64)), metadata: { name: "d", namespace: "team-b" } }));
  await pushByHand(clone, "by hand");

  const { head, dirs } = await takePush(repo);
  t.deepEqual([...dirs].filter((d) => d.split("/").length === 3).sort(), ["apps/team-a/b", "apps/team-a/c", "apps/team-a/e", "apps/team-b/d"]);
  t.false(dirs.has("apps/team-a/a"));
  // The parents whose lists the push can have left stale: team-a (c went, e lost its objects), apps (team-b came).
  t.deepEqual([...dirs].filter((d) => d.split("/").length < 3).sort(), ["apps", "apps/team-a", "apps/team-b"]);
  t.deepEqual([...(await repo.changedDirs(head, head))], []);

  t.deepEqual([...(await repo.filesIn("apps/team-a/a")).keys()].sort(), ["apps/team-a/a/app.yaml", "apps/team-a/a/kustomization.yaml", "apps/team-a/a/releases/kustomization.yaml", "apps/team-a/a/releases/v1.yaml"]);
  t.deepEqual([...(await repo.filesIn("apps/team-a/c")).keys()], []);
  t.deepEqual((await repo.dirsIn("apps")).sort(), ["team-a", "team-b"]);

  // Regenerating the kustomization.yaml files of just those directories fixes the lists the user left stale.
  const fixed = await repo.commit(new Map(), "regenerate", { dirs });
  t.truthy(fixed);
  t.regex((await repo.readFile("apps/team-b/kustomization.yaml")) ?? "", /- d\n/);
  t.notRegex((await repo.readFile("apps/team-a/kustomization.yaml")) ?? "", /- c\n/);
  t.notRegex((await repo.readFile("apps/team-a/kustomization.yaml")) ?? "", /- e\n/);
  t.regex((await repo.readFile("apps/kustomization.yaml")) ?? "", /- team-b\n/);
  // … and gives the same tree as regenerating every one of them.
  t.is(await repo.commit(new Map(), "all", { regenerateAll: true }), undefined);
  await repo.push();

  // A push that only edits an App's files names that App's directory alone, and regenerates nothing above it.
  await gitCli(clone, "pull", "-q", "origin", "main");
  await writeFile(join(clone, "apps/team-a/a/app.yaml"), renderObject(app("a", "r/x@sha256:" + "4".repeat(64))));
  await pushByHand(clone, "edit a");
  const { dirs: editedDirs } = await takePush(repo);
  t.deepEqual([...editedDirs], ["apps/team-a/a"]);
  t.is(await repo.commit(new Map(), "regenerate", { dirs: editedDirs }), undefined, "nothing was stale");

  // One that leaves an App's directory without object files names its namespace too, whose list drops it.
  await rm(join(clone, "apps/team-a/b/app.yaml"));
  await rm(join(clone, "apps/team-a/b/releases"), { recursive: true });
  await writeFile(join(clone, "apps/team-a/b/NOTES.md"), "retired\n");
  await pushByHand(clone, "retire b");
  const { dirs: retiredDirs } = await takePush(repo);
  t.deepEqual([...retiredDirs].sort(), ["apps/team-a", "apps/team-a/b"]);
  t.truthy(await repo.commit(new Map(), "regenerate", { dirs: retiredDirs }));
  t.notRegex((await repo.readFile("apps/team-a/kustomization.yaml")) ?? "", /- b\n/);
  t.is(await repo.commit(new Map(), "all", { regenerateAll: true }), undefined);
});

test("a first push of an App into a repository with no apps/ yet: regenerating what changedDirs names lists the namespace and the App", async (t) => {
  const url = await remoteRepo("first-app");
  const repo = await ConfigRepo.open({ url, dir: await temp() });
  const clone = await temp();
  await run("git", ["clone", "-q", url, clone]);
  await mkdir(join(clone, "apps/team-a/shop"), { recursive: true });
  await writeFile(join(clone, "apps/team-a/shop/app.yaml"), renderObject(app("shop", "r/x@sha256:" + "1".repeat(64))));
  await pushByHand(clone, "shop: new app");
  const { dirs } = await takePush(repo);
  t.deepEqual([...dirs].sort(), ["", "apps", "apps/team-a", "apps/team-a/shop"]);
  t.truthy(await repo.commit(new Map(), "regenerate", { dirs }));
  t.regex((await repo.readFile("apps/team-a/kustomization.yaml")) ?? "", /- shop\n/);
  t.regex((await repo.readFile("apps/kustomization.yaml")) ?? "", /- team-a\n/);
  t.is(await repo.commit(new Map(), "all", { regenerateAll: true }), undefined);
});

test("a config repository whose server accepts the connection and never answers fails to open within the timeout", async (t) => {
  const sockets = new Set<Socket>();
  const hung = createServer((socket) => sockets.add(socket.on("error", () => undefined)));
  await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    hung.close();
  });
  const dir = await mkdtemp(join(tmpdir(), "slipway-repo-hung-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}/config.git`;
  const started = Date.now();
  await t.throwsAsync(ConfigRepo.open({ url, dir, timeoutMs: 1_000 }), {
    instanceOf: GitTimeoutError,
    message: `the Git server did not answer GET ${url}/info/refs?service=git-upload-pack within 1 s`,
  });
  t.true(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
});
