"""The two charts carry the templates that do not depend on the kind identically (HA, readiness,
monitoring, network): only the helper prefix (``oc``, ``fc``) and the controller's name differ.
(Rendering them is tested with helm in tests/e2e.)"""

from __future__ import annotations

from pathlib import Path

import pytest

CHARTS = Path(__file__).resolve().parents[2] / "charts"
TWINS = {"order-controller": ("oc", "order"), "fulfillment-controller": ("fc", "fulfillment")}


def normalized(chart: str, name: str) -> str:
    prefix, controller = TWINS[chart]
    text = (CHARTS / chart / "templates" / name).read_text()
    return text.replace(f'"{prefix}.', '"X.').replace(f"{controller}-controller", "C-controller")


@pytest.mark.parametrize(
    "name",
    [
        "kopf-peering-crds.yaml",
        "_helpers.tpl",
        "service.yaml",
        "serviceaccount.yaml",
        "servicemonitor.yaml",
        "networkpolicy.yaml",
        "poddisruptionbudget.yaml",
    ],
)
def test_the_charts_share_the_template(name: str) -> None:
    assert normalized("order-controller", name) == normalized("fulfillment-controller", name)
