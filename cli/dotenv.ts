// .env files for config:push and config:pull: KEY=VALUE lines, `#` comments, optional `export`, quoted values.
import { UsageError } from "./errors.js";

/** Parses a .env file. Throws UsageError naming the line for anything it cannot read. */
export function parseDotenv(text: string, file = ".env"): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = line.match(/^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/);
    if (!m) throw new UsageError(`${file}:${i + 1}: expected KEY=VALUE, got "${raw}"`);
    const key = m[1] as string;
    let value = m[2] as string;
    if (value.startsWith('"')) {
      // A double-quoted value may span lines and uses \n, \", \\ escapes.
      let body = value.slice(1);
      while (closingQuote(body) === undefined) {
        i++;
        if (i >= lines.length) throw new UsageError(`${file}: unterminated quoted value for ${key}`);
        body += `\n${lines[i]}`;
      }
      const end = closingQuote(body) as number;
      const trailing = body.slice(end + 1).trim();
      if (trailing && !trailing.startsWith("#")) throw new UsageError(`${file}:${i + 1}: unexpected text after the quoted value of ${key}`);
      value = body.slice(0, end).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "r" ? "\r" : c === "t" ? "\t" : c));
    } else if (value.startsWith("'")) {
      const end = value.indexOf("'", 1);
      if (end < 0) throw new UsageError(`${file}:${i + 1}: unterminated quoted value for ${key}`);
      value = value.slice(1, end);
    } else {
      value = value.replace(/\s+#.*$/, "").trim();
    }
    out[key] = value;
  }
  return out;
}

/** Index of the first unescaped `"` in `s`, or undefined. */
function closingQuote(s: string): number | undefined {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === '"') return i;
  }
  return undefined;
}

/** Writes env values as a .env file that parseDotenv reads back unchanged, keys sorted. */
export function formatDotenv(env: Record<string, string>): string {
  return Object.keys(env).sort().map((k) => `${k}=${quote(env[k] ?? "")}\n`).join("");
}

function quote(v: string): string {
  if (/^[A-Za-z0-9_./:@,+-]*$/.test(v) && v !== "") return v;
  return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t")}"`;
}
