"""What a user does: helm install, kubectl apply/patch/wait/get. Runs on kind and locally."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow.testing.plugin import REPO, Cluster, ControllerProcess, Kubectl, service_account_kubeconfig, wait_for

from .conftest import INSTALLED, Helm, Install, Installed

CHARTS = ("fulfillment-controller", "order-controller")
local_only = pytest.mark.skipif(bool(INSTALLED), reason="installs charts itself; on kind the workflow did")


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_lints_and_renders(helm: Helm, chart: str) -> None:
    helm("lint", "--strict", str(REPO / "charts" / chart))
    rendered = list(yaml.safe_load_all(helm.template(chart, "-n", "orderflow-system").stdout))
    kinds = sorted(doc["kind"] for doc in rendered if doc)
    assert kinds == sorted(
        ["ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", "CustomResourceDefinition",
         "Deployment", "Service", "ServiceAccount"]
    )  # fmt: skip
    deployment = next(doc for doc in rendered if doc and doc["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] == "orderflow"


@pytest.mark.parametrize(
    ("chart", "setting", "says"),
    [
        ("fulfillment-controller", "stepSeconds=-1", "/stepSeconds"),
        ("order-controller", "logFormat=yaml", "/logFormat"),
        ("order-controller", "watchNamespaces={Bad_Name}", "/watchNamespaces/0"),
        ("fulfillment-controller", "replicas=3", "replicas"),
    ],
)
def test_a_bad_value_is_rejected_by_the_values_schema(helm: Helm, chart: str, setting: str, says: str) -> None:
    done = helm.template(chart, "--set", setting, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert says in done.stderr


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(metrics: str, name: str, **labels: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_order_flow_works_with_only_the_charts_rbac(both_charts: Installed, kubectl: Kubectl) -> None:
    ns = both_charts.namespace
    kubectl("apply", "-n", ns, "-f", str(REPO / "examples" / "order.yaml"))
    wait_for(
        lambda: kubectl.json("get", "fulfillment", "order-1042", "-n", ns).get("status", {}).get("phase"),
        lambda phase: phase in ("Picking", "Packing"),
        what="the Fulfillment to run",
    )
    kubectl("patch", "-n", ns, "order", "order-1042", "--type", "merge", "-p", '{"spec":{"paused":true}}')
    kubectl("wait", "-n", ns, "--for=condition=Paused", "order/order-1042", "--timeout=60s")
    kubectl("patch", "-n", ns, "order", "order-1042", "--type", "merge", "-p", '{"spec":{"paused":false}}')
    kubectl("wait", "-n", ns, "--for=condition=Ready", "order/order-1042", "--timeout=120s")
    got = kubectl("get", "orders", "-n", ns).stdout
    assert re.search(r"order-1042\s+Completed\s+Shipped\s+100", got), got

    if both_charts.metrics_ports:  # local processes: scrape their metrics
        fulfillment = wait_for(
            lambda: scrape(both_charts.metrics_ports["fulfillment"]),
            lambda m: sample(m, "orderflow_workflows", kind="Fulfillment", phase="Shipped") == 1,
            what="the fulfillment controller's metrics to count one Shipped",
        )
        assert sample(fulfillment, "orderflow_transitions_total", reason="Shipped") == 1
        assert sample(fulfillment, "orderflow_transitions_total", reason="Paused") == 1
        assert sample(fulfillment, "orderflow_step_duration_seconds_count", step="Picking") == 1
        order = scrape(both_charts.metrics_ports["order"])
        assert sample(order, "orderflow_workflows", kind="Order", phase="Completed") == 1
        assert sample(order, "orderflow_signal_ack_seconds_count") >= 2  # the start, the pause, the resume
        assert sample(order, "orderflow_reconcile_errors_total") == 0


def test_each_token_is_refused_what_its_chart_does_not_grant(
    both_charts: Installed, kubectl: Kubectl, control_plane: Cluster, tmp_path: Path
) -> None:
    ns = both_charts.namespace
    kubectl("apply", "-n", ns, "-f", str(REPO / "examples" / "fulfillment.yaml"))
    kubectl("apply", "-n", ns, "-f", str(REPO / "examples" / "order.yaml"))

    def as_(which: str) -> Kubectl:
        release = both_charts.releases[which]
        config = service_account_kubeconfig(
            kubectl, control_plane.kubeconfig, release.namespace, release.service_account, tmp_path
        )
        return Kubectl({**kubectl.env, "KUBECONFIG": str(config)})

    order_sa, fulfillment_sa = as_("order"), as_("fulfillment")
    status_patch = order_sa(
        "patch", "-n", ns, "fulfillment", "parcel-7", "--subresource=status", "--type", "merge",
        "-p", '{"status":{"phase":"Shipped"}}', check=False,
    )  # fmt: skip
    assert status_patch.returncode != 0
    assert "forbidden" in status_patch.stderr.lower()
    read_orders = fulfillment_sa("get", "orders", "-n", ns, check=False)
    assert read_orders.returncode != 0
    assert "forbidden" in read_orders.stderr.lower()
    # ... while what each needs is allowed.
    assert order_sa("get", "fulfillment", "parcel-7", "-n", ns).returncode == 0
    assert fulfillment_sa("get", "fulfillment", "parcel-7", "-n", ns).returncode == 0


@local_only
def test_the_fulfillment_chart_alone_serves_hand_made_fulfillments(
    namespace: str, install: Install, run_as_chart: Callable[..., ControllerProcess], kubectl: Kubectl
) -> None:
    run_as_chart(install("fulfillment-controller", namespace, stepSeconds=0.2))
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "fulfillment.yaml"))
    kubectl("patch", "-n", namespace, "fulfillment", "parcel-7", "--type", "merge", "-p", '{"spec":{"started":true}}')
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/parcel-7", "--timeout=60s")


@local_only
def test_the_order_chart_alone_leaves_orders_with_a_clear_condition(
    namespace: str, install: Install, run_as_chart: Callable[..., ControllerProcess], kubectl: Kubectl
) -> None:
    controller = run_as_chart(install("order-controller", namespace, ackTimeoutSeconds=1), "--ack-timeout", "1")
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "order.yaml"))

    def not_served(o: dict[str, Any]) -> bool:
        conditions = {c["type"]: c for c in o.get("status", {}).get("conditions", [])}
        unacknowledged = conditions.get("SignalsAcknowledged", {}).get("reason") == "NotAcknowledged"
        no_api = conditions.get("Stalled", {}).get("reason") == "FulfillmentAPIUnavailable"
        return unacknowledged or no_api

    order = wait_for(
        lambda: kubectl.json("get", "order", "order-1042", "-n", namespace),
        not_served,
        what="the Order to say its Fulfillment is not being served",
    )
    reasons = {c["reason"] for c in order["status"]["conditions"]}
    assert reasons & {"NotAcknowledged", "FulfillmentAPIUnavailable"}
    assert order["status"]["phase"] != "Completed"
    assert controller.proc is not None
    assert controller.proc.poll() is None  # reported, not crashed
