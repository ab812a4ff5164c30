import test from "ava";
import type { App, Config } from "../../crds/v1alpha1.js";
import type { PullRequestEvent } from "./events.js";
import {
  buildInput, isPreviewOf, parseDuration, previewApp, previewApproval, previewConfig, previewExpired, previewHost, previewName,
} from "./previews.js";

const parent: App = {
  apiVersion: "slipway.dev/v1alpha1",
  kind: "App",
  metadata: { name: "shop", namespace: "team-a", uid: "uid-shop" },
  spec: {
    source: { git: "https://git.example.com/acme/shop.git", branch: "main", path: "web", credentialsSecret: "shop-git" },
    processes: { web: { replicas: 2 }, worker: { autoscale: { min: 2, max: 10 } }, clock: { replicas: 0 } },
    routing: { domains: ["shop.example.com"], port: 3000, tls: { secretName: "shop-tls" } },
    previews: { enabled: true, ttl: "72h", domainTemplate: "{app}-{pr}.{namespace}.preview.example.com" },
  },
};

const event = (fromFork: boolean, more: Partial<PullRequestEvent> = {}): PullRequestEvent => ({
  kind: "pullRequest",
  host: "github",
  action: "open",
  number: 42,
  base: { repoUrls: ["https://git.example.com/acme/shop.git"], branch: "main" },
  head: { repoUrl: fromFork ? "https://git.example.com/mallory/shop.git" : "https://git.example.com/acme/shop.git", branch: "fix", commit: "c".repeat(40) },
  fromFork,
  author: fromFork ? "mallory" : "ada",
  authorAssociation: fromFork ? "NONE" : "MEMBER",
  labels: [],
  ...more,
});

test("a preview is named <app>-pr-<n>", (t) => {
  t.is(previewName("shop", 42), "shop-pr-42");
});

test("a preview of an App with a 40-character name is shortened with a hash and stays a valid App name", (t) => {
  const name = previewName("a".repeat(40), 12345);
  t.is(name.length, 40);
  t.regex(name, /^a+-[0-9a-f]{6}-pr-12345$/);
});

test("the host template replaces {app}, {pr} and {namespace}", (t) => {
  t.is(previewHost(parent, 42, "slipway.local"), "shop-42.team-a.preview.example.com");
});

test("without a template the host is {app}-pr-{pr} under the platform domain", (t) => {
  const noTemplate: App = { ...parent, spec: { ...parent.spec, previews: { enabled: true } } };
  t.is(previewHost(noTemplate, 7, "apps.example.com"), "shop-pr-7.apps.example.com");
});

test("a template that does not give a host name is refused, naming the template", (t) => {
  const bad: App = { ...parent, spec: { ...parent.spec, previews: { enabled: true, domainTemplate: "{app} pr {pr}" } } };
  t.throws(() => previewHost(bad, 7, "x"), { message: /domainTemplate "\{app\} pr \{pr\}" gives "shop pr 7", which is not a host name/ });
});

test("a preview App builds the pull request's head branch, routes only at its host, has no previews and runs one replica per process type, never autoscaled", (t) => {
  const app = previewApp(parent, event(false), "shop-42.example.com", "2025-01-01T00:00:00Z");
  t.is(app.metadata.name, "shop-pr-42");
  t.deepEqual(app.metadata.labels, { "slipway.dev/preview": "shop", "app.kubernetes.io/managed-by": "slipway" });
  t.deepEqual(app.metadata.annotations, {
    "slipway.dev/preview-pr": "42",
    "slipway.dev/preview-commit": "c".repeat(40),
    "slipway.dev/preview-updated-at": "2025-01-01T00:00:00Z",
    "slipway.dev/preview-fork": "false",
  });
  t.deepEqual(app.spec, {
    source: { git: "https://git.example.com/acme/shop.git", branch: "fix", path: "web", credentialsSecret: "shop-git" },
    processes: { web: { replicas: 1 }, worker: { replicas: 1 }, clock: { replicas: 0 } },
    routing: { domains: ["shop-42.example.com"], port: 3000, tls: { secretName: "shop-tls" } },
  });
  t.deepEqual(parent.spec.processes?.worker, { autoscale: { min: 2, max: 10 } }, "the parent is untouched");
  t.like(app.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: "uid-shop" });
});

test("a preview from a fork builds from the fork's repository without the parent's Git credentials or TLS Secret", (t) => {
  const app = previewApp(parent, event(true), "h.example.com", "2025-01-01T00:00:00Z");
  t.deepEqual(app.spec.source, { git: "https://git.example.com/mallory/shop.git", branch: "fix", path: "web" });
  t.deepEqual(app.spec.routing, { domains: ["h.example.com"], port: 3000 });
  t.is(app.metadata.annotations?.["slipway.dev/preview-fork"], "true");
  t.is(parent.spec.source?.credentialsSecret, "shop-git", "the parent is untouched");
});

test("a fork preview's build runs as the fork build ServiceAccount and mounts no credentials, even when its spec names some", (t) => {
  const app = { ...previewApp(parent, event(true), "h", "t"), metadata: { ...previewApp(parent, event(true), "h", "t").metadata, uid: "uid-p" } };
  app.spec = { ...app.spec, source: { ...app.spec.source!, credentialsSecret: "shop-git" } };
  const input = buildInput(app, { serviceAccountName: "builder" });
  t.is(input.settings.serviceAccountName, "slipway-fork-build");
  t.is(input.app.spec.source?.credentialsSecret, undefined);
  t.is(buildInput(app, { serviceAccountName: "builder", forkServiceAccountName: "previews" }).settings.serviceAccountName, "previews");
  const own = { ...previewApp(parent, event(false), "h", "t"), metadata: { ...previewApp(parent, event(false), "h", "t").metadata, uid: "uid-q" } };
  t.deepEqual(buildInput(own, { serviceAccountName: "builder" }), { app: own, settings: { serviceAccountName: "builder" } });
});

test("a pull request from a branch of the repository needs no approval", (t) => {
  t.like(previewApproval(parent, event(false, { authorAssociation: "NONE" })), { approved: true });
});

test("a pull request from a fork by an untrusted author waits for approval, and the reason says how to approve", (t) => {
  t.deepEqual(previewApproval(parent, event(true)), {
    approved: false,
    reason: "pull request #42 comes from the fork https://git.example.com/mallory/shop.git by mallory (NONE) and is not built nor previewed until someone trusted approves it: " +
      "add the label slipway/ok-to-preview to the pull request, or list its author in spec.previews.trustedAuthors of App shop",
  });
  t.like(previewApproval(parent, event(true, { labels: ["bug", "ok-to-preview"] })), { approved: false }, "only the exact label approves");
});

test("a pull request from a fork is approved by the label, a trusted author or a trusted association", (t) => {
  t.deepEqual(previewApproval(parent, event(true, { labels: ["slipway/ok-to-preview"] })), { approved: true, by: "label slipway/ok-to-preview" });
  const trusting: App = { ...parent, spec: { ...parent.spec, previews: { enabled: true, trustedAuthors: ["Mallory"] } } };
  t.like(previewApproval(trusting, event(true)), { approved: true, by: "trusted author mallory" });
  for (const association of ["OWNER", "MEMBER", "COLLABORATOR"]) {
    t.like(previewApproval(parent, event(true, { authorAssociation: association })), { approved: true }, association);
  }
  t.like(previewApproval(parent, event(true, { authorAssociation: "CONTRIBUTOR" })), { approved: false });
  const none: App = { ...parent, spec: { ...parent.spec, previews: { enabled: true, trustedAssociations: [] } } };
  t.like(previewApproval(none, event(true, { authorAssociation: "OWNER" })), { approved: false }, "[] trusts no association");
  const contributors: App = { ...parent, spec: { ...parent.spec, previews: { enabled: true, trustedAssociations: ["CONTRIBUTOR"] } } };
  t.like(previewApproval(contributors, event(true, { authorAssociation: "CONTRIBUTOR" })), { approved: true });
});

test("only the preview made for a pull request of the parent is that preview: label, controlling owner and pull request number", (t) => {
  const preview = { ...previewApp(parent, event(false), "h", "t") };
  t.true(isPreviewOf(preview, parent, 42));
  t.true(isPreviewOf(preview, parent));
  t.false(isPreviewOf(preview, parent, 43));
  t.false(isPreviewOf({ ...preview, metadata: { ...preview.metadata, ownerReferences: [] } }, parent, 42), "no owner");
  t.false(isPreviewOf({ ...preview, metadata: { ...preview.metadata, labels: {} } }, parent, 42), "no label");
  t.false(isPreviewOf(preview, { ...parent, metadata: { ...parent.metadata, uid: "uid-other-shop" } }, 42), "another App named shop");
  const real: App = { apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "shop-pr-42", namespace: "team-a" }, spec: { image: "x" } };
  t.false(isPreviewOf(real, parent, 42));
});

const parentConfig: Config = {
  apiVersion: "slipway.dev/v1alpha1",
  kind: "Config",
  metadata: { name: "shop", namespace: "team-a" },
  spec: { env: { MODE: "prod" }, secretEnv: { DB_PASSWORD: { secretName: "db", key: "password" } } },
};

test("a preview's Config copies the parent's env and secret env", (t) => {
  const app = { ...previewApp(parent, event(false), "h", "t"), metadata: { ...previewApp(parent, event(false), "h", "t").metadata, uid: "uid-p" } };
  const config = previewConfig(parentConfig, app, false);
  t.is(config.metadata.name, "shop-pr-42");
  t.deepEqual(config.spec, parentConfig.spec);
  t.like(config.metadata.ownerReferences?.[0], { kind: "App", name: "shop-pr-42", uid: "uid-p" });
});

test("a preview's Config never gets the parent's secret env when the pull request comes from a fork", (t) => {
  const app = { ...previewApp(parent, event(true), "h", "t"), metadata: { ...previewApp(parent, event(true), "h", "t").metadata, uid: "uid-p" } };
  t.deepEqual(previewConfig(parentConfig, app, true).spec, { env: { MODE: "prod" } });
  t.deepEqual(parentConfig.spec.secretEnv, { DB_PASSWORD: { secretName: "db", key: "password" } }, "the parent's Config is untouched");
});

test("Go durations parse to milliseconds and nonsense is refused", (t) => {
  t.is(parseDuration("72h"), 72 * 3_600_000);
  t.is(parseDuration("1h30m"), 90 * 60_000);
  t.is(parseDuration("1.5s"), 1500);
  t.throws(() => parseDuration("3 days"));
  t.throws(() => parseDuration(""));
});

test("a preview expires when no new commit arrived within its parent's TTL", (t) => {
  const app = previewApp(parent, event(false), "h", "2025-01-01T00:00:00Z");
  t.false(previewExpired(app, parent, new Date("2025-01-03T23:59:00Z")));
  t.true(previewExpired(app, parent, new Date("2025-01-04T00:00:01Z")));
});
