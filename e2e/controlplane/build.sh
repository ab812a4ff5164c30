#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go module proxy,
# pinned by the go.mod files beside this script, into a cache outside the repository keyed by version and
# go.sum, so only the first run on a machine pays for the build. Prints the binary directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
key="k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-$(cat "$here"/*/go.sum "$here"/*/go.mod | sha256sum | cut -c1-12)"
cache=${SLIPWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/slipway}/controlplane
bin="$cache/$key"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ -x "$bin/kwok" ] \
  && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ]; then
  echo "$bin"; exit 0
fi
command -v go >/dev/null || { echo "build.sh: Go is required to build the local control plane (https://go.dev/dl)" >&2; exit 1; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$(date +%s)
ver="k8s.io/component-base/version"
kver=${KUBERNETES_VERSION#v}
kldflags="-s -w -X $ver.gitVersion=$KUBERNETES_VERSION -X $ver.gitMajor=${kver%%.*} -X $ver.gitMinor=$(echo "$kver" | cut -d. -f2) -X $ver.buildDate=1970-01-01T00:00:00Z -X $ver.gitTreeState=clean"
echo "build.sh: building the control plane into $bin (first run on this machine; takes several minutes)" >&2
(cd "$here/etcd" && go build -trimpath -ldflags="-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3) >&2
(cd "$here/kwok" && go build -trimpath -ldflags="-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok) >&2
for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
  (cd "$here/kubernetes" && go build -trimpath -ldflags="$kldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd") >&2
done
rm -rf "$bin" && mv "$tmp" "$bin"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
