"""The kind workflow is checked like code: actionlint (shellcheck of run steps included when present)."""

from __future__ import annotations

import subprocess

from orderflow.dev.cluster import tools
from orderflow.dev.testing.plugin import REPO


def test_the_kind_workflow_passes_actionlint() -> None:
    workflow = REPO / ".github" / "workflows" / "e2e.yaml"
    done = subprocess.run(
        [str(tools.ensure("actionlint")), "-no-color", str(workflow)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflow_installs_both_charts_and_runs_the_e2e_tests() -> None:
    text = (REPO / ".github" / "workflows" / "e2e.yaml").read_text()
    for expected in (
        "config: kind-config.yaml",
        "kind load docker-image",
        "helm install fulfillment charts/fulfillment-controller",
        "helm install order charts/order-controller",
        "pytest tests/e2e",
    ):
        assert expected in text
