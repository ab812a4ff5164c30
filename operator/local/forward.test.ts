import test from "ava";
import { connect, createServer, type Socket } from "node:net";
import { forwardTcp } from "./forward.js";

/** Sends `text`, ends its side, and resolves with all the peer sent back before closing. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => s.end(text));
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString()));
    s.on("close", () => resolve(got));
    s.on("error", reject);
  });
}

test("a forward carries each connection's bytes both ways, and once closed refuses connections and ends open ones", async (t) => {
  const held: Socket[] = [];
  const upstream = createServer((s) => {
    held.push(s);
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString()));
    s.on("end", () => s.end(`echo: ${got}`));
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  t.teardown(() => upstream.close());
  const address = upstream.address();
  if (!address || typeof address === "string") throw new Error("no port");

  const forward = await forwardTcp({ host: "127.0.0.1" }, { host: "127.0.0.1", port: address.port });
  t.not(forward.port, address.port);
  t.deepEqual(await Promise.all([exchange(forward.port, "one"), exchange(forward.port, "two")]), ["echo: one", "echo: two"]);

  // A connection still open when the forward closes is ended.
  const open = connect(forward.port, "127.0.0.1");
  const ended = new Promise<void>((resolve) => open.on("close", () => resolve()));
  open.on("error", () => undefined);
  await new Promise<void>((resolve) => open.on("connect", () => resolve()));
  await forward.close();
  await ended;
  await t.throwsAsync(exchange(forward.port, "three"), { code: "ECONNREFUSED" });
});

test("a forward to a port nobody listens on closes the client's connection", async (t) => {
  const nobody = createServer();
  await new Promise<void>((resolve) => nobody.listen(0, "127.0.0.1", resolve));
  const address = nobody.address();
  if (!address || typeof address === "string") throw new Error("no port");
  await new Promise<void>((resolve) => nobody.close(() => resolve()));
  const forward = await forwardTcp({ host: "127.0.0.1" }, { host: "127.0.0.1", port: address.port });
  t.teardown(() => forward.close());
  t.is(await exchange(forward.port, "hello"), "");
});
