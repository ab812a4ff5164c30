// What a Git host's webhook says, in Slipway's words: a push to a branch, or a pull request opened, updated or
// closed. Parses the exact payloads GitHub, GitLab and Gitea send; anything else is "ignored" with a reason.
import type { WebhookHeaders } from "../webhooks.js";

export type GitHost = "github" | "gitlab" | "gitea";

/** A new head on a branch. */
export interface PushEvent {
  kind: "push";
  host: GitHost;
  /** Every URL the repository is known by (clone, web, ssh), to match Apps' `source.git`. */
  repoUrls: string[];
  branch: string;
  /** The branch's new head commit. */
  commit: string;
}

/** A pull (merge) request that should get, keep or lose its preview. */
export interface PullRequestEvent {
  kind: "pullRequest";
  host: GitHost;
  /** "open" covers opened and reopened; "update" new commits; "close" closed and merged. */
  action: "open" | "update" | "close";
  number: number;
  /** The repository and branch the pull request targets. */
  base: { repoUrls: string[]; branch: string };
  /** Where the pull request's commits live: the clone URL, branch and head commit. */
  head: { repoUrl: string; branch: string; commit: string };
  /** True when the head repository is not the base repository (a fork): such previews never get secrets. */
  fromFork: boolean;
  /** The pull request's author (GitHub and Gitea login); GitLab's payload names only the user who acted. */
  author?: string;
  /** GitHub's author_association of the author with the base repository (OWNER, MEMBER, COLLABORATOR, …). */
  authorAssociation?: string;
  /** The pull request's labels as they are after this event. */
  labels: string[];
}

export interface IgnoredEvent {
  kind: "ignored";
  reason: string;
}

export type GitEvent = PushEvent | PullRequestEvent | IgnoredEvent;

function header(headers: WebhookHeaders, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted) return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

type Json = Record<string, unknown>;

function obj(value: unknown): Json {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Json) : {};
}

function str(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Label names from an array of label objects ({ name } on GitHub and Gitea, { title } on GitLab). */
function labelNames(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return value.map((l) => str(obj(l).name) ?? str(obj(l).title)).filter((n): n is string => n !== undefined);
}

function urls(...values: unknown[]): string[] {
  return [...new Set(values.map(str).filter((v): v is string => v !== undefined))];
}

const ZERO_SHA = /^0+$/;

function branchOf(ref: string | undefined): string | undefined {
  return ref?.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : undefined;
}

/** The event name header decides the provider; Gitea also sends X-GitHub-Event, so it is checked first. */
export function parseGitEvent(headers: WebhookHeaders, body: unknown): GitEvent {
  const gitea = header(headers, "x-gitea-event");
  if (gitea !== undefined) return parseGithubLike("gitea", gitea, obj(body));
  const gitlab = header(headers, "x-gitlab-event");
  if (gitlab !== undefined) return parseGitlab(gitlab, obj(body));
  const github = header(headers, "x-github-event");
  if (github !== undefined) return parseGithubLike("github", github, obj(body));
  return { kind: "ignored", reason: "no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header" };
}

function repoUrlsOf(repo: Json): string[] {
  return urls(repo.clone_url, repo.html_url, repo.git_url, repo.ssh_url, repo.url);
}

function parseGithubLike(host: "github" | "gitea", event: string, body: Json): GitEvent {
  if (event === "push") {
    const branch = branchOf(str(body.ref));
    const commit = str(body.after);
    if (!branch) return { kind: "ignored", reason: `push to ${String(body.ref)} is not a branch` };
    if (!commit || ZERO_SHA.test(commit) || body.deleted === true) return { kind: "ignored", reason: `branch ${branch} was deleted` };
    return { kind: "push", host, repoUrls: repoUrlsOf(obj(body.repository)), branch, commit };
  }
  if (event === "pull_request") {
    const action = str(body.action);
    // A label added or removed is an update: the labels may approve a fork's preview or withdraw the approval.
    const mapped = host === "github"
      ? ({ opened: "open", reopened: "open", synchronize: "update", closed: "close", labeled: "update", unlabeled: "update" } as const)
      : ({ opened: "open", reopened: "open", synchronized: "update", closed: "close", label_updated: "update", label_cleared: "update" } as const);
    const kind = action && Object.hasOwn(mapped, action) ? mapped[action as keyof typeof mapped] : undefined;
    if (!kind) return { kind: "ignored", reason: `pull_request action ${action ?? "(none)"} does not change a preview` };
    const pr = obj(body.pull_request);
    const head = obj(pr.head);
    const base = obj(pr.base);
    const headRepo = obj(head.repo);
    const baseRepo = obj(base.repo ?? body.repository);
    const number = typeof body.number === "number" ? body.number : typeof pr.number === "number" ? pr.number : NaN;
    const headUrl = str(headRepo.clone_url);
    const headBranch = str(head.ref);
    const headCommit = str(head.sha);
    const baseBranch = str(base.ref);
    // A closed pull request needs no head: its fork may already be deleted (GitHub then sends head.repo null).
    if (!Number.isInteger(number) || !baseBranch || (kind !== "close" && (!headUrl || !headBranch || !headCommit))) {
      return { kind: "ignored", reason: "pull_request payload lacks number, head.repo.clone_url, head.ref, head.sha or base.ref" };
    }
    const headId = headRepo.id ?? headRepo.full_name;
    const baseId = baseRepo.id ?? baseRepo.full_name;
    return {
      kind: "pullRequest",
      host,
      action: kind,
      number,
      base: { repoUrls: repoUrlsOf(baseRepo), branch: baseBranch },
      head: { repoUrl: headUrl ?? "", branch: headBranch ?? "", commit: headCommit ?? "" },
      fromFork: headId === undefined || headId !== baseId,
      author: str(obj(pr.user).login),
      authorAssociation: str(pr.author_association),
      labels: labelNames(pr.labels),
    };
  }
  return { kind: "ignored", reason: `${host} event ${event} does not start builds` };
}

function gitlabProjectUrls(project: Json): string[] {
  return urls(project.git_http_url, project.http_url, project.web_url, project.git_ssh_url, project.ssh_url, project.url);
}

function parseGitlab(event: string, body: Json): GitEvent {
  if (event === "Push Hook") {
    const branch = branchOf(str(body.ref));
    const commit = str(body.checkout_sha) ?? str(body.after);
    if (!branch) return { kind: "ignored", reason: `push to ${String(body.ref)} is not a branch` };
    if (!commit || ZERO_SHA.test(commit)) return { kind: "ignored", reason: `branch ${branch} was deleted` };
    return { kind: "push", host: "gitlab", repoUrls: urls(...gitlabProjectUrls(obj(body.project)), ...gitlabProjectUrls(obj(body.repository))), branch, commit };
  }
  if (event === "Merge Request Hook") {
    const attrs = obj(body.object_attributes);
    const action = str(attrs.action);
    const mapped = { open: "open", reopen: "open", update: "update", close: "close", merge: "close" } as const;
    const kind = action && Object.hasOwn(mapped, action) ? mapped[action as keyof typeof mapped] : undefined;
    if (!kind) return { kind: "ignored", reason: `merge request action ${action ?? "(none)"} does not change a preview` };
    const source = obj(attrs.source);
    const target = obj(attrs.target ?? body.project);
    const number = typeof attrs.iid === "number" ? attrs.iid : NaN;
    const headUrl = str(source.git_http_url) ?? str(source.http_url);
    const headBranch = str(attrs.source_branch);
    const headCommit = str(obj(attrs.last_commit).id);
    const baseBranch = str(attrs.target_branch);
    if (!Number.isInteger(number) || !baseBranch || (kind !== "close" && (!headUrl || !headBranch || !headCommit))) {
      return { kind: "ignored", reason: "merge request payload lacks iid, source.git_http_url, source_branch, last_commit.id or target_branch" };
    }
    const sourceId = attrs.source_project_id ?? source.id;
    const targetId = attrs.target_project_id ?? target.id;
    return {
      kind: "pullRequest",
      host: "gitlab",
      action: kind,
      number,
      base: { repoUrls: urls(...gitlabProjectUrls(target), ...gitlabProjectUrls(obj(body.project))), branch: baseBranch },
      head: { repoUrl: headUrl ?? "", branch: headBranch ?? "", commit: headCommit ?? "" },
      fromFork: sourceId === undefined || sourceId !== targetId,
      labels: labelNames(body.labels ?? attrs.labels),
    };
  }
  return { kind: "ignored", reason: `gitlab event ${event} does not start builds` };
}

/**
 * A repository URL reduced to host and path, so https://Host/org/repo.git, http://host/org/repo/ and
 * git@host:org/repo.git compare equal. Credentials and ports other than the default are kept apart: a
 * different port is a different server.
 */
export function normalizeRepoUrl(url: string): string {
  let s = url.trim();
  const scp = /^([^@/]+@)?([^:/]+):(?!\d+\/)(.+)$/.exec(s);
  if (scp && !s.includes("://")) s = `ssh://${scp[2]}/${scp[3]}`;
  try {
    const u = new URL(s);
    const port = u.port && !["80", "443", "22"].includes(u.port) ? `:${u.port}` : "";
    return `${u.hostname.toLowerCase()}${port}${u.pathname.replace(/\/+$/, "").replace(/\.git$/, "")}`;
  } catch {
    return s.replace(/\/+$/, "").replace(/\.git$/, "");
  }
}

export function sameRepo(a: string, b: string): boolean {
  return normalizeRepoUrl(a) === normalizeRepoUrl(b);
}
