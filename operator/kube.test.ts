import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import { KubeConfig } from "@kubernetes/client-node";
import { Kube, resourceOf } from "./kube.js";

/** A Kube talking to a local server that answers {} and keeps every request body. */
async function recordingKube(t: { teardown(fn: () => void): void }): Promise<{ kube: Kube; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      bodies.push(body);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => server.close());
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { kube: new Kube(kc), bodies };
}

const app = { apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "shop", namespace: "team" } };
const url = "https://deploy:hunter2@git.example.com/acme/shop.git";

test("an Event's note and a status write never carry a URL's credentials", async (t) => {
  const { kube, bodies } = await recordingKube(t);
  await kube.event(app, { type: "Warning", reason: "BuildFailed", action: "Build", note: `cannot clone ${url}` });
  await kube.patchStatus(app, { conditions: [{ type: "Ready", status: "False", reason: "BuildFailed", message: `cannot clone ${url}` }] });
  t.is(bodies.length, 2);
  for (const body of bodies) {
    t.false(body.includes("hunter2"), body);
    t.true(body.includes("https://***@git.example.com/acme/shop.git"), body);
  }
});

test("resourceOf names the resource and subresource of a request path, never a name or namespace", (t) => {
  t.is(resourceOf("/apis/apps/v1/namespaces/team-a/deployments/web"), "deployments");
  t.is(resourceOf("/apis/slipway.dev/v1alpha1/namespaces/team-a/apps/shop/status"), "apps/status");
  t.is(resourceOf("/apis/slipway.dev/v1alpha1/namespaces/team-a/releases?labelSelector=x"), "releases");
  t.is(resourceOf("/api/v1/namespaces/team-a/secrets/db"), "secrets");
  t.is(resourceOf("/api/v1/namespaces/team-a"), "namespaces");
  t.is(resourceOf("/api/v1/namespaces"), "namespaces");
  t.is(resourceOf("/apis/coordination.k8s.io/v1/namespaces/slipway-system/leases/slipway"), "leases");
  t.is(resourceOf("/apis/events.k8s.io/v1/namespaces/team-a/events"), "events");
  t.is(resourceOf("/version"), "");
});
