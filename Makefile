# wgs — two commands do all the set-up: `make run` and `make test`.
# Only Node >= 20, npm and make are assumed; Bun comes from the npm `bun` package.

BUN := node_modules/.bin/bun
STAMP := node_modules/.wgs-installed

.PHONY: run test bench images install migration

# npm ci again only when a manifest or the lockfile changed.
$(STAMP): package.json package-lock.json gateway/package.json
	npm ci --no-audit --no-fund
	@touch $@

install: $(STAMP)

## Run the gateway in the foreground on the embedded defaults (Ctrl-C stops it).
run: $(STAMP)
	exec $(BUN) gateway/src/main.ts

## Type-check, then run every test against real Postgres and real processes.
test: $(STAMP)
	node_modules/.bin/tsc -p tsconfig.json
	bash scripts/test

## Build the worker image without a registry (needs a Docker daemon).
images: $(STAMP)
	bash scripts/build-images

## Print the benchmark tables (bench/).
bench: $(STAMP)
	$(BUN) bench/gateway.ts
	$(BUN) bench/instances.ts
	$(BUN) bench/webhooks.ts
	$(BUN) bench/docker.ts
	$(BUN) bench/migration.ts

## Generate a drizzle-kit migration after changing gateway/src/db/schema.
migration: $(STAMP)
	cd gateway && ../node_modules/.bin/drizzle-kit generate
