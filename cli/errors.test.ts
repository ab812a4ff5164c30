import test from "ava";
import { ApiException } from "@kubernetes/client-node";
import { toCliError, type RequestContext } from "./errors.js";

const ctx: RequestContext = { verb: "patch", resource: "apps.slipway.dev", name: "hello", namespace: "team-a", server: "https://10.0.0.1:6443" };

function apiError(code: number, message?: string): ApiException<unknown> {
  const body = message === undefined ? undefined : JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, code });
  return new ApiException(code, "Unsuccessful HTTP Request", body, {});
}

test("a 403 names the user, the verb and the resource", (t) => {
  const e = toCliError(apiError(403, `apps.slipway.dev "hello" is forbidden: User "system:serviceaccount:team-a:viewer" cannot patch resource "apps" in API group "slipway.dev" in the namespace "team-a"`), ctx);
  t.is(e.message, `permission denied: User "system:serviceaccount:team-a:viewer" cannot patch apps.slipway.dev in namespace "team-a"`);
});

test("a 403 without a body (pod logs) names what was attempted", (t) => {
  const e = toCliError(apiError(403), { ...ctx, verb: "get", resource: "pods/log", name: "hello-web-1" });
  t.is(e.message, `permission denied: you cannot get pods/log "hello-web-1" in namespace "team-a"`);
});

test("a 422 gives the API server's validation message", (t) => {
  const msg = `App.slipway.dev "hello" is invalid: spec.processes.web.replicas: Invalid value: -1: spec.processes.web.replicas in body should be greater than or equal to 0`;
  t.is(toCliError(apiError(422, msg), ctx).message, `invalid: ${msg}`);
});

test("a 401 says the credentials were rejected", (t) => {
  t.is(toCliError(apiError(401, "Unauthorized"), ctx).message, "unauthorized: the cluster at https://10.0.0.1:6443 rejected your credentials (check your kubeconfig)");
});

test("a refused connection says the cluster is unreachable", (t) => {
  const cause = Object.assign(new Error("request to https://10.0.0.1:6443/apis failed, reason: connect ECONNREFUSED 10.0.0.1:6443"), { name: "FetchError", code: "ECONNREFUSED" });
  t.is(toCliError(cause, ctx).message, "cannot reach the cluster at https://10.0.0.1:6443: connect ECONNREFUSED 10.0.0.1:6443");
});

test("a missing CRD says the Slipway CRDs are not installed", (t) => {
  const e = toCliError(new Error("Unrecognized API version and kind: slipway.dev/v1alpha1 App"), ctx);
  t.is(e.message, "the cluster at https://10.0.0.1:6443 does not serve apps.slipway.dev: are the Slipway CRDs installed?");
});

test("other API failures name the request and the server's message", (t) => {
  t.is(toCliError(apiError(500, "etcdserver: request timed out"), ctx).message, `patch apps.slipway.dev "hello" failed: etcdserver: request timed out`);
});
