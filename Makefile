# `make test` is what CI runs (.ci/run). It must pass on a clean clone with
# nothing but Go installed; any tool a test needs is installed by this file
# into .tools/ (git-ignored).
GO ?= go
TOOLS := $(CURDIR)/.tools

.PHONY: test fmt-check vet unit bench soak build tools chromium postgresql

test: fmt-check vet tools unit

# tools installs the AWS emulators the tests run against, once, into
# .tools/: dynalite (DynamoDB) and s3rver (S3) from npm, goaws (SNS and SQS)
# from the Go module proxy. Tests fail, never skip, when one is missing.
tools: $(TOOLS)/node/node_modules/dynalite/cli.js $(TOOLS)/node/node_modules/s3rver/package.json $(TOOLS)/bin/goaws chromium postgresql

# postgresql: Debian's server binaries, from which the tests make a
# throwaway cluster (internal/pgtest); installed once per machine where
# they are missing.
postgresql:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# chromium renders the status page in a test; Debian's package, installed
# once per machine (root is available on the build machines).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

$(TOOLS)/node/node_modules/dynalite/cli.js $(TOOLS)/node/node_modules/s3rver/package.json &:
	mkdir -p $(TOOLS)/node
	cd $(TOOLS)/node && npm install --no-audit --no-fund --no-save --silent dynalite@4 s3rver@3

$(TOOLS)/bin/goaws:
	mkdir -p $(TOOLS)/bin
	GOBIN=$(TOOLS)/bin $(GO) install github.com/Admiral-Piett/goaws/app/cmd@v0.5.4
	mv $(TOOLS)/bin/cmd $(TOOLS)/bin/goaws

fmt-check:
	@out="$$(gofmt -l $$(find . -name '*.go' -not -path './.tools/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

build:
	CGO_ENABLED=0 $(GO) build -o bin/chimport ./cmd/chimport

# bench: the end-to-end yardsticks: a full sync of 200,000 members against
# `chimport sim` in its own process at 250 ms per request, one run over
# 10,000 connections (1,000 keys x 10 lists) at 100 ms per request on
# SQLite and then the same run on PostgreSQL (internal/pgtest's throwaway
# cluster, fsync off; hence the postgresql prerequisite), with wall time,
# store calls, mean store latency and peak RSS side by side, and 1,000
# webhook events at 50 a second with Mailchimp at 100 ms per request
# (arrival-to-ack p50/p99, Mailchimp requests), and 1,000 OAuth accounts x
# 10 audiences through list_id "*" as 4 shards, one after another and then
# side by side (wall time, requests and peak RSS per shard). One after the
# other, so that no two share the 2 cores.
bench: postgresql
	$(GO) test -run '^$$' -bench 'BenchmarkFullSync|BenchmarkScale|BenchmarkShards' -benchtime 1x -timeout 30m ./cmd/chimport
	$(GO) test -run '^$$' -bench 'BenchmarkWebhookLatency' -benchtime 1x -timeout 5m ./internal/webhook

# soak: the engine's adversarial sweeps (hundreds of random page sizes,
# overlaps, churn rates, faults, unstable tie orders and cancellations),
# each checking the watermark's and every checkpoint's promise.
soak:
	CHIMPORT_SOAK=1 QUIET=1 $(GO) test -count=1 -run 'TestAdversarial' -timeout 30m ./internal/engine
