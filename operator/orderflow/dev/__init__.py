"""The development wing: what a developer uses and the controllers' image never needs.

A local cluster built from Go modules (``cluster``), the controllers' image (``cluster.image``),
the demo, the pytest plugin (``testing``), the harness that runs the controllers as processes,
manifests built from the models, and the benchmark. It ships as its own distribution,
``orderflow-dev``, which the runtime's ``dev`` extra names (``pip install .
./packaging/orderflow-dev`` in a checkout); the runtime's wheel (``orderflow-operator``) and the
image carry none of it. Nothing outside this package imports it (an import-linter contract).
"""

from __future__ import annotations

from pathlib import Path


def checkout() -> Path | None:
    """The source checkout this package runs from (an editable install), or None when installed.

    Only what needs the project's own files asks: the image build (its Dockerfile and sources) and
    ``make e2e`` (the charts). Everything else works from the installed package."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "operator" / "orderflow").is_dir() else None
