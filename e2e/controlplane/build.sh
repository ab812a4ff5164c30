#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go module proxy,
# pinned by the go.mod files beside this script, into a cache outside the repository keyed by version and
# go.sum, so only the first run on a machine pays for the build. Prints the binary directory.
# Also builds the standalone kustomize the render tests use (kubectl's own cannot run exec functions);
# `build.sh --kustomize` prints the path of that binary instead.
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

kustomize_dir="$cache/kustomize-$KUSTOMIZE_VERSION-$(cat "$here"/kustomize/go.sum "$here"/kustomize/go.mod | sha256sum | cut -c1-12)"
if [ ! -x "$kustomize_dir/kustomize" ]; then
  echo "build.sh: building kustomize $KUSTOMIZE_VERSION into $kustomize_dir" >&2
  build "$kustomize_dir" kustomize "-s -w" sigs.k8s.io/kustomize/kustomize/v5
fi
if [ "${1:-}" = "--kustomize" ]; then echo "$kustomize_dir/kustomize"; exit 0; fi

key="k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-$(cat "$here"/{etcd,kubernetes,kwok}/go.sum "$here"/{etcd,kubernetes,kwok}/go.mod | sha256sum | cut -c1-12)"
bin="$cache/$key"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ -x "$bin/kwok" ] \
  && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ]; then
  echo "$bin"; exit 0
fi
start=$(date +%s)
ver="k8s.io/component-base/version"
kver=${KUBERNETES_VERSION#v}
kldflags="-s -w -X $ver.gitVersion=$KUBERNETES_VERSION -X $ver.gitMajor=${kver%%.*} -X $ver.gitMinor=$(echo "$kver" | cut -d. -f2) -X $ver.buildDate=1970-01-01T00:00:00Z -X $ver.gitTreeState=clean"
echo "build.sh: building the control plane into $bin (first run on this machine; takes several minutes)" >&2
tmpbin="$bin.partial"
rm -rf "$tmpbin"
build "$tmpbin" etcd "-s -w" go.etcd.io/etcd/server/v3
# Go names a binary after its package path minus the /vN suffix: etcd's server package builds as "server".
mv "$tmpbin/server" "$tmpbin/etcd"
build "$tmpbin" kwok "-s -w" sigs.k8s.io/kwok/cmd/kwok
build "$tmpbin" kubernetes "$kldflags" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
rm -rf "$bin" && mv "$tmpbin" "$bin"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
