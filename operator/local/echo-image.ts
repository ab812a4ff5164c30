// The echo image (samples/images/echo) that runs on the real node: FROM scratch, the echo server as its
// entrypoint and again as /bin/worker (under that name it is a queue worker: the image-app sample's worker
// process), with u-root's gosh as /bin/sh and cat and ls from the real node's build (for `run` and `kubectl
// exec`), pushed to the node's registry and returned by digest. `npm start`'s echo and image-app samples and the
// real-node e2e files run it.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildGoProgram, buildImage } from "./images.js";
import type { RealNode } from "./realnode.js";

/** Builds the echo image as repository `name` in the node's registry, with `env` in its config; its reference by digest. */
export async function buildEchoImage(node: RealNode, name: string, env: Record<string, string>): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), "slipway-echo-"));
  try {
    const echo = await buildGoProgram("samples/images/echo", out, "echo");
    const bin = (file: string) => ({ file: join(node.binDir, file) });
    return await buildImage(join(node.binDir, "crane"), node.registry, {
      name,
      files: [
        { path: "/echo", source: { file: echo }, mode: 0o755 },
        { path: "/bin/worker", source: { file: echo }, mode: 0o755 },
        { path: "/bin/sh", source: bin("gosh"), mode: 0o755 },
        { path: "/bin/cat", source: bin("cat"), mode: 0o755 },
        { path: "/bin/ls", source: bin("ls"), mode: 0o755 },
      ],
      entrypoint: ["/echo"],
      env,
      workdir: "/",
    });
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
