# The toy store. `make help` lists the targets.
CARGO ?= cargo

.PHONY: help build run test lint fmt clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the release binaries into target/release
	$(CARGO) build --release --workspace --bins

run: build ## Start catalog, order replicas 1-3 and front-end in the foreground (Ctrl-C stops them)
	scripts/run-store.sh

test: ## Run every test (unit, HTTP, end-to-end with real processes)
	$(CARGO) build --release --workspace --bins
	$(CARGO) test --workspace --release

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build outputs (keeps data/ and results/)
	$(CARGO) clean
