"""No rule in either chart is spare: without any one of them, its controller visibly fails.

Each case renders the chart's roles with ``helm template``, grants the chart's ServiceAccount every
rule but one, runs the controller as that ServiceAccount, drives it as a user would, and waits for
the specific refusal the missing rule causes.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow.dev.testing.plugin import REPO, Cluster, Controllers, Kubectl, service_account_kubeconfig, wait_for

from .conftest import INSTALLED, SHORT, Helm

pytestmark = pytest.mark.skipif(bool(INSTALLED), reason="runs the controllers itself, with edited roles")


@dataclasses.dataclass(frozen=True)
class Case:
    chart: str
    resource: str  # names the rule: its first resource
    clusterwide: bool
    refusal: str  # what the controller reports when the rule is missing


CASES = [
    Case("fulfillment-controller", "fulfillments", False, 'cannot list resource "fulfillments"'),
    Case("fulfillment-controller", "fulfillments/status", False, 'cannot patch resource "fulfillments/status"'),
    Case("fulfillment-controller", "events", False, 'cannot create resource "events"'),
    Case(
        "fulfillment-controller", "customresourcedefinitions", True, 'cannot list resource "customresourcedefinitions"'
    ),
    Case("order-controller", "orders", False, 'cannot list resource "orders"'),
    Case("order-controller", "orders/status", False, 'cannot patch resource "orders/status"'),
    Case("order-controller", "fulfillments", False, 'cannot list resource "fulfillments"'),
    Case("order-controller", "events", False, 'cannot create resource "events"'),
    Case("order-controller", "customresourcedefinitions", True, 'cannot list resource "customresourcedefinitions"'),
]


def rendered_roles(helm: Helm, chart: str, namespace: str, clusterwide: bool) -> list[dict[str, Any]]:
    # The controller's own roles only: the aggregated ClusterRoles are for people (edit, view).
    args = ["-n", namespace, "--set", "rbac.aggregateClusterRoles=false"]
    args += [] if clusterwide else ["--set", f"watchNamespaces={{{namespace}}}"]
    docs = [d for d in yaml.safe_load_all(helm.template(chart, *args).stdout) if d]
    return [d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]


@pytest.mark.parametrize("chart", ["fulfillment-controller", "order-controller"])
def test_every_rule_of_the_chart_has_a_case(helm: Helm, chart: str) -> None:
    for clusterwide in (False, True):
        rules = [
            (rule["resources"][0], clusterwide)
            for doc in rendered_roles(helm, chart, "x", clusterwide)
            if doc["kind"] in ("Role", "ClusterRole")
            for rule in doc["rules"]
        ]
        covered = {(c.resource, c.clusterwide) for c in CASES if c.chart == chart}
        namespaced_rules = {(r, False) for r, _ in rules if r != "customresourcedefinitions"}
        cluster_only = {(r, True) for r, _ in rules if r == "customresourcedefinitions"}
        assert namespaced_rules | cluster_only <= covered


def trigger(kubectl: Kubectl, chart: str, namespace: str) -> None:
    if chart == "fulfillment-controller":
        kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "fulfillment.yaml"))
        kubectl(
            "patch", "-n", namespace, "fulfillment", "parcel-7", "--type", "merge", "-p", '{"spec":{"started":true}}'
        )
    else:
        kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "order.yaml"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.chart}-without-{c.resource}{'-clusterwide' * c.clusterwide}")
def test_without_this_rule_the_controller_fails(
    case: Case,
    helm: Helm,
    kubectl: Kubectl,
    namespace: str,
    controllers: Controllers,
    control_plane: Cluster,
    tmp_path: Path,
) -> None:
    kubectl("create", "serviceaccount", f"t-{case.chart}", "-n", namespace)
    for doc in rendered_roles(helm, case.chart, namespace, case.clusterwide):
        doc = copy.deepcopy(doc)
        suffix = f"-{namespace}" if doc["kind"].startswith("Cluster") else ""
        doc["metadata"]["name"] += suffix  # cluster-scoped names must not clash between tests
        if doc["kind"].endswith("Binding"):
            doc["roleRef"]["name"] += suffix
            doc["subjects"] = [{"kind": "ServiceAccount", "name": f"t-{case.chart}", "namespace": namespace}]
        else:
            doc["rules"] = [r for r in doc["rules"] if r["resources"][0] != case.resource]
        kubectl.apply(doc, *([] if doc["kind"].startswith("Cluster") else ["-n", namespace]))
    kubeconfig = service_account_kubeconfig(kubectl, control_plane.kubeconfig, namespace, f"t-{case.chart}", tmp_path)
    args = [] if case.clusterwide else ["--namespace", namespace]
    # Health is served once Kopf runs, whatever it may not read; the refusal shows when it tries.
    process = controllers.start(SHORT[case.chart], *args, env=control_plane.env(kubeconfig))
    trigger(kubectl, case.chart, namespace)
    wait_for(process.output, lambda out: case.refusal in out, timeout=60, what=f"the refusal {case.refusal!r}")
