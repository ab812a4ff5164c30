// Find the render inputs in a bag of objects (a ResourceList, a directory of YAML): every App with its
// Config and its live Release (the highest version that names the App).
import type { App, Config, Release } from "../crds/v1alpha1.js";
import { API_VERSION } from "../crds/v1alpha1.js";
import type { RenderInput } from "./render.js";

interface Meta {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown; namespace?: unknown };
}

function is(o: Meta, kind: string): boolean {
  return o.apiVersion === API_VERSION && o.kind === kind && typeof o.metadata?.name === "string";
}

/**
 * Copies of the Apps, Configs and Releases in `objects`, with `namespace` for those without one (a GitOps
 * directory often leaves the namespace to kustomize or to Argo CD). Other objects are left out.
 */
export function slipwayObjects<T extends { apiVersion: string; kind: string; metadata: { namespace?: string } }>(objects: readonly T[], namespace?: string): T[] {
  return objects
    .filter((o) => o.apiVersion === API_VERSION && (o.kind === "App" || o.kind === "Config" || o.kind === "Release"))
    .map((o) => {
      const copy = structuredClone(o);
      if (!copy.metadata.namespace && namespace) copy.metadata.namespace = namespace;
      return copy;
    });
}

/** The inputs for every App found, ordered by namespace and name. */
export function collectInputs(objects: readonly unknown[]): RenderInput[] {
  const all = objects.filter((o): o is Meta => typeof o === "object" && o !== null);
  const apps = all.filter((o) => is(o, "App")) as unknown as App[];
  const configs = all.filter((o) => is(o, "Config")) as unknown as Config[];
  const releases = all.filter((o) => is(o, "Release")) as unknown as Release[];
  const key = (o: { metadata: { namespace?: string; name: string } }): string => `${o.metadata.namespace ?? ""}/${o.metadata.name}`;

  return [...apps]
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
    .map((app) => {
      const ns = app.metadata.namespace;
      const config = configs.find((c) => c.metadata.name === app.metadata.name && c.metadata.namespace === ns);
      const release = releases
        .filter((r) => r.spec?.app === app.metadata.name && r.metadata.namespace === ns)
        .reduce<Release | undefined>((live, r) => (live === undefined || r.spec.version > live.spec.version ? r : live), undefined);
      const input: RenderInput = { app };
      if (config !== undefined) input.config = config;
      if (release !== undefined) input.release = release;
      return input;
    });
}
