import test, { type ExecutionContext } from "ava";
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startGitServer } from "../local/gitserver.js";
import { startTricklingServer } from "../local/trickling-server.js";
import { GitTimeoutError } from "../git-http.js";
import { branchHead, parseProcfile, readProcfile } from "./procfile.js";

const run = promisify(execFile);

test("a Procfile gives process types and commands, ignoring comments and blank lines", (t) => {
  t.deepEqual(parseProcfile("# processes\nweb: node server.js --port $PORT\n\nworker:bundle exec sidekiq  \r\n"), {
    web: "node server.js --port $PORT",
    worker: "bundle exec sidekiq",
  });
});

test("an empty Procfile declares no process types", (t) => {
  t.deepEqual(parseProcfile(""), {});
});

test("a Procfile line that is not name: command is refused with its line number", (t) => {
  t.throws(() => parseProcfile("web: ok\njust words\n"), { message: 'Procfile line 2: expected "name: command", got "just words"' });
});

test("a Procfile process type that is not a DNS label is refused", (t) => {
  t.throws(() => parseProcfile("Web_Main: x"), { message: /line 1: process type "Web_Main" must be a DNS label/ });
});

test("a Procfile process type without a command or declared twice is refused", (t) => {
  t.throws(() => parseProcfile("web:"), { message: "Procfile line 1: process type web has no command" });
  t.throws(() => parseProcfile("web: a\nweb: b"), { message: "Procfile line 2: process type web is declared twice" });
});

test("the Procfile is read at the built commit and within the App's path, from a real Git server", async (t) => {
  const server = await startGitServer();
  const work = await mkdtemp(join(tmpdir(), "slipway-procfile-test-"));
  t.teardown(async () => {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });
  await server.createBareRepo("shop");
  const git = (...args: string[]) => run("git", ["-C", work, "-c", "user.name=Ada", "-c", "user.email=ada@example.com", ...args]);
  await git("init", "-q", "-b", "main");
  await mkdir(join(work, "web"));
  await writeFile(join(work, "web", "Procfile"), "web: node v1.js\n");
  await git("add", ".");
  await git("commit", "-qm", "v1");
  const first = (await git("rev-parse", "HEAD")).stdout.trim();
  await writeFile(join(work, "web", "Procfile"), "web: node v2.js\nworker: node jobs.js\n");
  await git("commit", "-qam", "v2");
  const second = (await git("rev-parse", "HEAD")).stdout.trim();
  await git("push", "-q", server.url("shop"), "main");

  const url = server.url("shop");
  t.is(await branchHead({ url, branch: "main" }), second);
  t.is(await branchHead({ url, branch: "nope" }), undefined);
  t.deepEqual(await readProcfile({ url, branch: "main", commit: first, path: "web" }), { web: "node v1.js" });
  t.deepEqual(await readProcfile({ url, branch: "main", commit: second, path: "web" }), { web: "node v2.js", worker: "node jobs.js" });
  t.is(await readProcfile({ url, branch: "main", commit: second }), undefined, "no Procfile at the repository root");
});

/** A Git server that accepts connections and never answers; returns its URL. */
async function hungServer(t: ExecutionContext): Promise<string> {
  const server = await startTricklingServer();
  t.teardown(() => server.close());
  return `http://user:hunter2@127.0.0.1:${server.port}/shop.git`;
}

test("a Git server that accepts the connection and never answers fails a poll and a Procfile read within the timeout, naming the server", async (t) => {
  const url = await hungServer(t);
  const started = Date.now();
  const error = await t.throwsAsync(branchHead({ url, branch: "main", timeoutMs: 1_000 }), { instanceOf: GitTimeoutError });
  t.regex(error?.message ?? "", /^the Git server did not answer GET http:\/\/127\.0\.0\.1:\d+\/shop\.git\/info\/refs\?service=git-upload-pack within 1 s$/);
  t.false(error?.message.includes("hunter2"), "the message shows the URL's password");
  await t.throwsAsync(readProcfile({ url, branch: "main", commit: "a".repeat(40), timeoutMs: 1_000 }), { instanceOf: GitTimeoutError });
  // Well within a loaded machine's scheduling noise of the two 1 s timeouts.
  t.true(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
});

test("a Git server that trickles its response headers a byte at a time (never idle for Node's socket timeout) fails a poll within the timeout", async (t) => {
  const server = await startTricklingServer({ head: "HTTP/1.1 200 OK\r\nX-Slow: ", intervalMs: 100 });
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${server.port}/shop.git`;
  const started = Date.now();
  await t.throwsAsync(branchHead({ url, branch: "main", timeoutMs: 1_000 }), {
    instanceOf: GitTimeoutError,
    message: `the Git server did not answer GET ${url}/info/refs?service=git-upload-pack within 1 s`,
  });
  t.true(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
});
