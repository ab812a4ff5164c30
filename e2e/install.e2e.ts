// The install manifests (operator/deploy) against a real API server: they apply, the operator's pods pass the
// namespace's restricted Pod Security admission and run (on kwok), and RBAC grants exactly what each role needs.
import test from "ava";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "./cli-support.js";
import { repoRoot } from "../operator/local/controlplane.js";
import { controlPlane, freshNamespace, waitFor } from "./harness/suite.js";

const OPERATOR = "system:serviceaccount:slipway-system:slipway";

const OVERLAY = "e2e/install-overlay";

/** Installs Slipway once per file; the install is idempotent and shared (CRDs are never removed). */
let installed: Promise<{ first: string; second: string }> | undefined;
function install(): Promise<{ first: string; second: string }> {
  installed ??= (async () => {
    const cp = await controlPlane();
    // e2e/install-overlay is operator/deploy with the admission policy bound to labelled namespaces only.
    const first = await cp.kubectlOk(["apply", "--server-side", "-k", OVERLAY], { what: "install failed" });
    await cp.kubectlOk(["wait", "--for=condition=Established", "--timeout=60s",
      "crd/apps.slipway.dev", "crd/configs.slipway.dev", "crd/releases.slipway.dev"], { what: "CRDs not established" });
    const second = await cp.kubectlOk(["apply", "--server-side", "-k", OVERLAY], { what: "second install failed" });
    return { first, second };
  })();
  return installed;
}

async function canI(as: string, args: string[]): Promise<string> {
  const cp = await controlPlane();
  const r = await cp.kubectl(["auth", "can-i", ...args, `--as=${as}`]);
  return r.stdout.trim();
}

/**
 * Asks the authorizer with a SubjectAccessReview, for API groups whose CRDs are not installed here
 * (kubectl auth can-i cannot name a resource the server does not serve).
 */
async function operatorMay(verb: string, group: string, resource: string, namespace: string): Promise<boolean> {
  const cp = await controlPlane();
  const review = {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SubjectAccessReview",
    spec: {
      user: OPERATOR,
      groups: ["system:serviceaccounts", "system:serviceaccounts:slipway-system", "system:authenticated"],
      resourceAttributes: { verb, group, resource, namespace },
    },
  };
  const r = await cp.kubectlOk(["create", "-f", "-", "-o", "jsonpath={.status.allowed}"], { input: JSON.stringify(review), what: "SubjectAccessReview failed" });
  return r.trim() === "true";
}

/** Asks for every case and returns the ones whose answer differs, so one failure lists all wrong rules. */
async function wrongAnswers(as: string, cases: [expected: "yes" | "no", ...args: string[]][]): Promise<string[]> {
  const answers = await Promise.all(cases.map(([, ...args]) => canI(as, args)));
  return cases.flatMap(([expected, ...args], i) =>
    answers[i] === expected ? [] : [`${args.join(" ")}: expected ${expected}, got ${answers[i]}`]);
}

test("kubectl apply --server-side -k operator/deploy (its admission binding scoped to labelled namespaces) installs Slipway, and applying it again changes nothing", async (t) => {
  const { first, second } = await install();
  for (const object of [
    "customresourcedefinition.apiextensions.k8s.io/apps.slipway.dev",
    "namespace/slipway-system",
    "serviceaccount/slipway",
    "clusterrole.rbac.authorization.k8s.io/slipway-operator",
    "clusterrole.rbac.authorization.k8s.io/slipway-developer",
    "clusterrole.rbac.authorization.k8s.io/slipway-viewer",
    "role.rbac.authorization.k8s.io/slipway-operator-leader-election",
    "validatingadmissionpolicy.admissionregistration.k8s.io/slipway-changed-by",
    "validatingadmissionpolicybinding.admissionregistration.k8s.io/slipway-changed-by",
    "validatingadmissionpolicy.admissionregistration.k8s.io/slipway-flux-hold",
    "validatingadmissionpolicybinding.admissionregistration.k8s.io/slipway-flux-hold",
    "deployment.apps/slipway-operator",
  ]) {
    t.true(first.includes(object), `${object} missing from:\n${first}`);
  }
  t.regex(second, /deployment\.apps\/slipway-operator serverside-applied/);
  const cp = await controlPlane();
  const generation = await cp.kubectl(["get", "deployment", "slipway-operator", "-n", "slipway-system",
    "-o", "jsonpath={.metadata.generation}"]);
  t.is(generation.stdout, "1", "the second apply did not change the Deployment");
});

test("the operator's two replicas pass restricted Pod Security and run with their pod name as identity", async (t) => {
  await install();
  const cp = await controlPlane();
  const rollout = await cp.kubectl(["rollout", "status", "deployment/slipway-operator", "-n", "slipway-system", "--timeout=90s"]);
  t.is(rollout.code, 0, rollout.stderr);
  const pods = await cp.kubectl(["get", "pods", "-n", "slipway-system", "-l", "app.kubernetes.io/component=operator",
    "-o", "jsonpath={range .items[*]}{.status.phase} {.spec.serviceAccountName} {.spec.containers[0].env[?(@.name=='POD_NAME')].valueFrom.fieldRef.fieldPath}{\"\\n\"}{end}"]);
  t.deepEqual(pods.stdout.trim().split("\n"), ["Running slipway metadata.name", "Running slipway metadata.name"]);

  // The same pod without its security settings is refused by the namespace's restricted policy.
  const rootPod = `apiVersion: v1
kind: Pod
metadata: { name: not-restricted, namespace: slipway-system }
spec:
  containers: [{ name: c, image: registry.example/x:1 }]
`;
  const refused = await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], { input: rootPod });
  t.not(refused.code, 0);
  t.regex(refused.stderr, /violates PodSecurity "restricted/);
});

test("the operator's ServiceAccount can do what reconciling, building and leading need", async (t) => {
  await install();
  const ns = await freshNamespace(t);
  t.deepEqual(await wrongAnswers(OPERATOR, [
    ["yes", "watch", "apps.slipway.dev", "--all-namespaces"],
    ["yes", "create", "releases.slipway.dev", "-n", ns],
    ["yes", "delete", "configs.slipway.dev", "-n", ns],
    ["yes", "patch", "apps.slipway.dev", "--subresource=status", "-n", ns],
    ["yes", "update", "apps.slipway.dev", "--subresource=finalizers", "-n", ns],
    ["yes", "patch", "deployments.apps", "-n", ns],
    ["yes", "delete", "services", "-n", ns],
    ["yes", "get", "secrets", "-n", ns],
    ["yes", "create", "events", "-n", ns],
    ["yes", "patch", "ingresses.networking.k8s.io", "-n", ns],
    ["yes", "patch", "horizontalpodautoscalers.autoscaling", "-n", ns],
    ["yes", "watch", "pods", "-n", ns],
    ["yes", "create", "persistentvolumeclaims", "-n", ns],
    ["yes", "create", "leases.coordination.k8s.io", "-n", "slipway-system"],
    ["yes", "update", "leases.coordination.k8s.io/slipway-operator", "-n", "slipway-system"],
  ]), []);
  // Tekton and the Gateway API are not installed here, so ask the authorizer directly.
  t.true(await operatorMay("create", "tekton.dev", "pipelineruns", ns));
  t.true(await operatorMay("delete", "tekton.dev", "pipelineruns", ns));
  t.true(await operatorMay("watch", "tekton.dev", "pipelineruns", ns));
  t.true(await operatorMay("patch", "gateway.networking.k8s.io", "httproutes", ns));
});

test("the operator's ServiceAccount cannot write Secrets or touch other leases", async (t) => {
  await install();
  const ns = await freshNamespace(t);
  t.deepEqual(await wrongAnswers(OPERATOR, [
    ["no", "create", "secrets", "-n", ns],
    ["no", "delete", "secrets", "-n", ns],
    // It gets the Secrets Apps and Configs name; it cannot find others (operator/deploy/rbac.yaml).
    ["no", "list", "secrets", "-n", ns],
    ["no", "watch", "secrets", "--all-namespaces"],
    ["no", "update", "leases.coordination.k8s.io/kube-controller-manager", "-n", "kube-system"],
    ["no", "create", "leases.coordination.k8s.io", "-n", ns],
    ["no", "update", "leases.coordination.k8s.io/another-lease", "-n", "slipway-system"],
    ["no", "create", "pods", "-n", ns],
    ["no", "delete", "persistentvolumeclaims", "-n", ns],
    ["no", "delete", "namespaces"],
    ["no", "create", "clusterrolebindings.rbac.authorization.k8s.io"],
  ]), []);
  t.false(await operatorMay("update", "tekton.dev", "pipelineruns", ns), "a started build is never edited");
  t.false(await operatorMay("create", "gateway.networking.k8s.io", "gateways", ns), "Gateways belong to the platform");
});

test("a developer bound to slipway-developer runs apps in the team namespace but cannot cut releases or read secrets", async (t) => {
  await install();
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const bound = await cp.kubectl(["create", "rolebinding", "developers", "-n", ns, "--clusterrole=slipway-developer", "--user=dana"]);
  t.is(bound.code, 0, bound.stderr);
  const other = await freshNamespace(t);
  t.deepEqual(await wrongAnswers("dana", [
    ["yes", "create", "apps.slipway.dev", "-n", ns],
    ["yes", "update", "configs.slipway.dev", "-n", ns],
    ["yes", "list", "releases.slipway.dev", "-n", ns],
    ["yes", "get", "pods", "--subresource=log", "-n", ns],
    ["yes", "create", "pods", "-n", ns],
    ["yes", "create", "secrets", "-n", ns],
    ["yes", "patch", "secrets/web-shop-env", "-n", ns],
    ["yes", "delete", "secrets/web-shop-env", "-n", ns],
    ["no", "create", "releases.slipway.dev", "-n", ns],
    ["no", "list", "secrets", "-n", ns],
    ["no", "get", "secrets", "-n", ns],
    ["no", "delete", "deployments.apps", "-n", ns],
    ["no", "create", "apps.slipway.dev", "-n", other],
  ]), []);
});

test("a viewer bound to slipway-viewer reads apps, releases and logs but cannot create apps", async (t) => {
  await install();
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const bound = await cp.kubectl(["create", "rolebinding", "viewers", "-n", ns, "--clusterrole=slipway-viewer", "--user=vic"]);
  t.is(bound.code, 0, bound.stderr);
  t.deepEqual(await wrongAnswers("vic", [
    ["yes", "get", "apps.slipway.dev", "-n", ns],
    ["yes", "list", "releases.slipway.dev", "-n", ns],
    ["yes", "get", "pods", "--subresource=log", "-n", ns],
    ["no", "create", "apps.slipway.dev", "-n", ns],
    ["no", "patch", "configs.slipway.dev", "-n", ns],
    ["no", "get", "secrets", "-n", ns],
    ["no", "create", "pods", "-n", ns],
  ]), []);
});

test("Kubernetes' built-in view and edit roles include Slipway's resources through aggregation", async (t) => {
  await install();
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  for (const [role, user] of [["view", "vera"], ["edit", "eddie"]] as const) {
    const bound = await cp.kubectl(["create", "rolebinding", role, "-n", ns, `--clusterrole=${role}`, `--user=${user}`]);
    t.is(bound.code, 0, bound.stderr);
  }
  await waitFor(async () => (await canI("eddie", ["create", "apps.slipway.dev", "-n", ns])) === "yes", 30_000,
    () => "the edit role never aggregated slipway-developer");
  await waitFor(async () => (await canI("vera", ["list", "releases.slipway.dev", "-n", ns])) === "yes", 30_000,
    () => "the view role never aggregated slipway-viewer");
  t.is(await canI("vera", ["create", "apps.slipway.dev", "-n", ns]), "no");
  t.is(await canI("eddie", ["create", "releases.slipway.dev", "-n", ns]), "no");
});

test("admission refuses a changed-by annotation that names someone else, and lets the honest write and the CLI through", async (t) => {
  await install();
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  const labelled = await cp.kubectl(["label", "namespace", ns, "slipway.dev/e2e-admission=true"]);
  t.is(labelled.code, 0, labelled.stderr);
  for (const user of ["alice", "mallory"]) {
    const bound = await cp.kubectl(["create", "rolebinding", `developer-${user}`, "-n", ns, "--clusterrole=slipway-developer", `--user=${user}`]);
    t.is(bound.code, 0, bound.stderr);
  }
  const image = `registry.example/web@sha256:${"a".repeat(64)}`;
  const app = (name: string, by: string) =>
    `apiVersion: slipway.dev/v1alpha1\nkind: App\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n  annotations:\n    slipway.dev/changed-by: ${by}\nspec:\n  image: ${image}\n`;
  const applyAs = (user: string, yaml: string) => cp.kubectl(["apply", "--server-side", `--as=${user}`, "-f", "-"], { input: yaml });
  const expected = 'slipway.dev/changed-by must name who makes the change: it says "alice", but this request is from "mallory"; set it to "mallory" or leave it out';

  // The policy takes effect a moment after it is created.
  let forged = await applyAs("mallory", app("forged", "alice"));
  await waitFor(async () => (forged = await applyAs("mallory", app("forged", "alice"))).code !== 0, 30_000,
    () => `mallory's App claiming to be alice's was admitted: ${forged.stdout}`);
  t.true(forged.stderr.includes(expected), forged.stderr);
  t.regex(forged.stderr, /ValidatingAdmissionPolicy 'slipway-changed-by'/);
  t.is((await cp.kubectl(["get", "apps.slipway.dev", "forged", "-n", ns])).code, 1, "the forged App exists");

  // The honest write passes; changing someone else's annotation to another name does not.
  const honest = await applyAs("alice", app("web", "alice"));
  t.is(honest.code, 0, honest.stderr);
  const overwrite = await cp.kubectl(["annotate", "--overwrite", "--as=mallory", "-n", ns, "apps.slipway.dev/web", "slipway.dev/changed-by=bob"]);
  t.not(overwrite.code, 0);
  t.regex(overwrite.stderr, /it says "bob", but this request is from "mallory"/);
  // Leaving it as it is, or claiming one's own name, is allowed.
  t.is((await cp.kubectl(["label", "--as=mallory", "-n", ns, "apps.slipway.dev/web", "tier=front"])).code, 0);
  t.is((await cp.kubectl(["annotate", "--overwrite", "--as=mallory", "-n", ns, "apps.slipway.dev/web", "slipway.dev/changed-by=mallory"])).code, 0);

  // kubectl slipway records the user the API server authenticated, so its writes pass.
  const cli = await runCli(["-n", ns, "--as", "mallory", "apps:create", "api", "--image", image], { KUBECONFIG: cp.kubeconfigPath }).done;
  t.is(cli.code, 0, cli.stderr);
  const by = await cp.kubectl(["get", "apps.slipway.dev", "api", "-n", ns, "-o", "jsonpath={.metadata.annotations.slipway\\.dev/changed-by}"]);
  t.is(by.stdout, "mallory");
});

test("in a team namespace set up like samples/namespaces/team.yaml, a developer's privileged or host-mounting one-off pod is refused by Pod Security, and a plain one runs", async (t) => {
  await install();
  const cp = await controlPlane();
  const ns = await freshNamespace(t);
  // The sample, applied to this test's namespace: its Pod Security labels and the developers' RoleBinding.
  const sample = readFileSync(join(repoRoot, "samples/namespaces/team.yaml"), "utf8").replaceAll("team-a", ns);
  const applied = await cp.kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], { input: sample });
  t.is(applied.code, 0, applied.stderr);
  const as = ["--as=dev", `--as-group=${ns}-developers`];
  const pod = (name: string, container: object = {}, volumes: object[] = []) => JSON.stringify({
    apiVersion: "v1", kind: "Pod", metadata: { name, namespace: ns },
    spec: { restartPolicy: "Never", containers: [{ name: "run", image: `registry.example/web@sha256:${"a".repeat(64)}`, ...container }], volumes },
  });
  const privileged = await cp.kubectl(["create", ...as, "-f", "-"], { input: pod("escalate", { securityContext: { privileged: true } }) });
  t.not(privileged.code, 0, privileged.stdout);
  t.regex(privileged.stderr, /violates PodSecurity "baseline:latest": privileged/);
  const hostPath = await cp.kubectl(["create", ...as, "-f", "-"], {
    input: pod("host", { volumeMounts: [{ name: "root", mountPath: "/host" }] }, [{ name: "root", hostPath: { path: "/" } }]),
  });
  t.not(hostPath.code, 0, hostPath.stdout);
  t.regex(hostPath.stderr, /violates PodSecurity "baseline:latest": hostPath volumes/);
  // What `kubectl slipway run` creates passes, with a warning about the restricted level.
  const plain = await cp.kubectl(["create", ...as, "-f", "-"], { input: pod("oneoff") });
  t.is(plain.code, 0, plain.stderr);
  t.regex(plain.stderr, /would violate PodSecurity "restricted:latest"/);
});
