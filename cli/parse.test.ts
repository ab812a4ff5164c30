import test from "ava";
import { parseArgv, parseAssignments, parseScale, parseVersion, type ParsedCommand } from "./parse.js";
import { UsageError } from "./errors.js";

function command(argv: string[]): ParsedCommand {
  const inv = parseArgv(argv);
  if (inv.kind !== "command") throw new Error(`expected a command, got ${inv.kind}`);
  return inv.command;
}

test("apps:create reads the app name and --image", (t) => {
  const c = command(["apps:create", "hello", "--image", "ghcr.io/acme/hello:1.0"]);
  t.is(c.spec.name, "apps:create");
  t.deepEqual(c.args, ["hello"]);
  t.deepEqual(c.flags, { image: "ghcr.io/acme/hello:1.0" });
});

test("global flags go anywhere on the line, with or without =", (t) => {
  const c = command(["-n", "team-a", "config:set", "hello", "A=1", "--kubeconfig=/tmp/kc", "--as", "bob", "B=2"]);
  t.deepEqual(c.args, ["hello", "A=1", "B=2"]);
  t.deepEqual(c.global, { namespace: "team-a", kubeconfig: "/tmp/kc", as: "bob", output: "table" });
});

test("--secret can be given several times and keeps its order", (t) => {
  const c = command(["config:set", "hello", "--secret", "A=1", "--secret=B=2"]);
  t.deepEqual(c.flags.secret, ["A=1", "B=2"]);
});

test("-o json is accepted by read commands and refused by writes", (t) => {
  t.is(command(["releases", "hello", "-o", "json"]).global.output, "json");
  t.is(command(["ps", "hello", "-o=yaml"]).global.output, "yaml");
  const e = t.throws(() => parseArgv(["scale", "hello", "web=2", "-o", "json"]), { instanceOf: UsageError });
  t.is(e?.message, `"scale" does not print objects; -o is for read commands`);
  t.throws(() => parseArgv(["apps", "-o", "wide"]), { message: `-o must be json or yaml, not "wide"` });
});

test("run takes everything after -- as the command, flags included", (t) => {
  const c = command(["run", "hello", "-n", "ns", "--", "rake", "db:migrate", "--verbose", "-n", "3"]);
  t.deepEqual(c.args, ["hello"]);
  t.deepEqual(c.rest, ["rake", "db:migrate", "--verbose", "-n", "3"]);
  t.is(c.global.namespace, "ns");
});

test("run without a command after -- is a usage error", (t) => {
  t.throws(() => parseArgv(["run", "hello"]), { message: `"run" needs a command after --: run NAME -- COMMAND [ARG...]` });
});

test("logs reads -f, --type and --tail", (t) => {
  const c = command(["logs", "hello", "-f", "--type", "web", "--tail", "20"]);
  t.deepEqual(c.flags, { follow: true, type: "web", tail: "20" });
});

test("aliases resolve to the Deis command", (t) => {
  t.is(command(["destroy", "hello", "--confirm", "hello"]).spec.name, "apps:destroy");
  t.is(command(["releases:rollback", "hello", "v2"]).spec.name, "rollback");
});

test("--help anywhere asks for that command's help", (t) => {
  const inv = parseArgv(["config:set", "--help"]);
  t.is(inv.kind, "help");
  t.is(inv.kind === "help" ? inv.spec?.name : undefined, "config:set");
  t.deepEqual(parseArgv([]), { kind: "help", spec: undefined });
  t.is(parseArgv(["help", "logs"]).kind, "help");
});

test("unknown commands, unknown flags, missing and extra arguments are one-line usage errors", (t) => {
  t.throws(() => parseArgv(["deploy", "x"]), { message: `unknown command "deploy" (see kubectl slipway --help)` });
  t.throws(() => parseArgv(["scale", "hello", "--replicas", "3"]), { message: `unknown flag --replicas for "scale" (see --help)` });
  t.throws(() => parseArgv(["info"]), { message: `"info" needs NAME: info NAME` });
  t.throws(() => parseArgv(["config:unset", "hello"]), { message: `"config:unset" needs KEY: config:unset NAME KEY...` });
  t.throws(() => parseArgv(["info", "a", "b"]), { message: `unexpected argument "b" for "info": info NAME` });
  t.throws(() => parseArgv(["logs", "hello", "--tail"]), { message: "flag --tail needs a value (N)" });
});

test("KEY=VALUE keeps everything after the first = in the value", (t) => {
  t.deepEqual(parseAssignments(["URL=postgres://u:p@h/db?x=1", "EMPTY="], { env: true }), { URL: "postgres://u:p@h/db?x=1", EMPTY: "" });
});

test("env keys must be valid variable names", (t) => {
  t.throws(() => parseAssignments(["1A=x"], { env: true }), { message: `"1A" is not a valid environment variable name (letters, digits and _, not starting with a digit)` });
  t.throws(() => parseAssignments(["NOVALUE"], { env: true }), { message: `expected KEY=VALUE, got "NOVALUE"` });
});

test("scale reads whole replica counts per process type", (t) => {
  t.deepEqual(parseScale(["web=3", "worker=0"]), { web: 3, worker: 0 });
  t.throws(() => parseScale(["web=-1"]), { message: `replicas for "web" must be a whole number, got "-1"` });
  t.throws(() => parseScale(["Web=1"]), { message: `"Web" is not a process type name (lower-case letters, digits and -)` });
});

test("release versions are written v3 or 3", (t) => {
  t.is(parseVersion("v3"), 3);
  t.is(parseVersion("12"), 12);
  t.throws(() => parseVersion("v0"), { message: `"v0" is not a release version (v1, v2, …)` });
  t.throws(() => parseVersion("latest"));
});
