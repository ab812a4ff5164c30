// Credentials written into URLs (`https://user:token@host/repo.git`, as git accepts them) must not reach logs,
// Events, status or a PipelineRun: everyone who can read those would have them. These are the one place that
// takes them out; the logger, Kube's Event and status writes, and the build's PipelineRun use them.

/** A URL's userinfo: scheme://<user[:password]>@ (an '@' inside a password is percent-encoded in a URL). */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]+@/gi;

/** The text with every URL's user and password replaced by "***": `https://***@host/repo.git`. */
export function redactUrls(text: string): string {
  return text.includes("@") ? text.replace(USERINFO, "$1***@") : text;
}

/** A URL without its user and password (for a build's git-url: credentials come from source.credentialsSecret). */
export function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = parsed.password = "";
    return parsed.toString();
  } catch {
    return redactUrls(url); // a local path or something URL cannot parse
  }
}

/** A JSON value with redactUrls applied to every string in it. */
export function redactDeep<T>(value: T): T {
  return JSON.parse(redactUrls(JSON.stringify(value))) as T;
}
