import test from "ava";
import { parse } from "yaml";
import type { V1Pod } from "@kubernetes/client-node";
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { age, appsTable, configTable, podRows, psTable, releasesTable, render, table } from "./format.js";

const now = new Date("2025-06-01T12:00:00Z");

function release(version: number, cause: string, by: string, created: string, commit?: string): Release {
  return {
    apiVersion: "slipway.dev/v1alpha1", kind: "Release",
    metadata: { name: `hello-v${version}`, creationTimestamp: created },
    spec: { app: "hello", version, cause, requestedBy: by, build: { image: "ghcr.io/acme/hello@sha256:" + "a".repeat(64) }, config: {} },
    ...(commit ? { status: { commit } } : {}),
  };
}

test("tables align columns under capital headers", (t) => {
  t.is(table(["NAME", "AGE"], [["hello", "5s"], ["a", "12m"]]), "NAME    AGE\nhello   5s\na       12m");
});

test("ages read like kubectl's", (t) => {
  t.is(age("2025-06-01T11:59:30Z", now), "30s");
  t.is(age("2025-06-01T11:30:00Z", now), "30m");
  t.is(age("2025-06-01T06:00:00Z", now), "6h");
  t.is(age("2025-05-20T12:00:00Z", now), "12d");
  t.is(age(undefined, now), "");
});

test("releases show version, cause, who, when and the short commit, live marked", (t) => {
  const text = releasesTable([
    release(2, "set GREETING", "alice", "2025-06-01T11:58:00Z", "0123456789abcdef"),
    release(1, "deploy ghcr.io/acme/hello:1.0", "alice", "2025-06-01T11:00:00Z"),
  ], "v2", now);
  t.is(text, [
    "VERSION     CAUSE                           BY      CREATED   COMMIT",
    "v2 (live)   set GREETING                    alice   2m        0123456",
    "v1          deploy ghcr.io/acme/hello:1.0   alice   60m",
  ].join("\n"));
});

test("config lists plain values and only references for secret env", (t) => {
  const config: Config = {
    apiVersion: "slipway.dev/v1alpha1", kind: "Config", metadata: { name: "hello" },
    spec: { env: { GREETING: "hi" }, secretEnv: { DB_PASSWORD: { secretName: "hello-env", key: "DB_PASSWORD" } } },
  };
  t.is(configTable(config), "=== hello Config\nKEY           VALUE\nDB_PASSWORD   (secret hello-env/DB_PASSWORD)\nGREETING      hi");
});

test("-o json and -o yaml print the data, not the table", (t) => {
  const data = [{ version: 1 }];
  const never = () => {
    throw new Error("table rendered");
  };
  t.deepEqual(JSON.parse(render(data, "json", never)), data);
  t.deepEqual(parse(render(data, "yaml", never)), data);
  t.is(render(data, "table", () => "V\n1"), "V\n1\n");
});

test("apps list says so when there are none", (t) => {
  t.is(appsTable([], now), "No apps in this namespace.");
  const app: App = { apiVersion: "slipway.dev/v1alpha1", kind: "App", metadata: { name: "hello", creationTimestamp: "2025-06-01T11:59:00Z" }, spec: { image: "nginx:1" },
    status: { currentRelease: "v3", url: "http://hello.example.com", conditions: [{ type: "Ready", status: "True", reason: "Ready", message: "", lastTransitionTime: "" }] } };
  t.is(appsTable([app], now), "NAME    SOURCE    RELEASE   READY   URL                        AGE\nhello   nginx:1   v3        True    http://hello.example.com   60s");
});

test("ps groups pods by process type with their state", (t) => {
  const pod = (name: string, type: string | undefined, state: V1Pod["status"], labels: Record<string, string> = {}): V1Pod => ({
    metadata: { name, labels: { "slipway.dev/app": "hello", ...(type ? { "slipway.dev/process": type } : {}), "slipway.dev/release": "v2", ...labels }, creationTimestamp: new Date("2025-06-01T11:59:00Z") },
    spec: { containers: [{ name: "app" }] }, status: state,
  });
  const rows = podRows([
    pod("hello-web-b", "web", { phase: "Running", containerStatuses: [{ name: "app", image: "i", imageID: "", ready: true, restartCount: 0 }] }),
    pod("hello-worker-a", "worker", { phase: "Pending", containerStatuses: [{ name: "app", image: "i", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ImagePullBackOff" } } }] }),
    pod("hello-run-x", undefined, { phase: "Succeeded", containerStatuses: [{ name: "run", image: "i", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: "Completed" } } }] }, { "slipway.dev/run": "x" }),
  ], now);
  t.is(psTable(rows), [
    "=== run (0/1 running)",
    "POD           STATE                READY   RELEASE   AGE",
    "hello-run-x   Completed (exit 0)   0/1     v2        60s",
    "=== web (1/1 running)",
    "POD           STATE     READY   RELEASE   AGE",
    "hello-web-b   Running   1/1     v2        60s",
    "=== worker (0/1 running)",
    "POD              STATE              READY   RELEASE   AGE",
    "hello-worker-a   ImagePullBackOff   0/1     v2        60s",
  ].join("\n"));
});
