# cri-netstatus container image. Build it with scripts/image.sh (docker or buildah, official or
# local base, multi-arch with docker buildx, --push); plain `docker build -t cri-netstatus .` works too.
#
# Three stages:
#   node    NODE_IMAGE for the target platform, only the source of /usr/local/bin/node;
#   build   NODE_IMAGE (with npm) compiles the TypeScript without source maps, prunes dev
#           dependencies and strips what Node never loads from node_modules;
#   runtime BASE_IMAGE (Debian, no Node) + the node binary + package.json, bin/, dist/src/ and the
#           production node_modules: no npm, no compiler, no package cache, no maps or tests
#           (test/e2e/image.test.ts checks the built image; test/e2e/pack.test.ts this file set).
# NODE_IMAGE must put node at /usr/local/bin/node and npm on PATH, as the official images and
# scripts/image.sh's local base do.
#
# The runtime keeps Debian's /usr/bin/env and a shell so that `kubectl debug node/<node>
# --image=<this image> -- cri-netstatus status --socket /host/run/cri-netstatus/cri.sock` finds the CLI
# on PATH (kubectl debug replaces the entrypoint with its command).
#
# User: 65532 (cri-netstatus), non-root, and a member of group root (GID 0) through /etc/group.
# The agent's socket is root:root 0660 on the node (kubelet creates its directory as root), so the
# group membership is what lets the CLI in a `kubectl debug node/...` pod, which runs as the image's
# user, connect to it. Reading a conf dir that is 0700 root needs UID 0: docs/runbooks.md gives the
# `kubectl debug --custom` profile for that, so the image's default stays non-root. The Helm chart
# sets the DaemonSet's own identity (see values.yaml podSecurityContext: root without capabilities
# by default, because a non-root agent cannot create its socket in a root-owned 0755 directory
# unless the node prepares it).
ARG NODE_IMAGE=node:24-bookworm-slim
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${NODE_IMAGE} AS node

# The build's output is JavaScript only (no native addons), so under buildx it runs on the
# builder's own platform and only the runtime stage is per-platform.
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
WORKDIR /src
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" would build before the sources are copied. The optional secret
# npm_ca is a CA bundle for a registry reached through a TLS-intercepting proxy (scripts/image.sh
# passes NODE_EXTRA_CA_CERTS); a secret never lands in a layer.
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi \
 && npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
# Strip from node_modules what Node never loads: source maps, TypeScript sources and typings,
# markdown, test dirs, and the Bare runtime's *.bare prebuilds (tar-fs's bare-* dependencies).
RUN npx tsc -p tsconfig.json --sourceMap false \
 && npm prune --omit=dev --ignore-scripts \
 && find node_modules -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \
      -o -iname '*.md' -o -name '*.bare' \) -delete \
 && find node_modules -depth -type d \( -name test -o -name tests -o -name __tests__ \) \
      -exec rm -rf {} + \
 && find node_modules -depth -type d -empty -delete \
 && chmod 0755 bin/cri-netstatus.js

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="cri-netstatus" \
      org.opencontainers.image.description="Node-local CRI Status agent: CNI network readiness from /etc/cni/net.d, Prometheus metrics, a Node condition" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/cri-netstatus/cri-netstatus" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=node /usr/local/bin/node /usr/local/bin/node
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
