// The operator's one structured logger: JSON lines on stdout, level from LOG_LEVEL (default "info").
import { pino, stdSerializers, type DestinationStream, type Logger } from "pino";
import { redactUrls } from "./redact.js";

export const LOG_COMPONENT = "slipway-operator";

/** Serializes an Error with its stack, extra fields and its whole `cause` chain. */
function serializeError(err: unknown): unknown {
  return err instanceof Error ? stdSerializers.errWithCause(err) : err;
}

/**
 * Builds a logger with Slipway's settings. `log` below is the one the operator uses; this is exported so a
 * test (or a tool embedding the operator) can send the same JSON to another stream.
 */
export function createLogger(
  options: { level?: string; destination?: DestinationStream } = {},
): Logger {
  const opts = {
    level: options.level ?? process.env.LOG_LEVEL ?? "info",
    base: { component: LOG_COMPONENT },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { err: serializeError, error: serializeError, cause: serializeError },
    // Every line, whatever it holds (an error from a Git request, a URL in a message), loses URL credentials.
    hooks: { streamWrite: redactUrls },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

export const log: Logger = createLogger();

/**
 * The logger of one part of the operator ("gitops", "platform", …): its lines name the part as `logger`, beside
 * the process's `component` (a second `component` would be written as a duplicate key, which JSON readers take
 * differently).
 */
export function partLogger(parent: Logger, part: string): Logger {
  return parent.child({ logger: part });
}
