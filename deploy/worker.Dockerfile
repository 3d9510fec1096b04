# The TypeScript worker (all providers written in TypeScript), one container
# per WhatsApp number. Built from the bundle `make images` writes
# (`bun build workers/src/main.ts`), so the image needs no package install:
#
#   make images                                     # local base image, no registry
#   docker build -f deploy/worker.Dockerfile --build-arg BASE_IMAGE=oven/bun:1 build/worker
ARG BASE_IMAGE=oven/bun:1
FROM ${BASE_IMAGE}
COPY worker.js /app/worker.js
# Not root: nobody. The worker needs no files of its own; its state is in Postgres.
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/bun", "/app/worker.js"]
