# `make test` is what CI runs (.ci/run). It must pass on a clean clone with
# nothing but Go installed; any tool a test needs is installed by this file
# into .tools/ (git-ignored).
GO ?= go

.PHONY: test fmt-check vet unit bench build

test: fmt-check vet unit

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

build:
	CGO_ENABLED=0 $(GO) build -o bin/chimport ./cmd/chimport

# bench: the end-to-end yardstick from DESIGN.md (a full sync of 200,000
# members against `chimport sim` in its own process at 250 ms per request).
bench:
	$(GO) test -run '^$$' -bench BenchmarkFullSync -benchtime 1x ./cmd/chimport
