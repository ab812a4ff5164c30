import test from "ava";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { finalStage, parseDockerfile } from "./dockerfile.js";
import { repoRoot } from "./tools.js";

test("operator/Dockerfile's final stage: the runtime configuration the image it describes runs with", (t) => {
  const stages = parseDockerfile(readFileSync(join(repoRoot, "operator", "Dockerfile"), "utf8"));
  t.deepEqual(stages.map((s) => [s.from, s.name]), [["node:20-bookworm-slim", "build"], ["node:20-bookworm-slim", undefined]]);
  t.is(stages[0]?.workdir, "/src");
  t.deepEqual(stages[0]?.others, ["RUN", "RUN"]);
  const final = finalStage(readFileSync(join(repoRoot, "operator", "Dockerfile"), "utf8"));
  t.deepEqual(final.env, {
    NODE_ENV: "production",
    NODE_OPTIONS: "--max-old-space-size=256 --max-semi-space-size=4",
    MALLOC_ARENA_MAX: "2",
  });
  t.is(final.workdir, "/app");
  t.is(final.user, "10001:10001");
  t.deepEqual(final.expose, ["8080/tcp"]);
  t.deepEqual(final.entrypoint, ["node", "dist/operator/main.js"]);
  t.is(final.cmd, undefined);
  t.deepEqual(final.copies, [
    { from: "build", chown: "root:root", sources: ["/src/package.json"], dest: "./" },
    { from: "build", chown: "root:root", sources: ["/src/node_modules"], dest: "./node_modules" },
    { from: "build", chown: "root:root", sources: ["/src/dist"], dest: "./dist" },
  ]);
  t.deepEqual(final.others, [], "the final stage runs nothing: its files come from COPY alone");
});

test("ENV reads KEY=value pairs with quotes and escapes, and the legacy KEY value form", (t) => {
  const s = finalStage([
    "FROM scratch",
    `ENV A=1 B="two words" C='single $kept' D=back\\ slash`,
    "ENV LEGACY all the rest",
    "ENV A=3",
  ].join("\n"));
  t.deepEqual(s.env, { A: "3", B: "two words", C: "single $kept", D: "back slash", LEGACY: "all the rest" });
});

test("continued lines are joined, comments inside them dropped, and WORKDIR resolves relative paths", (t) => {
  const s = finalStage([
    "# syntax comment",
    "FROM base AS one",
    "FROM other",
    "WORKDIR /srv",
    "WORKDIR app",
    "ENV X=1 \\",
    "# a comment in the middle",
    "    Y=2",
    "CMD [\"serve\"]",
    "ENTRYPOINT node main.js",
    "EXPOSE 53/udp 80",
  ].join("\n"));
  t.is(s.from, "other");
  t.is(s.workdir, "/srv/app");
  t.deepEqual(s.env, { X: "1", Y: "2" });
  t.deepEqual(s.entrypoint, ["/bin/sh", "-c", "node main.js"]);
  t.is(s.cmd, undefined, "ENTRYPOINT resets CMD");
  t.deepEqual(s.expose, ["53/udp", "80/tcp"]);
});

test("what it cannot read is refused with the line: variables, unknown COPY flags, no FROM, a broken exec form", (t) => {
  t.throws(() => finalStage("FROM x\nENV A=$HOME"), { message: /line 2: .*variable substitution is not supported/ });
  t.throws(() => finalStage("FROM x\nCOPY --link a b"), { message: /line 2: COPY --link is not supported/ });
  t.throws(() => parseDockerfile("# nothing\n"), { message: /no FROM/ });
  t.throws(() => finalStage("FROM x\nENTRYPOINT [\"node\", 1]"), { message: /line 2: .*not an array of strings/ });
  t.throws(() => finalStage("ENV A=1\nFROM x"), { message: /line 1: ENV before the first FROM/ });
  t.throws(() => finalStage("FROM x\nENV A=1 \\"), { message: /ends inside a continued line/ });
});
