"""A results file keeps every run but the ones a new run measured again."""

from __future__ import annotations

import json
from pathlib import Path

from orderflow.dev.bench import record


def test_a_rerun_replaces_only_the_run_it_measured_again(tmp_path: Path) -> None:
    output = tmp_path / "results" / "x.json"
    for size, figure in ((1000, 1), (10000, 2), (1000, 3)):
        document = {**record.stamp("orderflow.dev.bench.x", ["--orders", str(size)]), "orders": size, "figure": figure}
        runs = record.keep(output, document, lambda run, size=size: run["orders"] == size)
    assert [(r["orders"], r["figure"]) for r in runs] == [(10000, 2), (1000, 3)]
    assert json.loads(output.read_text())["runs"] == runs
    assert runs[-1]["command"] == "python -m orderflow.dev.bench.x --orders 1000"
    assert runs[-1]["machine"]["cores"] >= 1
