"""The e2e harness: install the charts as a user would, and run the controllers as the charts do.

- On a cluster with nodes (kind, see .github/workflows/e2e.yaml) the charts are installed by the
  workflow and run as Deployments; ``ORDERFLOW_E2E_INSTALLED`` names their namespace and the tests
  only use kubectl.
- Here, with no nodes, the harness ``helm install``s the charts into the local control plane
  (their Deployments exist but are never scheduled) and runs each controller as a local process
  that authenticates with a token of its chart's own ServiceAccount, so the RBAC under test is
  exactly the chart's.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow.dev.cluster.controlplane import free_port
from orderflow.dev.testing.plugin import (
    REPO,
    Cluster,
    ControllerProcess,
    Controllers,
    Kubectl,
    service_account_kubeconfig,
)

# Where the charts' Deployments run: one namespace each ("fulfillment=fulfillment-system,
# order=order-system", as the README, the kind workflow and `make e2e` install them) or one for both
# ("orderflow-system").
INSTALLED = os.environ.get("ORDERFLOW_E2E_INSTALLED", "")


def installed_namespaces(spec: str = INSTALLED) -> dict[str, str]:
    if "=" not in spec:
        return {"fulfillment": spec, "order": spec}
    return dict(part.split("=", 1) for part in spec.split(","))


CHARTS = REPO / "charts"
SHORT = {"fulfillment-controller": "fulfillment", "order-controller": "order"}


class Helm:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["helm", *args], env=self.env, capture_output=True, text=True, timeout=180)
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {done.stderr}")
        return done

    def template(self, chart: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # No --kube-version: `helm template` must work as a user types it, with helm's own default.
        return self("template", "t", str(CHARTS / chart), *args, check=check)


@pytest.fixture(scope="session")
def helm(kube_env: dict[str, str]) -> Helm:
    return Helm(kube_env)


@dataclasses.dataclass
class Release:
    name: str
    chart: str
    namespace: str

    @property
    def service_account(self) -> str:  # the chart's fullname: <release>-<chart>
        return f"{self.name}-{self.chart}"


def adopt_crds(kubectl: Kubectl, release: Release) -> None:
    """Let a release take over CRDs that exist already (applied with kubectl, or by an earlier
    release): Helm adopts an object that carries its ownership label and annotations. This is
    also the upgrade path documented for users who applied crds/ by hand."""
    crds = kubectl.json("get", "crd")["items"]
    for crd in crds:
        if crd["metadata"]["name"].endswith(".orderflow.dev"):
            name = crd["metadata"]["name"]
            kubectl("label", "crd", name, "app.kubernetes.io/managed-by=Helm", "--overwrite")
            kubectl(
                "annotate", "crd", name, "--overwrite",
                f"meta.helm.sh/release-name={release.name}", f"meta.helm.sh/release-namespace={release.namespace}",
            )  # fmt: skip


Install = Callable[..., Release]


@pytest.fixture
def install(helm: Helm, kubectl: Kubectl, tmp_path: Path) -> Iterator[Install]:
    """``install(chart, **values)``: ``helm install`` a chart into the test's namespace."""
    releases: list[Release] = []

    def _install(chart: str, namespace: str, **values: Any) -> Release:
        release = Release(name=f"e2e{len(releases)}", chart=chart, namespace=namespace)
        adopt_crds(kubectl, release)
        values_file = tmp_path / f"{release.name}-values.yaml"
        values_file.write_text(yaml.safe_dump({"watchNamespaces": [namespace], **values}))
        helm("install", release.name, str(CHARTS / chart), "-n", namespace, "-f", str(values_file), "--wait=false")
        releases.append(release)
        return release

    yield _install
    for release in releases:
        helm("uninstall", release.name, "-n", release.namespace, check=False)


@pytest.fixture
def run_as_chart(
    controllers: Controllers, kubectl: Kubectl, control_plane: Cluster, tmp_path: Path
) -> Callable[..., ControllerProcess]:
    """Run a chart's controller as a local process, logged in as the chart's ServiceAccount."""

    def _run(release: Release, *args: str) -> ControllerProcess:
        kubeconfig = service_account_kubeconfig(
            kubectl, control_plane.kubeconfig, release.namespace, release.service_account, tmp_path
        )
        env = control_plane.env(kubeconfig)
        return controllers.start(SHORT[release.chart], "--namespace", release.namespace, *args, env=env)

    return _run


@dataclasses.dataclass
class Installed:
    """Where the controllers under test watch, and how to log in as their ServiceAccounts."""

    namespace: str
    releases: dict[str, Release]
    processes: dict[str, ControllerProcess]
    metrics_ports: dict[str, int]


@pytest.fixture
def both_charts(namespace: str, install: Install, run_as_chart: Callable[..., ControllerProcess]) -> Installed:
    """Both charts installed and their controllers running, as a user would have them."""
    if INSTALLED:
        where = installed_namespaces()
        releases = {
            "fulfillment": Release("fulfillment", "fulfillment-controller", where["fulfillment"]),
            "order": Release("order", "order-controller", where["order"]),
        }
        return Installed(namespace, releases, {}, {})
    fulfillment = install("fulfillment-controller", namespace, stepSeconds=0.5)
    order = install("order-controller", namespace, ackTimeoutSeconds=5)
    ports = {"fulfillment": free_port(), "order": free_port()}
    processes = {
        "fulfillment": run_as_chart(fulfillment, "--metrics-port", str(ports["fulfillment"])),
        "order": run_as_chart(order, "--metrics-port", str(ports["order"]), "--ack-timeout", "5"),
    }
    return Installed(namespace, {"fulfillment": fulfillment, "order": order}, processes, ports)
