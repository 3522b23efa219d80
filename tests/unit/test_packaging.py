"""The two wheels: orderflow-operator, which a user (or the Dockerfile) installs, requires what the
controllers import and carries no dev wing; orderflow-dev, which the `dev` extra brings, carries
the dev wing alone and works installed, away from any checkout. Neither is named or requires
`orderflow`, which on PyPI is another project."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.message import Message
from email.parser import Parser
from importlib.metadata import packages_distributions, version
from pathlib import Path

import pytest

import orderflow
from orderflow import cli
from orderflow.dev.cluster import image

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "operator" / "orderflow"
DEV_SOURCE = SOURCE / "dev"
# Imported only by the dev wing, the tests or the development tools: never a runtime need.
DEV_ONLY = {"pytest", "pytest-timeout", "hypothesis", "kubernetes", "import-linter", "ruff", "mypy", "py-spy"}

Wheel = tuple[Message, list[str], Path]


def _name(requirement: str) -> str:
    """The normalized distribution name of a Requires-Dist value (PEP 503)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match[0]).lower()


def _wheel(project: Path, out: Path) -> Wheel:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # No deprecation left for setuptools to warn about (the license table goes in 2027).
    assert "deprecated" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (meta,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(meta).decode()), names, wheel


def _copy(paths: list[str], tree: Path) -> None:
    for source in paths:
        target = tree / source
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / source, target)


@pytest.fixture(scope="module")
def runtime_wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """orderflow's wheel, built from exactly the image's build context, so that context is proven
    sufficient too (and the work tree gets no build/ folder)."""
    tree = tmp_path_factory.mktemp("project")
    for relative in image.context_files(ROOT):
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, tree / relative)
    return _wheel(tree, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def dev_wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """orderflow-dev's wheel, built from its project folder beside the shared source tree."""
    tree = tmp_path_factory.mktemp("project-dev")
    _copy(["packaging/orderflow-dev", "operator"], tree)
    return _wheel(tree / "packaging" / "orderflow-dev", tmp_path_factory.mktemp("wheel-dev"))


@pytest.fixture
def metadata(runtime_wheel: Wheel) -> tuple[Message, list[str]]:
    return runtime_wheel[0], runtime_wheel[1]


def _runtime_requirements(meta: Message) -> set[str]:
    return {_name(value) for value in meta.get_all("Requires-Dist", []) if "extra ==" not in value}


def test_the_distribution_is_ours_and_the_version_command_reads_it(
    metadata: tuple[Message, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, _ = metadata
    assert meta["Name"] == orderflow.DISTRIBUTION == "orderflow-operator"
    monkeypatch.setattr(orderflow, "__version__", "only from a source tree never installed")
    assert cli.version() == version(orderflow.DISTRIBUTION) == meta["Version"]


def test_nothing_requires_the_pypi_project_named_orderflow(runtime_wheel: Wheel, dev_wheel: Wheel) -> None:
    """A requirement on `orderflow` (the `test` extra's own, the dev wing's on the runtime) would
    be met from PyPI by another project's package."""
    for meta in (runtime_wheel[0], dev_wheel[0]):
        assert "orderflow" not in {_name(v) for v in meta.get_all("Requires-Dist", [])}, meta["Name"]
    assert "orderflow-operator[dev]" in [v.split(";")[0].strip() for v in runtime_wheel[0].get_all("Requires-Dist", [])]


def test_the_wheel_requires_nothing_only_tests_use(metadata: tuple[Message, list[str]]) -> None:
    meta, _ = metadata
    assert _runtime_requirements(meta) & DEV_ONLY == set()
    dev_extra = [v for v in meta.get_all("Requires-Dist", []) if 'extra == "dev"' in v]
    assert [_name(v) for v in dev_extra] == ["orderflow-dev"]
    assert f"orderflow-dev=={meta['Version']}" in dev_extra[0].replace(" ", "")  # the same release, always


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
        if not path.is_relative_to(DEV_SOURCE):  # the dev wing: orderflow-dev's requirements
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
    assert "pip install . ./packaging/orderflow-dev" in done.stderr


def test_the_runtime_wheel_carries_no_dev_wing(runtime_wheel: Wheel) -> None:
    _, names, _ = runtime_wheel
    assert "orderflow/cli.py" in names
    assert "orderflow/runtime/workqueue.py" in names
    assert [n for n in names if n.startswith("orderflow/dev/")] == []


def test_the_dev_wheel_carries_the_dev_wing_alone(runtime_wheel: Wheel, dev_wheel: Wheel) -> None:
    meta, names, _ = dev_wheel
    files = [n for n in names if ".dist-info/" not in n]
    assert files
    assert all(n.startswith("orderflow/dev/") for n in files)  # never orderflow/__init__.py
    assert {"orderflow/dev/cluster/pause/main.go", "orderflow/dev/testing/plugin.py"} <= set(files)
    assert not {n for n in files if n.endswith(".py")} - {
        p.relative_to(SOURCE.parent).as_posix() for p in DEV_SOURCE.rglob("*.py")
    }
    assert meta["Version"] == runtime_wheel[0]["Version"]
    requires = [v.split(";")[0].replace(" ", "") for v in meta.get_all("Requires-Dist", [])]
    assert f"orderflow-operator=={meta['Version']}" in requires


def test_the_dev_wing_requires_what_it_imports_beyond_the_runtime(runtime_wheel: Wheel, dev_wheel: Wheel) -> None:
    peer_only = {DEV_SOURCE / "bench" / "peer.py", DEV_SOURCE / "bench" / "seed.py"}  # the `peer` extra
    imported: dict[bool, set[str]] = {True: set(), False: set()}
    for path in DEV_SOURCE.rglob("*.py"):
        imported[path in peer_only] |= _runtime_imports(ast.parse(path.read_text()))
    distributions = packages_distributions()

    def needed(modules: set[str]) -> set[str]:
        third_party = modules - set(sys.stdlib_module_names) - {"orderflow", "__future__"}
        return {_name(distributions[module][0]) for module in third_party}

    provided = _runtime_requirements(runtime_wheel[0]) | _runtime_requirements(dev_wheel[0])
    missing = needed(imported[False]) - provided
    assert not missing, f"imported by orderflow.dev, add to orderflow-dev's dependencies: {missing}"
    peer = {_name(v) for v in dev_wheel[0].get_all("Requires-Dist", []) if 'extra == "peer"' in v}
    assert needed(imported[True]) - provided == peer == {"temporalio"}


def _run_installed(target: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run with ``target`` as the only orderflow: ``-S`` skips the .pth files that point at
    this checkout (the editable installs), and this environment's site-packages still serves the
    rest (kopf, pytest, ...)."""
    path = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=target
    )


def _install(wheels: list[Path], target: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *map(str, wheels)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_plain_install_cannot_import_the_dev_wing(runtime_wheel: Wheel, tmp_path: Path) -> None:
    _install([runtime_wheel[2]], tmp_path)
    done = _run_installed(tmp_path, "import orderflow, orderflow.cli; print(orderflow.__file__); import orderflow.dev")
    assert done.stdout.startswith(str(tmp_path)), done.stdout + done.stderr
    assert "No module named 'orderflow.dev'" in done.stderr


def test_the_installed_dev_wing_works_away_from_a_checkout(
    runtime_wheel: Wheel, dev_wheel: Wheel, tmp_path: Path
) -> None:
    _install([runtime_wheel[2], dev_wheel[2]], tmp_path)
    code = """
import orderflow.dev, orderflow.dev.testing.plugin
from importlib.resources import files
from orderflow.dev import checkout, manifests
assert checkout() is None, checkout()
assert [c["spec"]["names"]["kind"] for c in manifests.crds()] == ["Order", "Fulfillment"]
assert files("orderflow.dev.cluster").joinpath("pause", "main.go").is_file()
print(orderflow.dev.__file__)
"""
    done = _run_installed(tmp_path, code)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(str(tmp_path)), done.stdout


# -- the lock: the image ships what the tests ran ------------------------------------------------

LOCK = ROOT / "packaging" / "lock" / "runtime.txt"


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) from packaging/lock/runtime.txt."""
    from packaging.utils import canonicalize_name

    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=\S)", LOCK.read_text()):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if match:
            pins[canonicalize_name(match[1])] = (match[2], block.count("--hash=sha256:"))
    return pins


def test_every_runtime_dependency_is_locked_within_its_range_with_hashes() -> None:
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = locked()
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{requirement} but the lock has {version}: make lock"
    assert all(hashes for _, hashes in pins.values())


def test_the_tests_run_the_locked_versions() -> None:
    from importlib.metadata import version

    different = {name: (pinned, version(name)) for name, (pinned, _) in locked().items() if version(name) != pinned}
    assert not different, f"installed versions differ from the lock (make venv installs it): {different}"


def test_the_image_installs_the_lock_and_nothing_else() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY packaging/lock/runtime.txt" in dockerfile
    assert "--require-hashes" in dockerfile
    assert "--no-index --no-deps" in dockerfile
    assert "packaging/lock/runtime.txt" in image.context_files(ROOT)


def test_kopfs_private_class_still_has_the_contract_the_runtime_relies_on() -> None:
    """ForgetfulMemories overrides ResourceMemories.recall from kopf._core: a Kopf release that
    changes that method's parameters fails here, not in a user's cluster."""
    import inspect

    import kopf
    from kopf._core.reactor.inventory import ResourceMemories

    from orderflow.runtime.runner import ForgetfulMemories

    def shape(method: object) -> list[tuple[str, object, object]]:  # names, kinds, defaults; not annotations
        return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]  # type: ignore[arg-type]

    assert shape(ForgetfulMemories.recall) == shape(ResourceMemories.recall)
    assert "memories" in inspect.signature(kopf.run).parameters
