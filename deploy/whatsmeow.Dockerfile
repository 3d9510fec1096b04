# The whatsmeow worker (workers/whatsmeow, Go), one container per WhatsApp
# number: a static binary FROM scratch, running as nobody.
#
#   scripts/build-whatsmeow-image    # no registry: prebuilt binary + the host's CA bundle (--target prebuilt)
#   docker build -f deploy/whatsmeow.Dockerfile -t wgs-worker-whatsmeow workers/whatsmeow   # from source (needs a registry)
#
# The `prebuilt` stage must stay first: the legacy builder builds every stage
# up to --target in file order, and the later stages need a registry.

# Used by the production builder below; an ARG for a FROM line must precede the first FROM.
ARG GO_IMAGE=golang:1.26-bookworm

# ---- prebuilt: context = a folder with wgs-whatsmeow, ca-certificates.crt and an empty tmp/
FROM scratch AS prebuilt
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY wgs-whatsmeow /usr/local/bin/wgs-whatsmeow
# scratch has no /tmp: the health file needs a directory nobody can write.
COPY --chown=65534:65534 tmp/ /tmp/
USER 65534:65534
# Written while the worker is connected to the gateway; `--health` checks its age.
ENV WGS_HEALTH_FILE=/tmp/wgs-worker.health
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/wgs-whatsmeow", "--health"]
ENTRYPOINT ["/usr/local/bin/wgs-whatsmeow"]

# ---- production: compiled from source (context = workers/whatsmeow)
FROM ${GO_IMAGE} AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/wgs-whatsmeow ./cmd/wgs-whatsmeow && mkdir -p /out/tmp

FROM scratch
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/wgs-whatsmeow /usr/local/bin/wgs-whatsmeow
COPY --from=builder --chown=65534:65534 /out/tmp/ /tmp/
USER 65534:65534
ENV WGS_HEALTH_FILE=/tmp/wgs-worker.health
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/wgs-whatsmeow", "--health"]
ENTRYPOINT ["/usr/local/bin/wgs-whatsmeow"]
