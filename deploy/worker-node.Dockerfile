# The TypeScript worker on Node, for the providers that need Node (baileys):
# one container per WhatsApp number. The same program as worker.Dockerfile,
# bundled for Node with everything it imports (no node_modules at run time;
# ES modules, hence .mjs).
# Build context: the repository root.
#
#   Anywhere with a registry (bundles from source, the default target):
#     docker build -f deploy/worker-node.Dockerfile -t wgs-worker-node .
#   With no registry (`make images`: a local Node base, the bundle built on the host):
#     docker build -f deploy/worker-node.Dockerfile --target prebuilt --build-arg BASE_IMAGE=wgs-node-base:local .
ARG BASE_IMAGE=node:24-slim
ARG BUN_IMAGE=oven/bun:1

FROM ${BASE_IMAGE} AS runtime
# Not root: nobody. The worker keeps no files; its session is in Postgres.
USER 65534:65534
ENV WGS_HEALTH_FILE=/tmp/wgs-worker.health
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/node", "/app/worker.mjs", "--health"]
# Less resident memory per worker, the same settings as the process engine (gateway/src/instances/setup.ts
# NODE_FLAGS and NODE_ENV; figures in docs/architecture.md): a small young generation (about 35 MB less idle),
# --optimize-for-size, and glibc's malloc with 2 arenas that returns freed memory (about 25 MB less after messages).
ENV GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=65536:glibc.malloc.mmap_threshold=65536
ENTRYPOINT ["/usr/local/bin/node", "--max-semi-space-size=1", "--optimize-for-size", "/app/worker.mjs"]

FROM runtime AS prebuilt
COPY build/worker-node-image/worker.mjs /app/worker.mjs

FROM ${BUN_IMAGE} AS bundle
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
RUN cd workers && bun build src/main.ts --target node --outfile /out/worker.mjs

FROM runtime AS production
COPY --from=bundle /out/worker.mjs /app/worker.mjs
