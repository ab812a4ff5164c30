// Graceful shutdown: on SIGTERM or SIGINT run the operator's cleanups once, in order, within a deadline.
import type { Logger } from "pino";
import { log as rootLog } from "./log.js";

export type Cleanup = () => void | Promise<void>;

export interface ShutdownOptions {
  /** How long all cleanups together may take before the process exits anyway; default 10 s. */
  readonly timeoutMs?: number;
  /** Signals that start the shutdown; default SIGTERM and SIGINT. */
  readonly signals?: readonly NodeJS.Signals[];
  /** Ends the process with the exit code (0 when every cleanup finished in time); default process.exit. */
  readonly exit?: (code: number) => void;
  /** Where progress and failed cleanups are logged; default the operator's logger. */
  readonly logger?: Logger;
}

export interface Shutdown {
  /** Adds a cleanup; cleanups run in the order they were added. */
  add(name: string, cleanup: Cleanup): void;
  /**
   * Runs the cleanups (only the first call does; later calls get the same result), then exits. `exitCode`
   * forces a non-zero exit however the cleanups went (the process stops because something failed);
   * `timeoutMs` shortens the deadline.
   */
  shutdown(reason: string, options?: { exitCode?: number; timeoutMs?: number }): Promise<number>;
  /** Removes the signal handlers (for tests and embedding). */
  dispose(): void;
}

/** Installs signal handlers that run the cleanups exactly once, then exit. */
export function handleShutdown(options: ShutdownOptions = {}): Shutdown {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const log = options.logger ?? rootLog;
  const cleanups: { name: string; cleanup: Cleanup }[] = [];
  let running: Promise<number> | undefined;

  async function runCleanups(): Promise<boolean> {
    let clean = true;
    for (const { name, cleanup } of cleanups) {
      try {
        await cleanup();
        log.debug({ cleanup: name }, "cleanup finished");
      } catch (err) {
        clean = false;
        log.error({ err, cleanup: name }, "cleanup failed; continuing with the next one");
      }
    }
    return clean;
  }

  async function run(reason: string, exitCode: number | undefined, timeoutMs: number): Promise<number> {
    log.info({ reason, timeoutMs }, "shutting down");
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const outcome = await Promise.race([runCleanups(), deadline]);
    clearTimeout(timer);
    let code: number;
    if (outcome === "timeout") {
      log.error({ reason, timeoutMs }, "shutdown did not finish in time; exiting anyway");
      code = 1;
    } else {
      code = exitCode ?? (outcome ? 0 : 1);
      log.info({ reason, code }, "shutdown complete");
    }
    exit(code);
    return code;
  }

  function shutdown(reason: string, options: { exitCode?: number; timeoutMs?: number } = {}): Promise<number> {
    if (running) {
      log.warn({ reason }, "already shutting down");
      return running;
    }
    running = run(reason, options.exitCode, Math.min(options.timeoutMs ?? timeoutMs, timeoutMs));
    return running;
  }

  const onSignal = (signal: NodeJS.Signals): void => {
    void shutdown(signal);
  };
  for (const signal of signals) process.on(signal, onSignal);

  return {
    add(name, cleanup) {
      cleanups.push({ name, cleanup });
    },
    shutdown,
    dispose() {
      for (const signal of signals) process.off(signal, onSignal);
    },
  };
}
