// The operator as a real process (`node dist/operator/main.js`), its JSON log parsed as it arrives, for the
// e2e tests that kill it (crash.e2e.ts, failover.e2e.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { freePort, repoRoot, waitFor, type ControlPlane } from "../../operator/local/controlplane.js";

const OPERATOR = join(repoRoot, "dist", "operator", "main.js");

/** One line of the operator's JSON log. */
export interface LogLine {
  msg?: string;
  release?: string;
  [field: string]: unknown;
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

/**
 * The environment of an operator process watching one namespace with the admin kubeconfig: the test's own
 * SLIPWAY_* and LEADER_ELECTION* settings are dropped so only `extra` configures it.
 */
export async function operatorEnv(cp: ControlPlane, namespace: string, extra: NodeJS.ProcessEnv = {}): Promise<{ env: NodeJS.ProcessEnv; port: number }> {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: cp.kubeconfigPath, WATCH_NAMESPACE: namespace, LOG_LEVEL: "info" };
  for (const key of Object.keys(env)) if (key.startsWith("SLIPWAY_") || key.startsWith("LEADER_ELECTION")) delete env[key];
  const port = await freePort();
  return { env: { ...env, HTTP_PORT: String(port), ...extra }, port };
}

export class OperatorProcess {
  readonly name: string;
  /** Its HTTP_PORT: /readyz answers 200 once it serves (GitOps included). */
  readonly port: number;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<Exit>;
  readonly #child: ChildProcess;
  #output = "";
  #partial = "";
  readonly #waiters = new Set<(line: LogLine) => void>();

  constructor(name: string, port: number, env: NodeJS.ProcessEnv) {
    this.name = name;
    this.port = port;
    this.#child = spawn(process.execPath, [OPERATOR], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    this.#child.stdout?.on("data", (d: Buffer) => this.#read(d.toString()));
    this.#child.stderr?.on("data", (d: Buffer) => (this.#output += `[stderr] ${d.toString()}`));
    this.exited = new Promise((resolve) => this.#child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  logged(msg: string): boolean {
    return this.lines.some((l) => l.msg === msg);
  }

  /** Everything the process wrote to stdout and stderr so far, whole. */
  get output(): string {
    return this.#output;
  }

  /** The last lines of stdout and stderr (each cut to 300 characters), for failure messages. */
  tail(lines = 40): string {
    const last = this.#output.trimEnd().split("\n").slice(-lines).map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
    return `--- ${this.name} (pid ${this.#child.pid}) ---\n${last.join("\n")}`;
  }

  /**
   * Resolves with the first line from index `from` on that matches; with `signal`, sends it to the process in
   * the same tick the line arrives, so the reconcile that logged it is still in flight.
   */
  when(match: (line: LogLine) => boolean, options: { from?: number; signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<LogLine> {
    const { from = 0, signal, timeoutMs = 30_000 } = options;
    return new Promise((resolve, reject) => {
      const hit = (line: LogLine) => {
        if (signal) this.#child.kill(signal);
        resolve(line);
      };
      const earlier = this.lines.slice(from).find(match);
      if (earlier) return hit(earlier);
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`${this.name} logged no matching line within ${timeoutMs / 1000}s (its log is below)`));
      }, timeoutMs);
      const waiter = (line: LogLine) => {
        if (!match(line)) return;
        this.#waiters.delete(waiter);
        clearTimeout(timer);
        hit(line);
      };
      this.#waiters.add(waiter);
    });
  }

  /** Waits until the process logs `msg`; fails early, with its output, when it exits first. */
  async until(msg: string, timeoutMs = 40_000): Promise<void> {
    const logged = this.when((l) => l.msg === msg, { timeoutMs }).then(() => undefined, (err: Error) => {
      throw new Error(`${err.message}\n${this.tail()}`);
    });
    await this.#unlessExited(`logged "${msg}"`, logged);
  }

  /** Waits until /readyz answers 200: the operator and GitOps have started (the first sync is done). */
  async ready(timeoutMs = 40_000): Promise<void> {
    const ok = async () => (await fetch(`http://127.0.0.1:${this.port}/readyz`)).status === 200;
    await this.#unlessExited("was ready", waitFor(ok, timeoutMs, () => `${this.name} not ready\n${this.tail()}`));
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.#child.kill(signal);
  }

  async #unlessExited(what: string, waiting: Promise<void>): Promise<void> {
    const died = this.exited.then((exit) => {
      throw new Error(`${this.name} exited before it ${what}: ${JSON.stringify(exit)}\n${this.tail()}`);
    });
    await Promise.race([waiting, died]);
  }

  #read(chunk: string): void {
    this.#output += chunk;
    const parts = (this.#partial + chunk).split("\n");
    this.#partial = parts.pop() ?? "";
    for (const part of parts) {
      let line: LogLine;
      try {
        line = JSON.parse(part) as LogLine;
      } catch {
        line = { msg: part };
      }
      this.lines.push(line);
      for (const waiter of [...this.#waiters]) waiter(line);
    }
  }
}

/** The operator processes a test runs against one namespace, and their cleanup. */
export class Operators {
  readonly processes: OperatorProcess[] = [];
  readonly #cp: ControlPlane;
  readonly #namespace: string;

  constructor(cp: ControlPlane, namespace: string) {
    this.#cp = cp;
    this.#namespace = namespace;
  }

  /** Starts `node dist/operator/main.js` for the namespace with extra environment; does not wait for it. */
  async spawn(name: string, extra: NodeJS.ProcessEnv = {}): Promise<OperatorProcess> {
    const { env, port } = await operatorEnv(this.#cp, this.#namespace, extra);
    const operator = new OperatorProcess(name, port, env);
    this.processes.push(operator);
    return operator;
  }

  /** The output of every process, for failure messages. */
  output(): string {
    return this.processes.map((p) => p.tail()).join("\n");
  }

  /** Deletes the namespace's Apps while an operator runs, then kills every process. */
  async cleanup(): Promise<void> {
    if (!this.processes.some((p) => p.running)) {
      await (await this.spawn("cleanup operator")).until("operator started").catch(() => undefined);
    }
    await this.#cp.kubectl(["delete", "apps.slipway.dev", "--all", "-n", this.#namespace, "--timeout=30s"]);
    for (const p of this.processes) p.kill("SIGKILL");
    await Promise.all(this.processes.map((p) => p.exited));
  }
}
