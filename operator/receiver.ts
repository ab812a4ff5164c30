// Webhooks on a replica that does not run the platform: the standby, or a leader still starting. The Service
// sends a Git host's delivery to whichever replica it picks, so every ready replica must take it. As Flux's
// notification-controller Receiver does, this one verifies the delivery before any other work, then asks for
// the work through the cluster instead of doing it: the leader reacts to the annotation.
//   - A config repository push sets ANNOTATIONS.syncRequestedAt on the leader election Lease; the leader
//     reads the Lease at every renewal (every 2 s) and syncs with the repository.
//   - A source push sets ANNOTATIONS.requestedAt on each App it concerns; the leader sees it in its watch
//     cache, reads the source branch head and builds it. A pull request's preview App is written here, as the
//     leader would (builds/index.ts, handOverSourceWebhooks), and its build asked for the same way.
// The other choice, only the leader taking traffic (a standby not ready), would make every delivery during a
// failover fail, and a two-replica rollout would never finish waiting for the standby to become ready.
import type { IncomingMessage, ServerResponse } from "node:http";
import { ANNOTATIONS } from "../crds/v1alpha1.js";
import { handOverSourceWebhooks } from "./builds/index.js";
import { isConflict, type Kube } from "./kube.js";
import { LEASE_API_VERSION, type LeaseObject } from "./leader.js";
import type { WebhookSecrets } from "./platform.js";
import { log as rootLog, partLogger } from "./log.js";
import { answerBodyError, readWebhookBody, verifyWebhook, WebhookBodyError } from "./webhooks.js";

export interface HandOverOptions {
  kube: Kube;
  /** The leader election Lease; without one (a single replica, starting) config pushes are answered 503. */
  lease?: { namespace: string; name: string };
  /** The config repository's secret and the source fallback, as the leader has them; each App's own is read per delivery. */
  webhookSecrets?: WebhookSecrets;
  /** Only Apps in this namespace; default all. */
  namespace?: string;
  /** Platform domain for preview hosts. */
  previewDomain?: string;
}

const log = partLogger(rootLog, "receiver");

function answer(res: ServerResponse, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** Routes POST /webhooks/config and POST /webhooks/source like the leader's handler, handing the work over. */
export function handOverWebhooks(options: HandOverOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const source = handOverSourceWebhooks({
    kube: options.kube, namespace: options.namespace, webhookSecret: options.webhookSecrets?.sourceFallback,
    previewDomain: options.previewDomain, logger: log,
  });
  return (req, res) => {
    const path = req.method === "POST" ? new URL(req.url ?? "/", "http://x").pathname : undefined;
    if (path === "/webhooks/source") return source(req, res);
    if (path === "/webhooks/config") return void configPush(options, req, res);
    res.writeHead(404, { "content-type": "text/plain" }).end("not found: POST /webhooks/config or /webhooks/source\n");
  };
}

async function configPush(options: HandOverOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body: Buffer;
  try {
    body = await readWebhookBody(req);
  } catch (err) {
    const refused = err instanceof WebhookBodyError ? err : new WebhookBodyError(408, "webhook body was not received");
    log.warn({ status: refused.status, reason: refused.message, remote: req.socket.remoteAddress }, "refused a config repository webhook body");
    return answerBodyError(res, refused);
  }
  const verdict = verifyWebhook(req.headers, body, options.webhookSecrets?.config ?? "");
  if (!verdict.ok) {
    log.warn({ reason: verdict.reason, remote: req.socket.remoteAddress }, "refused a config repository webhook");
    return answer(res, 401, { error: verdict.reason });
  }
  if (!options.lease) {
    // One replica and it is starting: its first sync fetches the repository anyway.
    return answer(res, 503, { error: "the operator is starting" }, { "retry-after": "5" });
  }
  try {
    await requestSync(options.kube, options.lease);
  } catch (err) {
    log.error({ err }, "cannot hand a config repository webhook over to the leader");
    return answer(res, 503, { error: "cannot hand the delivery over to the leader; try again" }, { "retry-after": "5" });
  }
  log.info({ provider: verdict.provider }, "config repository webhook: asked the leader to sync");
  answer(res, 202, { status: "sync requested from the leader" });
}

/** Sets ANNOTATIONS.syncRequestedAt on the Lease, written with its resourceVersion (the leader renews it meanwhile). */
async function requestSync(kube: Kube, lease: { namespace: string; name: string }): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const current = await kube.get<LeaseObject>(LEASE_API_VERSION, "Lease", lease.namespace, lease.name);
    const annotations = { ...current.metadata.annotations, [ANNOTATIONS.syncRequestedAt]: new Date().toISOString() };
    try {
      await kube.replace<LeaseObject>({ ...current, apiVersion: LEASE_API_VERSION, kind: "Lease", metadata: { ...current.metadata, annotations } });
      return;
    } catch (err) {
      if (!isConflict(err) || attempt >= 5) throw err;
    }
  }
}
