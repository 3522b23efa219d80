"""What a user does: helm install, kubectl apply/patch/wait/get. Runs on kind and locally."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow.dev.cluster import tools
from orderflow.dev.testing.plugin import REPO, Cluster, ControllerProcess, Kubectl, service_account_kubeconfig, wait_for

from .conftest import INSTALLED, Helm, Install, Installed, Release, adopt_crds

CHARTS = ("fulfillment-controller", "order-controller")
KIND = {"fulfillment-controller": "fulfillments", "order-controller": "orders"}
local_only = pytest.mark.skipif(bool(INSTALLED), reason="installs charts itself; on kind the workflow did")
MONITORING = ("--api-versions", "monitoring.coreos.com/v1")  # what a cluster with the Prometheus operator has
SOURCE = REPO / "operator" / "orderflow"
ALERT_TESTS = Path(__file__).parent / "alerts"


def render(helm: Helm, chart: str, *args: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(helm.template(chart, "-n", "orderflow-system", *args).stdout) if doc]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_lints_and_renders(helm: Helm, chart: str) -> None:
    helm("lint", "--strict", str(REPO / "charts" / chart))
    # `helm template` as typed, with no --kube-version: the chart's kubeVersion fits helm's default.
    rendered = render(helm, chart)
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == sorted(
        ["ClusterRole", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding",
         "CustomResourceDefinition", "Deployment", "Service", "ServiceAccount"]
    )  # fmt: skip
    deployment = only(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/orderflow/orderflow:0.1.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] == "orderflow"
    # Disk, bounded like memory: the logs and /tmp count against the limit, /tmp has its own cap.
    assert container["resources"]["requests"]["ephemeral-storage"] == "32Mi"
    assert container["resources"]["limits"]["ephemeral-storage"] == "128Mi"
    (tmp,) = pod["volumes"]
    assert tmp["emptyDir"] == {"sizeLimit": "64Mi"}


@pytest.mark.parametrize("chart", CHARTS)
def test_the_image_can_be_pinned_by_digest(helm: Helm, chart: str) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    pod = only(render(helm, chart, "--set", f"image.digest={digest}", "--set", "image.tag=ignored"), "Deployment")
    assert pod["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/orderflow/orderflow@{digest}"


@pytest.mark.parametrize("chart", CHARTS)
def test_monitoring_objects_need_the_prometheus_operator_api(helm: Helm, chart: str) -> None:
    wanted = ("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true")
    # Without the API (no Prometheus operator), enabling them renders nothing rather than failing.
    assert not {"ServiceMonitor", "PrometheusRule"} & {d["kind"] for d in render(helm, chart, *wanted)}
    docs = render(helm, chart, *wanted, *MONITORING)
    monitor, rule = only(docs, "ServiceMonitor"), only(docs, "PrometheusRule")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    order_alerts = {
        "OrderflowOrdersStuck",
        "OrderflowSignalsUnacknowledged",
        "OrderflowSignalAckSlow",
        "OrderflowTargetUnreachable",
    }
    stuck = {"order-controller": order_alerts, "fulfillment-controller": {"OrderflowFulfillmentsStuck"}}[chart]
    expected = stuck | {"OrderflowReconcileErrors", "OrderflowDeadlinesMissed"}
    assert set(alerts) == expected
    for alert in alerts.values():  # this release's metrics only: its ServiceMonitor's job
        assert f'job="t-{chart}-metrics", namespace="orderflow-system"' in alert["expr"]
    # Every metric an alert reads is one the controllers export.
    exported = set(re.findall(r'"(orderflow_[a-z_]+)"', "".join(p.read_text() for p in SOURCE.rglob("*.py"))))
    read = {
        re.sub(r"_(bucket|count|sum)$", "", m) for a in alerts.values() for m in re.findall(r"orderflow_\w+", a["expr"])
    }
    assert read <= exported


@pytest.mark.parametrize("chart", CHARTS)
def test_the_alerts_fire_as_documented(helm: Helm, chart: str, tmp_path: Path) -> None:
    """tests/e2e/alerts/<chart>.yaml: series in, alerts out, by Prometheus's own rule evaluator."""
    promtool = str(tools.ensure("promtool"))  # built from the Go module proxy like the other tools
    done = helm.template(chart, "--set", "metrics.prometheusRule.enabled=true", *MONITORING)
    (rule,) = [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "PrometheusRule"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(ALERT_TESTS / f"{chart}.yaml", tmp_path / "test.yaml")
    checked = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yaml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("chart", CHARTS)
def test_the_network_policy_admits_only_probes_metrics_the_api_server_and_dns(helm: Helm, chart: str) -> None:
    docs = render(
        helm, chart, "--set", "networkPolicy.enabled=true", "--set", "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
        "--set-json", 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}}]',
    )  # fmt: skip
    policy, deployment = only(docs, "NetworkPolicy"), only(docs, "Deployment")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    probes, metrics = spec["ingress"]
    assert [p["port"] for p in probes["ports"]] == [8080, 8081]
    assert "from" not in probes  # the kubelet probes from the node's address
    assert [p["port"] for p in metrics["ports"]] == [9090]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    api, dns = spec["egress"]
    assert [p["port"] for p in api["ports"]] == [443, 6443]
    assert api["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    # Without the API server's addresses: its ports, to any address.
    (default,) = [d for d in render(helm, chart, "--set", "networkPolicy.enabled=true") if d["kind"] == "NetworkPolicy"]
    assert "to" not in default["spec"]["egress"][0]


@pytest.mark.parametrize("chart", CHARTS)
def test_people_with_the_built_in_roles_get_the_kind_through_aggregation(helm: Helm, chart: str) -> None:
    roles = {d["metadata"]["name"]: d for d in render(helm, chart) if d["kind"] == "ClusterRole"}
    edit, view = roles[f"t-{chart}-edit"], roles[f"t-{chart}-view"]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k for k, v in edit["metadata"]["labels"].items() if k.startswith(aggregate) and v == "true"} == {
        aggregate + "admin",
        aggregate + "edit",
    }
    assert {k for k, v in view["metadata"]["labels"].items() if k.startswith(aggregate) and v == "true"} == {
        aggregate + "admin",
        aggregate + "edit",
        aggregate + "view",
    }
    (edit_rule,) = edit["rules"]
    assert edit_rule["resources"] == [KIND[chart]]  # never the status: that is the controller's
    assert {"create", "patch", "delete"} <= set(edit_rule["verbs"])
    (view_rule,) = view["rules"]
    assert view_rule["resources"] == [KIND[chart]]
    assert view_rule["verbs"] == ["get", "list", "watch"]
    off = render(helm, chart, "--set", "rbac.aggregateClusterRoles=false")
    assert not {edit["metadata"]["name"], view["metadata"]["name"]} & {d["metadata"]["name"] for d in off}


@pytest.mark.parametrize(
    ("chart", "setting", "says"),
    [
        ("fulfillment-controller", "stepSeconds=-1", "/stepSeconds"),
        ("order-controller", "logFormat=yaml", "/logFormat"),
        ("order-controller", "watchNamespaces={Bad_Name}", "/watchNamespaces/0"),
        ("fulfillment-controller", "replicas=3", "replicas"),
        ("order-controller", "image.digest=latest", "/image/digest"),
        ("fulfillment-controller", "networkPolicy.apiServer.cidrs={10.0.0.1}", "/networkPolicy/apiServer/cidrs/0"),
        ("order-controller", "retryPolicy.maxAttempts=0", "/retryPolicy/maxAttempts"),
        ("fulfillment-controller", "retryPolicy.backoffFactor=0.5", "/retryPolicy/backoffFactor"),
        ("fulfillment-controller", "activeDeadlineSeconds=0", "/activeDeadlineSeconds"),
        ("fulfillment-controller", "stepSeconds=fast", "/stepSeconds"),
        ("order-controller", "retryPolicy.initialIntervalSeconds=0.0", "/retryPolicy/initialIntervalSeconds"),
        ("order-controller", "resources.limit.memory=1Gi", "/resources"),  # limits, misspelt
        ("fulfillment-controller", "resources.limits.memory=1Gb", "/resources/limits/memory"),
    ],
)
def test_a_bad_value_is_rejected_by_the_values_schema(helm: Helm, chart: str, setting: str, says: str) -> None:
    done = helm.template(chart, "--set", setting, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert says in done.stderr


@pytest.mark.parametrize(
    ("chart", "setting", "variable", "value"),
    [
        ("fulfillment-controller", "stepSeconds=0.5", "ORDERFLOW_STEP_SECONDS", "0.5"),
        ("order-controller", "ackTimeoutSeconds=2.5", "ORDERFLOW_ACK_TIMEOUT", "2.5"),
        ("order-controller", "retryPolicy.backoffFactor=1.5", "ORDERFLOW_RETRY_BACKOFF_FACTOR", "1.5"),
    ],
)
def test_a_decimal_given_with_set_is_taken(helm: Helm, chart: str, setting: str, variable: str, value: str) -> None:
    """`--set` passes 0.5 as a string; the schema takes it as the number it means."""
    (deployment,) = [d for d in render(helm, chart, "--set", setting) if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[variable] == value


@pytest.mark.parametrize("chart", CHARTS)
def test_the_chart_says_where_it_comes_from(helm: Helm, chart: str) -> None:
    shown = yaml.safe_load(helm("show", "chart", str(REPO / "charts" / chart)).stdout)
    assert shown["home"].startswith("https://")
    assert shown["sources"]


@pytest.mark.parametrize("chart", CHARTS)
def test_the_service_level_values_reach_the_controller(helm: Helm, chart: str) -> None:
    settings = ["--set", "retryPolicy.maxAttempts=3", "--set", "retryPolicy.initialIntervalSeconds=2"]
    if chart == "fulfillment-controller":
        settings += ["--set", "activeDeadlineSeconds=172800"]
    (container,) = only(render(helm, chart, *settings), "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ORDERFLOW_RETRY_MAX_ATTEMPTS"] == "3"
    assert env["ORDERFLOW_RETRY_INITIAL_INTERVAL"] == "2"
    assert env["ORDERFLOW_RETRY_MAX_INTERVAL"] == "60"
    if chart == "fulfillment-controller":
        assert env["ORDERFLOW_ACTIVE_DEADLINE_SECONDS"] == "172800"
    else:
        assert "ORDERFLOW_ACTIVE_DEADLINE_SECONDS" not in env
    # Unset (the default): no deadline, no variable.
    (default,) = only(render(helm, chart), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "ORDERFLOW_ACTIVE_DEADLINE_SECONDS" not in {e["name"] for e in default["env"]}


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
    # The chart's notes describe the state exactly as the Order shows it.
    notes = " ".join((REPO / "charts" / "order-controller" / "templates" / "NOTES.txt").read_text().split())
    unserved = ("NotAcknowledged", "FulfillmentAPIUnavailable")
    for c in [c for c in order["status"]["conditions"] if c["reason"] in unserved]:
        assert f"{c['type']}={c['status']}, reason {c['reason']}" in notes, c
    assert controller.proc is not None
    assert controller.proc.poll() is None  # reported, not crashed


@local_only
def test_installing_over_a_crd_another_release_made_says_how_to_resolve_it(
    namespace: str, helm: Helm, kubectl: Kubectl, crds_installed: None
) -> None:
    chart = str(REPO / "charts" / "order-controller")
    values = ("-n", namespace, "--set", f"watchNamespaces={{{namespace}}}", "--wait=false")
    # A release that made the CRD, then was uninstalled: the CRD stays (keep), still naming it.
    adopt_crds(kubectl, Release("first", "order-controller", namespace))
    helm("install", "first", chart, *values)
    helm("uninstall", "first", "-n", namespace)
    refused = helm("install", "second", chart, *values, check=False)
    assert refused.returncode != 0
    assert f"belongs to the Helm release first in namespace {namespace}" in refused.stderr
    assert "--set crds.install=false" in refused.stderr  # the fix when "first" is still installed
    adopt = f"meta.helm.sh/release-name=second meta.helm.sh/release-namespace={namespace} --overwrite"
    assert f"kubectl annotate crd orders.orderflow.dev {adopt}" in refused.stderr  # the fix when it is gone
    # A second install of the chart leaves the CRD to the release that manages it.
    helm("install", "second", chart, *values, "--set", "crds.install=false")
    helm("uninstall", "second", "-n", namespace)
    # A CRD applied with kubectl (no release's annotations): the same two ways out.
    kubectl("annotate", "crd", "orders.orderflow.dev", "meta.helm.sh/release-name-", "meta.helm.sh/release-namespace-")
    refused = helm("install", "third", chart, *values, check=False)
    assert "exists but no Helm release manages it" in refused.stderr
    assert "--set crds.install=false" in refused.stderr


@pytest.mark.skipif(not INSTALLED, reason="needs kube-controller-manager, which aggregates ClusterRoles")
@pytest.mark.parametrize("chart", CHARTS)
def test_people_bound_to_edit_or_view_in_a_namespace_can_use_the_kind(
    namespace: str, kubectl: Kubectl, chart: str
) -> None:
    kind = KIND[chart]
    kubectl("create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice", "-n", namespace)
    kubectl("create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob", "-n", namespace)

    def can(user: str, verb: str, *subresource: str) -> bool:
        what = [f"{kind}.orderflow.dev", *(f"--subresource={s}" for s in subresource)]
        done = kubectl("auth", "can-i", verb, *what, "-n", namespace, f"--as={user}", check=False)
        return done.stdout.strip() == "yes"

    wait_for(lambda: can("alice", "create"), what=f"edit to include {kind} (aggregation)")
    assert can("alice", "delete")
    assert not can("alice", "patch", "status")  # the controller's alone
    assert can("bob", "list")
    assert not can("bob", "create")


def test_the_order_charts_targets_reach_the_controller_and_open_only_their_secrets(helm: Helm, tmp_path: Path) -> None:
    from orderflow.order.targets import load

    declared = [
        {"name": "eu", "namespace": "warehouse", "kubeconfigSecretRef": {"name": "eu-kc"}, "allowedNamespaces": ["*"]},
        {"name": "wh", "namespace": "wh", "allowedNamespaces": ["shop"]},
    ]
    docs = render(
        helm, "order-controller", "--set-json", f"targets={json.dumps(declared)}", "--set", "clusterName=shop"
    )
    config = only(docs, "ConfigMap")
    (tmp_path / "targets.yaml").write_text(config["data"]["targets.yaml"])
    assert [t.name for t in load(tmp_path / "targets.yaml").targets] == ["eu", "wh"]  # what the controller reads
    roles = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-target-kubeconfigs")]
    (role,) = roles
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["eu-kc"], "verbs": ["get"]}
    ]
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["ORDERFLOW_TARGETS_FILE"] == "/etc/orderflow/targets/targets.yaml"
    assert env["ORDERFLOW_CLUSTER_NAME"] == "shop"
    assert "ORDERFLOW_ALLOW_EXEC_KUBECONFIGS" not in env
    assert {"name": "targets", "configMap": {"name": config["metadata"]["name"]}} in pod["volumes"]
    # Without targets: no declaration, no Secret read, as before.
    plain = render(helm, "order-controller")
    assert not [d for d in plain if d["kind"] == "ConfigMap" or d["metadata"]["name"].endswith("-target-kubeconfigs")]


@pytest.mark.parametrize("chart", CHARTS)
def test_the_peering_lifetime_reaches_the_replicas(helm: Helm, chart: str) -> None:
    def args(*settings: str) -> list[str]:
        (container,) = only(render(helm, chart, *settings), "Deployment")["spec"]["template"]["spec"]["containers"]
        return [arg for arg in container["args"] if arg.startswith("--peering")]

    name = f"{chart}-peering"
    assert args("--set", "replicas=2") == [f"--peering={name}", "--peering-lifetime=15"]
    assert args("--set", "replicas=2", "--set", "peeringLifetimeSeconds=30") == [
        f"--peering={name}",
        "--peering-lifetime=30",
    ]
    assert args() == []  # standalone: no peering, no lifetime
    done = helm.template(chart, "--set", "replicas=2", "--set", "peeringLifetimeSeconds=5", check=False)
    assert done.returncode != 0
    assert "/peeringLifetimeSeconds" in done.stderr
