// What each command does against the cluster. Parsing and formatting are elsewhere (pure); this is the I/O.
import { readFile, writeFile, access } from "node:fs/promises";
import { resolve } from "node:path";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { V1Deployment, V1EnvVar, V1Pod, V1Secret, V1Toleration } from "@kubernetes/client-node";
import {
  ANNOTATIONS, API_VERSION, FLUX_METADATA, LABELS, releaseName,
  type App, type AppSpec, type Config, type ConfigSpec, type ProcessSpec, type Release,
} from "../crds/v1alpha1.js";
import { CliError, UsageError } from "./errors.js";
import { ConflictError, lineStream, type Session } from "./kube.js";
import {
  checkEnvName, checkProcessType, listFlag, parseAssignments, parseInteger, parseScale, parseVersion, stringFlag, type ParsedCommand,
} from "./parse.js";
import {
  appInfo, appsTable, buildsTable, configData, configTable, keyValueTable, limitsTable, podRows, previewsTable, psTable,
  releaseInfo, releasesOf, releasesTable, render,
} from "./format.js";
import { formatDotenv, parseDotenv } from "./dotenv.js";
import { emptyingRemovals, pendingRemovals, probeFromFlags, setEnv, setLimits, setSecretEnv, setTags, unsetEnv, unsetTags } from "./specs.js";
import { completionScript } from "./completion.js";

/** The outside world of one command: output streams, the clock, a prompt. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  now(): Date;
  /** Asks on the terminal; resolves with the answer, or undefined without a terminal. */
  ask(question: string): Promise<string | undefined>;
  /**
   * Reads secret values, so they stay out of shell history and `ps`: on a terminal, asks for each name without
   * echoing what is typed; otherwise stdin, read to its end, is the value of the one name (a single trailing
   * newline dropped). Throws a UsageError for several names without a terminal.
   */
  readSecrets(names: readonly string[]): Promise<Record<string, string>>;
  cwd: string;
  /** Registers cleanup for Ctrl-C; returns a function that unregisters it. */
  onInterrupt(cleanup: () => Promise<void>): () => void;
}

export type Handler = (cmd: ParsedCommand, io: Io, kube: () => Session) => Promise<number | void>;

/** The run label value marks one-off pods; `ps:restart` leaves them alone. */
const RUN_LABEL = "slipway.dev/run";

export function secretName(app: string): string {
  return `${app}-env`;
}

function name(cmd: ParsedCommand): string {
  return cmd.args[0] as string;
}

function show(cmd: ParsedCommand, io: Io, data: unknown, table: () => string): void {
  io.out(render(data, cmd.global.output, table));
}

// ------------------------------------------------------------------------------------------ writes

/**
 * Applies the whole desired spec (so this manager keeps owning what it set), then removes what stayed behind.
 * Every write carries the resourceVersion of what the spec was computed from: a concurrent change (another
 * `config:set` of another key) makes it fail with a ConflictError instead of being dropped, and the caller
 * reads again and recomputes (see edit()).
 */
async function writeSpec<T extends App | Config>(
  kube: Session, kind: "App" | "Config", objName: string, current: T | undefined, desired: T["spec"],
  extra: { annotations?: Record<string, string> } = {},
): Promise<T> {
  let resourceVersion = current?.metadata.resourceVersion;
  // An object Flux applies is held from Flux in the same write that changes it, so that no Flux reconcile of
  // the revision before Slipway's commit can undo it; Slipway's GitOps lifts the hold once Flux has the commit.
  const hold = current?.metadata.labels?.[FLUX_METADATA.name] ? { [FLUX_METADATA.reconcile]: "disabled", [ANNOTATIONS.fluxHold]: "kubectl-slipway" } : undefined;
  const emptying = emptyingRemovals(desired, current?.spec);
  if (emptying) {
    resourceVersion = (await kube.mergePatch(kind, objName, { metadata: { resourceVersion, annotations: hold }, spec: emptying }))?.metadata.resourceVersion;
  }
  const annotations = hold || extra.annotations ? { ...hold, ...extra.annotations } : undefined;
  const applied = await kube.apply<T>({
    apiVersion: API_VERSION, kind, metadata: { name: objName, annotations, resourceVersion }, spec: desired,
  });
  const leftover = pendingRemovals(desired, current?.spec, applied.spec);
  if (leftover) return (await kube.mergePatch(kind, objName, { metadata: { resourceVersion: applied.metadata.resourceVersion }, spec: leftover })) as T ?? applied;
  return applied;
}

/** Enough for 20 users editing one app at once: each round, one of them wins. */
const EDIT_ATTEMPTS = 30;

/** Reads, edits and writes again until no one else changed the object in between (at most EDIT_ATTEMPTS times). */
async function edit<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof ConflictError) || i >= EDIT_ATTEMPTS) throw err;
      // Jittered and growing, so that the writers that lost do not collide again in step.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(1_000, 20 * 2 ** i)));
    }
  }
}

async function editApp(kube: Session, appName: string, change: (spec: AppSpec, app: App) => AppSpec, annotations?: Record<string, string>): Promise<App> {
  return edit(async () => {
    const app = await kube.app(appName);
    return writeSpec<App>(kube, "App", appName, app, change(structuredClone(app.spec), app), { annotations });
  });
}

async function editConfig(kube: Session, appName: string, change: (spec: ConfigSpec) => ConfigSpec, annotations?: Record<string, string>): Promise<Config> {
  await kube.app(appName);
  return edit(async () => {
    let config = await kube.get("Config", appName);
    // Created empty first, so that concurrent first edits (each its own key) all have a version to build on.
    config ??= await kube.create<Config>({ ...emptyConfig(appName) }).catch(async (err: unknown) => {
      if (err instanceof ConflictError) return kube.get("Config", appName);
      throw err;
    });
    return writeSpec<Config>(kube, "Config", appName, config, change(structuredClone(config?.spec ?? {})), { annotations });
  });
}

function editProcess(spec: AppSpec, type: string, edit: (p: ProcessSpec) => ProcessSpec): AppSpec {
  checkProcessType(type);
  const processes = { ...spec.processes };
  processes[type] = edit({ ...processes[type] });
  return { ...spec, processes };
}

// ------------------------------------------------------------------------------------------ apps

/** The App CRD's own rules for a name (crds/app.yaml), checked before any API call so the message is ours. */
export function checkAppName(appName: string): void {
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(appName) || appName.length > 40) {
    throw new UsageError(`"${appName}" is not a valid app name: app names are lowercase DNS labels of at most 40 characters ` +
      "(lowercase letters, digits and '-', starting with a letter and ending with a letter or digit), because they name " +
      `a Service and a host${/[A-Z_]/.test(appName) ? `; try "${appName.toLowerCase().replace(/_/g, "-")}"` : ""}`);
  }
}

/** An image that is not pinned by digest cannot be deployed (the App goes Stalled, ImageNotPinned); says how to pin it. */
export function unpinnedImageWarning(image: string): string | undefined {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return undefined;
  const repo = image.replace(/:[^/:@]+$/, "");
  return `warning: ${image} is not pinned by digest, so Slipway will not deploy it (the app stays Stalled with reason ` +
    `ImageNotPinned). Name it as ${repo}@sha256:<digest>; the digest of a tag is shown by, for example, ` +
    `\`crane digest ${image}\`, \`skopeo inspect docker://${image}\` or \`docker buildx imagetools inspect ${image}\`.\n`;
}

const appsCreate: Handler = async (cmd, io, k) => {
  const appName = name(cmd);
  checkAppName(appName);
  const kube = k();
  const image = stringFlag(cmd.flags, "image");
  const git = stringFlag(cmd.flags, "git");
  if (!image === !git) throw new UsageError("apps:create needs exactly one of --image IMAGE and --git URL");
  if (image && (cmd.flags.branch !== undefined || cmd.flags.path !== undefined)) throw new UsageError("--branch and --path go with --git, not --image");
  if (await kube.get("App", appName)) throw new CliError(`app "${appName}" already exists in namespace "${kube.namespace}"`);
  const spec: AppSpec = image ? { image } : {
    source: {
      git: git as string,
      ...(stringFlag(cmd.flags, "branch") ? { branch: stringFlag(cmd.flags, "branch") } : {}),
      ...(stringFlag(cmd.flags, "path") ? { path: stringFlag(cmd.flags, "path") } : {}),
    },
  };
  await kube.apply({ apiVersion: API_VERSION, kind: "App", metadata: { name: appName }, spec });
  await kube.apply({ apiVersion: API_VERSION, kind: "Config", metadata: { name: appName }, spec: {} });
  io.out(`Created app ${appName} in namespace ${kube.namespace} from ${image ?? git}.\n`);
  const warning = image ? unpinnedImageWarning(image) : undefined;
  if (warning) io.err(warning);
};

const apps: Handler = async (cmd, io, k) => {
  const list = await k().list("App");
  show(cmd, io, list, () => appsTable(list, io.now()));
};

const info: Handler = async (cmd, io, k) => {
  const kube = k();
  const app = await kube.app(name(cmd));
  const config = await kube.get("Config", name(cmd));
  show(cmd, io, { app, config: config ?? null }, () => appInfo(app, config, io.now()));
};

const appsDestroy: Handler = async (cmd, io, k) => {
  const kube = k();
  const appName = name(cmd);
  await kube.app(appName);
  let confirm = stringFlag(cmd.flags, "confirm");
  if (confirm === undefined) {
    io.err(` !    WARNING: Potentially Destructive Action\n !    This command will destroy the app ${appName} in namespace ${kube.namespace}: its Config, Releases, env Secret and pods.\n`);
    confirm = await io.ask(` !    To proceed, type "${appName}" or re-run this command with --confirm ${appName}\n> `);
    if (confirm === undefined) throw new CliError(`refusing to destroy ${appName} without confirmation: re-run with --confirm ${appName}`);
  }
  if (confirm !== appName) throw new CliError(`"${confirm}" does not match the app name "${appName}": nothing was destroyed`);
  const releases = releasesOf(await kube.list("Release"), appName);
  const runs = await kube.list("Pod", `${LABELS.app}=${appName},${RUN_LABEL}`);
  // Owner references take the Releases, Deployments, Services and the Secret <app>-env with the App (the garbage
  // collector). Developers may not delete Releases themselves.
  await kube.delete("App", appName);
  await kube.delete("Config", appName);
  for (const p of runs) await kube.delete("Pod", p.metadata?.name ?? "", { gracePeriodSeconds: 0 });
  const deadline = Date.now() + 60_000;
  while (await kube.get("App", appName)) {
    if (Date.now() > deadline) throw new CliError(`app ${appName} is being deleted but still there after 60s: does it carry a finalizer of an older Slipway operator that is not running?`);
    await sleep(500);
  }
  io.out(`Destroyed app ${appName} (${releases.length} release(s)).\n`);
};

async function appUrl(kube: Session, appName: string): Promise<string> {
  const app = await kube.app(appName);
  if (!app.status?.url) throw new CliError(`app "${appName}" has no URL yet (no web process, routing disabled, or not reconciled yet)`);
  return app.status.url;
}

const url: Handler = async (cmd, io, k) => {
  io.out(`${await appUrl(k(), name(cmd))}\n`);
};

const open: Handler = async (cmd, io, k) => {
  const target = await appUrl(k(), name(cmd));
  const opener = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
  await new Promise<void>((res, rej) => {
    const child = spawn(opener, [target], { stdio: "ignore", detached: true });
    child.on("error", () => rej(new CliError(`cannot start ${opener} to open ${target}; open it yourself`)));
    child.on("spawn", () => {
      child.unref();
      res();
    });
  });
  io.out(`Opening ${target}\n`);
};

// ------------------------------------------------------------------------------------------ config

async function printConfig(cmd: ParsedCommand, io: Io, config: Config): Promise<void> {
  show(cmd, io, configData(config), () => configTable(config));
}

const config: Handler = async (cmd, io, k) => {
  const kube = k();
  await kube.app(name(cmd));
  const c = (await kube.get("Config", name(cmd))) ?? emptyConfig(name(cmd));
  await printConfig(cmd, io, c);
};

function emptyConfig(appName: string): Config {
  return { apiVersion: API_VERSION, kind: "Config", metadata: { name: appName }, spec: {} };
}

const configSet: Handler = async (cmd, io, k) => {
  const plain = parseAssignments(cmd.args.slice(1), { env: true });
  const secretWords = listFlag(cmd.flags, "secret");
  // `--secret KEY` without a value: the value is read from stdin or a prompt, never from the command line.
  const asked = secretWords.filter((w) => !w.includes("="));
  for (const key of asked) checkEnvName(key);
  const secret = parseAssignments(secretWords.filter((w) => w.includes("=")), { env: true });
  if (Object.keys(plain).length + Object.keys(secret).length + asked.length === 0) {
    throw new UsageError(`config:set needs KEY=VALUE or --secret KEY[=VALUE]: ${cmd.spec.usage}`);
  }
  const both = Object.keys(plain).filter((key) => key in secret || asked.includes(key));
  if (both.length) throw new UsageError(`${both.join(", ")} given both as plain and as --secret`);
  const twice = asked.filter((key, i) => key in secret || asked.indexOf(key) !== i);
  if (twice.length) throw new UsageError(`--secret ${twice.join(", ")} given more than once`);
  if (asked.length) {
    const read = await io.readSecrets(asked);
    const empty = asked.filter((key) => !read[key]);
    if (empty.length) throw new UsageError(`no value given for ${empty.join(", ")}: pass it on stdin or type it at the prompt`);
    Object.assign(secret, read);
  }
  const kube = k();
  const appName = name(cmd);
  const written = Object.keys(secret).length ? await writeSecretValues(kube, appName, secret) : undefined;
  const c = await editConfig(kube, appName, (spec) => setSecretEnv(setEnv(spec, plain), secretName(appName), Object.keys(secret)), written);
  io.err(`Set ${[...Object.keys(plain), ...Object.keys(secret).map((s) => `${s} (secret)`)].join(", ")} on ${appName}.\n`);
  await printConfig(cmd, io, c);
};

/**
 * Writes secret values into the Secret `<app>-env`; they never enter the Config (nor Git). A merge patch, not an
 * apply: developers may write Secrets but not read them, and an apply of one key would drop the keys set before.
 * Returns the annotation that tells the operator, which does not watch Secrets, to read it again: the Config
 * written with it changes even when only a value did.
 */
async function writeSecretValues(kube: Session, appName: string, values: Record<string, string>): Promise<Record<string, string>> {
  const app = await kube.app(appName);
  const data = Object.fromEntries(Object.entries(values).map(([key, v]) => [key, Buffer.from(v, "utf8").toString("base64")]));
  const written = (await kube.mergePatch("Secret", secretName(appName), { data })) ?? await kube.create<V1Secret>({
    apiVersion: "v1", kind: "Secret",
    metadata: {
      name: secretName(appName), labels: { [LABELS.app]: appName },
      // Deleted with its App by the garbage collector.
      ownerReferences: [{ apiVersion: API_VERSION, kind: "App", name: appName, uid: app.metadata.uid ?? "" }],
    },
    type: "Opaque", data,
  });
  return { [ANNOTATIONS.secretVersion]: written.metadata?.resourceVersion ?? new Date().toISOString() };
}

const configUnset: Handler = async (cmd, io, k) => {
  const keys = cmd.args.slice(1);
  const kube = k();
  const appName = name(cmd);
  const before = await kube.get("Config", appName);
  const c = await editConfig(kube, appName, (spec) => unsetEnv(spec, keys));
  const secretKeys = keys.filter((key) => before?.spec.secretEnv?.[key]?.secretName === secretName(appName));
  if (secretKeys.length) {
    await kube.mergePatch("Secret", secretName(appName), { data: Object.fromEntries(secretKeys.map((key) => [key, null])) });
  }
  io.err(`Unset ${keys.join(", ")} on ${appName}.\n`);
  await printConfig(cmd, io, c);
};

const configPush: Handler = async (cmd, io, k) => {
  const file = resolve(io.cwd, stringFlag(cmd.flags, "path") ?? ".env");
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read ${file}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  });
  const values = parseDotenv(text, file);
  if (Object.keys(values).length === 0) throw new CliError(`${file} sets nothing`);
  // --secret KEY,KEY2: those values go to the Secret <app>-env, like config:set --secret; the rest is plain env.
  const secretKeys = [...new Set(listFlag(cmd.flags, "secret").flatMap((w) => w.split(",")).map((w) => w.trim()).filter(Boolean))];
  const absent = secretKeys.filter((key) => !(key in values));
  if (absent.length) throw new UsageError(`--secret ${absent.join(", ")}: not set in ${file}`);
  const secret = Object.fromEntries(secretKeys.map((key) => [key, values[key] ?? ""]));
  const plain = Object.fromEntries(Object.entries(values).filter(([key]) => !(key in secret)));
  const kube = k();
  const appName = name(cmd);
  const written = secretKeys.length ? await writeSecretValues(kube, appName, secret) : undefined;
  const c = await editConfig(kube, appName, (spec) => setSecretEnv(setEnv(spec, plain), secretName(appName), secretKeys), written);
  io.err(`Set ${[...Object.keys(plain), ...secretKeys.map((key) => `${key} (secret)`)].join(", ")} on ${appName} from ${file}.\n`);
  await printConfig(cmd, io, c);
};

const configPull: Handler = async (cmd, io, k) => {
  const kube = k();
  await kube.app(name(cmd));
  const c = (await kube.get("Config", name(cmd))) ?? emptyConfig(name(cmd));
  const file = resolve(io.cwd, stringFlag(cmd.flags, "path") ?? ".env");
  const exists = await access(file).then(() => true, () => false);
  if (exists && cmd.flags.overwrite !== true) throw new CliError(`${file} exists: pass --overwrite to replace it`);
  await writeFile(file, formatDotenv(c.spec.env ?? {}), { mode: 0o600 });
  const secrets = Object.keys(c.spec.secretEnv ?? {});
  io.err(`Wrote ${Object.keys(c.spec.env ?? {}).length} value(s) to ${file}${secrets.length ? `; secret values stay in the cluster: ${secrets.join(", ")}` : ""}.\n`);
};

// ------------------------------------------------------------------------------------------ releases

async function releasesOfApp(kube: Session, appName: string): Promise<{ app: App; releases: Release[] }> {
  const app = await kube.app(appName);
  return { app, releases: releasesOf(await kube.list("Release"), appName) };
}

/** The live release: what the App's status says, else the newest. */
function liveVersion(app: App, releases: Release[]): number | undefined {
  const current = app.status?.currentRelease?.match(/^v(\d+)$/);
  if (current) return Number(current[1]);
  return releases[0]?.spec.version;
}

const releases: Handler = async (cmd, io, k) => {
  const { app, releases: list } = await releasesOfApp(k(), name(cmd));
  const live = liveVersion(app, list);
  show(cmd, io, list, () => releasesTable(list, live === undefined ? undefined : `v${live}`, io.now()));
};

const releasesInfo: Handler = async (cmd, io, k) => {
  const kube = k();
  const version = parseVersion(cmd.args[1] as string);
  await kube.app(name(cmd));
  const r = await kube.get("Release", releaseName(name(cmd), version));
  if (!r) throw new CliError(`release v${version} of app "${name(cmd)}" not found in namespace "${kube.namespace}"`);
  show(cmd, io, r, () => releaseInfo(r, io.now()));
};

const rollback: Handler = async (cmd, io, k) => {
  const kube = k();
  const appName = name(cmd);
  const { app, releases: list } = await releasesOfApp(kube, appName);
  const live = liveVersion(app, list);
  if (live === undefined) throw new CliError(`app "${appName}" has no releases to roll back`);
  let target: number;
  if (cmd.args[1] !== undefined) {
    target = parseVersion(cmd.args[1]);
    if (!list.some((r) => r.spec.version === target)) throw new CliError(`release v${target} of app "${appName}" not found in namespace "${kube.namespace}"`);
    if (target === live) throw new CliError(`v${target} is already the live release of ${appName}`);
  } else {
    const before = list.find((r) => r.spec.version < live);
    if (!before) throw new CliError(`app "${appName}" has no release before v${live} to roll back to`);
    target = before.spec.version;
  }
  await editApp(kube, appName, (spec) => spec, { [ANNOTATIONS.rollback]: `v${target}` });
  io.out(`Rolling back ${appName} to v${target}: the operator cuts a new release with v${target}'s build and config (see kubectl slipway releases ${appName}).\n`);
};

// ------------------------------------------------------------------------------------------ processes

/** The process types an App has: declared in its spec, or rolled out (from its release's Procfile); web by default. */
export function processTypes(app: App): string[] {
  const types = new Set([...Object.keys(app.spec.processes ?? {}), ...Object.keys(app.status?.processes ?? {})]);
  if (!types.size) types.add("web");
  return [...types].sort();
}

const scale: Handler = async (cmd, io, k) => {
  const counts = parseScale(cmd.args.slice(1));
  const appName = name(cmd);
  await editApp(k(), appName, (spec, app) => {
    const known = processTypes(app);
    const unknown = Object.keys(counts).filter((type) => !known.includes(type));
    if (unknown.length) {
      throw new CliError(`app ${appName} has no process type ${unknown.map((u) => `"${u}"`).join(", ")}; its process types are: ${known.join(", ")}`);
    }
    let s = spec;
    for (const [type, replicas] of Object.entries(counts)) s = editProcess(s, type, (p) => ({ ...p, replicas }));
    return s;
  });
  io.out(`Scaled ${appName}: ${Object.entries(counts).map(([t, n]) => `${t}=${n}`).join(" ")}\n`);
};

const ps: Handler = async (cmd, io, k) => {
  const kube = k();
  await kube.app(name(cmd));
  const pods = await kube.list("Pod", `${LABELS.app}=${name(cmd)}`);
  const rows = podRows(pods, io.now());
  show(cmd, io, rows, () => psTable(rows));
};

const psRestart: Handler = async (cmd, io, k) => {
  const kube = k();
  const appName = name(cmd);
  await kube.app(appName);
  const type = cmd.args[1] === undefined ? undefined : checkProcessType(cmd.args[1]);
  const pods = await kube.list("Pod", `${LABELS.app}=${appName},!${RUN_LABEL}${type ? `,${LABELS.process}=${type}` : ""}`);
  for (const p of pods) await kube.delete("Pod", p.metadata?.name ?? "");
  io.out(`Restarted ${pods.length} pod(s) of ${appName}${type ? ` (${type})` : ""}.\n`);
};

const limitsSet: Handler = async (cmd, io, k) => {
  const c = await editConfig(k(), name(cmd), (spec) => setLimits(spec, cmd.args.slice(1), listFlag(cmd.flags, "cpu")));
  io.out(`${limitsTable(c)}\n`);
};

const limits: Handler = async (cmd, io, k) => {
  const kube = k();
  await kube.app(name(cmd));
  const c = (await kube.get("Config", name(cmd))) ?? emptyConfig(name(cmd));
  show(cmd, io, c.spec.resources ?? {}, () => limitsTable(c));
};

const autoscaleSet: Handler = async (cmd, io, k) => {
  const min = parseInteger("min", cmd.flags.min, 1);
  const max = parseInteger("max", cmd.flags.max, 1);
  const cpuPercent = parseInteger("cpu-percent", cmd.flags["cpu-percent"], 1);
  if (min === undefined || max === undefined) throw new UsageError(`autoscale:set needs --min and --max: ${cmd.spec.usage}`);
  if (max < min) throw new UsageError(`--max (${max}) must be at least --min (${min})`);
  const type = cmd.args[1] as string;
  await editApp(k(), name(cmd), (spec) => editProcess(spec, type, (p) => ({ ...p, autoscale: { min, max, ...(cpuPercent ? { cpuPercent } : {}) } })));
  io.out(`Autoscaling ${name(cmd)} ${type} between ${min} and ${max} replicas at ${cpuPercent ?? 80}% CPU.\n`);
};

const autoscaleUnset: Handler = async (cmd, io, k) => {
  const type = cmd.args[1] as string;
  await editApp(k(), name(cmd), (spec) => editProcess(spec, type, (p) => {
    const rest = { ...p };
    delete rest.autoscale;
    return rest;
  }));
  io.out(`Stopped autoscaling ${name(cmd)} ${type}.\n`);
};

const healthchecksSet: Handler = async (cmd, io, k) => {
  const kind = cmd.args[1] as string;
  if (kind !== "readiness" && kind !== "liveness") throw new UsageError(`health check kind must be readiness or liveness, not "${kind}"`);
  const type = cmd.args[2] as string;
  const probe = probeFromFlags(cmd.flags);
  await editApp(k(), name(cmd), (spec) => editProcess(spec, type, (p) => ({ ...p, [kind]: probe })));
  io.out(`Set ${kind} check of ${name(cmd)} ${type}: GET ${probe.path ?? "/"}${probe.port ? ` on port ${probe.port}` : ""}.\n`);
};

// ------------------------------------------------------------------------------------------ routing

const domains: Handler = async (cmd, io, k) => {
  const app = await k().app(name(cmd));
  const list = app.spec.routing?.domains ?? [];
  show(cmd, io, list, () => (list.length ? `=== ${name(cmd)} Domains\n${list.join("\n")}` : "No domains."));
};

const domainsAdd: Handler = async (cmd, io, k) => {
  const host = (cmd.args[1] as string).toLowerCase();
  await editApp(k(), name(cmd), (spec) => {
    const list = spec.routing?.domains ?? [];
    if (list.includes(host)) throw new CliError(`${host} is already a domain of ${name(cmd)}`);
    return { ...spec, routing: { ...spec.routing, domains: [...list, host] } };
  });
  io.out(`Added ${host} to ${name(cmd)}.\n`);
};

const domainsRemove: Handler = async (cmd, io, k) => {
  const host = (cmd.args[1] as string).toLowerCase();
  await editApp(k(), name(cmd), (spec) => {
    const list = spec.routing?.domains ?? [];
    if (!list.includes(host)) throw new CliError(`${host} is not a domain of ${name(cmd)}`);
    return { ...spec, routing: { ...spec.routing, domains: list.filter((d) => d !== host) } };
  });
  io.out(`Removed ${host} from ${name(cmd)}.\n`);
};

const tlsSet: Handler = async (cmd, io, k) => {
  const secret = stringFlag(cmd.flags, "secret");
  if (!secret) throw new UsageError(`tls:set needs --secret SECRET: ${cmd.spec.usage}`);
  await editApp(k(), name(cmd), (spec) => ({ ...spec, routing: { ...spec.routing, tls: { secretName: secret } } }));
  io.out(`${name(cmd)} serves TLS with the certificate in Secret ${secret}.\n`);
};

const tlsUnset: Handler = async (cmd, io, k) => {
  await editApp(k(), name(cmd), (spec) => {
    const routing = { ...spec.routing };
    delete routing.tls;
    return { ...spec, routing };
  });
  io.out(`${name(cmd)} no longer serves TLS.\n`);
};

const tags: Handler = async (cmd, io, k) => {
  const kube = k();
  await kube.app(name(cmd));
  const c = (await kube.get("Config", name(cmd))) ?? emptyConfig(name(cmd));
  const sel = c.spec.nodeSelector ?? {};
  show(cmd, io, sel, () => keyValueTable(["KEY", "VALUE"], sel, "No tags."));
};

const tagsSet: Handler = async (cmd, io, k) => {
  const c = await editConfig(k(), name(cmd), (spec) => setTags(spec, cmd.args.slice(1)));
  io.out(`${keyValueTable(["KEY", "VALUE"], c.spec.nodeSelector ?? {}, "No tags.")}\n`);
};

const tagsUnset: Handler = async (cmd, io, k) => {
  const c = await editConfig(k(), name(cmd), (spec) => unsetTags(spec, cmd.args.slice(1)));
  io.out(`${keyValueTable(["KEY", "VALUE"], c.spec.nodeSelector ?? {}, "No tags.")}\n`);
};

// ------------------------------------------------------------------------------------------ builds, previews

const builds: Handler = async (cmd, io, k) => {
  const app = await k().app(name(cmd));
  show(cmd, io, app.status?.latestBuild ?? null, () => buildsTable(app));
};

const previews: Handler = async (cmd, io, k) => {
  const kube = k();
  await kube.app(name(cmd));
  const list = await kube.list("App", `${LABELS.preview}=${name(cmd)}`);
  show(cmd, io, list, () => previewsTable(list, io.now()));
};

// ------------------------------------------------------------------------------------------ logs

function podType(pod: V1Pod): string {
  const labels = pod.metadata?.labels ?? {};
  return labels[LABELS.process] ?? (labels[RUN_LABEL] ? "run" : "pod");
}

/** A pod whose container has started (or ran): one whose log can be read. */
function hasLog(pod: V1Pod): boolean {
  return pod.status?.phase !== "Pending" && pod.status?.phase !== undefined && !pod.metadata?.deletionTimestamp;
}

const logs: Handler = async (cmd, io, k) => {
  const kube = k();
  const appName = name(cmd);
  await kube.app(appName);
  const type = stringFlag(cmd.flags, "type");
  if (type) checkProcessType(type);
  const tailLines = parseInteger("tail", cmd.flags.tail, 0);
  const follow = cmd.flags.follow === true;
  const selector = `${LABELS.app}=${appName}${type ? `,${LABELS.process}=${type}` : ""}`;
  const pods = (await kube.list("Pod", selector))
    .filter(hasLog)
    .sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
  const what = `${appName}${type ? ` (${type})` : ""}`;
  if (pods.length === 0 && !follow) {
    io.err(`No running pods of ${what}.\n`);
    return;
  }
  const controllers: AbortController[] = [];
  const streamed = new Set<string>();
  let stopped = false;
  let interrupted: () => void = () => undefined;
  const untilInterrupted = new Promise<void>((resolve) => (interrupted = resolve));
  const stop = io.onInterrupt(async () => {
    stopped = true;
    controllers.forEach((c) => c.abort());
    interrupted();
  });
  /** Streams one pod's log, each line prefixed TYPE/POD; resolves when the stream ends (the pod stopped). */
  const stream = async (pod: V1Pod, opts: { tailLines?: number }): Promise<void> => {
    const podName = pod.metadata?.name ?? "";
    if (streamed.has(podName)) return;
    streamed.add(podName);
    const prefix = `${podType(pod)}/${podName}`;
    const container = pod.spec?.containers[0]?.name ?? "";
    const lines = lineStream((line) => io.out(`${prefix}: ${line}\n`));
    const ended = new Promise<void>((res) => {
      lines.on("end", res);
      lines.on("close", res);
      lines.on("error", res);
    });
    controllers.push(await kube.log(podName, container, lines, { follow, ...(opts.tailLines !== undefined ? { tailLines: opts.tailLines } : {}) }));
    await ended;
  };
  try {
    const first = Promise.all(pods.map((pod) => stream(pod, { tailLines })));
    if (!follow) {
      await first;
      return;
    }
    // Following, as `heroku logs --tail` does: pods that start later (a scale, a restart, a new release) are
    // streamed too, from their first line, until Ctrl-C.
    if (pods.length === 0) io.err(`No running pods of ${what} yet; waiting for them (Ctrl-C to stop).\n`);
    const watchNewPods = async (): Promise<void> => {
      if (stopped) return;
      const watch = await kube.watchPods(selector, (_type, pod) => {
        // stream() skips a pod it streams already.
        if (hasLog(pod)) {
          stream(pod, {}).catch((err: unknown) => io.err(`cannot stream the log of pod ${pod.metadata?.name ?? ""}: ${err instanceof Error ? err.message : String(err)}\n`));
        }
      }, () => {
        // The API server ends watches now and then: watch again, unless the user stopped.
        if (!stopped) setTimeout(() => void watchNewPods().catch(() => undefined), 1000);
      });
      controllers.push(watch);
    };
    await watchNewPods();
    // A pod's stream that cannot start fails the command, as without -f; the ones that end leave it running.
    await Promise.race([first.then(() => untilInterrupted), untilInterrupted]);
  } finally {
    stop();
  }
};

// ------------------------------------------------------------------------------------------ run

/**
 * The Pod `run` starts: the live release's image and env, the command exactly as given, never restarted; placed
 * where the app's processes run (`placement`, the nodeSelector and tolerations of its Deployment, which carry the
 * platform's placement and the Config's tags), else by the release's tags alone.
 */
export function oneOffPod(appName: string, release: Release, command: string[], id: string, placement: PodPlacement = {}): {
  apiVersion: "v1"; kind: "Pod"; metadata: { name: string; labels: Record<string, string> }; spec: Record<string, unknown>;
} {
  const env: V1EnvVar[] = [
    ...Object.entries(release.spec.config.env ?? {}).map(([n, value]) => ({ name: n, value })),
    ...Object.entries(release.spec.config.secretEnv ?? {}).map(([n, ref]) => ({
      name: n, valueFrom: { secretKeyRef: { name: ref.secretName, key: ref.key } },
    })),
  ].sort((a, b) => a.name.localeCompare(b.name));
  const nodeSelector = { ...release.spec.config.nodeSelector, ...placement.nodeSelector };
  const tolerations = placement.tolerations ?? [];
  return {
    apiVersion: "v1", kind: "Pod",
    metadata: {
      name: `${appName}-run-${id}`,
      labels: { [LABELS.app]: appName, [RUN_LABEL]: id, [LABELS.release]: `v${release.spec.version}` },
    },
    spec: {
      restartPolicy: "Never",
      ...(Object.keys(nodeSelector).length ? { nodeSelector } : {}),
      ...(tolerations.length ? { tolerations } : {}),
      containers: [{ name: "run", image: release.spec.build.image, command, env }],
    },
  };
}

export interface PodPlacement {
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
}

/**
 * The placement of the app's own pods, from its Deployments' pod templates (the web one first): the operator
 * renders the platform's placement there. None when the app has no Deployment yet; for a user who may not read
 * Deployments (roles from before `run` read them), none and a warning to print once the pod is created.
 */
async function appPlacement(kube: Session, appName: string): Promise<{ placement: PodPlacement; warning?: string }> {
  let deployments: V1Deployment[];
  try {
    deployments = await kube.list("Deployment", `${LABELS.app}=${appName}`);
  } catch (e) {
    return { placement: {}, warning: `warning: the one-off pod is placed by the release's tags alone: ${(e as Error).message}\n` };
  }
  const process = (d: V1Deployment) => d.metadata?.labels?.[LABELS.process] ?? "";
  const first = deployments.sort((a, b) => Number(process(b) === "web") - Number(process(a) === "web") || (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""))[0];
  const spec = first?.spec?.template.spec;
  return { placement: { nodeSelector: spec?.nodeSelector, tolerations: spec?.tolerations } };
}

function terminated(pod: V1Pod | undefined): { exitCode: number } | undefined {
  const t = pod?.status?.containerStatuses?.[0]?.state?.terminated;
  if (t) return { exitCode: t.exitCode };
  if (pod?.status?.phase === "Succeeded") return { exitCode: 0 };
  if (pod?.status?.phase === "Failed") return { exitCode: 1 };
  return undefined;
}

const FATAL_WAITING = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"];

const run: Handler = async (cmd, io, k) => {
  const kube = k();
  const appName = name(cmd);
  const timeoutSeconds = parseInteger("timeout", cmd.flags.timeout, 1) ?? 300;
  const { app, releases: list } = await releasesOfApp(kube, appName);
  const live = liveVersion(app, list);
  const release = list.find((r) => r.spec.version === live);
  if (!release) throw new CliError(`app "${appName}" has no release yet: nothing to run`);
  const id = randomBytes(3).toString("hex");
  const { placement, warning } = await appPlacement(kube, appName);
  const pod = oneOffPod(appName, release, cmd.rest, id, placement);
  const podName = pod.metadata.name;
  let logStream: AbortController | undefined;
  let interrupted = false;
  let creating: Promise<unknown> | undefined;
  let cleaning: Promise<void> | undefined;
  // Runs once, whoever asks first (Ctrl-C or the end of the command); both wait for the same deletion.
  const cleanup = () => (cleaning ??= (async () => {
    logStream?.abort();
    // Ctrl-C can come while the create is in flight: the pod exists once it succeeds, so wait for it.
    if (!(await creating?.then(() => true, () => false))) return;
    // Never hide the command's own result or error behind a failed cleanup; say what was left behind.
    await kube.delete("Pod", podName, { gracePeriodSeconds: 0 }).catch((e: Error) => io.err(`warning: one-off pod ${podName} was not deleted: ${e.message}\n`));
  })());
  const unregister = io.onInterrupt(async () => {
    interrupted = true;
    await cleanup();
  });
  try {
    creating = kube.create<V1Pod>(pod);
    await creating;
    // Said once the pod exists: a user who may not create pods is told only that.
    if (warning) io.err(warning);
    // Wait until the container runs (or already ended), or fails to start.
    const deadline = Date.now() + timeoutSeconds * 1000;
    let current: V1Pod | undefined;
    for (;;) {
      if (interrupted) return 130;
      current = await kube.get("Pod", podName);
      if (!current) throw new CliError(`one-off pod ${podName} disappeared before it started`);
      const waiting = current.status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting?.reason && FATAL_WAITING.includes(waiting.reason)) {
        throw new CliError(`one-off pod ${podName} cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`);
      }
      if (current.status?.phase === "Running" || terminated(current)) break;
      if (Date.now() > deadline) {
        const why = current.status?.conditions?.find((c) => c.status === "False" && c.message)?.message ?? current.status?.phase ?? "Pending";
        throw new CliError(`one-off pod ${podName} did not start within ${timeoutSeconds}s: ${why}`);
      }
      await sleep(250);
    }
    // Stream the command's output while it runs; the exit code is the pod's.
    let logEnded = false;
    const out = lineStream((line) => io.out(`${line}\n`));
    const ended = new Promise<void>((res) => {
      out.on("end", res);
      out.on("close", res);
    }).then(() => {
      logEnded = true;
    });
    logStream = await kube.log(podName, "run", out, { follow: true });
    let result: { exitCode: number } | undefined;
    for (;;) {
      if (interrupted) return 130;
      result = terminated(await kube.get("Pod", podName));
      if (result) break;
      if (logEnded) {
        await sleep(250);
        continue;
      }
      await Promise.race([ended, sleep(250)]);
    }
    // A kubelet closes the stream when the container exits; give the last lines a moment either way.
    await Promise.race([ended, sleep(1000)]);
    logStream.abort();
    return result.exitCode;
  } finally {
    unregister();
    // After Ctrl-C this waits for the deletion the interrupt started: returning sooner exits the process before it is sent.
    await cleanup();
  }
};

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ------------------------------------------------------------------------------------------ completion

const completion: Handler = async (cmd, io) => {
  const shell = cmd.args[0] as string;
  if (shell !== "bash" && shell !== "zsh") throw new UsageError(`completion supports bash and zsh, not "${shell}"`);
  io.out(completionScript(shell));
};

export const HANDLERS: Record<string, Handler> = {
  "apps:create": appsCreate, apps, info, "apps:destroy": appsDestroy, url, open,
  config, "config:set": configSet, "config:unset": configUnset, "config:push": configPush, "config:pull": configPull,
  releases, "releases:info": releasesInfo, rollback,
  scale, ps, "ps:restart": psRestart,
  "limits:set": limitsSet, limits, "autoscale:set": autoscaleSet, "autoscale:unset": autoscaleUnset, "healthchecks:set": healthchecksSet,
  domains, "domains:add": domainsAdd, "domains:remove": domainsRemove, "tls:set": tlsSet, "tls:unset": tlsUnset,
  tags, "tags:set": tagsSet, "tags:unset": tagsUnset,
  builds, previews, logs, run, completion,
};
