import test from "ava";
import { parseGitEvent, sameRepo, normalizeRepoUrl } from "./events.js";
import { verifyWebhook } from "../webhooks.js";
import {
  giteaPullRequest, giteaPush, githubPullRequest, githubPush, gitlabMergeRequest, gitlabPush, type Delivery, type PullRequestInput, type Repo,
} from "./testdata/payloads.js";

const SECRET = "s3cret";
const shop: Repo = { url: "https://git.example.com/acme/shop.git", fullName: "acme/shop", id: 101 };
const fork: Repo = { url: "https://git.example.com/mallory/shop.git", fullName: "mallory/shop", id: 202, fork: true };
const A = "a".repeat(40);
const B = "b".repeat(40);
const C = "c".repeat(40);

const parse = (d: Delivery) => parseGitEvent(d.headers, JSON.parse(d.body.toString("utf8")));
const pr = (head: Repo, headBranch = "feature"): PullRequestInput => ({
  number: 7,
  base: { repo: shop, branch: "main", sha: A },
  head: { repo: head, branch: headBranch, sha: C },
  secret: SECRET,
});

for (const [name, make] of [["GitHub", githubPush], ["GitLab", gitlabPush], ["Gitea", giteaPush]] as const) {
  test(`a ${name} push to a branch is a push of its new head commit`, (t) => {
    const delivery = make({ repo: shop, branch: "main", before: A, after: B, secret: SECRET });
    const event = parse(delivery);
    t.like(event, { kind: "push", branch: "main", commit: B });
    t.true(event.kind === "push" && event.repoUrls.some((u) => sameRepo(u, "https://git.example.com/acme/shop")));
  });

  test(`a ${name} push delivery carries a signature verifyWebhook accepts, and only with the right secret`, (t) => {
    const delivery = make({ repo: shop, branch: "main", before: A, after: B, secret: SECRET });
    t.true(verifyWebhook(delivery.headers, delivery.body, SECRET).ok);
    t.false(verifyWebhook(delivery.headers, delivery.body, "wrong").ok);
  });
}

test("GitHub and Gitea branch deletions and tag pushes start no build", (t) => {
  const deleted = githubPush({ repo: shop, branch: "main", before: A, after: "0".repeat(40), secret: SECRET });
  t.is(parse(deleted).kind, "ignored");
  const tag = giteaPush({ repo: shop, branch: "main", before: A, after: B, secret: SECRET });
  const body = JSON.parse(tag.body.toString()) as Record<string, unknown>;
  body.ref = "refs/tags/v1.0.0";
  t.like(parseGitEvent(tag.headers, body), { kind: "ignored", reason: "push to refs/tags/v1.0.0 is not a branch" });
});

test("Gitea deliveries are read as Gitea even though they also carry X-GitHub-Event", (t) => {
  const event = parse(giteaPullRequest("synchronized", pr(shop)));
  t.like(event, { kind: "pullRequest", host: "gitea", action: "update" });
});

test("GitHub pull_request opened, synchronize, reopened and closed map to open, update, open and close", (t) => {
  const actions = (["opened", "synchronize", "reopened", "closed"] as const).map((a) => parse(githubPullRequest(a, pr(shop))));
  t.deepEqual(actions.map((e) => e.kind === "pullRequest" && e.action), ["open", "update", "open", "close"]);
});

test("a GitHub pull request names its author, the author's association and its labels; labeled and unlabeled are updates", (t) => {
  const input = { ...pr(fork), labels: ["bug", "slipway/ok-to-preview"], label: "slipway/ok-to-preview" };
  for (const action of ["opened", "labeled", "unlabeled"] as const) {
    t.like(parse(githubPullRequest(action, input)), { kind: "pullRequest", fromFork: true, author: "mallory", authorAssociation: "NONE", labels: ["bug", "slipway/ok-to-preview"] }, action);
  }
  t.like(parse(githubPullRequest("labeled", input)), { action: "update" });
  t.like(parse(githubPullRequest("opened", { ...pr(fork), association: "COLLABORATOR" })), { authorAssociation: "COLLABORATOR", labels: [] });
});

test("a Gitea pull request names its author and labels, and a label change is an update", (t) => {
  t.like(parse(giteaPullRequest("label_updated", { ...pr(fork), labels: ["slipway/ok-to-preview"] })),
    { kind: "pullRequest", host: "gitea", action: "update", fromFork: true, author: "mallory", labels: ["slipway/ok-to-preview"] });
});

test("a GitLab merge request carries its labels but no author (the payload names only who acted)", (t) => {
  const event = parse(gitlabMergeRequest("update", { ...pr(fork), labels: ["slipway/ok-to-preview"] }));
  t.like(event, { kind: "pullRequest", host: "gitlab", action: "update", fromFork: true, labels: ["slipway/ok-to-preview"] });
  t.true(event.kind === "pullRequest" && event.author === undefined);
});

test("GitHub pull_request edited changes no preview", (t) => {
  t.like(parse(githubPullRequest("edited", pr(shop))), { kind: "ignored" });
});

test("GitLab merge request open, update, reopen, close and merge map to open, update, open, close and close", (t) => {
  const actions = (["open", "update", "reopen", "close", "merge"] as const).map((a) => parse(gitlabMergeRequest(a, pr(shop))));
  t.deepEqual(actions.map((e) => e.kind === "pullRequest" && e.action), ["open", "update", "open", "close", "close"]);
  t.like(parse(gitlabMergeRequest("approved", pr(shop))), { kind: "ignored" });
});

test("Gitea pull_request opened, synchronized, reopened and closed map to open, update, open and close", (t) => {
  const actions = (["opened", "synchronized", "reopened", "closed"] as const).map((a) => parse(giteaPullRequest(a, pr(shop))));
  t.deepEqual(actions.map((e) => e.kind === "pullRequest" && e.action), ["open", "update", "open", "close"]);
});

for (const [name, make] of [
  ["GitHub", (i: PullRequestInput) => githubPullRequest("opened", i)],
  ["GitLab", (i: PullRequestInput) => gitlabMergeRequest("open", i)],
  ["Gitea", (i: PullRequestInput) => giteaPullRequest("opened", i)],
] as const) {
  test(`a ${name} pull request names its number, base branch, head repository, branch and commit`, (t) => {
    const event = parse(make(pr(shop)));
    if (event.kind !== "pullRequest") return t.fail(`not a pull request: ${JSON.stringify(event)}`);
    t.is(event.number, 7);
    t.is(event.base.branch, "main");
    t.true(event.base.repoUrls.some((u) => sameRepo(u, shop.url)));
    t.deepEqual(event.head, { repoUrl: shop.url, branch: "feature", commit: C });
    t.false(event.fromFork);
  });

  test(`a ${name} pull request from a fork is recognised as one`, (t) => {
    const event = parse(make(pr(fork, "main")));
    t.like(event, { kind: "pullRequest", fromFork: true, head: { repoUrl: fork.url, branch: "main", commit: C } });
  });
}

test("a GitHub pull request closed after its fork was deleted still closes the preview", (t) => {
  const delivery = githubPullRequest("closed", pr(fork));
  const body = JSON.parse(delivery.body.toString()) as { pull_request: { head: { repo: unknown } } };
  body.pull_request.head.repo = null;
  t.like(parseGitEvent(delivery.headers, body), { kind: "pullRequest", action: "close", number: 7 });
});

test("events without a provider's event header are ignored with the reason", (t) => {
  t.deepEqual(parseGitEvent({ "content-type": "application/json" }, {}), {
    kind: "ignored",
    reason: "no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header",
  });
});

test("a GitHub ping is ignored", (t) => {
  t.like(parseGitEvent({ "X-GitHub-Event": "ping" }, { zen: "Keep it logically awesome." }), { kind: "ignored" });
});

test("repository URLs compare equal across scheme, .git suffix, trailing slash, case of host and scp-like ssh", (t) => {
  t.true(sameRepo("https://Git.Example.com/acme/shop.git", "http://git.example.com/acme/shop/"));
  t.true(sameRepo("git@git.example.com:acme/shop.git", "https://git.example.com/acme/shop"));
  t.false(sameRepo("http://127.0.0.1:3000/acme/shop.git", "http://127.0.0.1:4000/acme/shop.git"));
  t.false(sameRepo("https://git.example.com/acme/shop", "https://git.example.com/acme/shop2"));
  t.is(normalizeRepoUrl("http://127.0.0.1:3000/shop.git"), "127.0.0.1:3000/shop");
});
