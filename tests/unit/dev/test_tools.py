"""The build recipes' pure parts: cache keys, and the flags that make the helm built here behave as a
released one (tests/e2e/test_user_flow.py runs `helm template` with no --kube-version to prove it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.dev.cluster import tools


def test_a_changed_recipe_changes_only_that_tools_cache_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORDERFLOW_CACHE_DIR", str(tmp_path))
    assert tools.cached_path(tools.TOOLS["helm"]) == tmp_path / "bin" / f"helm-v{tools.HELM_VERSION}-r1" / "helm"
    kubectl = tools.cached_path(tools.TOOLS["kubectl"])
    assert kubectl == tmp_path / "bin" / f"kubectl-v{tools.KUBERNETES_VERSION}" / "kubectl"  # not rebuilt


def test_helm_assumes_the_kubernetes_version_of_the_client_go_it_is_built_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    go = tmp_path / "go"  # answers `go list -m -f {{.Version}} k8s.io/client-go` as for helm 3.22.0
    go.write_text("#!/bin/sh\necho v0.37.0\n")
    go.chmod(0o755)
    monkeypatch.setattr(tools, "_go", lambda: str(go))
    flags = tools._helm_version_flags(tmp_path)
    for package in ("chartutil", "lint/rules"):  # `helm template`/`install --dry-run`, and `helm lint`
        assert flags[f"helm.sh/helm/v3/pkg/{package}.k8sVersionMajor"] == "1"
        assert flags[f"helm.sh/helm/v3/pkg/{package}.k8sVersionMinor"] == "37"
    assert flags["helm.sh/helm/v3/internal/version.version"] == f"v{tools.HELM_VERSION}"


def test_an_unreadable_client_go_version_stops_the_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.write_text("#!/bin/sh\necho 'go: module k8s.io/client-go: not a known dependency' >&2\nexit 1\n")
    go.chmod(0o755)
    monkeypatch.setattr(tools, "_go", lambda: str(go))
    with pytest.raises(tools.ToolError, match="client-go"):
        tools._helm_version_flags(tmp_path)


def test_the_demo_builds_only_the_control_plane_and_the_tests_build_the_rest() -> None:
    # `make demo` runs `tools` (no flags); `make test` adds --tests, `make e2e` --tests and --kind.
    assert set(tools.selection([])) == {"etcd", "kube-apiserver", "kubectl", "helm"}
    assert {"promtool", "kstatus", "lua-health", "actionlint"} <= set(tools.selection(["--tests"]))
    assert {"kubelet", "containerd", "kind", "kubeadm"} <= set(tools.selection(["--tests", "--kind"]))
    assert set(tools.selection(["temporal"])) == {"temporal"}
