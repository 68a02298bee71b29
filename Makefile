# Every target sets the project up first (idempotently): a local virtualenv, npm packages, and the
# offline solc. Nothing is written outside this checkout except ape's own cache in ~/.ape.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin

export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
export PATH := $(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# Ape's prompts must never block a script or CI run.
export APE_TESTING_DISABLE_PROMPTS := 1

NETWORK ?= ethereum:local:foundry
# Extra pytest arguments for `make test`, e.g. PYTEST_ARGS='-m "not zkml"' to skip the EZKL prover tests.
PYTEST_ARGS ?=
# `make audit EXAMPLES=N`: examples per state machine (default: the audit profile's).
EXAMPLES ?=
# `make test COVERAGE=1` is `make coverage`: the same suite run, traced, then the coverage report and its thresholds.
COVERAGE ?=
COVERAGE_DATA := build/coverage/data
COVERAGE_REPORT := reports/coverage

.PHONY: help setup compile demo chain hardhat test coverage lint docs gas zkml-bench bench-operators audit mutation clean

help:
	@echo "make demo   - run the protocol's whole story on a fresh local anvil chain and report each step: deploy, stake,"
	@echo "               govern, settle, a forged batch challenged, a vault payout, an attacker refused, a ZKML liquidation,"
	@echo "               an audit, twin trades, a fee alert; then stop the chain (compiler and EZKL output: build/logs/demo.log)"
	@echo "make chain  - a local anvil chain that keeps its state across restarts (build/chain/); scripts reach it"
	@echo "               with --network ethereum:devchain (CHAIN_PORT=n: another port; FRESH=1: start over)"
	@echo "make hardhat - a Hardhat node (the second client) on 127.0.0.1:8545; scripts reach it with --network ethereum:hardhat:node"
	@echo "make test   - run the whole test suite on a local anvil chain (NETWORK=... to choose another)"
	@echo "make coverage - the same suite run with line/branch coverage of the contracts (reports/coverage/); fails below the thresholds"
	@echo "make lint   - slither over the contracts; fails on untriaged high/medium findings"
	@echo "make docs   - build the documentation site (docs/, mkdocs.yml) into build/site/, strictly: a broken link fails"
	@echo "make gas    - regenerate benchmarks/gas.md"
	@echo "make zkml-bench - regenerate benchmarks/zkml.md (EZKL verifier vs settlement gas, proving time)"
	@echo "make bench-operators - regenerate benchmarks/operators.md (watchtower and relayer throughput on anvil)"
	@echo "make audit  - the state machines' audit campaign in-process on every core; steps/s vs anvil (EXAMPLES=N)"
	@echo "make mutation - mutation testing of the core contracts, tests in-process; writes benchmarks/mutation.md"
	@echo "               (MUTANTS=N: a seeded sample of N mutants per contract; JOBS=N workers;"
	@echo "                SURVIVORS=1: test the last run's survivors again after writing tests for them;"
	@echo "                MUTATION_SEED=n: another sample)"
	@echo "make setup  - only install (also done by every target above); PYTHON=python3.x picks the virtualenv's Python"
	@echo "make clean  - delete what setup and the targets made: .venv, node_modules, .solcx, .build, contracts/.cache,"
	@echo "               the EZKL cache .zkml, build/ (logs, coverage data, the make chain state) and reports/"

setup: $(VENV)/.installed node_modules/.installed $(SOLCX_BINARY_PATH)/.installed

# Refuses, in one line, a Python that pyproject.toml's requires-python does not allow: the one .venv was made
# with, or $(PYTHON) before it makes .venv.
$(VENV)/.installed: pyproject.toml constraints.txt
	@if test -x $(BIN)/python; then \
		$(BIN)/python opgkit/toolchain/supported_python.py --venv $(VENV) --goal "$(or $(MAKECMDGOALS),setup)"; \
	else \
		$(PYTHON) opgkit/toolchain/supported_python.py --python $(PYTHON) --goal "$(or $(MAKECMDGOALS),setup)" \
			&& $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[lint,mutation,docs]'
	$(BIN)/python -m opgkit.toolchain.environment
	@touch $@

node_modules/.installed: package.json package-lock.json
	# `npm ci`: exactly the lock (every platform's anvil binary included), which it never rewrites, so a
	# checkout stays clean; a package.json the lock does not match is refused.
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(SOLCX_BINARY_PATH)/.installed: $(VENV)/.installed node_modules/.installed ape-config.yaml opgkit/toolchain/solc_standin.js opgkit/toolchain/solc.py
	$(BIN)/python -m opgkit.toolchain.solc install
	@touch $@

# Compile everything up front: scripts that tests start as subprocesses then never write .build/ concurrently.
# In full whenever a source changed since the last full compile: ape's incremental compile would keep the old
# bytecode of the contracts that inherit an edited file.
compile: setup
	$(BIN)/python -m opgkit.toolchain.build

demo: compile
	ape run demo --network $(NETWORK)

# Foreground anvil on 127.0.0.1:8555 whose state survives Ctrl-C; see opgkit/local_chain.py.
chain: setup
	$(BIN)/python -m opgkit.local_chain $(if $(CHAIN_PORT),--port $(CHAIN_PORT)) $(if $(FRESH),--fresh)

# Foreground Hardhat node (npm hardhat, EDR): the anvil's chain id, hardfork and test accounts, state in memory.
hardhat: setup
	HARDHAT_DISABLE_TELEMETRY_PROMPT=true hardhat node --config config/hardhat/hardhat.config.js --hostname 127.0.0.1 --port 8545

ifeq ($(COVERAGE),)
test: compile
	ape test tests --network $(NETWORK) $(PYTEST_ARGS)
else
test: coverage
endif

# One suite run: every transaction and call is traced (see docs/auditing.md, "Auditors: coverage"); the report is written
# even when a test fails, and the target fails if a test or a coverage threshold does.
coverage: compile
	rm -rf $(COVERAGE_DATA)
	$(BIN)/python -m opgkit.toolchain.coverage compile
	status=0; OPG_COVERAGE=$(COVERAGE_DATA) ape test tests --network $(NETWORK) $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m opgkit.toolchain.coverage report $(COVERAGE_DATA) $(COVERAGE_REPORT) || status=1; \
	exit $$status

lint: setup
	$(BIN)/python -m opgkit.toolchain.slither

# The documentation site, with opgkit's API reference from its docstrings; --strict: any warning (a broken
# link or anchor, a missing page or included benchmark table) fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

gas: compile
	ape run gas --network ethereum:local:foundry

# Wall-clock figures of the operators (watchtower, relayer) on anvil: benchmarks/operators.md.
bench-operators: compile
	ape run operators_bench --network ethereum:local:foundry

zkml-bench: compile
	ape run zkml bench --network ethereum:local:foundry

audit: compile
	$(BIN)/python -m opgkit.audit $(if $(EXAMPLES),--examples $(EXAMPLES))

# The mutants are compiled apart (never in contracts/ or .build/); the tests run against .build's ABIs.
mutation: compile
	$(BIN)/python -m opgkit.mutation $(CONTRACTS)

clean:
	rm -rf $(VENV) node_modules .solcx .build contracts/.cache .zkml build reports
