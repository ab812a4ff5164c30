// The operator's HTTP endpoints for the kubelet and Prometheus: /healthz, /readyz and /metrics.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { log } from "./log.js";
import { registry } from "./metrics.js";

export interface HealthServerOptions {
  /** Port to listen on; 0 picks a free one (read it back from the result). */
  readonly port: number;
  /** Address to bind; default all interfaces, so the kubelet and Prometheus can reach it. */
  readonly host?: string;
  /**
   * Whether this replica can do its part now (caches synced, API reachable), optionally with the reason /readyz
   * gives. A throw counts as not ready.
   */
  readonly ready: () => boolean | Readiness | Promise<boolean | Readiness>;
}

export interface Readiness {
  readonly ready: boolean;
  /** What /readyz says: what this replica does, or why it cannot. */
  readonly reason: string;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

function reply(res: ServerResponse, status: number, body: string, contentType = "text/plain; charset=utf-8"): void {
  res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
  res.end(body);
}

async function readiness(ready: HealthServerOptions["ready"]): Promise<{ ok: boolean; reason: string }> {
  try {
    const answer = await ready();
    if (typeof answer !== "boolean") return { ok: answer.ready, reason: answer.ready ? answer.reason : `not ready: ${answer.reason}` };
    return answer
      ? { ok: true, reason: "ok" }
      : { ok: false, reason: "not ready: the operator has not started serving yet" };
  } catch (err) {
    return { ok: false, reason: `not ready: ${err instanceof Error ? err.message : String(err)}` };
  }
}

async function handle(options: HealthServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    reply(res, 405, "method not allowed\n");
    return;
  }
  switch (path) {
    case "/healthz":
      reply(res, 200, "ok\n");
      return;
    case "/readyz": {
      const { ok, reason } = await readiness(options.ready);
      reply(res, ok ? 200 : 503, `${reason}\n`);
      return;
    }
    case "/metrics":
      reply(res, 200, await registry.metrics(), registry.contentType);
      return;
    default:
      reply(res, 404, "not found\n");
  }
}

/** Starts the health and metrics server; resolves once it listens. */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server = createServer((req, res) => {
    handle(options, req, res).catch((err: unknown) => {
      log.error({ err, path: req.url }, "health endpoint failed");
      if (!res.headersSent) reply(res, 500, "internal error\n");
      else res.end();
    });
  });
  // Probes use short-lived connections; keep-alive sockets must not hold close() open.
  server.keepAliveTimeout = 1000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(new Error(`cannot listen on ${options.host ?? "*"}:${options.port} for health checks`, { cause: err })),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: options.host ?? "*" }, "serving /healthz, /readyz and /metrics");

  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
