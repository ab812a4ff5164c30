// Output: human tables, or the data as JSON/YAML with -o. Pure functions of the objects and the time.
import { stringify } from "yaml";
import type { V1Pod } from "@kubernetes/client-node";
import { LABELS, type App, type Config, type Release } from "../crds/v1alpha1.js";
import type { OutputFormat } from "./parse.js";

/** Renders `data` as JSON or YAML, or calls `table` for the human form. Always ends with a newline. */
export function render(data: unknown, output: OutputFormat, table: () => string): string {
  const text = output === "json" ? JSON.stringify(data, null, 2) : output === "yaml" ? stringify(data).trimEnd() : table();
  return text.endsWith("\n") || text === "" ? text : `${text}\n`;
}

/** Left-aligned columns separated by three spaces, header in capitals, like kubectl. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("   ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** "5s", "3m", "2h", "4d" since `then`, as kubectl prints ages. */
export function age(then: string | Date | undefined, now: Date): string {
  if (!then) return "";
  const seconds = Math.max(0, Math.floor((now.getTime() - new Date(then).getTime()) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

export function appSource(app: App): string {
  if (app.spec.image) return app.spec.image;
  if (app.spec.source) return `${app.spec.source.git}#${app.spec.source.branch ?? "main"}`;
  return "";
}

function ready(conds: { type: string; status: string }[] | undefined): string {
  return conds?.find((c) => c.type === "Ready")?.status ?? "Unknown";
}

export function appsTable(apps: App[], now: Date): string {
  if (apps.length === 0) return "No apps in this namespace.";
  const rows = [...apps].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map((a) => [
    a.metadata.name, appSource(a), a.status?.currentRelease ?? "", ready(a.status?.conditions), a.status?.url ?? "", age(a.metadata.creationTimestamp, now),
  ]);
  return table(["NAME", "SOURCE", "RELEASE", "READY", "URL", "AGE"], rows);
}

export function appInfo(app: App, config: Config | undefined, now: Date): string {
  const s = app.spec;
  const lines = [
    `=== ${app.metadata.name}`,
    `Source:    ${appSource(app)}`,
    `Release:   ${app.status?.currentRelease ?? "(none yet)"}`,
    `Ready:     ${ready(app.status?.conditions)}${conditionMessage(app)}`,
    `URL:       ${app.status?.url ?? ""}`,
    `Created:   ${age(app.metadata.creationTimestamp, now)} ago`,
  ];
  if (s.routing?.domains?.length) lines.push(`Domains:   ${s.routing.domains.join(", ")}`);
  if (s.routing?.tls) lines.push(`TLS:       secret ${s.routing.tls.secretName}`);
  const types = Object.keys({ ...s.processes, ...app.status?.processes }).sort();
  if (types.length) {
    lines.push("", "=== Processes");
    lines.push(table(["TYPE", "REPLICAS", "AVAILABLE", "AUTOSCALE"], types.map((t) => {
      const p = s.processes?.[t];
      const st = app.status?.processes?.[t];
      return [t, String(p?.replicas ?? st?.desired ?? ""), st ? `${st.available}/${st.desired}` : "",
        p?.autoscale ? `${p.autoscale.min}-${p.autoscale.max} at ${p.autoscale.cpuPercent ?? 80}% cpu` : ""];
    })));
  }
  if (config) {
    const env = Object.keys(config.spec.env ?? {}).length;
    const secret = Object.keys(config.spec.secretEnv ?? {}).length;
    lines.push("", `=== Config: ${env} env value(s), ${secret} secret reference(s) (kubectl slipway config ${app.metadata.name})`);
  }
  return lines.join("\n");
}

function conditionMessage(app: App): string {
  const c = app.status?.conditions?.find((x) => x.type === "Ready");
  return c && c.status !== "True" && c.message ? ` (${c.message})` : "";
}

/** What `config` shows: values of plain env, only references for secret env. */
export function configData(config: Config): { env: Record<string, string>; secretEnv: Record<string, { secretName: string; key: string }> } {
  return { env: { ...config.spec.env }, secretEnv: { ...config.spec.secretEnv } };
}

export function configTable(config: Config): string {
  const { env, secretEnv } = configData(config);
  const rows: string[][] = [
    ...Object.entries(env).map(([k, v]) => [k, v]),
    ...Object.entries(secretEnv).map(([k, r]) => [k, `(secret ${r.secretName}/${r.key})`]),
  ].sort((a, b) => (a[0] ?? "").localeCompare(b[0] ?? ""));
  if (rows.length === 0) return `=== ${config.metadata.name} Config\nNo config set.`;
  return `=== ${config.metadata.name} Config\n${table(["KEY", "VALUE"], rows)}`;
}

export function releasesOf(releases: Release[], app: string): Release[] {
  return releases.filter((r) => r.spec.app === app).sort((a, b) => b.spec.version - a.spec.version);
}

export function releasesTable(releases: Release[], live: string | undefined, now: Date): string {
  if (releases.length === 0) return "No releases yet.";
  return table(["VERSION", "CAUSE", "BY", "CREATED", "COMMIT"], releases.map((r) => [
    `v${r.spec.version}${`v${r.spec.version}` === live ? " (live)" : ""}`, r.spec.cause, r.spec.requestedBy ?? "",
    age(r.metadata.creationTimestamp, now), (r.status?.commit ?? "").slice(0, 7),
  ]));
}

export function releaseInfo(r: Release, now: Date): string {
  const lines = [
    `=== ${r.spec.app} v${r.spec.version}`,
    `Cause:     ${r.spec.cause}`,
    `By:        ${r.spec.requestedBy ?? ""}`,
    `Created:   ${age(r.metadata.creationTimestamp, now)} ago (${String(r.metadata.creationTimestamp ?? "")})`,
    `Image:     ${r.spec.build.image}`,
  ];
  if (r.spec.build.sourceCommit) lines.push(`Source:    ${r.spec.build.sourceCommit}`);
  if (r.spec.rollbackOf) lines.push(`Rollback:  of v${r.spec.rollbackOf}`);
  if (r.status?.commit) lines.push(`Commit:    ${r.status.commit}`);
  const env = Object.keys(r.spec.config.env ?? {}).sort();
  const secrets = Object.keys(r.spec.config.secretEnv ?? {}).sort();
  if (env.length) lines.push(`Env:       ${env.join(", ")}`);
  if (secrets.length) lines.push(`Secrets:   ${secrets.join(", ")}`);
  return lines.join("\n");
}

export interface PodRow {
  type: string;
  name: string;
  state: string;
  ready: string;
  release: string;
  age: string;
}

/** The state a user cares about: a waiting/terminated reason if there is one, else the phase. */
export function podState(pod: V1Pod): string {
  if (pod.metadata?.deletionTimestamp) return "Terminating";
  const c = pod.status?.containerStatuses?.[0];
  if (c?.state?.waiting?.reason) return c.state.waiting.reason;
  if (c?.state?.terminated) return `${c.state.terminated.reason ?? "Terminated"} (exit ${c.state.terminated.exitCode})`;
  return pod.status?.phase ?? "Unknown";
}

export function podRows(pods: V1Pod[], now: Date): PodRow[] {
  return pods.map((p) => {
    const statuses = p.status?.containerStatuses ?? [];
    const labels = p.metadata?.labels ?? {};
    return {
      type: labels[LABELS.process] ?? (labels["slipway.dev/run"] ? "run" : ""),
      name: p.metadata?.name ?? "",
      state: podState(p),
      ready: `${statuses.filter((s) => s.ready).length}/${p.spec?.containers.length ?? 0}`,
      release: labels[LABELS.release] ?? "",
      age: age(p.metadata?.creationTimestamp, now),
    };
  }).sort((a, b) => a.type.localeCompare(b.type) || a.name.localeCompare(b.name));
}

export function psTable(rows: PodRow[]): string {
  if (rows.length === 0) return "No pods.";
  const out: string[] = [];
  for (const type of [...new Set(rows.map((r) => r.type))]) {
    const of = rows.filter((r) => r.type === type);
    out.push(`=== ${type} (${of.filter((r) => r.ready.split("/")[0] === r.ready.split("/")[1] && r.state === "Running").length}/${of.length} running)`);
    out.push(table(["POD", "STATE", "READY", "RELEASE", "AGE"], of.map((r) => [r.name, r.state, r.ready, r.release, r.age])));
  }
  return out.join("\n");
}

export function limitsTable(config: Config): string {
  const res = config.spec.resources ?? {};
  const types = Object.keys(res).sort();
  if (types.length === 0) return "No limits set.";
  return table(["TYPE", "CPU", "MEMORY"], types.map((t) => [t, res[t]?.limits?.cpu ?? "", res[t]?.limits?.memory ?? ""]));
}

export function keyValueTable(headers: [string, string], data: Record<string, string>, empty: string): string {
  const keys = Object.keys(data).sort();
  if (keys.length === 0) return empty;
  return table(headers, keys.map((k) => [k, data[k] ?? ""]));
}

export function buildsTable(app: App): string {
  const b = app.status?.latestBuild;
  if (!b) return app.spec.image ? `No builds: ${app.metadata.name} deploys the image ${app.spec.image}.` : "No builds yet.";
  return table(["PIPELINERUN", "COMMIT", "PHASE", "IMAGE", "MESSAGE"], [[b.pipelineRun, b.commit.slice(0, 7), b.phase, b.image ?? "", b.message ?? ""]]);
}

export function previewsTable(previews: App[], now: Date): string {
  if (previews.length === 0) return "No previews.";
  return table(["NAME", "SOURCE", "RELEASE", "READY", "URL", "AGE"], previews.map((a) => [
    a.metadata.name, appSource(a), a.status?.currentRelease ?? "", ready(a.status?.conditions), a.status?.url ?? "", age(a.metadata.creationTimestamp, now),
  ]));
}
