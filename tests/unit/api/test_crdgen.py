"""The CRDs in crds/ are generated from the models and nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from orderflow.api import crdgen
from orderflow.api.countries import ISO_3166_ALPHA2
from orderflow.dev.testing.models import with_description

ROOT = Path(__file__).resolve().parents[3]


def test_generated_files_match_the_models() -> None:
    stale = crdgen.stale(ROOT / "crds", ROOT / "charts")
    assert not stale, f"out of date, run `make crds` (orderflow crds): {stale}"


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: crdgen.KindSpec) -> None:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        assert not {"$ref", "anyOf", "allOf", "oneOf", "$defs", "title"} & node.keys(), path
        assert node.get("default", "") is not None, f"{path} defaults to null"
        if path.count(".") >= 2 or path in (".spec", ".status"):
            assert node.get("description"), f"{path} has no description for kubectl explain"


def test_a_changed_description_changes_the_generated_crd() -> None:
    order = next(k for k in crdgen.KINDS if k.kind == "Order")
    changed = dataclasses.replace(order, spec=with_description(order.spec, "customer_email", "Where receipts go."))
    assert "Where receipts go." in crdgen.render(changed)
    assert "Where receipts go." not in crdgen.render(order)


def test_country_codes_match_pycountry() -> None:
    pycountry = pytest.importorskip("pycountry")
    assert sorted(c.alpha_2 for c in pycountry.countries) == list(ISO_3166_ALPHA2)
