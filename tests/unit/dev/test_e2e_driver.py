"""``make e2e`` installs the charts as .github/workflows/e2e.yaml does, and as the README does: the
same helm flags and namespaces, only the image's name differs (``localhost/orderflow:<tag>``, as
buildah names it, for ``orderflow:e2e`` built by Docker)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from orderflow.dev.cluster import e2e

WORKFLOW = Path(__file__).parents[3] / ".github" / "workflows" / "e2e.yaml"
SWITCHES = {"--create-namespace", "--wait"}


def workflow_installs() -> dict[str, list[str]]:
    """Each ``helm install`` line of the workflow, with its ``"${common[@]}"`` expanded."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["kind"]["steps"]
    script = next(step["run"] for step in steps if "helm install" in step.get("run", ""))
    found = re.search(r"common=\((.*?)\)", script, re.S)
    assert found, "the install step defines its common flags"
    common = shlex.split(found.group(1))
    installs = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if words[:2] == ["helm", "install"]:
            installs[words[2]] = [w for word in words for w in (common if word == "${common[@]}" else [word])]
    return installs


def shape(argv: list[str]) -> tuple[list[str], set[tuple[str, str]]]:
    """(positional words, {(flag, value)}) with the image's name and the chart's folder made alike."""
    argv = [word.removeprefix(f"{e2e.REPO}/") for word in argv]
    words, flags, i = [], set(), 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("--") and word not in SWITCHES and i + 1 < len(argv):
            value = re.sub(r"^(image\.repository|image\.tag)=.*", r"\1=IMAGE", argv[i + 1])
            flags.add((word, value))
            i += 2
            continue
        if word.startswith("--"):
            flags.add((word, ""))
        else:
            words.append(word)
        i += 1
    return words, flags


def test_the_run_installs_each_chart_with_the_workflows_flags() -> None:
    installs = workflow_installs()
    assert sorted(installs) == sorted(e2e.RELEASES)
    for name, argv in installs.items():
        assert shape(e2e.install_args(name, "kind")) == shape(argv), name


def test_the_run_tells_the_tests_the_workflows_namespaces() -> None:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["kind"]["steps"]
    envs = [step.get("env", {}) for step in steps]
    assert {"ORDERFLOW_E2E_INSTALLED": e2e.installed()}.items() <= next(
        env for env in envs if "ORDERFLOW_E2E_INSTALLED" in env
    ).items()


def test_each_chart_goes_where_the_readme_installs_it() -> None:
    readme = (WORKFLOW.parents[2] / "README.md").read_text()
    for name, (chart, namespace) in e2e.RELEASES.items():
        assert f"helm install {name} charts/{chart} -n {namespace} --create-namespace" in readme, name
