import test from "ava";
import type { ObjectMeta } from "../../crds/v1alpha1.js";
import { commitOfRevision, FluxNudge } from "./flux.js";

const SHA = "0123456789abcdef0123456789abcdef01234567";
const meta = (generation: number, managers: [string, string][], annotations?: Record<string, string>): ObjectMeta => ({
  name: "shop",
  namespace: "team-a",
  generation,
  annotations,
  managedFields: managers.map(([manager, time]) => ({ manager, operation: "Apply", time, fieldsV1: { "f:spec": { "f:env": {} } } })),
});

test("a Flux revision gives its commit id", (t) => {
  t.is(commitOfRevision(`main@sha1:${SHA}`), SHA);
  t.is(commitOfRevision(SHA), SHA);
  t.is(commitOfRevision("main@sha256:abc"), undefined);
  t.is(commitOfRevision(undefined), undefined);
});

test("a spec change by anyone but Flux is held; Flux's own applies, metadata changes and first sightings are not", (t) => {
  t.is(FluxNudge.holdFor("Config", meta(3, [["kustomize-controller", "2026-01-01T00:00:00Z"], ["kubectl-edit", "2026-01-01T00:00:05Z"]]), 2), "hold");
  t.is(FluxNudge.holdFor("Config", meta(3, [["kubectl-edit", "2026-01-01T00:00:00Z"], ["kustomize-controller", "2026-01-01T00:00:05Z"]]), 2), undefined);
  t.is(FluxNudge.holdFor("Config", meta(3, [["kubectl-edit", "2026-01-01T00:00:05Z"]]), 3), undefined, "same generation");
  t.is(FluxNudge.holdFor("Config", meta(3, [["kubectl-edit", "2026-01-01T00:00:05Z"]]), undefined), undefined, "first seen");
  t.is(FluxNudge.holdFor("Release", meta(3, [["kubectl-edit", "2026-01-01T00:00:05Z"]]), 2), undefined);
  t.is(FluxNudge.holdFor("App", meta(3, [["kubectl-slipway", "2026-01-01T00:00:05Z"]], { "slipway.dev/flux-hold": "kubectl-slipway" }), 2), "held", "the CLI held it");
});
