import test from "ava";
import { gitHttp, GitTimeoutError } from "./git-http.js";
import { startTricklingServer } from "./local/trickling-server.js";

// A 2 s timeout against a byte every 100 ms: room for a loaded machine's event-loop delays.
test("a response body that keeps trickling in is cut off at ten timeouts, one that pauses longer than the timeout at once", async (t) => {
  // /pause sends one byte and then nothing; any other path one byte every 100 ms, forever.
  const server = await startTricklingServer({ head: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n", intervalMs: 100, pausePath: "/pause" });
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  const read = async (path: string) => {
    const res = await gitHttp(2_000).request({ url: `${base}${path}`, method: "GET", headers: {} });
    let bytes = 0;
    for await (const chunk of res.body ?? []) bytes += chunk.length;
    return bytes;
  };
  const started = Date.now();
  await t.throwsAsync(read("/trickle"), { instanceOf: GitTimeoutError, message: `the Git server did not finish GET ${base}/trickle within 20 s` });
  const took = Date.now() - started;
  t.true(took >= 19_900 && took < 40_000, `took ${took} ms`);
  await t.throwsAsync(read("/pause"), { instanceOf: GitTimeoutError, message: `the Git server did not answer GET ${base}/pause within 2 s` });
});
