import test from "ava";
import { formatDotenv, parseDotenv } from "./dotenv.js";

test("reads KEY=VALUE lines, skipping blanks and comments", (t) => {
  t.deepEqual(parseDotenv("# db\nA=1\n\nexport B = two words  # note\n"), { A: "1", B: "two words" });
});

test("reads quoted values: double quotes with escapes and newlines, single quotes literally", (t) => {
  t.deepEqual(parseDotenv(`A="x \\"y\\"\\nz"\nB='a#b $c'\nC="line1\nline2"\n`), { A: 'x "y"\nz', B: "a#b $c", C: "line1\nline2" });
});

test("names the line it cannot read", (t) => {
  t.throws(() => parseDotenv("A=1\nnot a pair\n", "app.env"), { message: `app.env:2: expected KEY=VALUE, got "not a pair"` });
  t.throws(() => parseDotenv('A="open\n', "app.env"), { message: "app.env: unterminated quoted value for A" });
});

test("writes sorted keys that read back unchanged", (t) => {
  const env = { Z: "plain", A: "has space", Q: 'quote " and \\ back', N: "multi\nline", E: "" };
  const text = formatDotenv(env);
  t.is(text, `A="has space"\nE=""\nN="multi\\nline"\nQ="quote \\" and \\\\ back"\nZ=plain\n`);
  t.deepEqual(parseDotenv(text), env);
});

test("an empty file sets nothing", (t) => {
  t.deepEqual(parseDotenv(""), {});
});
