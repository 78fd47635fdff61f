#!/usr/bin/env bash
# Build the agent's container image with docker (buildx) or buildah, whichever works here.
#
#   scripts/image.sh [--base official|local] [--push REGISTRY/REPO:TAG] [--platform P1,P2]
#                    [--insecure] [--builder docker|buildah] [--tag NAME]
#
#   --base official  (default) build on node:<NODE_VERSION>-bookworm-slim and run on
#                    debian:bookworm-slim, pulled from Docker Hub.
#   --base local     no container registry needed: Debian bookworm (minbase, docs stripped, made by
#                    mmdebstrap from Debian's mirror) plus the official Node.js binary and npm from the
#                    npm registry (scripts/peers.sh node). Cached by version under the peer cache.
#   --push REF       push the image to REF (a registry you are logged in to).
#   --insecure       buildah: push over plain HTTP or to a registry without a verifiable
#                    certificate (docker: list it in the daemon's insecure-registries instead).
#   --platform LIST  docker buildx only, e.g. linux/amd64,linux/arm64 (needs --push, since a
#                    multi-platform image cannot be loaded into the local docker store, and QEMU
#                    binfmt handlers for the foreign platforms). buildah builds the host's platform.
#   --builder        docker when `docker info` answers, else buildah; this flag forces one.
#   --tag NAME       the local image name (default localhost/cri-netstatus:<package version>).
#
# With buildah the image is also written as an OCI archive to
#   $CRI_NETSTATUS_PEERS_DIR/image/cri-netstatus-<version>-<base>-<content key>.oci.tar
# and that path is the only line printed on stdout (the tests run that archive; a real node imports
# it with `ctr -n k8s.io images import`). The content key hashes everything the build reads (the
# Dockerfile, its context files, the base images' IDs, the versions), so a rerun on an unchanged
# tree costs seconds. Progress, stage times and the image's size go to stderr.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=${CRI_NETSTATUS_PEERS_DIR:-/var/cache/cri-netstatus-peers}
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${CRI_NETSTATUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${CRI_NETSTATUS_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# The storage of this script's buildah images (bases and builds), private to it.
BUILDAH_DIR=$ROOT/image/buildah

log() { printf 'image.sh: %s\n' "$*" >&2; }
die() { printf 'image.sh: ERROR: %s\n' "$*" >&2; exit 1; }
usage() {
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# scripts/peers.sh owns the Node version and its fetch; read them from its env output.
peers_env() { bash "$REPO/scripts/peers.sh" env 2>/dev/null | sed -n "s/^export $1=//p"; }
NODE_VERSION=$(sed -n 's/^NODE_VERSION=\${CRI_NETSTATUS_NODE_VERSION:-\([0-9.]*\)}.*/\1/p' scripts/peers.sh)
NODE_VERSION=${CRI_NETSTATUS_NODE_VERSION:-$NODE_VERSION}
[[ -n $NODE_VERSION ]] || die "cannot read NODE_VERSION from scripts/peers.sh"
VERSION=$(node -p 'require("./package.json").version' 2>/dev/null) ||
  VERSION=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)

BASE=official BUILDER='' PUSH='' PLATFORM='' TAG='' TLS_VERIFY=true
while (($# > 0)); do
  case $1 in
    --base) BASE=${2:-}; shift 2 ;;
    --base=*) BASE=${1#*=}; shift ;;
    --push) PUSH=${2:-}; shift 2 ;;
    --push=*) PUSH=${1#*=}; shift ;;
    --platform) PLATFORM=${2:-}; shift 2 ;;
    --platform=*) PLATFORM=${1#*=}; shift ;;
    --builder) BUILDER=${2:-}; shift 2 ;;
    --builder=*) BUILDER=${1#*=}; shift ;;
    --tag) TAG=${2:-}; shift 2 ;;
    --tag=*) TAG=${1#*=}; shift ;;
    --insecure) TLS_VERIFY=false; shift ;;
    -h | --help) usage ;;
    *) log "unknown argument '$1'"; usage ;;
  esac
done
[[ $BASE == official || $BASE == local ]] || die "--base must be 'official' or 'local', not '$BASE'"
TAG=${TAG:-localhost/cri-netstatus:$VERSION}

if [[ -z $BUILDER ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    BUILDER=docker
  elif command -v buildah >/dev/null; then
    BUILDER=buildah
  else
    die "neither a docker daemon (docker info failed) nor buildah is available; install docker, or buildah with \`bash scripts/peers.sh debs\` (Debian)"
  fi
fi
case $BUILDER in
  docker) docker info >/dev/null 2>&1 || die "--builder docker: \`docker info\` fails (is the daemon running?)" ;;
  buildah) command -v buildah >/dev/null || die "--builder buildah: buildah is not installed (\`bash scripts/peers.sh debs\`)" ;;
  *) die "--builder must be 'docker' or 'buildah', not '$BUILDER'" ;;
esac
[[ $TLS_VERIFY == true || $BUILDER != docker ]] ||
  die "--insecure is for buildah; with docker list the registry in the daemon's insecure-registries"
if [[ -n $PLATFORM ]]; then
  [[ $BUILDER == docker ]] || die "--platform needs docker buildx; buildah here builds the host's platform only"
  [[ $BASE == official ]] || die "--platform needs --base official (the local base is built for the host's platform)"
  [[ $PLATFORM != *,* || -n $PUSH ]] || die "--platform with several platforms needs --push (docker cannot load a multi-platform image)"
fi

bh() { buildah --root "$BUILDAH_DIR/root" --runroot "$BUILDAH_DIR/run" --storage-driver overlay "$@"; }
T0=$SECONDS
stage_t0=$SECONDS
stage_done() {
  log "stage $1: $((SECONDS - stage_t0))s"
  stage_t0=$SECONDS
}

# ---- the local base ----------------------------------------------------------------------------
# Debian minbase with docs, man pages and locales left out (as debian:bookworm-slim does), and
# merged /usr without the usrmerge package (which would pull in perl).
ROOTFS_KEY=$DEBIAN_SUITE-minbase-slim-$(uname -m)
ROOTFS=$ROOT/image/debian-$ROOTFS_KEY.tar
make_rootfs() {
  if [[ -s $ROOTFS ]]; then
    log "base: Debian $ROOTFS_KEY rootfs cached at $ROOTFS"
    return 0
  fi
  command -v mmdebstrap >/dev/null || die "--base local needs mmdebstrap (\`bash scripts/peers.sh debs\`)"
  ((EUID == 0)) || die "--base local builds its Debian rootfs as root (mmdebstrap --mode=root)"
  log "base: making Debian $ROOTFS_KEY with mmdebstrap (about 1-3 min)"
  local tmp="$ROOTFS.tmp.$$" out="$ROOT/image/mmdebstrap.log"
  rm -f "$ROOTFS.tmp."*
  mmdebstrap --variant=minbase --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$DEBIAN_SUITE" "$tmp" \
    "deb $DEBIAN_MIRROR $DEBIAN_SUITE main" \
    "deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main" \
    "deb $DEBIAN_SECURITY_MIRROR $DEBIAN_SUITE-security main" >"$out" 2>&1 ||
    { tail -n 30 "$out" >&2; rm -f "$tmp"; die "mmdebstrap $DEBIAN_SUITE failed (is $DEBIAN_MIRROR reachable? log: $out)"; }
  mv "$tmp" "$ROOTFS"
}

image_exists() { bh inspect --type image "$1" >/dev/null 2>&1; }
image_id() { bh inspect --type image --format '{{.FromImageID}}' "$1"; }

# Two local images from one rootfs: the runtime's Debian base, and the build stage's Node base
# (Debian + node + npm at /usr/local, like the official node images). Their names carry the
# rootfs's mtime, so a rootfs made anew (deleted to pick up Debian's updates) makes new bases.
local_bases() {
  mkdir -p "$ROOT/image"
  make_rootfs
  LOCAL_DEBIAN=localhost/cri-netstatus-base/debian:$ROOTFS_KEY-$(stat -c %Y "$ROOTFS")
  local node_prefix
  node_prefix=$(dirname "$(dirname "$(peers_env CRI_NETSTATUS_IMAGE_NODE)")")
  # peers.sh takes its cache lock even for a cached peer; look first.
  if [[ ! -x $node_prefix/bin/node || ! -s $node_prefix/lib/node_modules/npm/bin/npm-cli.js ]]; then
    bash "$REPO/scripts/peers.sh" node >&2 || die "scripts/peers.sh node failed"
  fi
  [[ -x $node_prefix/bin/node ]] || die "no Node.js prefix at $node_prefix"
  LOCAL_NODE=localhost/cri-netstatus-base/node:$(basename "$node_prefix")-${LOCAL_DEBIAN##*:}
  if ! image_exists "$LOCAL_DEBIAN"; then
    local c
    c=$(bh from scratch)
    bh add "$c" "$ROOTFS" / >/dev/null
    bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --cmd /bin/bash --created-by "mmdebstrap --variant=minbase $DEBIAN_SUITE (scripts/image.sh)" "$c"
    bh commit --quiet --rm "$c" "$LOCAL_DEBIAN" >/dev/null
    log "base: committed $LOCAL_DEBIAN"
  fi
  if ! image_exists "$LOCAL_NODE"; then
    local c
    c=$(bh from --pull-never "$LOCAL_DEBIAN")
    bh copy "$c" "$node_prefix/bin" /usr/local/bin >/dev/null
    bh copy "$c" "$node_prefix/lib" /usr/local/lib >/dev/null
    bh config --created-by "node $(basename "$node_prefix") from the npm registry (scripts/image.sh)" "$c"
    bh commit --quiet --rm "$c" "$LOCAL_NODE" >/dev/null
    log "base: committed $LOCAL_NODE"
  fi
  NODE_IMAGE=$LOCAL_NODE
  BASE_IMAGE=$LOCAL_DEBIAN
}

# ---- the content key ---------------------------------------------------------------------------
# Everything the Dockerfile's context admits (.dockerignore: package.json, package-lock.json,
# tsconfig.json, src/, bin/), the Dockerfile, and the bases' identities.
content_key() {
  {
    printf '%s\n' "builder=$BUILDER base=$BASE node=$NODE_IMAGE runtime=$BASE_IMAGE version=$VERSION"
    printf '%s\n' "ids=$*"
    (
      find Dockerfile .dockerignore package.json package-lock.json tsconfig.json src bin -type f -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum
    )
  } | sha256sum | cut -c1-16
}

# A CA bundle for the build's npm ci when this machine reaches the registry through a
# TLS-intercepting proxy (NODE_EXTRA_CA_CERTS, or npm's cafile).
npm_ca() {
  local ca=${NODE_EXTRA_CA_CERTS:-}
  [[ -n $ca ]] || ca=$(npm config get cafile 2>/dev/null || true)
  [[ -n $ca && $ca != null && $ca != undefined && -s $ca ]] && echo "$ca"
  return 0
}

print_size() {
  node "$REPO/scripts/image-size.js" "$1" "$2" >&2 || log "could not measure $1"
}

# ---- buildah -----------------------------------------------------------------------------------
build_buildah() {
  mkdir -p "$BUILDAH_DIR" "$ROOT/image"
  exec 8>"$ROOT/image/.lock" # one build per cache root
  flock 8
  local base_layers
  if [[ $BASE == local ]]; then
    local_bases
  else
    NODE_IMAGE=docker.io/library/node:$NODE_VERSION-bookworm-slim
    BASE_IMAGE=docker.io/library/debian:bookworm-slim
    bh pull --quiet "$NODE_IMAGE" >/dev/null || die "cannot pull $NODE_IMAGE; without a registry use --base local"
    bh pull --quiet "$BASE_IMAGE" >/dev/null || die "cannot pull $BASE_IMAGE; without a registry use --base local"
  fi
  stage_done base
  local key archive
  key=$(content_key "$(image_id "$NODE_IMAGE")" "$(image_id "$BASE_IMAGE")")
  archive=$ROOT/image/cri-netstatus-$VERSION-$BASE-$key.oci.tar
  base_layers=$(bh inspect --type image --format '{{len .OCIv1.RootFS.DiffIDs}}' "$BASE_IMAGE")
  if [[ -s $archive ]]; then
    log "build: cached ($archive)"
  else
    local ca args=()
    ca=$(npm_ca)
    [[ -z $ca ]] || args+=(--secret "id=npm_ca,src=$ca")
    log "build: buildah bud $TAG (NODE_IMAGE=$NODE_IMAGE BASE_IMAGE=$BASE_IMAGE)"
    bh bud --layers --pull-never --network host --format oci "${args[@]}" \
      --build-arg "NODE_IMAGE=$NODE_IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --build-arg "VERSION=$VERSION" --tag "$TAG" -f Dockerfile . >&2 || die "buildah bud failed"
    stage_done build
    rm -f "$ROOT/image/"*.oci.tar.tmp
    bh push --quiet "$TAG" "oci-archive:$archive.tmp:$TAG" >&2 || die "buildah push to $archive failed"
    mv -f "$archive.tmp" "$archive"
    # Keep the three newest archives of this base (about 80 MB each): older trees' are rarely wanted.
    find "$ROOT/image" -maxdepth 1 -name "cri-netstatus-*-$BASE-*.oci.tar" -printf '%T@ %p\n' |
      sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -f
    stage_done export
  fi
  if [[ -n $PUSH ]]; then
    # The archive is the build of this tree; the tag in storage may be an older one.
    local id
    id=$(bh pull --quiet "oci-archive:$archive") && bh tag "$id" "$TAG" ||
      die "cannot load $archive into buildah's storage"
    bh push --tls-verify="$TLS_VERIFY" "$TAG" "docker://$PUSH" >&2 || die "buildah push $PUSH failed (logged in? \`buildah login\`)"
    stage_done push
  fi
  log "size (base = the Node base: $BASE_IMAGE + the node binary layer):"
  print_size "$archive" "$((base_layers + 1))"
  log "done in $((SECONDS - T0))s: $TAG"
  echo "$archive"
}

# ---- docker ------------------------------------------------------------------------------------
build_docker() {
  local args=(--build-arg "VERSION=$VERSION" -f Dockerfile)
  if [[ $BASE == local ]]; then
    # The same bases, made by buildah here and loaded into docker.
    command -v buildah >/dev/null || die "--base local with docker needs buildah to make the bases"
    mkdir -p "$BUILDAH_DIR"
    local_bases
    local img
    for img in "$LOCAL_DEBIAN" "$LOCAL_NODE"; do
      docker image inspect "$img" >/dev/null 2>&1 ||
        bh push --quiet "$img" "docker-daemon:$img" >&2 || die "cannot load $img into docker"
    done
    args+=(--build-arg "NODE_IMAGE=$LOCAL_NODE" --build-arg "BASE_IMAGE=$LOCAL_DEBIAN")
  else
    args+=(--build-arg "NODE_IMAGE=node:$NODE_VERSION-bookworm-slim")
  fi
  stage_done base
  local ca
  ca=$(npm_ca)
  [[ -z $ca ]] || args+=(--secret "id=npm_ca,src=$ca")
  if docker buildx version >/dev/null 2>&1; then
    [[ -z $PLATFORM ]] || args+=(--platform "$PLATFORM")
    # A pushed build goes to the registry only (a multi-platform image cannot be loaded).
    if [[ -n $PUSH ]]; then args+=(--tag "$PUSH" --push); else args+=(--tag "$TAG" --load); fi
    DOCKER_BUILDKIT=1 docker buildx build "${args[@]}" . >&2 || die "docker buildx build failed"
  else
    [[ -z $PLATFORM ]] || die "--platform needs docker buildx"
    DOCKER_BUILDKIT=1 docker build --tag "$TAG" "${args[@]}" . >&2 || die "docker build failed"
    if [[ -n $PUSH ]]; then
      docker tag "$TAG" "$PUSH" && docker push "$PUSH" >&2 || die "docker push $PUSH failed (logged in?)"
    fi
  fi
  stage_done build
  log "done in $((SECONDS - T0))s: $TAG${PUSH:+ and $PUSH}"
}

# One compound command, read whole before it runs (see scripts/peers.sh).
{
  if [[ $BUILDER == buildah ]]; then build_buildah; else build_docker; fi
  exit
}
