import { createHash } from "node:crypto";
import test from "ava";
import type { App, Config, ConfigSpec, Release } from "../crds/v1alpha1.js";
import { render, secretChecksum } from "../functions/render.js";
import { planRelease, planRollback, type ReleasePlan } from "./releases.js";
import { MISSING, secretDigest, type SecretState } from "./secrets.js";

const IMAGE = `registry.example/shop@sha256:${"a".repeat(64)}`;
const UID = "6f1c1c3e-8a59-4d0f-9c51-2f8e0f5c1a77";
const TOKEN = { secretName: "shop-env", key: "TOKEN" };

const app: App = { apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "shop", namespace: "team", generation: 1 }, spec: { image: IMAGE } };

function config(spec: ConfigSpec, changedBy?: string): Config {
  return {
    apiVersion: "slipway.dev/v1alpha1", kind: "Config",
    metadata: { name: "shop", namespace: "team", generation: 1, ...(changedBy ? { annotations: { "slipway.dev/changed-by": changedBy } } : {}) },
    spec,
  };
}

function release(version: number, cfg: ConfigSpec, secretDigests?: Record<string, string>): Release {
  return {
    apiVersion: "slipway.dev/v1alpha1", kind: "Release", metadata: { name: `shop-v${version}`, namespace: "team" },
    spec: { app: "shop", version, cause: "", build: { image: IMAGE }, config: cfg, ...(secretDigests ? { secretDigests } : {}) },
  };
}

const state = (value: string, changedBy = "alice"): SecretState => ({ digests: { TOKEN: secretDigest(UID, Buffer.from(value)) }, changedBy: { "shop-env": changedBy } });

function cut(plan: ReleasePlan) {
  if (plan.kind !== "cut") throw new Error(`expected a cut, got ${plan.kind}`);
  return plan.spec;
}

test("a digest is 16 hex digits that depend on the value and on the Secret's uid, never the value itself", (t) => {
  const digest = secretDigest(UID, Buffer.from("1234"));
  t.regex(digest, /^[0-9a-f]{16}$/);
  t.is(secretDigest(UID, Buffer.from("1234")), digest);
  t.not(secretDigest(UID, Buffer.from("1235")), digest);
  // Keyed: without the uid, trying every 4-digit PIN against the digest finds nothing.
  const guesses = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, "0"));
  t.false(guesses.some((g) => createHash("sha256").update(g).digest("hex").slice(0, 16) === digest));
  t.not(secretDigest("another-uid", Buffer.from("1234")), digest, "another Secret with the same value has another digest");
});

test("a release of a Config with secret env records its digests", (t) => {
  const spec = cut(planRelease({ app, config: config({ secretEnv: { TOKEN } }), releases: [], secrets: state("old") }));
  t.deepEqual(spec.secretDigests, { TOKEN: secretDigest(UID, Buffer.from("old")) });
});

test("a changed secret value alone cuts a release naming the variable and whoever wrote the Secret", (t) => {
  const before = state("old");
  const releases = [release(1, { secretEnv: { TOKEN } }, before.digests)];
  t.is(planRelease({ app, config: config({ secretEnv: { TOKEN } }, "bob"), releases, secrets: before }).kind, "none");
  const spec = cut(planRelease({ app, config: config({ secretEnv: { TOKEN } }, "bob"), releases, secrets: state("new", "carol") }));
  t.is(spec.version, 2);
  t.is(spec.cause, "change secret TOKEN");
  t.is(spec.requestedBy, "carol");
  t.deepEqual(spec.secretDigests, state("new").digests);
});

test("the pod template's checksum changes with a secret value and holds neither value nor digest", (t) => {
  const platform = { domain: "example.test" };
  const template = (digests: Record<string, string>) => {
    const out = render({ app, config: config({ secretEnv: { TOKEN } }), release: release(1, { secretEnv: { TOKEN } }, digests) }, platform);
    const deployment = out.objects.find((o) => o.kind === "Deployment") as unknown as { spec: { template: { metadata: { annotations?: Record<string, string> } } } };
    return deployment.spec.template.metadata.annotations ?? {};
  };
  const old = template(state("old").digests);
  const next = template(state("new").digests);
  t.regex(old["slipway.dev/secret-checksum"] ?? "", /^[0-9a-f]{16}$/);
  t.not(old["slipway.dev/secret-checksum"], next["slipway.dev/secret-checksum"]);
  t.is(old["slipway.dev/secret-checksum"], secretChecksum(state("old").digests));
  t.false(JSON.stringify(old).includes(state("old").digests.TOKEN ?? "?"));
  const plain = render({ app, config: config({}), release: release(1, {}) }, platform).objects.find((o) => o.kind === "Deployment");
  t.false(JSON.stringify(plain).includes("secret-checksum"), "no annotation without secret env");
});

test("releases cut before digests were recorded, and values that went missing, cut nothing", (t) => {
  t.is(planRelease({ app, config: config({ secretEnv: { TOKEN } }), releases: [release(1, { secretEnv: { TOKEN } })], secrets: state("new") }).kind, "none");
  const releases = [release(1, { secretEnv: { TOKEN } }, state("old").digests)];
  const missing: SecretState = { digests: { TOKEN: MISSING }, changedBy: {} };
  t.is(planRelease({ app, config: config({ secretEnv: { TOKEN } }), releases, secrets: missing }).kind, "none");
});

test("a changed reference is a config change, not a secret value change", (t) => {
  const releases = [release(1, { secretEnv: { TOKEN } }, state("old").digests)];
  const other = { secretName: "other", key: "TOKEN" };
  const spec = cut(planRelease({ app, config: config({ secretEnv: { TOKEN: other } }, "bob"), releases, secrets: state("new") }));
  t.is(spec.cause, "set TOKEN (secret)");
  t.is(spec.requestedBy, "bob");
});

test("a rollback records what the Secrets hold now, so the next pass cuts nothing more", (t) => {
  const releases = [release(1, { secretEnv: { TOKEN } }, state("a").digests), release(2, { env: { X: "1" }, secretEnv: { TOKEN } }, state("b").digests)];
  const rolled: App = { ...app, metadata: { ...app.metadata, annotations: { "slipway.dev/rollback-to": "v1" } } };
  const spec = cut(planRollback(rolled, releases, "v1", state("b")));
  t.deepEqual(spec.secretDigests, state("b").digests);
  t.is(planRelease({ app, config: config({ secretEnv: { TOKEN } }), releases: [...releases, release(3, spec.config, spec.secretDigests)], secrets: state("b") }).kind, "none");
});

