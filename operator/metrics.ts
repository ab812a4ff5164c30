// Prometheus metrics of the operator, served on /metrics by http.ts.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { requestCounts } from "./kube.js";

export const registry: Registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Every finished reconcile, by kind (App, Config, Release) and result (success, error, requeue…). */
export const reconcileTotal: Counter<"kind" | "result"> = new Counter({
  name: "slipway_reconcile_total",
  help: "Reconciles finished, by kind and result.",
  labelNames: ["kind", "result"] as const,
  registers: [registry],
});

export const reconcileErrors: Counter<"kind"> = new Counter({
  name: "slipway_reconcile_errors_total",
  help: "Reconciles that failed with an error, by kind.",
  labelNames: ["kind"] as const,
  registers: [registry],
});

export const reconcileDuration: Histogram<"kind"> = new Histogram({
  name: "slipway_reconcile_duration_seconds",
  help: "Time spent in one reconcile, by kind.",
  labelNames: ["kind"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const queueDepth: Gauge = new Gauge({
  name: "slipway_queue_depth",
  help: "Objects waiting in the work queue.",
  registers: [registry],
});

export const gitopsQueueDepth: Gauge = new Gauge({
  name: "slipway_gitops_queue_depth",
  help: "Apps waiting in the GitOps work queue.",
  registers: [registry],
});

export const releasesCut: Counter = new Counter({
  name: "slipway_releases_total",
  help: "Releases cut by the operator.",
  registers: [registry],
});

/** GitOps passes over one App, by result (done, held, error). */
export const gitopsPasses: Counter<"result"> = new Counter({
  name: "slipway_gitops_passes_total",
  help: "GitOps passes over one App (its objects in the cluster against its directory in Git), by result.",
  labelNames: ["result"] as const,
  registers: [registry],
});

export const gitopsPassDuration: Histogram = new Histogram({
  name: "slipway_gitops_pass_duration_seconds",
  help: "Time spent in one GitOps pass over one App, commit and push included.",
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

/**
 * API requests the process made (not its watches), by verb, HTTP status and resource (with its subresource, never
 * a name), as client-go's rest_client_requests_total.
 */
export const apiRequests: Counter<"verb" | "code" | "resource"> = new Counter({
  name: "slipway_api_requests_total",
  help: "Kubernetes API requests made (watches excluded), by verb, HTTP status code and resource.",
  labelNames: ["verb", "code", "resource"] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [key, count] of requestCounts) {
      const [verb = "", code = "", resource = ""] = key.split(" ");
      this.inc({ verb, code, resource }, count);
    }
  },
});
