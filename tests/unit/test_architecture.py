"""The house plan, held by import-linter's contracts and run as a test: the layers (api < runtime <
the controllers < cli, the dev wing above all and imported by nothing below), the two controllers
independent of each other, and the pure cores free of Kopf, I/O and the clock."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from orderflow.fulfillment import controller as fulfillment
from orderflow.order import controller as order
from orderflow.runtime.client import Kube

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = {
    "Layers: dev above cli above the controllers above runtime above api",
    "The pure cores: no Kopf, no I/O, no clock (state in, decision out)",
}


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


def test_an_order_core_that_imports_the_fulfillment_controller_breaks_both(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "operator" / "orderflow", tmp_path / "orderflow", ignore=shutil.ignore_patterns("__pycache__")
    )
    core = tmp_path / "orderflow" / "order" / "workflow.py"
    core.write_text(core.read_text() + "\nimport orderflow.fulfillment.controller  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert {name for name in CONTRACTS if f"{name} BROKEN" in done.stdout} == CONTRACTS


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
