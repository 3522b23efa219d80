"""The house plan, held by import-linter's contracts and run as a test: the layers (api < runtime <
the controllers < cli, the dev wing above all and imported by nothing below), the two controllers
independent of each other, and the pure cores, with the runtime's pure part they use, free of Kopf,
I/O and the clock."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from orderflow.fulfillment import controller as fulfillment
from orderflow.order import controller as order
from orderflow.runtime.client import Kube

ROOT = Path(__file__).resolve().parents[2]
LAYERS = "Layers: dev above cli above the controllers above runtime above api"
CORES = "The pure cores: no Kopf, no I/O, no clock (state in, decision out)"
PURE_RUNTIME = "The runtime's pure part: no Kopf, no I/O, no clock, no plumbing"
CONTRACTS = {LAYERS, CORES, PURE_RUNTIME}


def lint_imports(source: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(source), "PATH": ""},
    )


def test_import_contracts_hold() -> None:
    done = lint_imports(ROOT / "operator")
    assert done.returncode == 0, done.stdout + done.stderr
    assert {name for name in CONTRACTS if f"{name} KEPT" in done.stdout} == CONTRACTS
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken" in done.stdout


def copy_with_import(tmp_path: Path, module: str, imported: str) -> Path:
    """The package copied to ``tmp_path``, with ``module`` (a path under it) importing ``imported``."""
    shutil.copytree(
        ROOT / "operator" / "orderflow", tmp_path / "orderflow", ignore=shutil.ignore_patterns("__pycache__")
    )
    source = tmp_path / "orderflow" / module
    source.write_text(source.read_text() + f"\nimport {imported}  # noqa\n")
    return tmp_path


def broken(done: subprocess.CompletedProcess[str]) -> set[str]:
    assert done.returncode != 0
    return {name for name in CONTRACTS if f"{name} BROKEN" in done.stdout}


def test_an_order_core_that_imports_the_fulfillment_controller_breaks_the_layers_and_the_cores(tmp_path: Path) -> None:
    done = lint_imports(copy_with_import(tmp_path, "order/workflow.py", "orderflow.fulfillment.controller"))
    assert broken(done) == {LAYERS, CORES}


def test_a_pure_runtime_module_that_imports_the_client_breaks_it_and_the_cores_that_use_it(tmp_path: Path) -> None:
    done = lint_imports(copy_with_import(tmp_path, "runtime/pure/conditions.py", "orderflow.runtime.client"))
    assert broken(done) == {PURE_RUNTIME, CORES}  # the cores reach the client through conditions


def test_the_controllers_only_watch_through_kopf() -> None:
    # Event handlers only: Kopf writes no finalizer or annotation to the objects for them, and
    # keeps no diff base (runtime.runner.NoDiffBase), which a change handler or daemon would need,
    # nor any memory of an object (runtime.runner.ForgetfulMemories), which daemons, timers,
    # indexes, resume handlers and admission webhooks would need.
    kube = Kube(None)  # type: ignore[arg-type]  # nothing is requested: the registries are only read
    registries = {
        "order": order.build_registry(order.OrderController(kube)),
        "fulfillment": fulfillment.build_registry(fulfillment.FulfillmentController(kube, step_seconds=0)),
    }
    for which, registry in registries.items():
        assert registry._watching.get_all_handlers(), which
        assert not registry._changing.get_all_handlers(), which
        assert not registry._spawning.get_all_handlers(), which
        assert not registry._indexing.get_all_handlers(), which
        assert not registry._webhooks.get_all_handlers(), which
