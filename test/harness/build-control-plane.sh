#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy into a cache outside the checkout, once
# per pinned version, and prints the folder that holds both binaries.
#
#   test/harness/build-control-plane.sh            # build if missing, print the bin folder
#
# The cache lives in $ESA_CACHE_DIR (default ~/.cache/external-secrets-agent), keyed on the
# Kubernetes version, so a second run only checks that the binaries are there. A cold build on two
# cores takes several minutes (see README); progress goes to stderr, the bin folder to stdout.
#
# NOTE: k8s.io/kubernetes requires each staging module (k8s.io/api, k8s.io/apiserver, ...) as
# v0.0.0 with a replace to ./staging. Outside that repository those replaces are void, so the
# wrapper module below maps each staging module to its published v0.<minor>.<patch> instead.
set -euo pipefail

K8S_VERSION=${ESA_K8S_VERSION:-1.36.3}
CACHE=${ESA_CACHE_DIR:-$HOME/.cache/external-secrets-agent}
W="$CACHE/control-plane-$K8S_VERSION"
BIN="$W/bin"

if [[ -x "$BIN/kube-apiserver" && -x "$BIN/etcd" ]]; then
  echo "$BIN"
  exit 0
fi

# Parallel callers wait for the one that builds, then find the binaries.
mkdir -p "$CACHE"
exec 9>"$CACHE/control-plane-$K8S_VERSION.lock"
flock 9
if [[ -x "$BIN/kube-apiserver" && -x "$BIN/etcd" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "build-control-plane: 'go' is not on PATH; install Go >= 1.26" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
minor=$(cut -d. -f2 <<<"$K8S_VERSION")
patch=$(cut -d. -f3 <<<"$K8S_VERSION")
staging="0.$minor.$patch"
started=$(date +%s)
step() { echo "[control-plane $(( $(date +%s) - started ))s] $*" >&2; }

mkdir -p "$W/kas" "$W/etcd" "$BIN"

step "kube-apiserver v$K8S_VERSION: resolving modules (first run downloads ~1 GB)"
cd "$W/kas"
[[ -f go.mod ]] || go mod init local.test/kas >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod"); do
  go mod edit "-replace=$m=$m@v$staging"
done
go mod edit "-go=$(sed -n 's/^go //p' "$gomod")"
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" 2>&1 | tail -n 3 >&2

step "kube-apiserver: compiling (the long part: about 5 minutes on 2 cores)"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
go build -trimpath -tags grpcnotrace -ldflags "$ldflags" -o "$BIN/kube-apiserver.tmp" \
  k8s.io/kubernetes/cmd/kube-apiserver &
build_pid=$!
while kill -0 "$build_pid" 2>/dev/null; do sleep 30; kill -0 "$build_pid" 2>/dev/null && step "still compiling kube-apiserver"; done
wait "$build_pid"
mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"

# etcd at the client version kube-apiserver links, so the pair matches what upstream ships.
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3)
step "etcd $etcd_version: resolving and compiling"
cd "$W/etcd"
[[ -f go.mod ]] || go mod init local.test/etcdw >/dev/null 2>&1
go get -tool "go.etcd.io/etcd/server/v3@$etcd_version" 2>&1 | tail -n 3 >&2
go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$BIN/etcd.tmp" "$BIN/etcd"

step "done: $BIN"
echo "$BIN"
