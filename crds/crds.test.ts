// The CRDs agree with the TypeScript API types and document every field; the samples agree with each other.
// The API server itself checks the validation rules (e2e/resources.e2e.ts); this file needs no cluster.
import test from "ava";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { parse, parseAllDocuments } from "yaml";
import {
  API_VERSION,
  releaseName,
  type App,
  type AppSpec,
  type AppStatus,
  type Autoscale,
  type Build,
  type Condition,
  type Config,
  type ConfigSpec,
  type ConfigStatus,
  type GitSource,
  type HttpProbe,
  type LatestBuild,
  type PendingRelease,
  type Previews,
  type ProcessResources,
  type ProcessSpec,
  type Release,
  type ReleaseSpec,
  type ReleaseStatus,
  type ResourceAmounts,
  type Routing,
  type SecretKeyRef,
} from "./v1alpha1.js";

// Compiled to dist/crds/, so the repository root is two levels up.
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema;
  items?: Schema;
  required?: string[];
}

interface Crd {
  metadata: { name: string };
  spec: { names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
}

function readCrd(file: string): Crd {
  return parse(readFileSync(`${repoRoot}crds/${file}`, "utf8")) as Crd;
}

function rootSchema(crd: Crd): Schema {
  const version = crd.spec.versions.find((v) => v.name === "v1alpha1");
  if (!version) throw new Error(`${crd.metadata.name} has no v1alpha1 version`);
  return version.schema.openAPIV3Schema;
}

const crds = { App: readCrd("app.yaml"), Config: readCrd("config.yaml"), Release: readCrd("release.yaml") };

/** The schema at a dotted path: a name follows `properties`, `*` a map's values, `[]` a list's items. */
function schemaAt(root: Schema, path: string): Schema {
  let s: Schema | undefined = root;
  for (const step of path.split(".")) {
    s = step === "*" ? s?.additionalProperties : step === "[]" ? s?.items : s?.properties?.[step];
    if (!s) throw new Error(`no schema at ${path} (stopped at ${step})`);
  }
  return s;
}

/** Every schema node below root with its path, in the notation of schemaAt. */
function walk(root: Schema, path = ""): [string, Schema][] {
  const join = (step: string) => (path ? `${path}.${step}` : step);
  const children: [string, Schema][] = [
    ...Object.entries(root.properties ?? {}).map(([k, v]): [string, Schema] => [join(k), v]),
    ...(root.additionalProperties ? [[join("*"), root.additionalProperties] as [string, Schema]] : []),
    ...(root.items ? [[join("[]"), root.items] as [string, Schema]] : []),
  ];
  return children.flatMap(([p, s]) => [[p, s] as [string, Schema], ...walk(s, p)]);
}

// Each key of T, marked as TypeScript declares it. The compiler rejects a missing or extra key and a wrong mark,
// so a field added to v1alpha1.ts must be listed here, and then this test fails until the CRD has it too.
type Fields<T> = { [K in keyof T]-?: object extends Pick<T, K> ? "optional" : "required" };

const appSpec: Fields<AppSpec> = {
  image: "optional", source: "optional", processes: "optional", routing: "optional", previews: "optional",
  suspend: "optional",
};
const gitSource: Fields<GitSource> = {
  git: "required", branch: "optional", path: "optional", credentialsSecret: "optional", strategy: "optional",
  builder: "optional", webhookSecret: "optional",
};
const webhookSecret: Fields<NonNullable<GitSource["webhookSecret"]>> = { name: "required", key: "optional" };
const processSpec: Fields<ProcessSpec> = {
  command: "optional", replicas: "optional", autoscale: "optional", readiness: "optional", liveness: "optional",
};
const autoscale: Fields<Autoscale> = { min: "required", max: "required", cpuPercent: "optional" };
const httpProbe: Fields<HttpProbe> = {
  path: "optional", port: "optional", initialDelaySeconds: "optional", periodSeconds: "optional",
  timeoutSeconds: "optional", failureThreshold: "optional",
};
const routing: Fields<Routing> = {
  domains: "optional", tls: "optional", port: "optional", path: "optional", enabled: "optional",
};
const tls: Fields<NonNullable<Routing["tls"]>> = { secretName: "required" };
const previews: Fields<Previews> = {
  enabled: "required", ttl: "optional", domainTemplate: "optional", max: "optional", trustedAuthors: "optional", trustedAssociations: "optional",
};
const appStatus: Fields<AppStatus> = {
  observedGeneration: "optional", observedConfigGeneration: "optional", conditions: "optional", currentRelease: "optional",
  latestReleaseNumber: "optional", url: "optional", latestBuild: "optional", pendingRelease: "optional", processes: "optional",
  commit: "optional", inventory: "optional",
};
const pendingRelease: Fields<PendingRelease> = { version: "required", generation: "optional", configGeneration: "optional" };
const condition: Fields<Condition> = {
  type: "required", status: "required", reason: "required", message: "required", observedGeneration: "optional",
  lastTransitionTime: "required",
};
const latestBuild: Fields<LatestBuild> = {
  pipelineRun: "required", commit: "required", phase: "required", message: "optional", image: "optional",
  procfile: "optional", release: "optional",
};
const processStatus: Fields<NonNullable<AppStatus["processes"]>[string]> = {
  desired: "required", available: "required", updated: "required",
};
const configSpec: Fields<ConfigSpec> = {
  env: "optional", secretEnv: "optional", resources: "optional", nodeSelector: "optional",
};
const secretKeyRef: Fields<SecretKeyRef> = { secretName: "required", key: "required" };
const processResources: Fields<ProcessResources> = { requests: "optional", limits: "optional" };
const resourceAmounts: Fields<ResourceAmounts> = { cpu: "optional", memory: "optional" };
const configStatus: Fields<ConfigStatus> = { observedGeneration: "optional", conditions: "optional", commit: "optional" };
const releaseSpec: Fields<ReleaseSpec> = {
  app: "required", version: "required", cause: "required", requestedBy: "optional", build: "required",
  config: "required", rollbackOf: "optional", secretDigests: "optional",
};
const build: Fields<Build> = {
  image: "required", sourceCommit: "optional", procfile: "optional", pipelineRun: "optional",
};
const releaseStatus: Fields<ReleaseStatus> = { conditions: "optional", commit: "optional" };

// Every object in each CRD that has named fields, and the TypeScript type it mirrors.
const mirrors: Record<keyof typeof crds, Record<string, Record<string, "optional" | "required">>> = {
  App: {
    spec: appSpec,
    "spec.source": gitSource,
    "spec.source.webhookSecret": webhookSecret,
    "spec.processes.*": processSpec,
    "spec.processes.*.autoscale": autoscale,
    "spec.processes.*.readiness": httpProbe,
    "spec.processes.*.liveness": httpProbe,
    "spec.routing": routing,
    "spec.routing.tls": tls,
    "spec.previews": previews,
    status: appStatus,
    "status.conditions.[]": condition,
    "status.latestBuild": latestBuild,
    "status.pendingRelease": pendingRelease,
    "status.processes.*": processStatus,
  },
  Config: {
    spec: configSpec,
    "spec.secretEnv.*": secretKeyRef,
    "spec.resources.*": processResources,
    "spec.resources.*.requests": resourceAmounts,
    "spec.resources.*.limits": resourceAmounts,
    status: configStatus,
    "status.conditions.[]": condition,
  },
  Release: {
    spec: releaseSpec,
    "spec.build": build,
    "spec.config": configSpec,
    "spec.config.secretEnv.*": secretKeyRef,
    "spec.config.resources.*": processResources,
    "spec.config.resources.*.requests": resourceAmounts,
    "spec.config.resources.*.limits": resourceAmounts,
    status: releaseStatus,
    "status.conditions.[]": condition,
  },
};

for (const [kind, crd] of Object.entries(crds) as [keyof typeof crds, Crd][]) {
  const root = rootSchema(crd);

  test(`the ${kind} CRD describes every field, so kubectl explain is useful`, (t) => {
    // metadata is the API server's ObjectMeta and carries its own documentation.
    const undocumented = walk(root)
      .filter(([path, s]) => path !== "metadata" && !s.description?.trim())
      .map(([path]) => path);
    t.deepEqual(undocumented, []);
    t.truthy(root.description?.trim(), `${kind} has no top-level description`);
  });

  test(`the ${kind} CRD has exactly the fields of the ${kind} TypeScript types`, (t) => {
    for (const [path, fields] of Object.entries(mirrors[kind])) {
      const s = schemaAt(root, path);
      t.deepEqual(Object.keys(s.properties ?? {}).sort(), Object.keys(fields).sort(), `field names at ${kind}.${path}`);
      const required = Object.entries(fields).filter(([, mark]) => mark === "required").map(([k]) => k).sort();
      t.deepEqual([...(s.required ?? [])].sort(), required, `required fields at ${kind}.${path}`);
    }
  });

  test(`every object with fields in the ${kind} CRD mirrors a TypeScript type`, (t) => {
    const objects = walk(root).filter(([path, s]) => s.properties && path !== "metadata").map(([path]) => path);
    t.deepEqual(objects.sort(), Object.keys(mirrors[kind]).sort());
  });
}

/** A schema without its own description, to compare two places that say different things about one shape. */
function shape(s: Schema): Schema {
  return { ...s, description: undefined };
}

test("a Release's config snapshot has the same schema as a Config's spec", (t) => {
  t.deepEqual(shape(schemaAt(rootSchema(crds.Release), "spec.config")), shape(schemaAt(rootSchema(crds.Config), "spec")));
});

test("readiness and liveness checks share one schema", (t) => {
  const app = rootSchema(crds.App);
  t.deepEqual(shape(schemaAt(app, "spec.processes.*.readiness")), shape(schemaAt(app, "spec.processes.*.liveness")));
});

// ------------------------------------------------------------------------------------------- samples

const sampleApps = readdirSync(`${repoRoot}samples/apps`, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

function readObject<T>(path: string): T {
  const docs = parseAllDocuments(readFileSync(`${repoRoot}${path}`, "utf8"));
  if (docs.length !== 1) throw new Error(`${path} holds ${docs.length} documents, want 1`);
  return docs[0]!.toJS() as T;
}

test("the samples are the six documented apps", (t) => {
  t.deepEqual(sampleApps, ["autoscale", "config-env", "custom-domain", "echo", "image-app", "source-app"]);
});

for (const name of sampleApps) {
  test(`sample ${name} is an App, a Config of the same name and its first Release with that config`, (t) => {
    const dir = `samples/apps/${name}`;
    const app = readObject<App>(`${dir}/app.yaml`);
    const config = readObject<Config>(`${dir}/config.yaml`);
    const release = readObject<Release>(`${dir}/release.yaml`);
    t.is(app.apiVersion, API_VERSION);
    t.is(app.kind, "App");
    t.is(app.metadata.name, name);
    t.is(config.kind, "Config");
    t.is(config.metadata.name, name);
    t.is(release.kind, "Release");
    t.is(release.metadata.name, releaseName(name, 1));
    t.is(release.spec.app, name);
    t.is(release.spec.version, 1);
    t.regex(release.spec.cause, /^deploy /);
    t.true(isDeepStrictEqual(release.spec.config, config.spec), "release.spec.config differs from config.yaml's spec");
    // Applied into a namespace with -n; a namespace in the file would override it.
    for (const o of [app, config, release]) t.is(o.metadata.namespace, undefined, `${o.kind} sets a namespace`);
  });
}

test("a sample built from source records its commit and Procfile in the release", (t) => {
  const app = readObject<App>("samples/apps/source-app/app.yaml");
  const release = readObject<Release>("samples/apps/source-app/release.yaml");
  t.truthy(app.spec.source);
  t.regex(release.spec.build.sourceCommit ?? "", /^[0-9a-f]{40}$/);
  t.is(release.spec.cause, `deploy ${(release.spec.build.sourceCommit ?? "").slice(0, 7)}`);
  t.deepEqual(Object.keys(release.spec.build.procfile ?? {}).sort(), Object.keys(app.spec.processes ?? {}).sort());
});

test("every invalid sample says which error the API server gives", (t) => {
  const files = readdirSync(`${repoRoot}samples/invalid`).filter((f) => f.endsWith(".yaml"));
  t.true(files.length > 0);
  for (const f of files) {
    const first = readFileSync(`${repoRoot}samples/invalid/${f}`, "utf8").split("\n")[0] ?? "";
    t.regex(first, /^# expect: \S/, `${f} does not begin with "# expect: <message>"`);
  }
});
