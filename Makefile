# orderflow: the README's two commands are `make demo` and `make test`.
# Both create or reuse .venv, install the package, and build or reuse the control plane.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all venv lock tools test-tools kind-tools kind-node-image image e2e e2e-kind test unit contracts integration faults lint typecheck crds check-crds demo bench bench-peer bench-deadlines bench-targets bench-failover bench-waiting clean

all: test

# Both distributions in editable mode: orderflow-operator (the runtime) and orderflow-dev (the dev wing,
# which the `dev` extra names), so the checkout is what runs.
# The runtime's dependencies first, exactly as the image has them (the lock, hash-checked), so the
# tests run what ships. The runtime's distribution used to be named `orderflow` (on PyPI, another
# project's name): a venv made before the rename still has it, and its egg-info in operator/ still
# answers to that name, so both go first.
$(STAMP): pyproject.toml packaging/orderflow-dev/pyproject.toml packaging/lock/runtime.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip uninstall --quiet --yes orderflow
	rm -rf operator/orderflow.egg-info
	$(BIN)/pip install --quiet --require-hashes -r packaging/lock/runtime.txt
	$(BIN)/pip install --quiet -e ./packaging/orderflow-dev -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The runtime's dependencies, pinned with their hashes, for the image and the venv: run after a
# change to pyproject.toml's dependencies (or to take newer releases), then commit the result.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --upgrade --generate-hashes --strip-extras --no-header \
	  --output-file packaging/lock/runtime.txt pyproject.toml

# etcd, kube-apiserver, kubectl and helm: built once from Go modules into ~/.cache/orderflow.
tools: $(STAMP)
	$(BIN)/python -m orderflow.dev.cluster.tools

# What only the tests use (actionlint, promtool, kstatus, lua-health): built ahead, so that no
# test waits minutes for a build. `make demo` never needs them.
test-tools: tools
	$(BIN)/python -m orderflow.dev.cluster.tools --tests

# kind, and what its node image holds: kubelet, kubeadm, kube-proxy, kube-scheduler,
# kube-controller-manager, containerd v2, crictl and CoreDNS with the plugins of kubeadm's Corefile,
# built once from Go modules like the others (cold times: docs/benchmarks.md).
kind-tools: test-tools
	$(BIN)/python -m orderflow.dev.cluster.tools --kind

# kind's node image, assembled here without a registry (docs/kind.md); cached, rebuilt when an
# input changes.
kind-node-image: kind-tools
	$(BIN)/orderflow kind node-image

# The controllers' image from the Dockerfile, with no registry (buildah, a Debian base built here).
IMAGE_TAG ?= dev
image: $(STAMP)
	$(BIN)/orderflow image build --tag $(IMAGE_TAG) $(IMAGE_ARGS)

# As root, with podman: the steps of .github/workflows/e2e.yaml on a kind cluster made by the kind
# CLI from kind-config.yaml (image loaded with `kind load image-archive`, both charts installed as
# the README and the workflow do), pytest tests/e2e against the Pods, then `orderflow kind down`,
# also when a step fails (docs/kind.md). E2E_ARGS=--keep leaves the cluster up.
e2e: kind-node-image
	$(BIN)/python -m orderflow.dev.cluster.e2e $(E2E_ARGS) -- $(PYTEST_ARGS)

# The name `make e2e` had while a second, local node also ran the tests.
e2e-kind: e2e

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

integration: test-tools
	$(BIN)/pytest tests/integration tests/e2e $(PYTEST_ARGS)

# Controllers SIGKILLed, the API server restarted, a concurrent writer forcing 409s (minutes).
faults: tools
	$(BIN)/pytest tests/faults $(PYTEST_ARGS)

# The README's test command: lint, types, and every test (unit, integration, e2e, faults).
test: lint typecheck test-tools
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

# Failover after a crash (docs/benchmarks.md, "Failover after a crash"): two order-controller
# replicas as processes, the working one SIGKILLed 5 times with Kopf's 60 s peering lifetime and 5
# with the default, 15 s (about 13 minutes). On Pods: FAILOVER_ARGS="--kubeconfig K ..." (the
# module's help, and docs/deploy.md, High availability).
bench-failover: tools
	$(BIN)/python -m orderflow.dev.bench.failover --lifetimes 60 15 --trials 5 $(FAILOVER_ARGS)

# Waiting at scale (docs/benchmarks.md, "Waiting"): 1,000 then 10,000 in flight with long steps,
# a restart of both controllers as the first steps fall due, and the seed's design on Temporal
# beside it in the same run (about 12 and 40 minutes on 2 cores).
bench-waiting: tools
	$(BIN)/python -m orderflow.dev.cluster.tools temporal
	$(BIN)/python -m orderflow.dev.bench.waiting --orders 1000 --per-second 20 --picking-seconds 150 --peer temporal
	$(BIN)/python -m orderflow.dev.bench.waiting --orders 10000 --per-second 20 --picking-seconds 660 --peer temporal

clean:
	rm -rf $(VENV) .orderflow .mypy_cache .ruff_cache .pytest_cache
