// The local platform's processes (etcd, kube-apiserver, …, Tekton, Argo CD, Flux): each started with its
// output in a log file of its own, and all stopped in reverse order, SIGTERM first and SIGKILL after a grace
// period.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

export interface Process {
  name: string;
  child: ChildProcess;
  logPath: string;
  /** The exit code (null when killed by a signal; -1 when it could not start). */
  exited: Promise<number | null>;
}

export interface StartOptions {
  /** Variables added to this process's environment; `env` replaces it whole. */
  extraEnv?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export class Processes {
  readonly #logDir: string;
  readonly #started: Process[] = [];
  #stopping: Promise<void> | undefined;

  constructor(logDir: string) {
    this.#logDir = logDir;
  }

  /** Starts `binary` as `name`, appending its output to `<logDir>/<name>.log`. */
  start(name: string, binary: string, args: string[], o: StartOptions = {}): Process {
    const logPath = join(this.#logDir, `${name}.log`);
    const out = createWriteStream(logPath, { flags: "a" });
    const env = o.env ?? (o.extraEnv ? { ...process.env, ...o.extraEnv } : process.env);
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"], env, cwd: o.cwd });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    const exited = new Promise<number | null>((resolve) => {
      child.on("exit", (code) => resolve(code));
      child.on("error", () => resolve(-1));
    });
    const p = { name, child, logPath, exited };
    this.#started.push(p);
    return p;
  }

  /** Everything started so far, in start order. */
  get all(): readonly Process[] {
    return this.#started;
  }

  /** The first process that has exited, if any. */
  exited(): Process | undefined {
    return this.#started.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
  }

  /** Stops every process, the last started first: SIGTERM, then SIGKILL after `graceMs`. Safe to call twice. */
  stopAll(graceMs = 5_000): Promise<void> {
    this.#stopping ??= (async () => {
      for (const p of [...this.#started].reverse()) {
        if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
        p.child.kill("SIGTERM");
        const gone = await Promise.race([p.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs))]);
        if (!gone) {
          p.child.kill("SIGKILL");
          await p.exited;
        }
      }
    })();
    return this.#stopping;
  }
}

/** The last `lines` lines of a log file (each cut at `maxLineLength`), or "(no log)". */
export async function tail(path: string, lines = 25, maxLineLength = Infinity): Promise<string> {
  const text = await readFile(path, "utf8").catch(() => "(no log)");
  return text.trimEnd().split("\n").slice(-lines).map((l) => (l.length > maxLineLength ? `${l.slice(0, maxLineLength)}…` : l)).join("\n");
}

/**
 * Polls `check` until it holds, failing at once (with its log) if `p` exits first; the error's message says what
 * did not happen ("exited with code 1 before …", "no … within 30s") and ends with the last lines of its log.
 */
export async function untilUp(p: Process, check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  let exited: number | null | undefined;
  void p.exited.then((code) => (exited = code));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`exited with code ${exited} before ${what}; last log lines:\n${await tail(p.logPath, 30, 400)}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no ${what} within ${timeoutMs / 1000}s; last log lines:\n${await tail(p.logPath, 30, 400)}`);
}
