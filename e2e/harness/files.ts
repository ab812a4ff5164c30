// What the GitOps-style e2e files share: temporary directories removed after the file's tests, and git with a
// fixed author.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Temporary directories named `<prefix>…`; `removeAll()` (for test.after.always) deletes every one made. */
export function tempDirs(prefix: string): { temp(): Promise<string>; removeAll(): Promise<void> } {
  const made: string[] = [];
  return {
    async temp() {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      made.push(dir);
      return dir;
    },
    async removeAll() {
      await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}

/** Runs git in `cwd` as "Dev <dev@example.com>"; resolves to its stdout. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", ...args], { cwd });
  return stdout;
}
