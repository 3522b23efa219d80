# orderflow: the README's two commands are `make demo` and `make test`.
# Both create or reuse .venv, install the package, and build or reuse the control plane.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all venv tools node-tools image e2e test unit contracts integration faults node lint typecheck crds check-crds demo bench bench-peer bench-deadlines bench-targets bench-waiting clean

all: test

# Both distributions in editable mode: orderflow (the runtime) and orderflow-dev (the dev wing,
# which the `dev` extra names), so the checkout is what runs.
$(STAMP): pyproject.toml packaging/orderflow-dev/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./packaging/orderflow-dev -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# etcd, kube-apiserver, kubectl and helm: built once from Go modules into ~/.cache/orderflow.
tools: $(STAMP)
	$(BIN)/python -m orderflow.dev.cluster.tools

# For a cluster that runs Pods: kubelet, kube-proxy, kube-scheduler, kube-controller-manager,
# containerd v2 and CoreDNS, built once like the control plane (about 7 minutes cold on 2 cores).
node-tools: tools
	$(BIN)/python -m orderflow.dev.cluster.tools --nodes

# The controllers' image from the Dockerfile, with no registry (buildah, a Debian base built here).
IMAGE_TAG ?= dev
image: $(STAMP)
	$(BIN)/orderflow image build --tag $(IMAGE_TAG) $(IMAGE_ARGS)

# As root: a local node runs both charts' Deployments as Pods; tests/e2e then runs against them
# in the installed mode the kind workflow uses. Needs the host packages .ci/run installs.
e2e: node-tools
	$(BIN)/python -m orderflow.dev.cluster.e2e $(E2E_ARGS) -- $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests

typecheck: $(STAMP)
	$(BIN)/mypy

crds: $(STAMP)
	$(BIN)/orderflow crds

check-crds: $(STAMP)
	$(BIN)/orderflow crds --check

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The house plan: api < runtime < the controllers < cli < dev, and pure cores (also in tests/unit).
contracts: $(STAMP)
	$(BIN)/lint-imports

integration: tools
	$(BIN)/pytest tests/integration tests/e2e $(PYTEST_ARGS)

# Controllers SIGKILLed, the API server restarted, a concurrent writer forcing 409s (minutes).
faults: tools
	$(BIN)/pytest tests/faults $(PYTEST_ARGS)

# The node alone: a Pod runs, DNS and Services work, nothing leaves, down leaves nothing (root).
node: node-tools
	$(BIN)/pytest tests/node $(PYTEST_ARGS)

# The README's test command: lint, types, and every test (unit, integration, e2e, faults).
test: lint typecheck tools
	$(BIN)/pytest $(PYTEST_ARGS)

# The README's demo command: a local control plane, both controllers, one order, cleaned up.
demo: tools
	$(BIN)/orderflow demo $(DEMO_ARGS)

# The cost curve (1,000 and 10,000 orders, about 15 minutes on 2 cores); BENCH_ARGS=--quick for a
# minute's smoke run of every measure.
bench: tools
	$(BIN)/python -m orderflow.dev.bench $(BENCH_ARGS)

# The same, with the seed's workflows on Temporal measured in the same run: builds the Temporal
# CLI from the Go module proxy once (about 4 minutes cold); temporalio is in the venv (`test` extra).
bench-peer: tools
	$(BIN)/python -m orderflow.dev.cluster.tools temporal
	$(BIN)/python -m orderflow.dev.bench --peer temporal $(BENCH_ARGS)

# Deadline lateness (docs/benchmarks.md, "Deadlines"): 1,000 in flight all due at once, then
# 1,000 and 10,000 falling due 20 a second (about 35 minutes in all on 2 cores).
bench-deadlines: tools
	$(BIN)/python -m orderflow.dev.bench.deadlines --orders 1000 --per-second 0 --margin 30
	$(BIN)/python -m orderflow.dev.bench.deadlines --orders 1000 --per-second 20 --margin 30
	$(BIN)/python -m orderflow.dev.bench.deadlines --orders 10000 --per-second 20 --margin 420

# Across clusters (docs/benchmarks.md, "Across clusters"): two control planes, a target (3 minutes).
bench-targets: tools
	$(BIN)/python -m orderflow.dev.bench.targets --orders 500

# Waiting at scale (docs/benchmarks.md, "Waiting"): 1,000 then 10,000 in flight with long steps,
# a restart of both controllers as the first steps fall due, and the seed's design on Temporal
# beside it in the same run (about 12 and 40 minutes on 2 cores).
bench-waiting: tools
	$(BIN)/python -m orderflow.dev.cluster.tools temporal
	$(BIN)/python -m orderflow.dev.bench.waiting --orders 1000 --per-second 20 --picking-seconds 150 --peer temporal
	$(BIN)/python -m orderflow.dev.bench.waiting --orders 10000 --per-second 20 --picking-seconds 660 --peer temporal

clean:
	rm -rf $(VENV) .orderflow .mypy_cache .ruff_cache .pytest_cache
