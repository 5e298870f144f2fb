# Entry points of couponpush. Engines (Redis, MariaDB, nsqd, Consul) come from
# scripts/engines.sh; integration tests start or reuse them through
# internal/enginetest.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := test

# staticcheck 2026.2.2, built by `go run` from the module proxy; it knows go1.26.
STATICCHECK_VERSION := v0.8.2
# Per-run engine directories: on disk (MariaDB data must not be on tmpfs),
# outside the checkout.
RUN_DIR := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/couponpush/run
# -tags failpoint compiles the test-only fault hooks (worker/failpoint_on.go).
GO_TEST_FLAGS ?= -race -count=1 -timeout 25m -tags failpoint
PKGS ?= ./...

.PHONY: engines test check bench bench-claims bench-trust run

## engines: install Redis and MariaDB (apt) and build nsqd and consul into the cache, if missing
engines:
	scripts/engines.sh install

## test: start one set of engines for the whole run, run every test against it, stop it
test: engines
	mkdir -p "$(RUN_DIR)"
	# Engines of an earlier run whose make was killed: stop them, drop their data.
	for old in "$(RUN_DIR)"/test.*; do
		[[ -f $$old/owner ]] || continue
		kill -0 "$$(cat "$$old/owner")" 2>/dev/null && continue
		scripts/engines.sh stop "$$old" || true
		rm -rf "$$old"
	done
	dir=$$(mktemp -d "$(RUN_DIR)/test.XXXXXX")
	echo $$$$ >"$$dir/owner"
	trap 'scripts/engines.sh stop "$$dir"; rm -rf "$$dir"' EXIT
	scripts/engines.sh start "$$dir"
	source "$$dir/env"
	go test $(GO_TEST_FLAGS) $(PKGS)

## check: formatting, vet, staticcheck, go.mod tidiness, import rules
check:
	unformatted=$$(gofmt -l .)
	if [[ -n $$unformatted ]]; then
		echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1
	fi
	# Twice: the failpoint hooks exist only in test builds (-tags failpoint).
	go vet ./...
	go vet -tags failpoint ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -tags failpoint ./...
	go mod tidy -diff
	# Import rules (STYLE.md): queue/ imports nothing of the project but
	# exactly the leaf package couponpush/internal/redisscript, which itself
	# imports nothing of the project; only mains live in cmd/, nothing
	# imports them. Test imports are free.
	go list -e -f '{{.ImportPath}} {{join .Imports " "}}' ./... | awk '
		BEGIN { leaf["couponpush/internal/redisscript"] = 1 }
		{ for (i = 2; i <= NF; i++) {
			if ($$1 ~ /^couponpush\/queue(\/|$$)/ && $$i ~ /^couponpush(\/|$$)/ && $$i !~ /^couponpush\/queue(\/|$$)/ && !($$i in leaf)) {
				print "import rule: " $$1 " imports " $$i " (queue/ imports nothing of the project but internal/redisscript)"; bad = 1 }
			if (($$1 in leaf) && $$i ~ /^couponpush(\/|$$)/) {
				print "import rule: " $$1 " imports " $$i " (a leaf package queue/ may import imports nothing of the project)"; bad = 1 }
			if ($$i ~ /^couponpush\/cmd\//) {
				print "import rule: " $$1 " imports " $$i " (nothing imports a main)"; bad = 1 } } }
		END { exit bad }'

## bench: the bench command on its own engines (reports the budgets of DESIGN.md); BENCH_FLAGS passes flags
bench: engines
	mkdir -p "$(RUN_DIR)"
	dir=$$(mktemp -d "$(RUN_DIR)/bench.XXXXXX")
	trap 'scripts/engines.sh stop "$$dir"; rm -rf "$$dir"' EXIT
	scripts/engines.sh start "$$dir"
	source "$$dir/env"
	go run ./cmd/bench $(BENCH_FLAGS)

## bench-claims: the claim bench on its own engines (durable claims/s over HTTP vs a row-lock baseline); CLAIMBENCH_FLAGS passes flags
bench-claims: engines
	mkdir -p "$(RUN_DIR)"
	dir=$$(mktemp -d "$(RUN_DIR)/bench.XXXXXX")
	trap 'scripts/engines.sh stop "$$dir"; rm -rf "$$dir"' EXIT
	scripts/engines.sh start "$$dir"
	source "$$dir/env"
	go run ./cmd/claimbench $(CLAIMBENCH_FLAGS)

## bench-trust: what auth and rate limits cost (claims/s and PUTs/s with them on beside off, alternating rounds); TRUSTBENCH_FLAGS passes flags
bench-trust: engines
	mkdir -p "$(RUN_DIR)"
	dir=$$(mktemp -d "$(RUN_DIR)/bench.XXXXXX")
	trap 'scripts/engines.sh stop "$$dir"; rm -rf "$$dir"' EXIT
	scripts/engines.sh start "$$dir"
	source "$$dir/env"
	go run ./cmd/trustbench $(TRUSTBENCH_FLAGS)

## run: a local cluster of workers on local engines
run:
	scripts/run.sh
