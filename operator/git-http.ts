// The HTTP client every Git fetch and push goes through (isomorphic-git's Node client, with a timeout): a Git
// server that accepts a connection and then says nothing fails the operation within the timeout, so it cannot
// hold up polling, builds or GitOps for other apps.
import nodeHttp from "isomorphic-git/http/node";
import type { GitHttpRequest, GitHttpResponse, HttpClient } from "isomorphic-git";
import { withoutCredentials } from "./redact.js";

/** How long a Git request may go without receiving a byte: `SLIPWAY_GIT_TIMEOUT_SECONDS`, default 30. */
export const GIT_TIMEOUT_MS = (Number(process.env.SLIPWAY_GIT_TIMEOUT_SECONDS) || 30) * 1000;
/** A request may take this many timeouts in all (5 minutes by default), however steadily bytes trickle in. */
const DEADLINE_FACTOR = 10;

export class GitTimeoutError extends Error {
  override name = "GitTimeoutError";
  readonly code = "GitTimeoutError";
}

/**
 * isomorphic-git's Node HTTP client, aborted when `timeoutMs` pass without a byte from the server (while waiting
 * for the response, and between chunks of its body), or when the whole request has taken ten times that (a
 * server that trickles bytes). Node's own agent closes only sockets idle for 5 s, with no deadline.
 */
export function gitHttp(timeoutMs = GIT_TIMEOUT_MS): HttpClient {
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const abort = new AbortController();
      const what = `${req.method ?? "GET"} ${withoutCredentials(req.url)}`;
      const timeout = () => new GitTimeoutError(`the Git server did not answer ${what} within ${timeoutMs / 1000} s`);
      const deadline = setTimeout(() => abort.abort(new GitTimeoutError(`the Git server did not finish ${what} within ${(DEADLINE_FACTOR * timeoutMs) / 1000} s`)), DEADLINE_FACTOR * timeoutMs);
      deadline.unref();
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => abort.abort(timeout()), timeoutMs);
        timer.unref();
      };
      const signal = req.signal ? AbortSignal.any([req.signal as AbortSignal, abort.signal]) : abort.signal;
      arm();
      let res: GitHttpResponse;
      try {
        res = await nodeHttp.request({ ...req, signal });
      } catch (err) {
        clearTimeout(deadline);
        throw abort.signal.aborted ? (abort.signal.reason as Error) : err;
      } finally {
        clearTimeout(timer);
      }
      const body = res.body;
      if (!body) {
        clearTimeout(deadline);
        return res;
      }
      const chunks = body[Symbol.asyncIterator]();
      const aborted = new Promise<never>((_, reject) => abort.signal.addEventListener("abort", () => reject(abort.signal.reason as Error), { once: true }));
      aborted.catch(() => undefined);
      return {
        ...res,
        // The clock runs only while waiting for the server, not while the caller handles a chunk.
        body: (async function* () {
          try {
            for (;;) {
              arm();
              const next = await Promise.race([chunks.next(), aborted]);
              clearTimeout(timer);
              if (next.done) return;
              yield next.value;
            }
          } finally {
            clearTimeout(timer);
            clearTimeout(deadline);
            if (abort.signal.aborted) await chunks.return?.();
          }
        })(),
      };
    },
  };
}
