// A real Git server for tests and the embedded default: git's own `git http-backend` CGI behind a small Node
// HTTP server on loopback. Smart HTTP for fetch and push; optional Basic auth.
//
// The server runs in a Node process of its own, as a Git host would: every request spawns a git-http-backend,
// and a spawn forks the spawning process, which blocks its event loop for as long as copying its page tables
// takes. In the process of an operator (the embedded default) or of an e2e file that runs a dozen operators,
// those spawns held up everything else: a commit waited 30 s for its push in a loaded e2e run.
import { spawn, execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface GitServer {
  /** Clone URL of a repository created with `createBareRepo(name)`. */
  url(repo: string): string;
  /** Creates an empty bare repository (default branch "main") that accepts pushes; returns its path on disk. */
  createBareRepo(name: string): Promise<string>;
  /** Directory that holds the bare repositories. */
  root: string;
  /** The port it listens on (127.0.0.1). */
  port: number;
  stop(): Promise<void>;
}

export interface GitServerOptions {
  /** Require HTTP Basic auth with these credentials for every request. */
  auth?: { username: string; password: string };
  /** Serve repositories from this directory instead of a fresh temporary one (kept on stop). */
  root?: string;
  /** Listen on this port instead of a free one: with `root`, a stopped server comes back at the same URLs. */
  port?: number;
}

async function httpBackendPath(): Promise<string> {
  const { stdout } = await run("git", ["--exec-path"]);
  return join(stdout.trim(), "git-http-backend");
}

function authorized(req: IncomingMessage, auth: GitServerOptions["auth"]): boolean {
  if (!auth) return true;
  const given = req.headers.authorization ?? "";
  const expected = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`;
  return given === expected;
}

function serveCgi(backend: string, root: string, req: IncomingMessage, res: ServerResponse, user?: string): void {
  const url = new URL(req.url ?? "/", "http://localhost");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: "1",
    GIT_CONFIG_NOSYSTEM: "1",
    HOME: root,
    REQUEST_METHOD: req.method ?? "GET",
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ""),
    CONTENT_TYPE: req.headers["content-type"] ?? "",
    REMOTE_ADDR: req.socket.remoteAddress ?? "127.0.0.1",
    SERVER_PROTOCOL: "HTTP/1.1",
    GATEWAY_INTERFACE: "CGI/1.1",
  };
  if (req.headers["content-length"]) env.CONTENT_LENGTH = req.headers["content-length"];
  if (req.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = req.headers["content-encoding"];
  if (req.headers["git-protocol"]) env.GIT_PROTOCOL = String(req.headers["git-protocol"]);
  if (user) env.REMOTE_USER = user;

  const child = spawn(backend, [], { env, stdio: ["pipe", "pipe", "pipe"] });
  req.pipe(child.stdin);
  child.stdin.on("error", () => undefined);
  let head = Buffer.alloc(0);
  let headersSent = false;
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on("data", (chunk: Buffer) => {
    if (headersSent) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf("\r\n\r\n");
    let sep = 4;
    if (end < 0) {
      end = head.indexOf("\n\n");
      sep = 2;
    }
    if (end < 0) return;
    let status = 200;
    for (const line of head.subarray(0, end).toString().split(/\r?\n/)) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
      else res.setHeader(name, value);
    }
    res.statusCode = status;
    headersSent = true;
    res.write(head.subarray(end + sep));
  });
  child.on("close", (code) => {
    if (!headersSent) {
      res.statusCode = 500;
      res.end(`git http-backend failed (${code}): ${stderr}`);
      return;
    }
    res.end();
  });
}

/** Starts a Git smart-HTTP server on 127.0.0.1 in a process of its own, on a free port unless `options.port` is given. */
export async function startGitServer(options: GitServerOptions = {}): Promise<GitServer> {
  const root = options.root ?? (await mkdtemp(join(tmpdir(), "slipway-gitserver-")));
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), JSON.stringify({ ...options, root })], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once("exit", (code) => reject(new Error(`the Git server exited (${code}) before it listened: ${stderr.trim()}`)));
  });
  return {
    root,
    port,
    url: (repo) => `http://127.0.0.1:${port}/${repo.endsWith(".git") ? repo : `${repo}.git`}`,
    async createBareRepo(name) {
      const path = join(root, name.endsWith(".git") ? name : `${name}.git`);
      await run("git", ["init", "--quiet", "--bare", "--initial-branch=main", path]);
      await run("git", ["-C", path, "config", "http.receivepack", "true"]);
      return path;
    },
    async stop() {
      // The server process stops when its stdin closes (also when this process dies).
      child.stdin.end();
      await exited;
      if (!options.root) await rm(root, { recursive: true, force: true });
    },
  };
}

/** The server process: serves `root` until its stdin closes; prints {"port"} once it listens. */
async function serve(options: GitServerOptions & { root: string }): Promise<void> {
  const backend = await httpBackendPath();
  const server = createServer((req, res) => {
    if (!authorized(req, options.auth)) {
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="slipway"' });
      res.end();
      return;
    }
    serveCgi(backend, options.root, req, res, options.auth?.username);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", resolve);
  });
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  process.stdin.on("end", () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
  process.stdin.resume();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await serve(JSON.parse(process.argv[2] ?? "{}") as GitServerOptions & { root: string }).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
