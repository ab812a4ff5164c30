// Credentials written into a URL never reach the operator's output: the operator process, as deployed, given a
// config repository URL with a user and password in it that the Git server refuses, says which repository it
// cannot open, with the URL's credentials replaced by "***", and its stdout and stderr never hold the password.
import test from "ava";
import { startGitServer, type GitServer } from "../operator/local/gitserver.js";
import { Operators } from "./harness/operator-process.js";
import { controlPlane, freshNamespace, installCrds, waitFor } from "./harness/suite.js";

const PASSWORD = "s3cret-token-7f2c";

let server: GitServer;
test.before(async () => {
  await installCrds();
  server = await startGitServer({ auth: { username: "slipway", password: "the-right-one" } });
});
test.after.always(async () => {
  await server?.stop();
});

test("a config repository URL with credentials the Git server refuses is named in the operator's errors with its password redacted", async (t) => {
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  await server.createBareRepo(ns);
  const url = server.url(ns).replace("http://", `http://slipway:${PASSWORD}@`);
  const operators = new Operators(cp, ns);
  t.teardown(() => operators.cleanup());
  const operator = await operators.spawn("operator", {
    SLIPWAY_GIT_URL: url, SLIPWAY_GIT_DIR: `/tmp/slipway-redaction-${ns}`, SLIPWAY_GIT_POLL_SECONDS: "3600",
  });
  const redacted = server.url(ns).replace("http://", "http://***@");
  // The failed start is reported, naming the repository: that is where the URL would leak.
  await waitFor(async () => operator.output.includes(redacted) || !operator.running, 60_000,
    () => `the operator never named the repository it cannot open:\n${operator.tail()}`);
  await new Promise((r) => setTimeout(r, 1000)); // the rest of the error's lines
  const output = operator.output;
  t.true(output.includes(redacted), `the repository is named, redacted:\n${output}`);
  t.false(output.includes(PASSWORD), `the password reached the operator's output:\n${output}`);
});
