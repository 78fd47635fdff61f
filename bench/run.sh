#!/usr/bin/env bash
# Every benchmark, one command: builds, checks the peers, runs node dist/bench/run.js (which prints
# the results as markdown and writes bench/results.md). Run as root so containerd can take part.
#
#   bash bench/run.sh [--only cpu,latency,refresh,rss,ryw,profile,plugin-status]
set -euo pipefail
cd "$(dirname "$0")/.."

python3_bin=${CRI_NETSTATUS_PYTHON3:-/usr/bin/python3}
missing=()
[[ -x /usr/bin/containerd ]] || missing+=(containerd)
[[ -d ${CRI_NETSTATUS_CNI_BIN_DIR:-/usr/lib/cni} ]] || missing+=(containernetworking-plugins)
"$python3_bin" -c 'import grpc' 2>/dev/null || missing+=(python3-grpcio)
[[ -f scripts/containerd-config.toml.tmpl ]] || missing+=(scripts/containerd-config.toml.tmpl)
if ((${#missing[@]})); then
  echo "bench: missing ${missing[*]}: run 'bash scripts/peers.sh debs' first" >&2
  exit 2
fi
[[ $(id -u) == 0 ]] || echo "bench: not root: containerd will be skipped" >&2

npm run build >&2 || echo "bench: the build reported errors; running what it emitted" >&2
exec node dist/bench/run.js "$@"
