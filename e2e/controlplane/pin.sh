#!/usr/bin/env bash
# Regenerates the pinned go.mod/go.sum for each control-plane component from versions.env.
# The staging replace block for k8s.io/kubernetes is read from its published go.mod, not hard-coded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export GOFLAGS=-mod=mod

pin() { # dir module version replace-lines package...
  local dir=$1 module=$2 version=$3 replaces=$4; shift 4
  mkdir -p "$here/$dir"
  cat > "$here/$dir/go.mod" <<MOD
module slipway.dev/controlplane/$dir

go 1.24.0
$replaces
MOD
  (cd "$here/$dir" && go get "$module@$version" && for pkg in "$@"; do go get "$pkg@$version"; done) 2>/dev/null
  # A wrapper with its own main.go (kpt, argocd-lua) also needs the requirements of what that imports.
  if [ -f "$here/$dir/main.go" ]; then (cd "$here/$dir" && go mod tidy) 2>/dev/null; fi
}

kmod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
staging_version="v0${KUBERNETES_VERSION#v1}"
replaces=$(printf 'replace (\n'; sed -n 's#^\t\(k8s.io/[a-z0-9.-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging_version"'#p' "$kmod"; printf ')\n')
pin kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION" "$replaces" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet
pin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "" go.etcd.io/etcd/server/v3
pin lifecycle github.com/buildpacks/lifecycle "$LIFECYCLE_VERSION" "" github.com/buildpacks/lifecycle/cmd/lifecycle \
  github.com/buildpacks/lifecycle/cmd/launcher
pin kwok sigs.k8s.io/kwok "$KWOK_VERSION" "" sigs.k8s.io/kwok/cmd/kwok
pin kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" "" sigs.k8s.io/kustomize/kustomize/v5
# kpt's root package cannot be fetched whole (kpt/main.go says why): pin its fn commands, which main.go builds.
pin kpt github.com/kptdev/kpt/commands/fn "$KPT_VERSION" ""
# Argo CD: its go.mod's replace block (k8s.io staging modules and the like), without the replace of its
# gitops-engine by the ./gitops-engine directory of its repository; gitops-engine is required at the same
# version instead. Its cmd package (the argocd binary) is a `tool` of the module, so tidy keeps what it needs
# beside what lua/ and redis/ import. Its go.mod needs Go 1.27: see GOTOOLCHAIN in build.sh.
(
  export GOTOOLCHAIN=go1.27.3
  amod=$(go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  areplaces=$(sed -n '/^replace (/,/^)/p' "$amod" | grep -v '=> \./')
  pin argocd github.com/argoproj/argo-cd/v3 "$ARGOCD_VERSION" "$areplaces" github.com/argoproj/argo-cd/gitops-engine/v3
  (cd "$here/argocd" && go get -tool "github.com/argoproj/argo-cd/v3/cmd@$ARGOCD_VERSION" && go mod tidy) 2>/dev/null
)
# Tekton Pipelines: its go.mod's replace lines (both the block and the single ones), copied as Argo CD's are.
# The proxy does not list Tekton's versions; it serves the exact one versions.env names.
tmod=$(go mod download -json "github.com/tektoncd/pipeline@$TEKTON_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
treplaces=$(sed -n -e '/^replace (/,/^)/p' -e '/^replace [^(]/p' "$tmod" | grep -v '=> \./')
pin tekton github.com/tektoncd/pipeline "$TEKTON_VERSION" "$treplaces" \
  github.com/tektoncd/pipeline/cmd/controller github.com/tektoncd/pipeline/cmd/webhook
# Flux's controllers: each wrapper requires the controller and its api module at the same version, with the
# controller's own replace lines (go-digest, and kustomize-controller's kustomize and yaml.v3 pins) except its
# replace of the api module by ./api. source-controller also gets github.com/fluxcd/pkg/artifact at v0.18.1:
# the Go module proxy refuses the zips of v0.18.2 and v0.18.3 ("This module version is not available").
flux_replaces() { # upstream-module version [extra replace line]
  local mod; mod=$(go mod download -json "$1@$2" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  printf 'replace (\n'
  { sed -n 's/^replace \([^(].*\)/\1/p' "$mod"; sed -n '/^replace (/,/^)/p' "$mod" | grep '=>'; } \
    | grep -v '=> \./' | sed 's/^[[:space:]]*/\t/'
  if [ -n "${3:-}" ]; then printf '\t%s\n' "$3"; fi
  printf ')\n'
}
pin source-controller github.com/fluxcd/source-controller "$FLUX_SOURCE_CONTROLLER_VERSION" \
  "$(flux_replaces github.com/fluxcd/source-controller "$FLUX_SOURCE_CONTROLLER_VERSION" \
    'github.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.1')" \
  github.com/fluxcd/source-controller/api
pin kustomize-controller github.com/fluxcd/kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" \
  "$(flux_replaces github.com/fluxcd/kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION")" \
  github.com/fluxcd/kustomize-controller/api
# The real node's wrapper module: every node component's main package is a `tool` of the module (so tidy keeps
# what each needs), beside nodeclean/ and pause/, the module's own helpers. None of these modules has replace lines.
(
  mkdir -p "$here/node"
  printf 'module slipway.dev/controlplane/node\n\ngo 1.26.8\n' > "$here/node/go.mod"
  cd "$here/node"
  go get -tool "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/opencontainers/runc@$RUNC_VERSION" \
    "github.com/containernetworking/plugins/plugins/main/bridge@$CNI_PLUGINS_VERSION" \
    "github.com/containernetworking/plugins/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
    "github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI_PLUGINS_VERSION" \
    "github.com/google/go-containerregistry/cmd/crane@$GO_CONTAINERREGISTRY_VERSION" \
    "github.com/u-root/u-root/cmds/core/gosh@$UROOT_VERSION" \
    "github.com/u-root/u-root/cmds/core/cat@$UROOT_VERSION" \
    "github.com/u-root/u-root/cmds/core/ls@$UROOT_VERSION"
  go mod tidy
) 2>/dev/null
echo "pinned kubernetes $KUBERNETES_VERSION (kubelet too), etcd $ETCD_VERSION, kwok $KWOK_VERSION, kustomize $KUSTOMIZE_VERSION, kpt $KPT_VERSION, argo-cd $ARGOCD_VERSION, tekton $TEKTON_VERSION, source-controller $FLUX_SOURCE_CONTROLLER_VERSION, kustomize-controller $FLUX_KUSTOMIZE_CONTROLLER_VERSION, containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CNI plugins $CNI_PLUGINS_VERSION, crane $GO_CONTAINERREGISTRY_VERSION, u-root $UROOT_VERSION"
