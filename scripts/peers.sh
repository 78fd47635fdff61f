#!/usr/bin/env bash
# Install/build every real test peer the e2e tests use, and cache them OUTSIDE the repo.
#
#   scripts/peers.sh [all|debs|node|crictl|critest|helm|etcd|kube-apiserver|kube-node|pause|busybox|
#                     prometheus-sd|crds|libcni-loaders|containerd2|crio]...   (default: all)
#   eval "$(scripts/peers.sh env)"     # export CRI_NETSTATUS_<PEER>=/abs/path for every peer
#
# Go peers are built from published modules with the wrapper-module recipe of
# /work/shared/reference/test-peers.md §1 (a throwaway main module that requires the peer, so the
# peer's own replace/exclude directives do not matter). Each peer lands in
#   $CRI_NETSTATUS_PEERS_DIR/<name>-<version>/bin/<name>
# and is skipped when that binary already exists, so a rerun costs seconds. Go's module and build
# caches stay at their defaults (GOMODCACHE, GOCACHE), outside the repo, so they persist too.
# containerd2 is containerd v2.x (v2.4.2) beside Debian's 1.6, for the CNI STATUS differential tests.
# Debian packages (containerd 1.6, CNI plugins, prometheus + promtool, python3-grpcio, python3-fusepy
# for the stalled-FUSE-mount e2e test, conmon for CRI-O, and buildah +
# mmdebstrap for scripts/image.sh) come from apt. `node` is the image's Node.js LTS: the official
# binary from the npm registry (package node-linux-<arch>) plus npm, laid out like a Node install
# prefix, for the image's local base and for `.ci/run`'s second `npm test`.
set -euo pipefail

# ---- pinned versions ---------------------------------------------------------------------------
CRI_TOOLS_VERSION=${CRI_NETSTATUS_CRI_TOOLS_VERSION:-v1.37.0}     # sigs.k8s.io/cri-tools: crictl, critest
HELM_VERSION=${CRI_NETSTATUS_HELM_VERSION:-v4.3.1}               # helm.sh/helm/v4
ETCD_VERSION=${CRI_NETSTATUS_ETCD_VERSION:-v3.6.16}              # go.etcd.io/etcd/server/v3
KUBE_VERSION=${CRI_NETSTATUS_KUBE_VERSION:-v1.37.2}              # k8s.io/kubernetes (kube-apiserver)
CONTAINERD2_VERSION=${CRI_NETSTATUS_CONTAINERD2_VERSION:-v2.4.2} # github.com/containerd/containerd/v2 (beside Debian's 1.6)
PROMETHEUS_OPERATOR_VERSION=${CRI_NETSTATUS_PROMETHEUS_OPERATOR_VERSION:-v0.85.0} # its CRDs, for deploy/
NODE_VERSION=${CRI_NETSTATUS_NODE_VERSION:-24.22.3}             # the image's Node.js (24 LTS)
NPM_VERSION=${CRI_NETSTATUS_NPM_VERSION:-11.21.2}                # npm of that Node prefix (image build stage)
# The go-cni and libcni each containerd profile reproduces, as those releases vendor them
# (go.mod of containerd 1.7, 2.0, 2.4): PROFILE=GO_CNI_VERSION,LIBCNI_VERSION.
LIBCNI_LOADERS=(containerd-1.7=v1.1.9,v1.1.2 containerd-2.0=v1.1.11,v1.2.3 containerd-2.1=v1.1.14,v1.3.1)
# Debian's prometheus is built without Kubernetes service discovery; the cluster tier builds one with it.
PROMETHEUS_VERSION=${CRI_NETSTATUS_PROMETHEUS_VERSION:-v0.316.0} # github.com/prometheus/prometheus (Prometheus 3.16.0)
CRIO_VERSION=${CRI_NETSTATUS_CRIO_VERSION:-v1.34.0}              # github.com/cri-o/cri-o (the crio differential peer)
PAUSE_TAG=registry.k8s.io/pause:3.10                             # the sandbox image name containerd asks for
BUSYBOX_TAG=docker.io/library/busybox:latest                      # what the runbook's `--image=busybox` means
DEBS=(containerd containernetworking-plugins prometheus python3-grpcio python3-protobuf python3-fusepy buildah mmdebstrap gcc libc6-dev iptables iproute2 busybox-static runc curl conmon)

ROOT=${CRI_NETSTATUS_PEERS_DIR:-/var/cache/cri-netstatus-peers}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

# Paths of the Debian-provided peers.
CONTAINERD_BIN=/usr/bin/containerd
PROMETHEUS_BIN=/usr/bin/prometheus
PROMTOOL_BIN=/usr/bin/promtool
CNI_BIN_DIR=/usr/lib/cni
# Debian's python3-grpcio/python3-protobuf are importable only by Debian's own python3
# (a pyenv python3 earlier on PATH does not see /usr/lib/python3/dist-packages).
PYTHON3_BIN=/usr/bin/python3
# scripts/image.sh's builder and the tool that makes its local Debian base.
BUILDAH_BIN=/usr/bin/buildah
MMDEBSTRAP_BIN=/usr/bin/mmdebstrap
# CRI-O's container monitor (the crio peer only answers CRI Status, but it checks conmon at start).
CONMON_BIN=/usr/bin/conmon

# ---- helpers -----------------------------------------------------------------------------------
log() { printf 'peers.sh: %s\n' "$*" >&2; }
die() { printf 'peers.sh: ERROR: %s\n' "$*" >&2; exit 1; }

peer_version() {
  case $1 in
    crictl | critest) echo "$CRI_TOOLS_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kubectl) echo "$KUBE_VERSION" ;;
    prometheus-sd) echo "$PROMETHEUS_VERSION" ;;
    containerd2) echo "$CONTAINERD2_VERSION" ;;
    crio) echo "$CRIO_VERSION" ;;
    *) die "unknown peer '$1'" ;;
  esac
}
peer_bin() { echo "$ROOT/$1-$(peer_version "$1")/bin/$1"; }
pause_archive() { echo "$ROOT/pause-${PAUSE_TAG##*:}/pause.tar"; }
busybox_archive() { echo "$ROOT/busybox-$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null | tr ':~+' '___')/busybox.tar"; }
crds_dir() { echo "$ROOT/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION"; }
node_arch() {
  case $(uname -m) in
    x86_64) echo x64 ;;
    aarch64) echo arm64 ;;
    *) die "node: no official Node.js binary for $(uname -m) on the npm registry" ;;
  esac
}
node_dir() { echo "$ROOT/node-v$NODE_VERSION-npm-$NPM_VERSION-linux-$(node_arch)"; }
MONITORING_CRDS=(podmonitors servicemonitors prometheusrules)

# step PEER VERSION WHAT -- CMD...: run CMD, and fail loudly naming the peer and version.
step() {
  local peer=$1 ver=$2 what=$3
  shift 4
  "$@" || die "$peer $ver: $what failed (exit $?): $*"
}

# go_peer NAME VERSION MODULE PKG LDFLAGS MODE [PREP_FN]
#   MODE=build: go build PKG;  MODE=test: go test -c PKG (for Go test binaries such as critest).
#   PREP_FN, if given, is called with the wrapper dir after `go mod init` (e.g. to add replaces).
go_peer() {
  local name=$1 ver=$2 module=$3 pkg=$4 ldflags=$5 mode=$6 prep=${7:-}
  local dir="$ROOT/$name-$ver" src="$ROOT/src/$name-$ver"
  local out="$dir/bin/$name"
  if [[ -x $out ]]; then
    log "$name $ver: cached at $out"
    return 0
  fi
  command -v go >/dev/null || die "$name $ver: the go command is not installed"
  log "$name $ver: building $pkg from $module@$ver (wrapper module $src)"
  local t0=$SECONDS
  mkdir -p "$dir/bin" "$src"
  # Start the wrapper from scratch every time: a half-finished earlier attempt must not leak in.
  rm -f "$src/go.mod" "$src/go.sum"
  step "$name" "$ver" "go mod init" -- go -C "$src" mod init "peers.invalid/$name"
  if [[ -n $prep ]]; then
    step "$name" "$ver" "wrapper preparation" -- "$prep" "$src"
  fi
  if [[ $mode == test ]]; then
    # A test-only package cannot be a tool; require the module and let `go test -c` resolve the rest.
    step "$name" "$ver" "go get" -- go -C "$src" get "$module@$ver"
  else
    step "$name" "$ver" "go get -tool" -- go -C "$src" get -tool "$pkg@$ver"
  fi
  local tmp="$dir/bin/.$name.tmp.$$"
  rm -f "$dir/bin/.$name.tmp."* # leftovers of an interrupted build (we hold the lock)
  if [[ $mode == test ]]; then
    go -C "$src" test -c -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg" ||
      { rm -f "$tmp"; die "$name $ver: go test -c $pkg failed"; }
  else
    go -C "$src" build -trimpath ${PEER_TAGS:+-tags "$PEER_TAGS"} -ldflags "-s -w $ldflags" -o "$tmp" "$pkg" ||
      { rm -f "$tmp"; die "$name $ver: go build $pkg failed"; }
  fi
  [[ -s $tmp ]] || { rm -f "$tmp"; die "$name $ver: the build produced no binary"; }
  chmod 0755 "$tmp"
  mv -f "$tmp" "$out"
  log "$name $ver: built in $((SECONDS - t0))s -> $out ($(du -h "$out" | cut -f1))"
}

# ---- peers -------------------------------------------------------------------------------------
# Our own Go tool (test/peers/libcni-loader) built once per profile against that profile's go-cni
# and libcni; cached under a hash of its source, so an edit rebuilds it.
loaders_dir() {
  local here hash
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  hash=$({ cat "$here/test/peers/libcni-loader/main.go"; echo "${LIBCNI_LOADERS[*]}"; go version; } |
    sha256sum | cut -c1-12)
  echo "$ROOT/libcni-loaders-$hash"
}

build_libcni_loaders() {
  local here dir entry profile versions gocni cni src out tmp t0
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  dir=$(loaders_dir)
  command -v go >/dev/null || die "libcni-loaders: the go command is not installed"
  for entry in "${LIBCNI_LOADERS[@]}"; do
    profile=${entry%%=*} versions=${entry#*=}
    gocni=${versions%%,*} cni=${versions#*,}
    out="$dir/bin/$profile"
    if [[ -x $out ]]; then
      log "libcni-loader $profile: cached at $out"
      continue
    fi
    t0=$SECONDS
    src="$ROOT/src/libcni-loader-$profile"
    rm -rf "$src"
    mkdir -p "$src" "$dir/bin"
    cp "$here/test/peers/libcni-loader/main.go" "$src/"
    step libcni-loader "$profile" "go mod init" -- go -C "$src" mod init peers.invalid/libcni-loader
    step libcni-loader "$profile" "go get" -- go -C "$src" get \
      "github.com/containerd/go-cni@$gocni" "github.com/containernetworking/cni@$cni"
    # MVS may not raise libcni past what we asked for; the pin is the point of the profile.
    grep -Eq "github.com/containernetworking/cni $cni( |$)" "$src/go.mod" ||
      die "libcni-loader $profile: go-cni $gocni pulled a libcni other than $cni: $(grep containernetworking "$src/go.mod")"
    tmp="$out.tmp.$$"
    go -C "$src" build -trimpath -ldflags "-s -w" -o "$tmp" . ||
      { rm -f "$tmp"; die "libcni-loader $profile: go build failed"; }
    mv -f "$tmp" "$out"
    log "libcni-loader $profile (go-cni $gocni, libcni $cni): built in $((SECONDS - t0))s -> $out"
  done
}

build_crictl() {
  go_peer crictl "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools sigs.k8s.io/cri-tools/cmd/crictl \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=${CRI_TOOLS_VERSION#v}" build
}

build_critest() {
  go_peer critest "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools sigs.k8s.io/cri-tools/cmd/critest \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=${CRI_TOOLS_VERSION#v}" test
}

build_helm() {
  local v=helm.sh/helm/v4/internal/version
  go_peer helm "$HELM_VERSION" helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm \
    "-X $v.version=$HELM_VERSION -X $v.metadata= -X $v.gitTreeState=clean" build
}

build_etcd() {
  # The binary's main package is the module root (server/main.go); -o names it etcd.
  # (etcd's version string is a constant in go.etcd.io/etcd/api/v3/version; no -X needed.)
  go_peer etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "" build
}

# containerd 2.x beside Debian's 1.6 (built in 59 s here with a cold build cache; 38 MB): its CRI
# plugin runs the CNI STATUS verb on every Status. Its go.mod has exclude directives, hence the
# wrapper; CGO_ENABLED=0 drops btrfs by itself. Only the daemon: no shim or ctr (no containers run).
build_containerd2() {
  go_peer containerd2 "$CONTAINERD2_VERSION" github.com/containerd/containerd/v2 \
    github.com/containerd/containerd/v2/cmd/containerd \
    "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD2_VERSION" build
}

# test-peers.md §3.2: replace every staging module that k8s.io/kubernetes' own go.mod replaces
# with a local path by its published v0.<minor>.<patch> twin.
kube_staging_replaces() {
  local src=$1 gomod m
  local staging="v0.${KUBE_VERSION#v1.}"
  gomod=$(go -C "$src" list -m -f '{{.GoMod}}' "k8s.io/kubernetes@$KUBE_VERSION") || return 1
  [[ -s $gomod ]] || { log "kube-apiserver $KUBE_VERSION: no go.mod from the proxy"; return 1; }
  local n=0
  for m in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\// {print $1}' "$gomod"); do
    go -C "$src" mod edit -replace="$m=$m@$staging" || return 1
    n=$((n + 1))
  done
  ((n > 0)) || { log "kube-apiserver $KUBE_VERSION: found no staging replaces in $gomod"; return 1; }
  log "kube-apiserver $KUBE_VERSION: $n staging modules replaced by $staging"
}

build_kube_apiserver() {
  local minor
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  local ld="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  go_peer kube-apiserver "$KUBE_VERSION" k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver \
    "$ld" build kube_staging_replaces
}

# The node's binaries (kubelet, kubectl) and the rest of the control plane, from ONE wrapper module
# and one `go build -o DIR/ pkg...` (shared compilation: 449 s cold on 2 cores for all five, against
# 620 s one by one). kube-apiserver has its own target above (the kube tests need only it); a binary
# that already exists is not rebuilt. Each lands at $ROOT/<name>-<version>/bin/<name>.
KUBE_NODE_BINS=(kube-controller-manager kube-scheduler kubelet kubectl)
build_kube_node() {
  local name missing=() pkgs=() minor ld="" p
  for name in "${KUBE_NODE_BINS[@]}"; do
    if [[ -x $(peer_bin "$name") ]]; then
      log "$name $KUBE_VERSION: cached at $(peer_bin "$name")"
    else
      missing+=("$name")
    fi
  done
  ((${#missing[@]} > 0)) || return 0
  command -v go >/dev/null || die "kube-node $KUBE_VERSION: the go command is not installed"
  local src="$ROOT/src/kube-node-$KUBE_VERSION" out="$ROOT/src/kube-node-$KUBE_VERSION.out.$$"
  local t0=$SECONDS
  log "kube-node $KUBE_VERSION: building ${missing[*]} (wrapper module $src)"
  mkdir -p "$src"
  rm -f "$src/go.mod" "$src/go.sum"
  rm -rf "$ROOT/src/kube-node-$KUBE_VERSION.out."* # leftovers of an interrupted build (we hold the lock)
  mkdir -p "$out"
  step kube-node "$KUBE_VERSION" "go mod init" -- go -C "$src" mod init peers.invalid/kube-node
  step kube-node "$KUBE_VERSION" "wrapper preparation" -- kube_staging_replaces "$src"
  for name in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  step kube-node "$KUBE_VERSION" "go get -tool" -- go -C "$src" get -tool "${pkgs[@]/%/@$KUBE_VERSION}"
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  go -C "$src" build -trimpath -ldflags "-s -w $ld" -o "$out/" "${pkgs[@]}" ||
    { rm -rf "$out"; die "kube-node $KUBE_VERSION: go build ${pkgs[*]} failed"; }
  for name in "${missing[@]}"; do
    [[ -s $out/$name ]] || { rm -rf "$out"; die "kube-node $KUBE_VERSION: the build produced no $name"; }
    mkdir -p "$(dirname "$(peer_bin "$name")")"
    chmod 0755 "$out/$name"
    mv -f "$out/$name" "$(peer_bin "$name")"
  done
  rm -rf "$out"
  log "kube-node $KUBE_VERSION: built ${missing[*]} in $((SECONDS - t0))s"
}

# Prometheus with Kubernetes service discovery (Debian's lacks kubernetes_sd_configs), for the
# cluster tier's discovery test. Go module v0.3MM.P is Prometheus 3.MM.P. Prometheus' own build tags
# leave out every other discovery (the cloud SDKs are most of its compile time); the web UI is not
# embedded (the API is all the tests use).
build_prometheus_sd() {
  local v=github.com/prometheus/common/version rel
  rel=3.$(echo "$PROMETHEUS_VERSION" | sed -E 's/^v0\.3([0-9]{2})\.([0-9]+)$/\1.\2/' | sed -E 's/^0//')
  PEER_TAGS=remove_all_sd,enable_kubernetes_sd go_peer prometheus-sd "$PROMETHEUS_VERSION" github.com/prometheus/prometheus \
    github.com/prometheus/prometheus/cmd/prometheus "-X $v.Version=$rel -X $v.Branch=release" build
}

# CRI-O (runtimes-2x.md): `go get -tool` misses two of its pseudo-versioned dependencies in the
# checksum database; CRI-O's own go.sum (from the module cache) has them, so it goes into the
# wrapper's go.sum first. The tags leave out the graph drivers and the gpgme (cgo) signature code, so
# the binary builds static with CGO_ENABLED=0 (seccomp is off without cgo; the tests need none).
crio_go_sum() {
  local src=$1 json dir
  json=$(go -C "$src" mod download -json "github.com/cri-o/cri-o@$CRIO_VERSION") || return 1
  dir=$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -s $dir/go.sum ]] || { log "crio $CRIO_VERSION: no go.sum in '$dir'"; return 1; }
  cat "$dir/go.sum" >>"$src/go.sum"
}

build_crio() {
  PEER_TAGS=containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper \
    go_peer crio "$CRIO_VERSION" github.com/cri-o/cri-o github.com/cri-o/cri-o/cmd/crio "" build crio_go_sum
}

# scratch_image WHAT TAG ARCHIVE CTX ENTRYPOINT_JSON: CTX's files in a `FROM scratch` image tagged
# TAG, written as a docker-archive to ARCHIVE (for `ctr images import`; no registry involved).
scratch_image() {
  local what=$1 tag=$2 tar=$3 ctx=$4 entrypoint=$5 work="$3.tmp.$$" c
  local bh=(buildah --root "$work/root" --runroot "$work/run" --storage-driver vfs)
  mkdir -p "$work"
  c=$("${bh[@]}" from scratch) || die "$what: buildah from scratch failed"
  "${bh[@]}" add "$c" "$ctx" / >/dev/null || die "$what: buildah add failed"
  "${bh[@]}" config --entrypoint "$entrypoint" "$c" || die "$what: buildah config failed"
  "${bh[@]}" commit -q "$c" "$tag" >/dev/null || die "$what: buildah commit failed"
  "${bh[@]}" push -q "$tag" "docker-archive:$work/image.tar:$tag" || die "$what: buildah push failed"
  mv -f "$work/image.tar" "$tar"
  "${bh[@]}" rm -a >/dev/null 2>&1 || true
  rm -rf "$work" 2>/dev/null || true
}

# The sandbox ("pause") image without a registry: a static binary that sleeps until SIGTERM or
# SIGINT, tagged $PAUSE_TAG (the name containerd's CRI plugin asks for). The cluster tests import it.
build_pause() {
  local tar
  tar=$(pause_archive)
  if [[ -s $tar ]]; then
    log "pause ${PAUSE_TAG##*:}: cached at $tar"
    return 0
  fi
  command -v gcc >/dev/null || die "pause: gcc is not installed (scripts/peers.sh debs)"
  command -v buildah >/dev/null || die "pause: buildah is not installed (scripts/peers.sh debs)"
  local t0=$SECONDS ctx
  mkdir -p "$(dirname "$tar")"
  rm -rf "$tar.tmp."* "$tar.ctx."*
  ctx="$tar.ctx.$$"
  mkdir -p "$ctx"
  printf '%s\n' '#include <signal.h>' '#include <unistd.h>' \
    'static void done(int sig) { (void)sig; _exit(0); }' \
    'int main(void) { signal(SIGINT, done); signal(SIGTERM, done); for (;;) pause(); }' >"$ctx.c"
  gcc -static -Os -s -o "$ctx/pause" "$ctx.c" || die "pause: gcc -static failed (is libc6-dev installed?)"
  rm -f "$ctx.c"
  scratch_image pause "$PAUSE_TAG" "$tar" "$ctx" '["/pause"]'
  rm -rf "$ctx"
  log "pause ${PAUSE_TAG##*:}: built in $((SECONDS - t0))s -> $tar"
}

# A busybox image for the runbook's `kubectl debug node/... --image=busybox -- chroot /host ...`:
# Debian's static busybox and its applet links, tagged $BUSYBOX_TAG (what `busybox` resolves to).
build_busybox() {
  local tar
  tar=$(busybox_archive)
  if [[ -s $tar ]]; then
    log "busybox: cached at $tar"
    return 0
  fi
  [[ -x /bin/busybox ]] || die "busybox: /bin/busybox is missing (scripts/peers.sh debs installs busybox-static)"
  command -v buildah >/dev/null || die "busybox: buildah is not installed (scripts/peers.sh debs)"
  local t0=$SECONDS ctx applet
  mkdir -p "$(dirname "$tar")"
  rm -rf "$tar.tmp."* "$tar.ctx."*
  ctx="$tar.ctx.$$"
  mkdir -p "$ctx/bin" "$ctx/tmp"
  cp /bin/busybox "$ctx/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$ctx/bin/$applet"
  done
  scratch_image busybox "$BUSYBOX_TAG" "$tar" "$ctx" '["/bin/sh"]'
  rm -rf "$ctx"
  log "busybox: built in $((SECONDS - t0))s -> $tar"
}

# The real PodMonitor/ServiceMonitor/PrometheusRule CRDs, from the prometheus-operator module's
# example/prometheus-operator-crd (the go command fetches and verifies the module zip; no build).
fetch_crds() {
  local ver=$PROMETHEUS_OPERATOR_VERSION dir kind module=github.com/prometheus-operator/prometheus-operator
  dir=$(crds_dir)
  local complete=1
  for kind in "${MONITORING_CRDS[@]}"; do [[ -s $dir/monitoring.coreos.com_$kind.yaml ]] || complete=; done
  if [[ -n $complete ]]; then
    log "crds $ver: cached at $dir"
    return 0
  fi
  command -v go >/dev/null || die "crds $ver: the go command is not installed"
  local json src tmp="$dir.tmp.$$"
  json=$(go -C "$ROOT/src" mod download -json "$module@$ver") || die "crds $ver: go mod download $module@$ver failed"
  src=$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -d $src/example/prometheus-operator-crd ]] || die "crds $ver: no example/prometheus-operator-crd in '$src'"
  rm -rf "$dir.tmp."*
  mkdir -p "$tmp"
  for kind in "${MONITORING_CRDS[@]}"; do
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$tmp/" ||
      die "crds $ver: $module has no monitoring.coreos.com_$kind.yaml"
  done
  rm -rf "$dir" && mv "$tmp" "$dir"
  log "crds $ver: ${MONITORING_CRDS[*]} -> $dir"
}

# The official Node.js binary (npm package node-linux-<arch>, the nodejs.org build) and npm, both
# fetched with `npm pack` (the registry's integrity check), as a prefix: bin/{node,npm,npx},
# lib/node_modules/npm. Only bin/node goes into the image's runtime stage.
fetch_node() {
  local dir arch
  dir=$(node_dir)
  arch=$(node_arch)
  if [[ -x $dir/bin/node && -s $dir/lib/node_modules/npm/bin/npm-cli.js ]]; then
    log "node $NODE_VERSION (npm $NPM_VERSION): cached at $dir"
    return 0
  fi
  command -v npm >/dev/null || die "node $NODE_VERSION: npm is needed to fetch it from the npm registry"
  local t0=$SECONDS tmp="$dir.tmp.$$"
  rm -rf "$dir.tmp."*
  mkdir -p "$tmp/pack" "$tmp/bin" "$tmp/lib/node_modules/npm"
  (cd "$tmp/pack" && npm pack --silent "node-linux-$arch@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null) ||
    die "node $NODE_VERSION: npm pack node-linux-$arch@$NODE_VERSION npm@$NPM_VERSION failed"
  tar -xzf "$tmp/pack/node-linux-$arch-$NODE_VERSION.tgz" -C "$tmp" --no-same-owner --strip-components=1 \
    package/bin/node package/LICENSE || die "node $NODE_VERSION: unexpected node-linux-$arch tarball"
  tar -xzf "$tmp/pack/npm-$NPM_VERSION.tgz" -C "$tmp/lib/node_modules/npm" --no-same-owner \
    --strip-components=1 || die "node $NODE_VERSION: cannot unpack npm-$NPM_VERSION.tgz"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/bin/npx"
  rm -rf "$tmp/pack"
  local got
  got=$("$tmp/bin/node" --version) || die "node $NODE_VERSION: the fetched binary does not run"
  [[ $got == "v$NODE_VERSION" ]] || die "node $NODE_VERSION: the fetched binary says $got"
  rm -rf "$dir" && mv "$tmp" "$dir"
  log "node $NODE_VERSION (npm $NPM_VERSION): fetched in $((SECONDS - t0))s -> $dir"
}

deb_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

install_debs() {
  local missing=() p
  for p in "${DEBS[@]}"; do deb_installed "$p" || missing+=("$p"); done
  if ((${#missing[@]} == 0)); then
    log "debs: all installed (${DEBS[*]})"
    return 0
  fi
  command -v apt-get >/dev/null || die "debs: apt-get not found; install ${missing[*]} by hand"
  ((EUID == 0)) || die "debs: installing ${missing[*]} needs root"
  log "debs: installing ${missing[*]}"
  local t0=$SECONDS made_policy=
  # Packages must not start their daemons (prometheus, containerd): tests start their own.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } || rc=$?
  [[ -z $made_policy ]] || rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "debs: apt-get install ${missing[*]} failed (exit $rc)"
  for p in "${missing[@]}"; do deb_installed "$p" || die "debs: $p is still not installed"; done
  log "debs: installed ${missing[*]} in $((SECONDS - t0))s"
}

print_env() {
  emit() {
    [[ -e $2 ]] || log "env: $1=$2 does not exist yet (run scripts/peers.sh)"
    printf 'export %s=%q\n' "$1" "$2"
  }
  emit CRI_NETSTATUS_PEERS_DIR "$ROOT"
  emit CRI_NETSTATUS_CRICTL "$(peer_bin crictl)"
  emit CRI_NETSTATUS_CRITEST "$(peer_bin critest)"
  emit CRI_NETSTATUS_HELM "$(peer_bin helm)"
  emit CRI_NETSTATUS_ETCD "$(peer_bin etcd)"
  emit CRI_NETSTATUS_KUBE_APISERVER "$(peer_bin kube-apiserver)"
  emit CRI_NETSTATUS_KUBE_CONTROLLER_MANAGER "$(peer_bin kube-controller-manager)"
  emit CRI_NETSTATUS_KUBE_SCHEDULER "$(peer_bin kube-scheduler)"
  emit CRI_NETSTATUS_KUBELET "$(peer_bin kubelet)"
  emit CRI_NETSTATUS_KUBECTL "$(peer_bin kubectl)"
  emit CRI_NETSTATUS_PAUSE_ARCHIVE "$(pause_archive)"
  printf 'export %s=%q\n' CRI_NETSTATUS_PAUSE_TAG "$PAUSE_TAG" # a tag, not a path
  emit CRI_NETSTATUS_BUSYBOX_ARCHIVE "$(busybox_archive)"
  emit CRI_NETSTATUS_RUNC /usr/sbin/runc
  emit CRI_NETSTATUS_MONITORING_CRDS "$(crds_dir)"
  emit CRI_NETSTATUS_LIBCNI_LOADERS "$(loaders_dir)/bin"
  emit CRI_NETSTATUS_CONTAINERD "$CONTAINERD_BIN"
  emit CRI_NETSTATUS_CONTAINERD2 "$(peer_bin containerd2)"
  emit CRI_NETSTATUS_PROMETHEUS "$PROMETHEUS_BIN"
  emit CRI_NETSTATUS_PROMTOOL "$PROMTOOL_BIN"
  emit CRI_NETSTATUS_PROMETHEUS_SD "$(peer_bin prometheus-sd)"
  emit CRI_NETSTATUS_CNI_BIN_DIR "$CNI_BIN_DIR"
  emit CRI_NETSTATUS_PYTHON3 "$PYTHON3_BIN"
  emit CRI_NETSTATUS_IMAGE_NODE "$(node_dir)/bin/node"
  emit CRI_NETSTATUS_BUILDAH "$BUILDAH_BIN"
  emit CRI_NETSTATUS_MMDEBSTRAP "$MMDEBSTRAP_BIN"
  emit CRI_NETSTATUS_CRIO "$(peer_bin crio)"
  emit CRI_NETSTATUS_CONMON "$CONMON_BIN"
}

usage() {
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---- main --------------------------------------------------------------------------------------
main() {
  (($# > 0)) || set -- all
  local targets=() a
  for a in "$@"; do
    case $a in
      env) print_env; return 0 ;;
      -h | --help | help) usage ;;
      # cheapest first, kube-apiserver last; one at a time (2-core CI machines)
      all) targets+=(debs node crds libcni-loaders crictl critest helm etcd pause busybox containerd2 prometheus-sd crio kube-apiserver kube-node) ;;
      debs | node | crds | libcni-loaders | crictl | critest | helm | etcd | kube-apiserver | kube-node | pause | busybox | prometheus-sd | containerd2 | crio) targets+=("$a") ;;
      *) log "unknown target '$a'"; usage ;;
    esac
  done
  mkdir -p "$ROOT/src"
  # One builder at a time per cache root (CI job and a developer's test run may overlap).
  exec 9>"$ROOT/.lock"
  flock 9
  local t0=$SECONDS
  for a in "${targets[@]}"; do
    case $a in
      debs) install_debs ;;
      node) fetch_node ;;
      crds) fetch_crds ;;
      libcni-loaders) build_libcni_loaders ;;
      crictl) build_crictl ;;
      critest) build_critest ;;
      helm) build_helm ;;
      etcd) build_etcd ;;
      kube-apiserver) build_kube_apiserver ;;
      kube-node) build_kube_node ;;
      pause) build_pause ;;
      busybox) build_busybox ;;
      prometheus-sd) build_prometheus_sd ;;
      containerd2) build_containerd2 ;;
      crio) build_crio ;;
    esac
  done
  log "done in $((SECONDS - t0))s (${targets[*]}); cache root $ROOT"
}

# One compound command, read whole before it runs: editing this file under a running build
# (or a git checkout) cannot feed bash half a line after main returns.
{
  main "$@"
  exit
}
