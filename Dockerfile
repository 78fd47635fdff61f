# syntax=docker/dockerfile:1
#
# cri-netstatus container image.
#
#   docker build -t cri-netstatus:0.1.0 .
#
# Two stages on the same Debian base: `build` compiles the TypeScript and prunes dev dependencies;
# the runtime stage holds only package.json, bin/, dist/src/ and the production node_modules
# (test/e2e/pack.test.ts proves that this set runs: version, check and serve + status).
#
# The runtime keeps Debian's /usr/bin/env and a shell so that `kubectl debug node/<node>
# --image=<this image> -- cri-netstatus status --socket /host/run/cri-netstatus/cri.sock` finds the CLI
# on PATH (kubectl debug replaces the entrypoint with its command).
#
# User: 65532 (cri-netstatus), non-root, and a member of group root (GID 0) through /etc/group.
# The agent's socket is root:root 0660 on the node (kubelet creates its directory as root), so the
# group membership is what lets the CLI in a `kubectl debug node/...` pod, which runs as the image's
# user, connect to it. The Helm chart sets the DaemonSet's own identity (see values.yaml
# podSecurityContext: root without capabilities by default, because a non-root agent cannot create
# its socket in a root-owned 0755 directory unless the node prepares it).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would build before the sources are copied.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts \
 && chmod 0755 bin/cri-netstatus.js

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="cri-netstatus" \
      org.opencontainers.image.description="Node-local CRI Status agent: CNI network readiness from /etc/cni/net.d, Prometheus metrics, a Node condition" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/cri-netstatus/cri-netstatus" \
      org.opencontainers.image.version="${VERSION}"
RUN groupadd --gid 65532 cri-netstatus \
 && useradd --uid 65532 --gid 65532 --groups root --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cri-netstatus
WORKDIR /app
# Cap the old generation so V8 collects instead of growing (RSS flat at about 71 MiB over 200,000
# Status calls instead of 110 MiB), a 2 MiB young generation and one V8 worker thread: no measurable
# CPU cost per call (bench/README.md, "RSS"; bench/lib/flags.ts).
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-semi-space-size=2 --v8-pool-size=1 --max-old-space-size=64"
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/bin ./bin
RUN ln -s /app/bin/cri-netstatus.js /usr/local/bin/cri-netstatus \
 && cri-netstatus version
USER 65532
# /metrics, /healthz, /readyz (the DaemonSet runs in the host network namespace on this port).
EXPOSE 9731
ENTRYPOINT ["cri-netstatus"]
CMD ["serve"]
