import test from "ava";
import type { App, Config } from "../../crds/v1alpha1.js";
import type { PullRequestEvent } from "./events.js";
import { parseDuration, previewApp, previewConfig, previewExpired, previewHost, previewName } from "./previews.js";

const parent: App = {
  apiVersion: "slipway.dev/v1alpha1",
  kind: "App",
  metadata: { name: "shop", namespace: "team-a", uid: "uid-shop" },
  spec: {
    source: { git: "https://git.example.com/acme/shop.git", branch: "main", path: "web" },
    processes: { web: { replicas: 2 } },
    routing: { domains: ["shop.example.com"], port: 3000 },
    previews: { enabled: true, ttl: "72h", domainTemplate: "{app}-{pr}.{namespace}.preview.example.com" },
  },
};

const event = (fromFork: boolean): PullRequestEvent => ({
  kind: "pullRequest",
  host: "github",
  action: "open",
  number: 42,
  base: { repoUrls: ["https://git.example.com/acme/shop.git"], branch: "main" },
  head: { repoUrl: fromFork ? "https://git.example.com/mallory/shop.git" : "https://git.example.com/acme/shop.git", branch: "fix", commit: "c".repeat(40) },
  fromFork,
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

test("a preview App builds the pull request's head branch, routes only at its host and has no previews", (t) => {
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
    source: { git: "https://git.example.com/acme/shop.git", branch: "fix", path: "web" },
    processes: { web: { replicas: 2 } },
    routing: { domains: ["shop-42.example.com"], port: 3000 },
  });
  t.like(app.metadata.ownerReferences?.[0], { kind: "App", name: "shop", uid: "uid-shop" });
});

test("a preview from a fork builds from the fork's repository", (t) => {
  const app = previewApp(parent, event(true), "h.example.com", "2025-01-01T00:00:00Z");
  t.is(app.spec.source?.git, "https://git.example.com/mallory/shop.git");
  t.is(app.metadata.annotations?.["slipway.dev/preview-fork"], "true");
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
