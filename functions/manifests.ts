// Reading and writing multi-document YAML manifests, the way tests, goldens and the samples use them.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";

/** Every object in the .yaml/.yml files of `dir` (not recursive), files in name order. */
export function readManifests(dir: string): unknown[] {
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml").sort();
  return files.flatMap((f) => parseManifests(readFileSync(join(dir, f), "utf8")));
}

export function parseManifests(text: string): unknown[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0]?.message ?? ""}`);
      return doc.toJS() as unknown;
    })
    .filter((o) => o !== null && o !== undefined);
}

/** Objects as a multi-document YAML stream. YAML 1.1 quoting, so strings like "on" stay strings for kubectl. */
export function toYaml(objects: readonly unknown[]): string {
  return objects.map((o) => stringify(o, { version: "1.1", lineWidth: 0, aliasDuplicateObjects: false })).join("---\n");
}
