// A TCP forward: connections to one address are piped, byte for byte, to another. The real node (local/realnode.ts)
// listens on its bridge's address with one, so its pods reach the API server, which listens on loopback only
// (there is no kube-proxy to route the `kubernetes` Service's ClusterIP). TLS passes through untouched: the pods
// verify the API server's own certificate.
import { connect, createServer, type Socket } from "node:net";

export interface Forward {
  /** The port it listens on. */
  readonly port: number;
  /** Stops listening and closes every forwarded connection. */
  close(): Promise<void>;
}

/** Listens on `listen.host` (and `listen.port`, default any free one) and forwards each connection to `target`. */
export async function forwardTcp(listen: { host: string; port?: number }, target: { host: string; port: number }): Promise<Forward> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  };
  // Half-open both ways: a side that ends its writing still receives the other's answer, as without the forward.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    const upstream = connect({ port: target.port, host: target.host, allowHalfOpen: true });
    track(upstream);
    // Either side failing or ending ends both: the client sees the connection close, as it would without the forward.
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port ?? 0, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error(`forward on ${listen.host}: no port`);
  let closing: Promise<void> | undefined;
  return {
    port: address.port,
    close: () => (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    })),
  };
}
