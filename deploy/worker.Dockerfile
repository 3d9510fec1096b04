# The TypeScript worker (every provider written in TypeScript): one container
# per WhatsApp number. Build context: the repository root.
#
#   Anywhere with a registry (bundles from source, the default target):
#     docker build -f deploy/worker.Dockerfile -t wgs-worker-ts .
#   With no registry (`make images`: a local Bun base, the bundle built on the host):
#     docker build -f deploy/worker.Dockerfile --target prebuilt --build-arg BASE_IMAGE=wgs-bun-base:local .
#
# The stages `make images` needs come first: the classic builder builds every
# stage up to the target, and the `bundle` stage needs a registry.
ARG BASE_IMAGE=oven/bun:1

FROM ${BASE_IMAGE} AS runtime
# Not root: nobody. The worker keeps no files; its session is in Postgres.
USER 65534:65534
# Touched while the worker is connected to the gateway; `--health` checks its age.
ENV WGS_HEALTH_FILE=/tmp/wgs-worker.health
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/bun", "/app/worker.js", "--health"]
ENTRYPOINT ["/usr/local/bin/bun", "/app/worker.js"]

FROM runtime AS prebuilt
COPY build/worker/worker.js /app/worker.js

FROM ${BASE_IMAGE} AS bundle
WORKDIR /src
# The workspace's manifests and the repository's npm lockfile: versions pinned (bun migrates the lockfile; frozen: no others).
COPY package.json package-lock.json ./
COPY workers/package.json ./workers/
COPY gateway/package.json ./gateway/
COPY simulator/package.json ./simulator/
COPY dashboard/package.json ./dashboard/
RUN bun install --production --frozen-lockfile
COPY common ./common
COPY workers ./workers
RUN cd workers && bun build src/main.ts --target bun --outfile /out/worker.js

FROM runtime AS production
COPY --from=bundle /out/worker.js /app/worker.js
