// Webhook deliveries exactly as GitHub, GitLab and Gitea send them: the same headers (signatures computed over
// the exact body bytes) and the same body shapes, trimmed of fields no consumer reads. Used by the unit tests
// and the e2e tests; nothing in the operator imports this.
import { createHmac, randomUUID } from "node:crypto";

export interface Delivery {
  headers: Record<string, string>;
  body: Buffer;
}

export interface Repo {
  /** Clone URL over HTTP(S), e.g. http://127.0.0.1:4567/shop.git */
  url: string;
  /** owner/name */
  fullName: string;
  id: number;
  fork?: boolean;
}

const hmac = (algo: "sha1" | "sha256", secret: string, body: Buffer) => createHmac(algo, secret).update(body).digest("hex");

function webUrl(repo: Repo): string {
  return repo.url.replace(/\.git$/, "");
}

function sshUrl(repo: Repo): string {
  const u = new URL(repo.url);
  return `git@${u.hostname}:${repo.fullName}.git`;
}

function githubRepo(repo: Repo, kind: "push" | "api") {
  const [owner = "", name = ""] = repo.fullName.split("/");
  return {
    id: repo.id,
    node_id: `R_kgDO${repo.id}`,
    name,
    full_name: repo.fullName,
    private: false,
    owner: { name: owner, login: owner, id: repo.id + 1000, type: "Organization" },
    html_url: webUrl(repo),
    description: null,
    fork: repo.fork ?? false,
    // GitHub's push payload sets `url` to the web URL; other events give the API URL.
    url: kind === "push" ? webUrl(repo) : `https://api.github.com/repos/${repo.fullName}`,
    git_url: `git://${new URL(repo.url).host}/${repo.fullName}.git`,
    ssh_url: sshUrl(repo),
    clone_url: repo.url,
    svn_url: webUrl(repo),
    default_branch: "main",
    visibility: "public",
  };
}

function githubHeaders(event: string, body: Buffer, secret: string): Record<string, string> {
  return {
    "Content-Type": "application/json",
    "User-Agent": "GitHub-Hookshot/8f2c3b1",
    "X-GitHub-Delivery": randomUUID(),
    "X-GitHub-Event": event,
    "X-GitHub-Hook-ID": "461870123",
    "X-GitHub-Hook-Installation-Target-ID": "79929171",
    "X-GitHub-Hook-Installation-Target-Type": "repository",
    "X-Hub-Signature": `sha1=${hmac("sha1", secret, body)}`,
    "X-Hub-Signature-256": `sha256=${hmac("sha256", secret, body)}`,
  };
}

const person = { name: "Ada Lovelace", email: "ada@example.com", username: "ada" };

export function githubPush(o: { repo: Repo; branch: string; before: string; after: string; secret: string }): Delivery {
  const body = Buffer.from(JSON.stringify({
    ref: `refs/heads/${o.branch}`,
    before: o.before,
    after: o.after,
    repository: githubRepo(o.repo, "push"),
    pusher: { name: "ada", email: "ada@example.com" },
    sender: { login: "ada", id: 1, type: "User" },
    created: false,
    deleted: false,
    forced: false,
    base_ref: null,
    compare: `${webUrl(o.repo)}/compare/${o.before.slice(0, 12)}...${o.after.slice(0, 12)}`,
    commits: [{ id: o.after, tree_id: "0".repeat(40), distinct: true, message: "change", timestamp: "2025-01-01T00:00:00Z", url: `${webUrl(o.repo)}/commit/${o.after}`, author: person, committer: person, added: [], removed: [], modified: ["app.js"] }],
    head_commit: { id: o.after, tree_id: "0".repeat(40), distinct: true, message: "change", timestamp: "2025-01-01T00:00:00Z", url: `${webUrl(o.repo)}/commit/${o.after}`, author: person, committer: person, added: [], removed: [], modified: ["app.js"] },
  }));
  return { headers: githubHeaders("push", body, o.secret), body };
}

export interface PullRequestInput {
  number: number;
  base: { repo: Repo; branch: string; sha: string };
  head: { repo: Repo; branch: string; sha: string };
  secret: string;
  merged?: boolean;
  /** The pull request's author; default the head repository's owner. */
  author?: string;
  /** GitHub's author_association; default MEMBER when the head is the base repository, else NONE. */
  association?: string;
  /** Labels on the pull request after the event. */
  labels?: string[];
  /** The label a GitHub `labeled` or `unlabeled` event is about. */
  label?: string;
}

function author(o: PullRequestInput): string {
  return o.author ?? o.head.repo.fullName.split("/")[0] ?? "";
}

function githubLabel(name: string) {
  const id = [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 1_000_000_007, 7);
  return { id, node_id: `LA_kwDO${id}`, url: `https://api.github.com/labels/${encodeURIComponent(name)}`, name, color: "0e8a16", default: false, description: null };
}

function githubSide(side: PullRequestInput["base"]) {
  const owner = side.repo.fullName.split("/")[0] ?? "";
  return { label: `${owner}:${side.branch}`, ref: side.branch, sha: side.sha, user: { login: owner, id: side.repo.id + 1000 }, repo: githubRepo(side.repo, "api") };
}

export function githubPullRequest(action: "opened" | "synchronize" | "reopened" | "closed" | "edited" | "labeled" | "unlabeled", o: PullRequestInput): Delivery {
  const closed = action === "closed";
  const body = Buffer.from(JSON.stringify({
    action,
    number: o.number,
    pull_request: {
      url: `https://api.github.com/repos/${o.base.repo.fullName}/pulls/${o.number}`,
      id: 1800000000 + o.number,
      node_id: `PR_kwDO${o.number}`,
      html_url: `${webUrl(o.base.repo)}/pull/${o.number}`,
      number: o.number,
      state: closed ? "closed" : "open",
      locked: false,
      title: "Make it better",
      user: { login: author(o), id: 1, type: "User" },
      body: null,
      created_at: "2025-01-01T00:00:00Z",
      updated_at: "2025-01-01T00:00:00Z",
      closed_at: closed ? "2025-01-02T00:00:00Z" : null,
      merged_at: o.merged ? "2025-01-02T00:00:00Z" : null,
      merge_commit_sha: null,
      draft: false,
      labels: (o.labels ?? []).map(githubLabel),
      head: githubSide(o.head),
      base: githubSide(o.base),
      author_association: o.association ?? (o.head.repo.id === o.base.repo.id ? "MEMBER" : "NONE"),
      merged: o.merged ?? false,
      commits: 1,
    },
    ...(action === "synchronize" ? { before: "0".repeat(40), after: o.head.sha } : {}),
    ...(action === "labeled" || action === "unlabeled" ? { label: githubLabel(o.label ?? "") } : {}),
    repository: githubRepo(o.base.repo, "api"),
    sender: { login: "ada", id: 1, type: "User" },
  }));
  return { headers: githubHeaders("pull_request", body, o.secret), body };
}

function gitlabProject(repo: Repo) {
  const [namespace = "", name = ""] = repo.fullName.split("/");
  return {
    id: repo.id,
    name,
    description: "",
    web_url: webUrl(repo),
    avatar_url: null,
    git_ssh_url: sshUrl(repo),
    git_http_url: repo.url,
    namespace,
    visibility_level: 20,
    path_with_namespace: repo.fullName,
    default_branch: "main",
    ci_config_path: null,
    homepage: webUrl(repo),
    url: sshUrl(repo),
    ssh_url: sshUrl(repo),
    http_url: repo.url,
  };
}

function gitlabHeaders(event: string, secret: string): Record<string, string> {
  return {
    "Content-Type": "application/json",
    "User-Agent": "GitLab/17.5.1",
    "X-Gitlab-Event": event,
    "X-Gitlab-Event-UUID": randomUUID(),
    "X-Gitlab-Instance": "https://gitlab.example.com",
    "X-Gitlab-Webhook-UUID": randomUUID(),
    "X-Gitlab-Token": secret,
  };
}

export function gitlabPush(o: { repo: Repo; branch: string; before: string; after: string; secret: string }): Delivery {
  const project = gitlabProject(o.repo);
  const body = Buffer.from(JSON.stringify({
    object_kind: "push",
    event_name: "push",
    before: o.before,
    after: o.after,
    ref: `refs/heads/${o.branch}`,
    ref_protected: true,
    checkout_sha: o.after,
    message: null,
    user_id: 4,
    user_name: "Ada Lovelace",
    user_username: "ada",
    user_email: "",
    user_avatar: null,
    project_id: o.repo.id,
    project,
    commits: [{ id: o.after, message: "change\n", title: "change", timestamp: "2025-01-01T00:00:00+00:00", url: `${webUrl(o.repo)}/-/commit/${o.after}`, author: { name: person.name, email: "[REDACTED]" }, added: [], modified: ["app.js"], removed: [] }],
    total_commits_count: 1,
    push_options: {},
    repository: { name: project.name, url: project.url, description: "", homepage: project.homepage, git_http_url: project.git_http_url, git_ssh_url: project.git_ssh_url, visibility_level: 20 },
  }));
  return { headers: gitlabHeaders("Push Hook", o.secret), body };
}

export function gitlabMergeRequest(action: "open" | "update" | "reopen" | "close" | "merge" | "approved", o: PullRequestInput): Delivery {
  const source = gitlabProject(o.head.repo);
  const target = gitlabProject(o.base.repo);
  const state = action === "close" ? "closed" : action === "merge" ? "merged" : "opened";
  const body = Buffer.from(JSON.stringify({
    object_kind: "merge_request",
    event_type: "merge_request",
    user: { id: 4, name: "Ada Lovelace", username: "ada", avatar_url: null, email: "[REDACTED]" },
    project: target,
    object_attributes: {
      id: 90000 + o.number,
      iid: o.number,
      target_branch: o.base.branch,
      source_branch: o.head.branch,
      source_project_id: o.head.repo.id,
      target_project_id: o.base.repo.id,
      author_id: 4,
      title: "Make it better",
      created_at: "2025-01-01 00:00:00 UTC",
      updated_at: "2025-01-01 00:00:00 UTC",
      state,
      merge_status: "can_be_merged",
      detailed_merge_status: "mergeable",
      url: `${webUrl(o.base.repo)}/-/merge_requests/${o.number}`,
      source,
      target,
      last_commit: { id: o.head.sha, message: "change\n", title: "change", timestamp: "2025-01-01T00:00:00+00:00", url: `${webUrl(o.head.repo)}/-/commit/${o.head.sha}`, author: { name: person.name, email: "ada@example.com" } },
      work_in_progress: false,
      draft: false,
      action,
      ...(action === "update" ? { oldrev: "0".repeat(40) } : {}),
    },
    labels: (o.labels ?? []).map((title, i) => ({ id: 300 + i, title, color: "#0e8a16", project_id: o.base.repo.id, description: null, type: "ProjectLabel", group_id: null })),
    changes: {},
    repository: { name: target.name, url: target.url, description: "", homepage: target.homepage },
  }));
  return { headers: gitlabHeaders("Merge Request Hook", o.secret), body };
}

function giteaRepo(repo: Repo) {
  const [owner = "", name = ""] = repo.fullName.split("/");
  return {
    id: repo.id,
    owner: { id: repo.id + 1000, login: owner, login_name: "", full_name: "", email: `${owner}@noreply.localhost`, username: owner },
    name,
    full_name: repo.fullName,
    description: "",
    empty: false,
    private: false,
    fork: repo.fork ?? false,
    template: false,
    parent: null,
    mirror: false,
    size: 32,
    language: "",
    html_url: webUrl(repo),
    url: `${new URL(repo.url).origin}/api/v1/repos/${repo.fullName}`,
    ssh_url: sshUrl(repo),
    clone_url: repo.url,
    original_url: "",
    website: "",
    default_branch: "main",
    archived: false,
  };
}

function giteaHeaders(event: string, eventType: string, body: Buffer, secret: string): Record<string, string> {
  const delivery = randomUUID();
  const sig = hmac("sha256", secret, body);
  // Gitea sends its own headers and, for compatibility, Gogs' and GitHub's.
  return {
    "Content-Type": "application/json",
    "User-Agent": "Go-http-client/1.1",
    "X-Gitea-Delivery": delivery,
    "X-Gitea-Event": event,
    "X-Gitea-Event-Type": eventType,
    "X-Gitea-Signature": sig,
    "X-Gogs-Delivery": delivery,
    "X-Gogs-Event": event,
    "X-Gogs-Event-Type": eventType,
    "X-Gogs-Signature": sig,
    "X-GitHub-Delivery": delivery,
    "X-GitHub-Event": event,
    "X-GitHub-Event-Type": eventType,
    "X-Hub-Signature": `sha1=${hmac("sha1", secret, body)}`,
    "X-Hub-Signature-256": `sha256=${sig}`,
  };
}

export function giteaPush(o: { repo: Repo; branch: string; before: string; after: string; secret: string }): Delivery {
  const commit = { id: o.after, message: "change\n", url: `${webUrl(o.repo)}/commit/${o.after}`, author: person, committer: person, verification: null, timestamp: "2025-01-01T00:00:00Z", added: [], removed: [], modified: ["app.js"] };
  const body = Buffer.from(JSON.stringify({
    ref: `refs/heads/${o.branch}`,
    before: o.before,
    after: o.after,
    compare_url: `${webUrl(o.repo)}/compare/${o.before}...${o.after}`,
    commits: [commit],
    total_commits: 1,
    head_commit: commit,
    repository: giteaRepo(o.repo),
    pusher: { id: 1, login: "ada", username: "ada" },
    sender: { id: 1, login: "ada", username: "ada" },
  }));
  return { headers: giteaHeaders("push", "push", body, o.secret), body };
}

export function giteaPullRequest(action: "opened" | "synchronized" | "reopened" | "closed" | "label_updated", o: PullRequestInput): Delivery {
  const side = (s: PullRequestInput["base"]) => ({ label: s.branch, ref: s.branch, sha: s.sha, repo_id: s.repo.id, repo: giteaRepo(s.repo) });
  const body = Buffer.from(JSON.stringify({
    action,
    number: o.number,
    pull_request: {
      id: 500 + o.number,
      url: `${webUrl(o.base.repo)}/pulls/${o.number}`,
      number: o.number,
      user: { id: 1, login: author(o), username: author(o) },
      title: "Make it better",
      body: "",
      labels: (o.labels ?? []).map((name, i) => ({ id: 300 + i, name, exclusive: false, is_archived: false, color: "0e8a16", description: "", url: "" })),
      state: action === "closed" ? "closed" : "open",
      html_url: `${webUrl(o.base.repo)}/pulls/${o.number}`,
      mergeable: true,
      merged: o.merged ?? false,
      merge_base: o.base.sha,
      base: side(o.base),
      head: side(o.head),
      created_at: "2025-01-01T00:00:00Z",
      updated_at: "2025-01-01T00:00:00Z",
    },
    requested_reviewer: null,
    repository: giteaRepo(o.base.repo),
    sender: { id: 1, login: "ada", username: "ada" },
    commit_id: "",
    review: null,
  }));
  const eventType = action === "synchronized" ? "pull_request_sync" : action === "label_updated" ? "pull_request_label" : "pull_request";
  return { headers: giteaHeaders("pull_request", eventType, body, o.secret), body };
}
