# The wgs gateway (control plane). Build context: the repository root.
#
#   Anywhere with a registry (bundles from source, the default target):
#     docker build -f deploy/gateway.Dockerfile -t wgs-gateway .
#   With no registry (`make images`: a local Bun base, bundles built on the host):
#     docker build -f deploy/gateway.Dockerfile --target prebuilt --build-arg BASE_IMAGE=wgs-bun-base:local .
#
# The image holds the gateway bundle, its migrations, the dashboard (served at
# /dashboard), the worker bundle and the whatsmeow worker binary (for nodes
# with engine `process`, whose workers run inside this container).
# Give it DATABASE_URL: the embedded Postgres is for `make run`, not for images.
ARG BASE_IMAGE=oven/bun:1
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${BASE_IMAGE} AS runtime
WORKDIR /app
ENV HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    WGS_MIGRATIONS_DIR=/app/drizzle \
    WGS_DASHBOARD_DIR=/app/dashboard \
    WGS_WORKER_ENTRY=/app/worker.js \
    WGS_WHATSMEOW_BINARY=/app/whatsmeow/wgs-whatsmeow
# Not root. On a Docker node through the socket, add the socket's group (compose.yaml does).
USER 65534:65534
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/bun", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/local/bin/bun", "/app/gateway/main.js"]

FROM runtime AS prebuilt
COPY build/gateway/ /app/gateway/
COPY build/dashboard/ /app/dashboard/
COPY build/worker/worker.js /app/worker.js
# Holds wgs-whatsmeow when Go built it (scripts/build-images); empty otherwise.
COPY build/whatsmeow/ /app/whatsmeow/
COPY gateway/drizzle /app/drizzle

FROM ${BASE_IMAGE} AS bundle
WORKDIR /src
COPY package.json package-lock.json ./
COPY common ./common
COPY workers ./workers
COPY gateway ./gateway
COPY dashboard ./dashboard
# The root package.json lists every workspace; bun install stops on one whose directory is missing.
COPY simulator/package.json ./simulator/package.json
# One install for the workspace, pinned by the repository's npm lockfile (bun migrates it; frozen: no other versions).
RUN bun install --production --frozen-lockfile
RUN bun build gateway/src/main.ts --target bun --outdir /out/gateway \
 && bun build workers/src/main.ts --target bun --outfile /out/worker.js \
 && NODE_ENV=production bun build dashboard/src/index.html --target=browser --minify --public-path=/dashboard/ \
      --asset-naming '[name]-[hash].[ext]' --chunk-naming '[name]-[hash].[ext]' --outdir /out/dashboard

FROM ${GO_IMAGE} AS whatsmeow
WORKDIR /src
COPY workers/whatsmeow/go.mod workers/whatsmeow/go.sum ./
RUN go mod download
COPY workers/whatsmeow ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/wgs-whatsmeow ./cmd/wgs-whatsmeow

FROM runtime AS production
COPY --from=bundle /out/gateway/ /app/gateway/
COPY --from=bundle /out/dashboard/ /app/dashboard/
COPY --from=bundle /out/worker.js /app/worker.js
COPY --from=whatsmeow /out/wgs-whatsmeow /app/whatsmeow/wgs-whatsmeow
COPY gateway/drizzle /app/drizzle
