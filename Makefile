# The toy store. `make help` lists the targets.
CARGO ?= cargo
# The fault run (make chaos): its seed, its length in seconds, and its base port (the store uses
# PORT_BASE..PORT_BASE+13; bases are allotted in systest/src/cluster/mod.rs).
SEED ?= 1
DURATION ?= 120
PORT_BASE ?= 24100
# Where cargo puts the release binaries.
RELEASE_DIR = $(or $(CARGO_TARGET_DIR),target)/release

.PHONY: help build run status watch test lint fmt clean chaos chaos-long sim mutants

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the release binaries into target/release
	$(CARGO) build --release --workspace --bins

run: build ## Start catalog, order replicas 1-3 and front-end in the foreground (Ctrl-C stops them)
	scripts/run-store.sh

# The running store at a glance, from every service's /metrics (the make run layout and data/.secret;
# the status binary's flags or TOYSTORE_* variables point it elsewhere).
status: ## Print the running store at a glance: replicas' roles, epochs, logs and lag, leader, cache, stock (JSON=1: as JSON)
	@$(CARGO) build --release --quiet -p status
	@$(RELEASE_DIR)/status $(if $(filter 1,$(JSON)),--json)

watch: ## make status redrawn every second (kill a process in another terminal and watch the store recover)
	@$(CARGO) build --release --quiet -p status
	@$(RELEASE_DIR)/status --watch

test: ## Run every test (unit, HTTP, end-to-end with real processes)
	$(CARGO) build --release --workspace --bins
	$(CARGO) test --workspace --release

chaos: ## Seeded fault run with a checked history (SEED=1 DURATION=120 PORT_BASE=24100; NETNS=1: hosts and network cuts, as root)
	$(CARGO) build --release --workspace --bins
	TOYSTORE_BIN=$${TOYSTORE_BIN:-$(RELEASE_DIR)} $(RELEASE_DIR)/chaos --seed $(SEED) --duration $(DURATION) --port-base $(PORT_BASE) $(if $(filter 1,$(NETNS)),--netns)

chaos-long: ## The fault run for 10 minutes (SEED=, PORT_BASE=)
	$(MAKE) chaos DURATION=600

sim: ## The replicas' deterministic simulation over many seeds (SEEDS=1000000 FIRST=0; SEED=S replays one)
	SEEDS=$${SEEDS:-1000000} $(CARGO) test --release -p order --test sim every_seed -- --nocapture

# Mutation testing of the pure cores: how many deliberate bugs the crates' own tests catch.
# MUTANT_SEEDS: simulation seeds per mutant (fewer than make test's 5,000, so the run takes about an
# hour on 2 cores; a mutant caught with fewer seeds is caught with more, so the score is a floor).
MUTANT_SEEDS ?= 1000
mutants: ## Mutation testing of the order, catalog and front-end cores (installs cargo-mutants if missing)
	@command -v cargo-mutants >/dev/null || $(CARGO) install --locked cargo-mutants
	SEEDS=$(MUTANT_SEEDS) $(CARGO) mutants -f order/src/core.rs --test-package order -o mutants.out/order
	$(CARGO) mutants -f catalog/src/core.rs --test-package catalog -o mutants.out/catalog
	$(CARGO) mutants -f frontend/src/failover.rs -f frontend/src/leader.rs -f frontend/src/cache.rs --test-package frontend -o mutants.out/frontend

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build outputs (keeps data/ and results/)
	$(CARGO) clean

# --- Evaluation (experiment crate): make experiment | experiment-crash | report | bench ---
# ITERATIONS (per client and p setting), CRASH_ROUNDS, BASE_PORT (default 8080: the contract's ports),
# DELAY_MS (relay between clients and front-end), NETNS=1 (each service on its own host, needs root),
# BENCH_SECS (per benchmark line). TOYSTORE_BIN points at prebuilt release binaries.
EXP_BIN = $(or $(TOYSTORE_BIN),$(or $(CARGO_TARGET_DIR),target)/release)
EXP_FLAGS = --bin $(EXP_BIN) $(if $(ITERATIONS),--iterations $(ITERATIONS)) \
	$(if $(CRASH_ROUNDS),--crash-rounds $(CRASH_ROUNDS)) $(if $(BASE_PORT),--base-port $(BASE_PORT)) \
	$(if $(DELAY_MS),--delay-ms $(DELAY_MS))
EXP_RUN = $(if $(filter 1,$(NETNS)),scripts/netns.sh run --) $(EXP_BIN)/experiment $(EXP_FLAGS)

.PHONY: experiment experiment-crash report bench

experiment: ## Latency vs p with/without cache, crash run, plots, results/REPORT.md (ITERATIONS= NETNS=1 DELAY_MS=)
	$(CARGO) build --release --workspace --bins
	$(EXP_RUN) --parts sweep,crash

experiment-crash: ## Only the crash run (replicas SIGKILLed under load), then the report
	$(CARGO) build --release --workspace --bins
	$(EXP_RUN) --parts crash

report: ## Make the plots and results/REPORT.md again from the CSVs in results/
	$(CARGO) build --release -p experiment --bins
	$(EXP_BIN)/experiment --parts report

bench: ## Benchmark: bare HTTP floor vs cached/uncached query, purchase, order query (1, 5, 32 clients; etcd if installed)
	$(CARGO) build --release --workspace --bins
	TOYSTORE_BIN=$(abspath $(EXP_BIN)) $(CARGO) bench -p experiment --bench store
	$(EXP_BIN)/experiment --parts report
