"""The wheel a user (or the Dockerfile) installs: it requires what the controllers import and nothing
that only tests or development use, and it carries its license."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from orderflow.dev.cluster import image

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "operator" / "orderflow"
# Imported only by orderflow.dev.testing, the tests, bench/ or the development tools: never a runtime need.
DEV_ONLY = {"pytest", "pytest-timeout", "hypothesis", "kubernetes", "import-linter", "ruff", "mypy", "py-spy"}


def _name(requirement: str) -> str:
    """The normalized distribution name of a Requires-Dist value (PEP 503)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match[0]).lower()


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> tuple[Message, list[str]]:
    """The METADATA and file list of a wheel built from exactly what the Dockerfile copies, so the
    image's build context is proven sufficient too (and the work tree gets no build/ folder)."""
    tree = tmp_path_factory.mktemp("project")
    for source in image.copy_sources((ROOT / "Dockerfile").read_text()):
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, tree / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / source, tree / source)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # No deprecation left for setuptools to warn about (the license table goes in 2027).
    assert "deprecated" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    (wheel,) = out.glob("orderflow-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (meta,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(meta).decode()), names


def _runtime_requirements(meta: Message) -> set[str]:
    return {_name(value) for value in meta.get_all("Requires-Dist", []) if "extra ==" not in value}


def test_the_wheel_requires_nothing_only_tests_use(metadata: tuple[Message, list[str]]) -> None:
    meta, _ = metadata
    assert _runtime_requirements(meta) & DEV_ONLY == set()
    test_extra = {_name(v) for v in meta.get_all("Requires-Dist", []) if 'extra == "test"' in v}
    assert {"pytest", "kubernetes"} <= test_extra  # what orderflow.dev.testing needs, named in its ImportError


def _runtime_imports(node: ast.AST) -> set[str]:
    """Top-level names of the modules ``node`` imports, at module level or inside functions alike,
    but not under ``if TYPE_CHECKING:`` (only the type checker reads those)."""
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        return set().union(*(_runtime_imports(child) for child in node.orelse))
    if isinstance(node, ast.Import):
        return {alias.name.split(".")[0] for alias in node.names}
    if isinstance(node, ast.ImportFrom):
        return {node.module.split(".")[0]} if node.level == 0 and node.module else set()
    return set().union(*(_runtime_imports(child) for child in ast.iter_child_nodes(node)))


def test_the_runtime_requirements_are_what_the_runtime_code_imports(metadata: tuple[Message, list[str]]) -> None:
    imported: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        if "testing" in path.relative_to(SOURCE).parts:  # the pytest plugin: the `test` extra
            continue
        imported |= _runtime_imports(ast.parse(path.read_text()))
    third_party = imported - set(sys.stdlib_module_names) - {"orderflow", "__future__"}
    distributions = packages_distributions()
    needed = {_name(distributions[module][0]) for module in third_party}
    required = _runtime_requirements(metadata[0])
    assert not needed - required, f"imported by operator/orderflow, add to [project].dependencies: {needed - required}"
    assert not required - needed, f"required but imported by nothing at run time: {required - needed}"


def test_the_wheel_declares_and_carries_its_license(metadata: tuple[Message, list[str]]) -> None:
    meta, names = metadata
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not any(c.startswith("License ::") for c in meta.get_all("Classifier", []))  # PEP 639: the expression only


def test_the_pytest_plugin_without_its_extra_names_the_extra() -> None:
    # The controllers' image has no pytest: importing the plugin there must say what to install.
    code = "import sys; sys.modules['pytest'] = None; import orderflow.dev.testing"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "ImportError" in done.stderr
    assert "pip install 'orderflow[test]'" in done.stderr
