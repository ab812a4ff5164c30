// The App, Config and Release CRDs on a real kube-apiserver: they install, accept every sample, reject every
// invalid sample with the message its first line expects, keep Release specs immutable and document their fields.
import test from "ava";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../operator/local/controlplane.js";
import { controlPlane, freshNamespace, installCrds } from "./harness/suite.js";

const samplesDir = join(repoRoot, "samples");
const sampleApps = readdirSync(join(samplesDir, "apps"), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();
const invalidSamples = readdirSync(join(samplesDir, "invalid"))
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((file) => {
    const first = readFileSync(join(samplesDir, "invalid", file), "utf8").split("\n")[0] ?? "";
    const expect = /^# expect: (.+)$/.exec(first)?.[1];
    if (!expect) throw new Error(`samples/invalid/${file} must begin with "# expect: <message>"`);
    return { file, expect };
  });

// Invalid samples are rejected, so they can share one namespace; it is only there to contain a wrong acceptance.
let invalidNamespace = "";
test.before("install the CRDs and a namespace for the invalid samples", async () => {
  const cp = await installCrds();
  invalidNamespace = `e2e-resources-invalid-${randomBytes(3).toString("hex")}`;
  await cp.kubectlOk(["create", "namespace", invalidNamespace], { what: `cannot create namespace ${invalidNamespace}` });
});
test.after.always("delete the invalid samples' namespace", async () => {
  if (invalidNamespace) await (await controlPlane()).kubectl(["delete", "namespace", invalidNamespace, "--wait=false"]);
});

test("the CRDs are established and serve slipway.dev/v1alpha1", async (t) => {
  const cp = await controlPlane();
  const r = await cp.kubectl(["api-resources", "--api-group=slipway.dev", "--namespaced=true", "-o", "name"]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split("\n").sort(), ["apps.slipway.dev", "configs.slipway.dev", "releases.slipway.dev"]);
});

test("the kustomization in crds/ installs the same three CRDs", async (t) => {
  const cp = await controlPlane();
  const r = await cp.kubectl(["apply", "--server-side", "--force-conflicts", "--dry-run=server", "-k", "crds/", "-o", "name"]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split("\n").sort(), [
    "customresourcedefinition.apiextensions.k8s.io/apps.slipway.dev",
    "customresourcedefinition.apiextensions.k8s.io/configs.slipway.dev",
    "customresourcedefinition.apiextensions.k8s.io/releases.slipway.dev",
  ]);
});

for (const name of sampleApps) {
  test(`the sample app ${name} is accepted with its Config and first Release`, async (t) => {
    const cp = await controlPlane();
    const ns = await freshNamespace(t);
    const applied = await cp.kubectl(["apply", "-n", ns, "-f", `samples/apps/${name}/`]);
    t.is(applied.code, 0, applied.stderr);
    const got = await cp.kubectl(["get", "apps,configs,releases", "-n", ns, "-o", "name"]);
    t.is(got.code, 0, got.stderr);
    t.deepEqual(got.stdout.trim().split("\n").sort(), [
      `app.slipway.dev/${name}`,
      `config.slipway.dev/${name}`,
      `release.slipway.dev/${name}-v1`,
    ]);
  });
}

for (const { file, expect } of invalidSamples) {
  test(`invalid/${file} is rejected with "${expect}"`, async (t) => {
    const cp = await controlPlane();
    const r = await cp.kubectl(["apply", "-n", invalidNamespace, "-f", `samples/invalid/${file}`]);
    t.not(r.code, 0, `accepted: ${r.stdout}`);
    t.true(r.stderr.includes(expect), `the error does not contain "${expect}":\n${r.stderr}`);
  });
}

test("a secret value given in secretEnv is pruned, never stored, when a client creates a Config without field validation", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const created = await cp.kubectl(["create", "--validate=false", "-n", ns, "-f", "samples/invalid/config-secret-env-value.yaml"]);
  t.is(created.code, 0, created.stderr);
  const got = await cp.kubectl(["get", "config", "shop", "-n", ns, "-o", "json", "--show-managed-fields"]);
  t.is(got.code, 0, got.stderr);
  const stored = JSON.parse(got.stdout) as { spec: unknown };
  t.deepEqual(stored.spec, { secretEnv: { DATABASE_URL: { secretName: "shop-secrets", key: "database-url" } } });
  t.false(got.stdout.includes("hunter2"), "the secret value is stored somewhere in the Config");
});

test("server-side apply rejects a secret value in secretEnv even without field validation", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const r = await cp.kubectl(["apply", "--server-side", "--validate=false", "-n", ns, "-f", "samples/invalid/config-secret-env-value.yaml"]);
  t.not(r.code, 0, "accepted");
  t.true(r.stderr.includes(".spec.secretEnv.DATABASE_URL.value: field not declared in schema"), r.stderr);
});

test("a Config whose env would make its Releases too large to store is refused at admission, counting bytes; one under the limit is accepted", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const config = (name: string, env: Record<string, string>) =>
    JSON.stringify({ apiVersion: "slipway.dev/v1alpha1", kind: "Config", metadata: { name, namespace: ns }, spec: { env } });
  const values = (count: number, value: string) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`VALUE_${i}`, value]));
  const message = "env is too large; names and values together must be at most 256 KiB (262144 bytes)";
  // 9 × 32 KiB: each value is within its own limit, the whole is not.
  const big = await cp.kubectl(["apply", "--server-side", "-f", "-"], { input: config("big", values(9, "x".repeat(32768))) });
  t.not(big.code, 0, "accepted");
  t.true(big.stderr.includes(message), big.stderr);
  // 5 × 30,000 two-byte characters: 150,000 characters but 300,000 bytes.
  const wide = await cp.kubectl(["apply", "--server-side", "-f", "-"], { input: config("wide", values(5, "é".repeat(30000))) });
  t.not(wide.code, 0, "accepted");
  t.true(wide.stderr.includes(message), wide.stderr);
  const fits = await cp.kubectl(["apply", "--server-side", "-f", "-"], { input: config("fits", values(7, "x".repeat(32768))) });
  t.is(fits.code, 0, fits.stderr);
  const got = await cp.kubectl(["get", "configs", "-n", ns, "-o", "name"]);
  t.is(got.stdout.trim(), "config.slipway.dev/fits");
});

test("a Release's spec cannot be changed after it is created, while its labels and status can", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const created = await cp.kubectl(["apply", "-n", ns, "-f", "samples/apps/image-app/release.yaml"]);
  t.is(created.code, 0, created.stderr);

  const changed = await cp.kubectl(["patch", "release", "image-app-v1", "-n", ns, "--type=merge",
    "-p", JSON.stringify({ spec: { cause: "deploy something else" } })]);
  t.not(changed.code, 0, "the spec change was accepted");
  t.true(changed.stderr.includes("Release spec is immutable"), changed.stderr);
  const cause = await cp.kubectl(["get", "release", "image-app-v1", "-n", ns, "-o", "jsonpath={.spec.cause}"]);
  t.is(cause.stdout, "deploy ghcr.io/slipway-samples/image-app@sha256:3ecad81d5b29");

  const labelled = await cp.kubectl(["label", "release", "image-app-v1", "-n", ns, "team=shop"]);
  t.is(labelled.code, 0, labelled.stderr);
  const status = await cp.kubectl(["patch", "release", "image-app-v1", "-n", ns, "--subresource=status", "--type=merge",
    "-p", JSON.stringify({ status: { commit: "0a1b2c3d" } })]);
  t.is(status.code, 0, status.stderr);
});

test("kubectl get shows an App's readiness, release and URL and a Release's version and cause", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const applied = await cp.kubectl(["apply", "-n", ns, "-f", "samples/apps/image-app/"]);
  t.is(applied.code, 0, applied.stderr);
  const status = {
    observedGeneration: 1,
    currentRelease: "v1",
    url: "http://image-app.example.test",
    conditions: [{ type: "Ready", status: "True", reason: "RolledOut", message: "v1 is serving", lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z") }],
  };
  const patched = await cp.kubectl(["patch", "app", "image-app", "-n", ns, "--subresource=status", "--type=merge",
    "-p", JSON.stringify({ status })]);
  t.is(patched.code, 0, patched.stderr);

  const apps = await cp.kubectl(["get", "apps", "-n", ns]);
  t.is(apps.code, 0, apps.stderr);
  const [appHeader, appRow] = apps.stdout.trim().split("\n").map((line) => line.trim().split(/\s+/));
  t.deepEqual(appHeader, ["NAME", "READY", "RELEASE", "URL", "AGE"]);
  t.deepEqual(appRow?.slice(0, 4), ["image-app", "True", "v1", "http://image-app.example.test"]);

  const releases = await cp.kubectl(["get", "releases", "-n", ns]);
  t.is(releases.code, 0, releases.stderr);
  const [releaseHeader, releaseRow] = releases.stdout.trim().split("\n").map((line) => line.trim().split(/\s{2,}/));
  t.deepEqual(releaseHeader, ["NAME", "APP", "VERSION", "CAUSE", "AGE"]);
  t.deepEqual(releaseRow?.slice(0, 4), ["image-app-v1", "image-app", "1", "deploy ghcr.io/slipway-samples/image-app@sha256:3ecad81d5b29"]);
});

test("kubectl explain documents an App's source, a Config's secretEnv and a Release's build image", async (t) => {
  const cp = await controlPlane();
  const source = await cp.kubectl(["explain", "app.spec.source"]);
  t.is(source.code, 0, source.stderr);
  t.regex(source.stdout, /Where the App's code comes from/);
  t.regex(source.stdout, /git\s+<string> -required-\s+Git URL of the source repository/);
  t.regex(source.stdout, /strategy\s+<string>\s+enum: buildpacks, dockerfile/);

  const secretEnv = await cp.kubectl(["explain", "config.spec.secretEnv"]);
  t.is(secretEnv.code, 0, secretEnv.stderr);
  t.regex(secretEnv.stdout, /Only the\s+reference \(secretName and key\) is stored/);

  const image = await cp.kubectl(["explain", "release.spec.build.image"]);
  t.is(image.code, 0, image.stderr);
  t.regex(image.stdout, /by digest/);
});
