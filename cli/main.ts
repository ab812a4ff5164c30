#!/usr/bin/env node
// kubectl-slipway: Deis-style self-service for Slipway apps, as a kubectl plugin (`kubectl slipway …`).
import { createInterface } from "node:readline/promises";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Writable } from "node:stream";
import { CliError, UsageError } from "./errors.js";
import { helpText } from "./commands.js";
import { parseArgv } from "./parse.js";
import { HANDLERS, type Io } from "./handlers.js";
import { Session } from "./kube.js";
import { complete } from "./complete.js";

export const VERSION = "0.1.0";

/** Runs one command line; returns the exit code. Errors are one line on stderr. */
export async function main(argv: string[], io: Io): Promise<number> {
  try {
    // What kubectl_complete-slipway answers, for shells that call the CLI itself the way cobra's scripts do.
    if (argv[0] === "__complete") {
      io.out(await complete(argv.slice(1)));
      return 0;
    }
    const inv = parseArgv(argv);
    if (inv.kind === "version") {
      io.out(`kubectl-slipway ${VERSION}\n`);
      return 0;
    }
    if (inv.kind === "help") {
      io.out(helpText(inv.spec));
      return 0;
    }
    const cmd = inv.command;
    const handler = HANDLERS[cmd.spec.name];
    if (!handler) throw new CliError(`"${cmd.spec.name}" is not implemented`);
    let kube: Session | undefined;
    const connect = () => (kube ??= Session.connect(cmd.global));
    return (await handler(cmd, io, connect)) ?? 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // One line, whatever the API server's message looks like.
    io.err(`error: ${message.trim().replace(/\s*\n\s*/g, "; ")}\n`);
    return e instanceof CliError ? e.exitCode : 1;
  }
}

function processIo(): Io {
  const cleanups = new Set<() => Promise<void>>();
  let interrupted = false;
  process.on("SIGINT", () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    void Promise.allSettled([...cleanups].map((c) => c())).then(() => process.exit(130));
  });
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    now: () => new Date(),
    cwd: process.cwd(),
    async ask(question) {
      if (!process.stdin.isTTY) return undefined;
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return (await rl.question(question)).trim();
      } finally {
        rl.close();
      }
    },
    async readSecrets(names) {
      const values: Record<string, string> = {};
      if (!process.stdin.isTTY) {
        if (names.length !== 1) throw new UsageError(`without a terminal, stdin holds the value of one --secret KEY, not of ${names.length}: give the others as KEY=VALUE`);
        const chunks: Buffer[] = [];
        for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
        values[names[0] ?? ""] = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
        return values;
      }
      // What is typed is echoed into a stream that drops it.
      const rl = createInterface({ input: process.stdin, output: new Writable({ write: (_chunk, _enc, done) => done() }), terminal: true });
      try {
        for (const name of names) {
          process.stderr.write(`${name} (not shown): `);
          values[name] = await rl.question("");
          process.stderr.write("\n");
        }
      } finally {
        rl.close();
      }
      return values;
    },
    onInterrupt(cleanup) {
      cleanups.add(cleanup);
      return () => void cleanups.delete(cleanup);
    },
  };
}

// Run only as a program, not when imported by tests.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const code = await main(process.argv.slice(2), processIo());
  // Let stdout drain before exiting: piped output is written asynchronously.
  process.stdout.write("", () => process.exit(code));
}
