// The command table: names (Deis Workflow's), arguments, flags and help. Parsing, --help and completion read it.

export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  /** May be given several times; the values are collected in order. */
  multiple?: boolean;
  valueName?: string;
  description: string;
}

export interface PositionalSpec {
  name: string;
  optional?: boolean;
  variadic?: boolean;
}

export interface CommandSpec {
  name: string;
  aliases?: string[];
  summary: string;
  usage: string;
  positionals: PositionalSpec[];
  flags: Record<string, FlagSpec>;
  /** Prints objects, so accepts -o json|yaml. */
  read?: boolean;
  /** Takes a command after `--`. */
  rest?: { required: boolean };
  examples?: string[];
}

export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  namespace: { type: "string", short: "n", valueName: "NS", description: "namespace (default: the kubeconfig context's)" },
  kubeconfig: { type: "string", valueName: "FILE", description: "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)" },
  context: { type: "string", valueName: "NAME", description: "kubeconfig context to use" },
  as: { type: "string", valueName: "USER", description: "impersonate this user, like kubectl --as" },
  output: { type: "string", short: "o", valueName: "json|yaml", description: "print objects as JSON or YAML (read commands)" },
};

const APP = { name: "NAME" };

export const COMMANDS: CommandSpec[] = [
  {
    name: "apps:create", aliases: ["create"], summary: "create an App (and its empty Config) from an image or a Git repository",
    usage: "apps:create NAME (--image IMAGE | --git URL [--branch BRANCH])", positionals: [APP],
    flags: {
      image: { type: "string", valueName: "IMAGE", description: "a prebuilt image to deploy" },
      git: { type: "string", valueName: "URL", description: "Git repository to build from" },
      branch: { type: "string", valueName: "BRANCH", description: "branch to build (default main)" },
      path: { type: "string", valueName: "DIR", description: "subdirectory of the repository that holds the app" },
    },
    examples: ["kubectl slipway apps:create hello --image ghcr.io/acme/hello:1.0", "kubectl slipway apps:create shop --git https://github.com/acme/shop --branch main"],
  },
  { name: "apps", aliases: ["apps:list"], summary: "list the Apps in the namespace", usage: "apps", positionals: [], flags: {}, read: true },
  { name: "info", aliases: ["apps:info"], summary: "show an App: source, processes, routing, live release, status", usage: "info NAME", positionals: [APP], flags: {}, read: true },
  {
    name: "apps:destroy", aliases: ["destroy"], summary: "delete an App with its Config, Releases, env Secret and one-off pods",
    usage: "apps:destroy NAME [--confirm NAME]", positionals: [APP],
    flags: { confirm: { type: "string", valueName: "NAME", description: "skip the prompt by repeating the app's name" } },
  },
  { name: "url", summary: "print the App's URL", usage: "url NAME", positionals: [APP], flags: {} },
  { name: "open", summary: "open the App's URL in a browser", usage: "open NAME", positionals: [APP], flags: {} },

  { name: "config", aliases: ["config:list"], summary: "list env values and secret env references (never secret values)", usage: "config NAME", positionals: [APP], flags: {}, read: true },
  {
    name: "config:set", summary: "set env values; with --secret, store the value in the Secret <app>-env and reference it",
    usage: "config:set NAME KEY=VALUE... [--secret KEY[=VALUE]]...", positionals: [APP, { name: "KEY=VALUE", variadic: true, optional: true }],
    flags: {
      secret: {
        type: "string", multiple: true, valueName: "KEY[=VALUE]",
        description: "a secret value: kept in a Secret, only the reference enters Config and Git; without =VALUE, read from stdin or asked for without echo",
      },
    },
    examples: [
      "kubectl slipway config:set hello GREETING=hi",
      "kubectl slipway config:set hello --secret DATABASE_PASSWORD            # asks for it; nothing in shell history or ps",
      "kubectl slipway config:set hello --secret DATABASE_PASSWORD < password.txt",
    ],
  },
  { name: "config:unset", summary: "remove env values or secret env references", usage: "config:unset NAME KEY...", positionals: [APP, { name: "KEY", variadic: true }], flags: {} },
  {
    name: "config:push", summary: "set env values from a .env file", usage: "config:push NAME [--path .env] [--secret KEY,KEY...]", positionals: [APP],
    flags: {
      path: { type: "string", short: "p", valueName: "FILE", description: ".env file to read (default .env)" },
      secret: { type: "string", multiple: true, valueName: "KEY,KEY", description: "keys of the file whose values are secret: kept in the Secret <app>-env, like config:set --secret" },
    },
    examples: ["kubectl slipway config:push hello --path prod.env --secret DATABASE_URL,API_TOKEN"],
  },
  {
    name: "config:pull", summary: "write the App's plain env values to a .env file", usage: "config:pull NAME [--path .env] [--overwrite]", positionals: [APP],
    flags: {
      path: { type: "string", short: "p", valueName: "FILE", description: ".env file to write (default .env)" },
      overwrite: { type: "boolean", description: "replace the file if it exists" },
    },
  },

  { name: "releases", aliases: ["releases:list"], summary: "list releases: version, cause, who, when, commit", usage: "releases NAME", positionals: [APP], flags: {}, read: true },
  { name: "releases:info", summary: "show one release", usage: "releases:info NAME vN", positionals: [APP, { name: "VERSION" }], flags: {}, read: true },
  {
    name: "rollback", aliases: ["releases:rollback"], summary: "roll back to vN (default: the release before the live one)",
    usage: "rollback NAME [vN]", positionals: [APP, { name: "VERSION", optional: true }], flags: {},
  },

  { name: "scale", aliases: ["ps:scale"], summary: "set replicas per process type (not a release)", usage: "scale NAME TYPE=COUNT...", positionals: [APP, { name: "TYPE=COUNT", variadic: true }], flags: {} },
  { name: "ps", aliases: ["ps:list"], summary: "list pods per process type with their state", usage: "ps NAME", positionals: [APP], flags: {}, read: true },
  { name: "ps:restart", summary: "restart pods (of one process type) by deleting them", usage: "ps:restart NAME [TYPE]", positionals: [APP, { name: "TYPE", optional: true }], flags: {} },

  {
    name: "limits:set", summary: "set memory (and --cpu) limits per process type", usage: "limits:set NAME [TYPE=MEMORY...] [--cpu TYPE=CPU]...",
    positionals: [APP, { name: "TYPE=MEMORY", variadic: true, optional: true }],
    flags: { cpu: { type: "string", multiple: true, valueName: "TYPE=CPU", description: "CPU limit, e.g. web=500m" } },
  },
  { name: "limits", aliases: ["limits:list"], summary: "list resource limits per process type", usage: "limits NAME", positionals: [APP], flags: {}, read: true },
  {
    name: "autoscale:set", summary: "autoscale a process type on CPU", usage: "autoscale:set NAME TYPE --min N --max N [--cpu-percent P]",
    positionals: [APP, { name: "TYPE" }],
    flags: {
      min: { type: "string", valueName: "N", description: "fewest replicas" },
      max: { type: "string", valueName: "N", description: "most replicas" },
      "cpu-percent": { type: "string", valueName: "P", description: "target average CPU utilization (default 80)" },
    },
  },
  { name: "autoscale:unset", summary: "stop autoscaling a process type", usage: "autoscale:unset NAME TYPE", positionals: [APP, { name: "TYPE" }], flags: {} },
  {
    name: "healthchecks:set", summary: "set an HTTP readiness or liveness check for a process type",
    usage: "healthchecks:set NAME readiness|liveness TYPE [--path /healthz] [--port N]", positionals: [APP, { name: "KIND" }, { name: "TYPE" }],
    flags: {
      path: { type: "string", valueName: "PATH", description: "HTTP path to GET (default /)" },
      port: { type: "string", valueName: "N", description: "port (default the routing port)" },
      "initial-delay": { type: "string", valueName: "SECONDS", description: "seconds before the first check" },
      period: { type: "string", valueName: "SECONDS", description: "seconds between checks" },
      timeout: { type: "string", valueName: "SECONDS", description: "seconds before a check times out" },
      "failure-threshold": { type: "string", valueName: "N", description: "failures before the check fails" },
    },
  },
  { name: "domains", aliases: ["domains:list"], summary: "list the App's domains", usage: "domains NAME", positionals: [APP], flags: {}, read: true },
  { name: "domains:add", summary: "route a host to the App's web process", usage: "domains:add NAME HOST", positionals: [APP, { name: "HOST" }], flags: {} },
  { name: "domains:remove", summary: "stop routing a host to the App", usage: "domains:remove NAME HOST", positionals: [APP, { name: "HOST" }], flags: {} },
  {
    name: "tls:set", summary: "serve the App's hosts with the certificate in a kubernetes.io/tls Secret", usage: "tls:set NAME --secret SECRET",
    positionals: [APP], flags: { secret: { type: "string", valueName: "SECRET", description: "Secret with the certificate" } },
  },
  { name: "tls:unset", summary: "stop serving TLS for the App's hosts", usage: "tls:unset NAME", positionals: [APP], flags: {} },
  { name: "tags", aliases: ["tags:list"], summary: "list node selector tags", usage: "tags NAME", positionals: [APP], flags: {}, read: true },
  { name: "tags:set", summary: "run the App only on nodes with these labels", usage: "tags:set NAME KEY=VALUE...", positionals: [APP, { name: "KEY=VALUE", variadic: true }], flags: {} },
  { name: "tags:unset", summary: "remove node selector tags", usage: "tags:unset NAME KEY...", positionals: [APP, { name: "KEY", variadic: true }], flags: {} },

  { name: "builds", aliases: ["builds:list"], summary: "show the App's latest build", usage: "builds NAME", positionals: [APP], flags: {}, read: true },
  { name: "previews", summary: "list the pull-request previews of an App", usage: "previews NAME", positionals: [APP], flags: {}, read: true },

  {
    name: "logs", summary: "aggregated logs of the App's pods, each line prefixed TYPE/POD", usage: "logs NAME [-f] [--type TYPE] [--tail N]",
    positionals: [APP],
    flags: {
      follow: { type: "boolean", short: "f", description: "keep streaming, pods that start later too, until Ctrl-C" },
      type: { type: "string", valueName: "TYPE", description: "only this process type" },
      tail: { type: "string", valueName: "N", description: "last N lines of each pod" },
    },
  },
  {
    name: "run", summary: "run a one-off command in a new pod with the live release's image and env; exits with its exit code",
    usage: "run NAME -- COMMAND [ARG...]", positionals: [APP], flags: {
      timeout: { type: "string", valueName: "SECONDS", description: "give up waiting for the pod to start after this long (default 300)" },
    }, rest: { required: true },
    examples: ["kubectl slipway run hello -- rake db:migrate"],
  },
  {
    name: "completion", summary: "print a shell completion script for kubectl-slipway (kubectl slipway completes through kubectl_complete-slipway)",
    usage: "completion bash|zsh", positionals: [{ name: "SHELL" }], flags: {},
    examples: [
      "source <(kubectl-slipway completion bash)    # in ~/.bashrc: completes kubectl-slipway ...",
      "source <(kubectl-slipway completion zsh)     # in ~/.zshrc",
      "# kubectl slipway <TAB> (kubectl 1.26+ with kubectl's own completion loaded) runs kubectl_complete-slipway,",
      "# installed next to kubectl-slipway: nothing to source.",
    ],
  },
];

/** The text of `--help` for one command, or for the whole CLI. */
export function helpText(spec?: CommandSpec): string {
  const globals = Object.entries(GLOBAL_FLAGS).map(([k, f]) => flagLine(k, f));
  if (!spec) {
    const width = Math.max(...COMMANDS.map((c) => c.name.length));
    return [
      "kubectl slipway — Deis-style self-service for Slipway apps",
      "",
      "Usage: kubectl slipway COMMAND [ARGS] [FLAGS]",
      "",
      "Commands:",
      ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
      "",
      "Flags for every command:",
      ...globals,
      "  -h, --help".padEnd(30) + "  help for a command (kubectl slipway COMMAND --help)",
      "",
    ].join("\n");
  }
  const local = Object.entries(spec.flags).map(([k, f]) => flagLine(k, f));
  const shownGlobals = Object.entries(GLOBAL_FLAGS).filter(([k]) => k !== "output" || spec.read).map(([k, f]) => flagLine(k, f));
  return [
    `${spec.summary}`,
    "",
    `Usage: kubectl slipway ${spec.usage}`,
    ...(spec.aliases?.length ? ["", `Aliases: ${spec.aliases.join(", ")}`] : []),
    ...(local.length ? ["", "Flags:", ...local] : []),
    "",
    "Global flags:",
    ...shownGlobals,
    ...(spec.examples?.length ? ["", "Examples:", ...spec.examples.map((e) => `  ${e}`)] : []),
    "",
  ].join("\n");
}

function flagLine(name: string, f: FlagSpec): string {
  const left = `  ${f.short ? `-${f.short}, ` : "    "}--${name}${f.type === "string" ? ` ${f.valueName ?? "VALUE"}` : ""}`;
  return `${left.padEnd(30)}  ${f.description}`;
}
