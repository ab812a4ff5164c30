import test from "ava";
import { ApiException } from "@kubernetes/client-node";
import { KubeError } from "../operator/kube.js";
import { toCliError, type RequestContext } from "./errors.js";

const ctx: RequestContext = { verb: "patch", resource: "apps.slipway.dev", name: "hello", namespace: "team-a", server: "https://10.0.0.1:6443" };

/** An error of the operator's client, as the API server answers a request. */
function kubeError(code: number, reason: string, message: string): KubeError {
  return new KubeError(code, reason, `PATCH /apis/slipway.dev/v1alpha1/namespaces/team-a/apps/hello: ${code} ${reason}: ${message}`, { status: message });
}

/** An error of client-node (logs, watches). */
function apiError(code: number, message?: string): ApiException<unknown> {
  const body = message === undefined ? undefined : JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, code });
  return new ApiException(code, "Unsuccessful HTTP Request", body, {});
}

test("a 403 names the user, the verb and the resource", (t) => {
  const msg = `apps.slipway.dev "hello" is forbidden: User "system:serviceaccount:team-a:viewer" cannot patch resource "apps" in API group "slipway.dev" in the namespace "team-a"`;
  const want = `permission denied: User "system:serviceaccount:team-a:viewer" cannot patch apps.slipway.dev in namespace "team-a"`;
  t.is(toCliError(kubeError(403, "Forbidden", msg), ctx).message, want);
  t.is(toCliError(apiError(403, msg), ctx).message, want);
});

test("a 403 without a body (pod logs) names what was attempted", (t) => {
  const e = toCliError(apiError(403), { ...ctx, verb: "get", resource: "pods/log", name: "hello-web-1" });
  t.is(e.message, `permission denied: you cannot get pods/log "hello-web-1" in namespace "team-a"`);
});

test("a 422 gives the API server's validation message", (t) => {
  const msg = `App.slipway.dev "hello" is invalid: spec.processes.web.replicas: Invalid value: -1: spec.processes.web.replicas in body should be greater than or equal to 0`;
  t.is(toCliError(kubeError(422, "Invalid", msg), ctx).message, `invalid: ${msg}`);
  t.is(toCliError(apiError(422, msg), ctx).message, `invalid: ${msg}`);
});

test("a 401 says the credentials were rejected", (t) => {
  t.is(toCliError(kubeError(401, "Unauthorized", "Unauthorized"), ctx).message, "unauthorized: the cluster at https://10.0.0.1:6443 rejected your credentials (check your kubeconfig)");
});

test("a refused connection says the cluster is unreachable, with the socket's own message", (t) => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:6443"), { code: "ECONNREFUSED" });
  const e = new KubeError(0, "ConnectionFailed", `GET /apis/slipway.dev/v1alpha1/namespaces/team-a/apps: ${refused.message}`, { cause: refused });
  t.is(toCliError(e, ctx).message, "cannot reach the cluster at https://10.0.0.1:6443: connect ECONNREFUSED 10.0.0.1:6443");
  // client-node's fetch (logs)
  const fetchError = Object.assign(new Error("request to https://10.0.0.1:6443/apis failed, reason: connect ECONNREFUSED 10.0.0.1:6443"), { name: "FetchError", code: "ECONNREFUSED" });
  t.is(toCliError(fetchError, ctx).message, "cannot reach the cluster at https://10.0.0.1:6443: connect ECONNREFUSED 10.0.0.1:6443");
});

test("a missing CRD says the Slipway CRDs are not installed; a missing object says it is not found", (t) => {
  // What kube-apiserver v1.33 answers for a path of a group it does not serve: plain text, no Status.
  const e = toCliError(new KubeError(404, "Unknown", "GET /apis/slipway.dev/v1alpha1/namespaces/team-a/apps: 404 Unknown: 404 page not found\n", { status: "404 page not found\n" }), ctx);
  t.is(e.message, "the cluster at https://10.0.0.1:6443 does not serve apps.slipway.dev: are the Slipway CRDs installed?");
  t.is(toCliError(kubeError(404, "NotFound", `apps.slipway.dev "hello" not found`), ctx).message, `apps.slipway.dev "hello" not found in namespace "team-a"`);
});

test("other API failures name the request and the server's message", (t) => {
  t.is(toCliError(kubeError(500, "InternalError", "etcdserver: request timed out"), ctx).message, `patch apps.slipway.dev "hello" failed: etcdserver: request timed out`);
  t.is(toCliError(apiError(500, "etcdserver: request timed out"), ctx).message, `patch apps.slipway.dev "hello" failed: etcdserver: request timed out`);
});
