#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go module proxy,
# pinned by the go.mod files beside this script, into a cache outside the repository keyed by version and
# go.sum, so only the first run on a machine pays for the build. Prints the binary directory.
# Also builds the standalone kustomize the render tests use (kubectl's own cannot run exec functions), and
# kubectl and kpt, which the tests and `npm start` put first on PATH, so no machine needs them installed.
#   build.sh --kustomize   builds only kustomize and prints the path of that binary
#   build.sh --tools       builds only kubectl and kpt and prints the directory holding them (and nothing else)
#   build.sh --argocd-lua  builds only argocd-lua (Argo CD's own Lua health-check evaluation, for
#                          operator/gitops/health.test.ts) and prints the path of that binary
#   build.sh --argocd      builds Argo CD (argocd, argocd-redis, argocd-lua and its manifests, for
#                          e2e/argocd.e2e.ts) and prints the directory holding them
#   build.sh --tekton      builds only Tekton Pipelines' controller and webhook (as tekton-controller and
#                          tekton-webhook) and the programs of its TaskRun pods' images, and prints their directory
#   build.sh --flux        builds only Flux's source-controller and kustomize-controller (e2e/flux.e2e.ts and the
#                          Flux bench) and prints the directory holding them (and nothing else)
#   build.sh --kubelet     builds only the kubelet and prints the path of that binary
#   build.sh --traefik     builds Traefik (the ingress controller in front of the real node's pods, with its RBAC
#                          and the Gateway API CRDs of its module's go.mod beside it) and prints the directory
#   build.sh --node        builds the real node (operator/local/realnode.ts): kubelet, containerd and its runc shim,
#                          runc, the CNI bridge, host-local and loopback plugins, crane, gosh/cat/ls, pause and
#                          nodeclean, and prints the directory holding them; also the buildpacks lifecycle
#   build.sh --lifecycle   builds only the buildpacks lifecycle and launcher and prints the directory holding them
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${SLIPWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/slipway}/controlplane
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

# build DIR MODULE_DIR [LDFLAGS] PKG... : builds each package's binary into DIR, atomically.
build() {
  local dir=$1 module=$2 ldflags=$3; shift 3
  command -v go >/dev/null || { echo "build.sh: Go is required to build the local control plane (https://go.dev/dl)" >&2; exit 1; }
  mkdir -p "$cache"
  local tmp; tmp=$(mktemp -d "$cache/.build-XXXXXX")
  for pkg in "$@"; do
    (cd "$here/$module" && go build -trimpath -ldflags="$ldflags" -o "$tmp/" "$pkg") >&2 || { rm -rf "$tmp"; exit 1; }
  done
  mkdir -p "$dir" && mv "$tmp"/* "$dir"/ && rm -rf "$tmp"
}

# build_as DIR MODULE LDFLAGS NAME PKG : builds one package's binary into DIR under NAME, atomically.
build_as() {
  local dir=$1 module=$2 ldflags=$3 name=$4 pkg=$5
  mkdir -p "$cache" "$dir"
  local tmp; tmp=$(mktemp -d "$cache/.build-XXXXXX")
  (cd "$here/$module" && go build -trimpath -ldflags="$ldflags" -o "$tmp/$name" "$pkg") >&2 || { rm -rf "$tmp"; exit 1; }
  mv "$tmp/$name" "$dir/$name" && rm -rf "$tmp"
}

# publish TMP DIR : moves a finished build into place in one rename. Several build.sh may run at once (test
# runs in parallel): if another one got there first, its directory is kept and this one's dropped.
publish() { chmod 755 "$1" && mv -T "$1" "$2" 2>/dev/null || rm -rf "$1"; }
tmptools="" tmpbin="" tmpflux="" tmpnode="" tmptraefik="" tmplifecycle=""
trap 'rm -rf ${tmptools:+"$tmptools"} ${tmpbin:+"$tmpbin"} ${tmpflux:+"$tmpflux"} ${tmpnode:+"$tmpnode"} ${tmptraefik:+"$tmptraefik"} ${tmplifecycle:+"$tmplifecycle"}' EXIT

# hash FILE... : a short hash of the files, for cache keys.
hash() { cat "$@" | sha256sum | cut -c1-12; }

ver="k8s.io/component-base/version"
kver=${KUBERNETES_VERSION#v}
kldflags="-s -w -X $ver.gitVersion=$KUBERNETES_VERSION -X $ver.gitMajor=${kver%%.*} -X $ver.gitMinor=$(echo "$kver" | cut -d. -f2) -X $ver.buildDate=1970-01-01T00:00:00Z -X $ver.gitTreeState=clean"

# Argo CD (e2e/controlplane/argocd, one wrapper module): the argocd binary (application controller,
# repo-server and cmp-server in one; it picks its role from its name or ARGOCD_BINARY_NAME), argocd-redis
# (miniredis, the Redis their caches need) and argocd-lua (Argo CD's own Lua health-check evaluation), plus the
# module's own manifests/crds and manifests/base/config, copied beside them for the e2e harness to install, and
# the hack/ scripts Argo CD's image puts on PATH.
# argo-cd's go.mod says go 1.27.0, newer than the Go these machines start with: GOTOOLCHAIN makes the go
# command fetch that toolchain from the Go module proxy (about 76 MB, once per machine) for this module only;
# everything else builds with the machine's Go. Part of the cache key, like the version.
argocd_toolchain=go1.27.3
argocd_dir="$cache/argocd-$ARGOCD_VERSION-$argocd_toolchain-$(hash "$here"/argocd/{go.sum,go.mod,lua/main.go,redis/main.go})"
argocd_lua() {
  if [ ! -x "$argocd_dir/argocd-lua" ]; then
    echo "build.sh: building argocd-lua (Argo CD $ARGOCD_VERSION's util/lua) into $argocd_dir (first run on this machine; takes several minutes)" >&2
    (export GOTOOLCHAIN=$argocd_toolchain; build_as "$argocd_dir" argocd "-s -w" argocd-lua ./lua)
  fi
}
argocd() {
  argocd_lua
  if [ ! -x "$argocd_dir/argocd" ] || [ ! -x "$argocd_dir/argocd-redis" ] || [ ! -d "$argocd_dir/manifests" ] \
    || [ ! -x "$argocd_dir/scripts/git-verify-wrapper.sh" ]; then
    echo "build.sh: building Argo CD $ARGOCD_VERSION into $argocd_dir (first run on this machine; about 6 minutes on 2 cores)" >&2
    local start; start=$(date +%s)
    (
      export GOTOOLCHAIN=$argocd_toolchain
      build_as "$argocd_dir" argocd "-s -w" argocd-redis ./redis
      build_as "$argocd_dir" argocd "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v}" argocd github.com/argoproj/argo-cd/v3/cmd
      # The manifests Argo CD's release is made of, from the module itself (never hand-written copies).
      src=$(cd "$here/argocd" && go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
      # And the scripts its image puts on PATH: the repo-server runs git-verify-wrapper.sh for every revision.
      tmpm=$(mktemp -d "$cache/.manifests-XXXXXX")
      mkdir -p "$tmpm/manifests/base" "$tmpm/scripts" && cp -r "$src/manifests/crds" "$tmpm/manifests/crds"
      cp -r "$src/manifests/base/config" "$tmpm/manifests/base/config"
      cp "$src/hack/git-verify-wrapper.sh" "$src/hack/gpg-wrapper.sh" "$tmpm/scripts/"
      chmod -R u+w,go+rX "$tmpm" && chmod 755 "$tmpm" "$tmpm"/scripts/*.sh
      mv -T "$tmpm/manifests" "$argocd_dir/manifests" 2>/dev/null; mv -T "$tmpm/scripts" "$argocd_dir/scripts" 2>/dev/null; rm -rf "$tmpm"
    )
    echo "build.sh: built Argo CD in $(( $(date +%s) - start ))s" >&2
  fi
}

kustomize_dir="$cache/kustomize-$KUSTOMIZE_VERSION-$(hash "$here"/kustomize/go.sum "$here"/kustomize/go.mod)"
kustomize() {
  if [ ! -x "$kustomize_dir/kustomize" ]; then
    echo "build.sh: building kustomize $KUSTOMIZE_VERSION into $kustomize_dir" >&2
    build "$kustomize_dir" kustomize "-s -w" sigs.k8s.io/kustomize/kustomize/v5
  fi
}

# kubectl (from the pinned kubernetes module, stamped with its version like the control plane) and kpt's fn
# commands (kpt/main.go says why not all of kpt), in one directory that holds nothing else, for PATH.
tools_dir="$cache/tools-k8s-$KUBERNETES_VERSION-kpt-$KPT_VERSION-$(hash "$here"/kubernetes/{go.sum,go.mod} "$here"/kpt/{go.sum,go.mod,main.go})"
tools() {
  if [ ! -x "$tools_dir/kubectl" ] || [ ! -x "$tools_dir/kpt" ]; then
    echo "build.sh: building kubectl $KUBERNETES_VERSION and kpt $KPT_VERSION into $tools_dir" >&2
    mkdir -p "$cache" && tmptools=$(mktemp -d "$cache/.tools-XXXXXX")
    build "$tmptools" kubernetes "$kldflags" k8s.io/kubernetes/cmd/kubectl
    build "$tmptools" kpt "-s -w -X main.version=$KPT_VERSION" .
    publish "$tmptools" "$tools_dir"
  fi
}

# Tekton Pipelines' controller and webhook, which the e2e harness and `npm start` run as processes beside the
# control plane. Their CRDs, RBAC and ConfigMaps are read from the same module's config/ directory in the Go
# module cache (e2e/harness/tekton.ts). Beside them, the programs of the images Tekton puts in a TaskRun's pod
# (entrypoint, nop, workingdirinit, sidecarlogresults), which the real node runs (operator/local/build-images.ts).
tekton_cmds="controller webhook entrypoint nop workingdirinit sidecarlogresults"
tekton_dir="$cache/tekton-$TEKTON_VERSION-$(echo "$tekton_cmds" | cat - "$here"/tekton/{go.sum,go.mod} | sha256sum | cut -c1-12)"
tekton() {
  if [ ! -x "$tekton_dir/tekton-controller" ] || [ ! -x "$tekton_dir/tekton-webhook" ] || [ ! -x "$tekton_dir/entrypoint" ]; then
    local start; start=$(date +%s)
    echo "build.sh: building Tekton Pipelines $TEKTON_VERSION ($tekton_cmds) into $tekton_dir (first run on this machine; takes several minutes)" >&2
    mkdir -p "$cache" && tmptools=$(mktemp -d "$cache/.tekton-XXXXXX")
    # shellcheck disable=SC2046
    build "$tmptools" tekton "-s -w" $(for c in $tekton_cmds; do echo "github.com/tektoncd/pipeline/cmd/$c"; done)
    mv "$tmptools/controller" "$tmptools/tekton-controller" && mv "$tmptools/webhook" "$tmptools/tekton-webhook"
    publish "$tmptools" "$tekton_dir"
    echo "build.sh: built Tekton in $(( $(date +%s) - start ))s" >&2
  fi
}

# Flux's source-controller and kustomize-controller, from the wrapper modules pin.sh writes (they say why
# v1.9.6 and why the replaces), in one directory. Their CRDs are not copied: the harness installs them from
# each module's config/crd/bases/ in the Go module cache (e2e/harness/flux.ts).
flux_dir="$cache/flux-source-$FLUX_SOURCE_CONTROLLER_VERSION-kustomize-$FLUX_KUSTOMIZE_CONTROLLER_VERSION-$(hash "$here"/source-controller/{go.sum,go.mod} "$here"/kustomize-controller/{go.sum,go.mod})"
flux() {
  if [ ! -x "$flux_dir/source-controller" ] || [ ! -x "$flux_dir/kustomize-controller" ]; then
    echo "build.sh: building Flux's source-controller $FLUX_SOURCE_CONTROLLER_VERSION and kustomize-controller $FLUX_KUSTOMIZE_CONTROLLER_VERSION into $flux_dir (first run on this machine; takes several minutes)" >&2
    mkdir -p "$cache" && tmpflux=$(mktemp -d "$cache/.flux-XXXXXX")
    local start; start=$(date +%s)
    build "$tmpflux" source-controller "-s -w" github.com/fluxcd/source-controller
    echo "build.sh: source-controller built in $(( $(date +%s) - start ))s" >&2
    start=$(date +%s)
    build "$tmpflux" kustomize-controller "-s -w" github.com/fluxcd/kustomize-controller
    echo "build.sh: kustomize-controller built in $(( $(date +%s) - start ))s" >&2
    publish "$tmpflux" "$flux_dir"
  fi
}

# The real node (operator/local/realnode.ts): the kubelet, from the pinned kubernetes module and stamped like the
# control plane, in a directory of its own keyed by that module; then containerd and its runc shim, runc, the
# CNI bridge, host-local and loopback plugins, crane, u-root's gosh, cat and ls (a shell for `kubectl exec` in
# locally built images), and the node module's own pause and nodeclean, from the node wrapper module, in one
# directory with a copy of the kubelet, keyed by both. runc needs cgo (its nsenter is C): it is the one binary
# built with CGO_ENABLED=1, and without the seccomp tag (that needs libseccomp's headers), as its Makefile would
# with RUNC_BUILDTAGS=-seccomp; containerd runs it through runc-noseccomp (node/runc-noseccomp/main.go says why).
# Each step's build time is printed. Cold (each with an empty Go build cache of its own), on 2 cores shared with
# other work: the kubelet 13 minutes, containerd and its shim 3.5, crane 1.1, runc 0.6, the CNI plugins 0.6; the
# whole --node from an empty cache took 18 minutes.
kubelet_dir="$cache/kubelet-$KUBERNETES_VERSION-$(hash "$here"/kubernetes/{go.sum,go.mod})"
kubelet() {
  if [ ! -x "$kubelet_dir/kubelet" ]; then
    echo "build.sh: building the kubelet $KUBERNETES_VERSION into $kubelet_dir (first run on this machine; takes several minutes)" >&2
    local start; start=$(date +%s)
    build_as "$kubelet_dir" kubernetes "$kldflags" kubelet k8s.io/kubernetes/cmd/kubelet
    echo "build.sh: kubelet built in $(( $(date +%s) - start ))s" >&2
  fi
}
# node_build NAME CGO TAGS LDFLAGS PKG... : builds the node module's packages into $tmpnode and prints the time.
node_build() {
  local name=$1 cgo=$2 tags=$3 ldflags=$4 start; start=$(date +%s); shift 4
  for pkg in "$@"; do
    (cd "$here/node" && CGO_ENABLED=$cgo go build -trimpath -tags="$tags" -ldflags="$ldflags" -o "$tmpnode/" "$pkg") >&2 || exit 1
  done
  echo "build.sh: $name built in $(( $(date +%s) - start ))s" >&2
}
node_dir="$cache/node-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION-cni-$CNI_PLUGINS_VERSION-crane-$GO_CONTAINERREGISTRY_VERSION-$(hash "$here"/node/{go.sum,go.mod,pause/main.go,nodeclean/main.go,runc-noseccomp/main.go} "$here"/kubernetes/{go.sum,go.mod})"
node() {
  # runc is built with cgo: without a C compiler the node cannot be built, and building the kubelet first would be
  # minutes spent for nothing.
  if [ ! -x "$node_dir/runc" ] && ! command -v gcc >/dev/null && ! command -v cc >/dev/null; then
    echo "build.sh: the real node's runc is built with cgo, and this machine has no C compiler (gcc or cc)" >&2
    exit 1
  fi
  kubelet
  if [ ! -x "$node_dir/containerd" ] || [ ! -x "$node_dir/runc" ] || [ ! -x "$node_dir/kubelet" ] || [ ! -x "$node_dir/nodeclean" ] || [ ! -x "$node_dir/runc-noseccomp" ]; then
    echo "build.sh: building the real node's containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CNI plugins $CNI_PLUGINS_VERSION and crane $GO_CONTAINERREGISTRY_VERSION into $node_dir (first run on this machine; takes several minutes)" >&2
    mkdir -p "$cache" && tmpnode=$(mktemp -d "$cache/.node-XXXXXX")
    local cver="-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
    node_build containerd 0 urfave_cli_no_docs "-s -w $cver" github.com/containerd/containerd/v2/cmd/containerd
    node_build containerd-shim-runc-v2 0 "urfave_cli_no_docs no_grpc" "-s -w $cver" github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
    node_build runc 1 urfave_cli_no_docs "-s -w -X main.version=${RUNC_VERSION#v}" github.com/opencontainers/runc
    node_build "CNI plugins (bridge, loopback, host-local)" 0 "" "-s -w" github.com/containernetworking/plugins/plugins/main/bridge \
      github.com/containernetworking/plugins/plugins/main/loopback github.com/containernetworking/plugins/plugins/ipam/host-local
    node_build crane 0 "" "-s -w -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$GO_CONTAINERREGISTRY_VERSION" \
      github.com/google/go-containerregistry/cmd/crane
    node_build "u-root gosh, cat, ls" 0 "" "-s -w" github.com/u-root/u-root/cmds/core/gosh \
      github.com/u-root/u-root/cmds/core/cat github.com/u-root/u-root/cmds/core/ls
    node_build "pause, nodeclean, runc-noseccomp" 0 "" "-s -w" ./pause ./nodeclean ./runc-noseccomp
    cp "$kubelet_dir/kubelet" "$tmpnode/kubelet"
    publish "$tmpnode" "$node_dir"
  fi
}

# Traefik, the ingress controller that serves the Ingresses (and Gateway API routes) of the Apps on the real node
# (operator/local/ingress.ts). It is built in its own module's directory in the Go module cache, so its go.mod and
# go.sum (its replaces and excludes) are used as they are; the module's hash is checked against TRAEFIK_SUM first.
# Beside the binary: the ClusterRoles of the module's docs (what its Kubernetes providers may read and write) and
# the standard Gateway API CRDs of the gateway-api version its go.mod requires.
traefik_dir="$cache/traefik-$TRAEFIK_VERSION-$(echo "$TRAEFIK_SUM" | sha256sum | cut -c1-12)"
traefik() {
  if [ ! -x "$traefik_dir/traefik" ] || [ ! -d "$traefik_dir/gateway-crds" ]; then
    command -v go >/dev/null || { echo "build.sh: Go is required to build Traefik (https://go.dev/dl)" >&2; exit 1; }
    echo "build.sh: building Traefik $TRAEFIK_VERSION into $traefik_dir (first run on this machine; takes several minutes)" >&2
    local start; start=$(date +%s)
    mkdir -p "$cache" && tmptraefik=$(mktemp -d "$cache/.traefik-XXXXXX")
    local json src sum gw
    json=$(cd "$tmptraefik" && GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")
    src=$(echo "$json" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    sum=$(echo "$json" | sed -n 's/.*"Sum": "\(.*\)".*/\1/p')
    [ "$sum" = "$TRAEFIK_SUM" ] || { echo "build.sh: github.com/traefik/traefik/v3@$TRAEFIK_VERSION has hash $sum, not TRAEFIK_SUM $TRAEFIK_SUM" >&2; exit 1; }
    (cd "$src" && go build -trimpath -ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" -o "$tmptraefik/traefik" ./cmd/traefik) >&2
    mkdir -p "$tmptraefik/rbac" "$tmptraefik/gateway-crds"
    cp "$src/docs/content/reference/dynamic-configuration/kubernetes-crd-rbac.yml" "$tmptraefik/rbac/ingress.yml"
    cp "$src/docs/content/reference/dynamic-configuration/kubernetes-gateway-rbac.yml" "$tmptraefik/rbac/gateway.yml"
    gw=$(cd "$src" && go mod download -json sigs.k8s.io/gateway-api | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    cp "$gw"/config/crd/standard/*.yaml "$tmptraefik/gateway-crds/"
    echo "$TRAEFIK_VERSION" > "$tmptraefik/VERSION"
    chmod -R u+w,go+rX "$tmptraefik"
    publish "$tmptraefik" "$traefik_dir"
    echo "build.sh: Traefik built in $(( $(date +%s) - start ))s" >&2
  fi
}

# The Cloud Native Buildpacks lifecycle and launcher (the builder of a source build on the real node,
# operator/local/build-images.ts), static, from their own wrapper module; built by --node.
lifecycle_dir="$cache/lifecycle-$LIFECYCLE_VERSION-$(hash "$here"/lifecycle/{go.sum,go.mod})"
lifecycle() {
  if [ ! -x "$lifecycle_dir/lifecycle" ] || [ ! -x "$lifecycle_dir/launcher" ]; then
    echo "build.sh: building the buildpacks lifecycle $LIFECYCLE_VERSION into $lifecycle_dir (first run on this machine)" >&2
    local start; start=$(date +%s)
    mkdir -p "$cache" && tmplifecycle=$(mktemp -d "$cache/.lifecycle-XXXXXX")
    build "$tmplifecycle" lifecycle "-s -w -X github.com/buildpacks/lifecycle/cmd.Version=${LIFECYCLE_VERSION#v}" \
      github.com/buildpacks/lifecycle/cmd/lifecycle github.com/buildpacks/lifecycle/cmd/launcher
    publish "$tmplifecycle" "$lifecycle_dir"
    echo "build.sh: lifecycle built in $(( $(date +%s) - start ))s" >&2
  fi
}

case "${1:-}" in
  --argocd-lua) argocd_lua; echo "$argocd_dir/argocd-lua"; exit 0 ;;
  --argocd) argocd; echo "$argocd_dir"; exit 0 ;;
  --kustomize) kustomize; echo "$kustomize_dir/kustomize"; exit 0 ;;
  --tools) tools; echo "$tools_dir"; exit 0 ;;
  --tekton) tekton; echo "$tekton_dir"; exit 0 ;;
  --flux) flux; echo "$flux_dir"; exit 0 ;;
  --kubelet) kubelet; echo "$kubelet_dir/kubelet"; exit 0 ;;
  --node) node; lifecycle; echo "$node_dir"; exit 0 ;;
  --lifecycle) lifecycle; echo "$lifecycle_dir"; exit 0 ;;
  --traefik) traefik; echo "$traefik_dir"; exit 0 ;;
  "") kustomize; tools ;;
  *) echo "usage: build.sh [--kustomize | --tools | --argocd-lua | --argocd | --tekton | --flux | --kubelet | --node | --lifecycle | --traefik]" >&2; exit 2 ;;
esac

key="k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-$(cat "$here"/{etcd,kubernetes,kwok}/go.sum "$here"/{etcd,kubernetes,kwok}/go.mod | sha256sum | cut -c1-12)"
bin="$cache/$key"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ -x "$bin/kwok" ] \
  && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ]; then
  echo "$bin"; exit 0
fi
start=$(date +%s)
echo "build.sh: building the control plane into $bin (first run on this machine; takes several minutes)" >&2
mkdir -p "$cache" && tmpbin=$(mktemp -d "$cache/.k8s-XXXXXX")
build "$tmpbin" etcd "-s -w" go.etcd.io/etcd/server/v3
# Go names a binary after its package path minus the /vN suffix: etcd's server package builds as "server".
mv "$tmpbin/server" "$tmpbin/etcd"
build "$tmpbin" kwok "-s -w" sigs.k8s.io/kwok/cmd/kwok
build "$tmpbin" kubernetes "$kldflags" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
publish "$tmpbin" "$bin"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
