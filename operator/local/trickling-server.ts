// A Git server that never finishes, for the tests of Git timeouts: a TCP server on loopback that answers each
// request with `head` and then one byte every `intervalMs`, forever (never idle long enough for Node's socket
// timeout); a request for `pausePath` gets one byte and then nothing; without `head` it never answers at all.
import { createServer, type AddressInfo, type Socket } from "node:net";

export interface TricklingServer {
  port: number;
  /** Connections accepted so far. */
  connections(): number;
  close(): void;
}

export async function startTricklingServer(o: { head?: string; intervalMs?: number; pausePath?: string } = {}): Promise<TricklingServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket.on("error", () => undefined));
    if (o.head === undefined) return;
    const head = o.head;
    socket.once("data", (request) => {
      socket.write(head);
      if (o.pausePath && request.toString().startsWith(`GET ${o.pausePath} `)) socket.write("a");
      else {
        const timer = setInterval(() => socket.write("a"), o.intervalMs ?? 100);
        socket.on("close", () => clearInterval(timer));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => sockets.size,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
