#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) from pinned Go module
# versions into bin/k8s/<kube version>/. No binary downloads exist on our build machines,
# so the binaries come from source; a build of the same versions already in place is kept.
set -euo pipefail

kube_version=${KUBE_VERSION:?KUBE_VERSION is required}
etcd_version=${ETCD_VERSION:?ETCD_VERSION is required}
out=${ENVTEST_ASSETS:?ENVTEST_ASSETS is required}
here=$(cd "$(dirname "$0")" && pwd)
stamp="$out/.versions"
want="kube-apiserver v$kube_version, etcd v$etcd_version"

if [[ -x "$out/kube-apiserver" && -x "$out/etcd" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "envtest: $want already built in $out; skipping the build"
  exit 0
fi

mkdir -p "$out"
echo "envtest: building $want from source into $out"
echo "envtest: there is no binary download here, so this compiles the API server: about 5 minutes on 2 cores, once"
start=$(date +%s)
(
  cd "$here/etcd"
  go build -trimpath -ldflags='-s -w' -o "$out/etcd" go.etcd.io/etcd/server/v3
)
echo "envtest: etcd built after $(( $(date +%s) - start ))s; now kube-apiserver"
(
  cd "$here/kube-apiserver"
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
)
echo "$want" > "$stamp"
echo "envtest: built $want in $(( $(date +%s) - start ))s"
