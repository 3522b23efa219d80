"""Two clusters, each chart installed by its own team as docs/targets.md tells them: the order
controller's Pod (shop cluster: kind) drives Fulfillments in a warehouse cluster through
the kubeconfig in a Secret, and rides out an outage of the warehouse's API server.

The warehouse is a second control plane on the host. Its API server is carried into the node's
network namespace (``orderflow.dev.cluster.expose``), which is what a Pod of one kind cluster sees
of another on Docker's network. The warehouse has no node of its own, so its fulfillment
controller runs as a process logged in as its chart's ServiceAccount (as tests/e2e does everywhere
without a node), and the caller's token comes from the TokenRequest API (no controller-manager
fills the chart's token Secret there); everything else is the two charts as their owners install
them.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from orderflow.dev import manifests
from orderflow.dev.cluster import podnode
from orderflow.dev.cluster.controlplane import ControlPlane
from orderflow.dev.harness import Controllers
from orderflow.dev.testing.plugin import REPO, Kubectl, service_account_kubeconfig, wait_for

from .conftest import INSTALLED, Helm, installed_namespaces

NODE = podnode.from_env()  # the shop's node, into whose network namespace the warehouse is carried
pytestmark = pytest.mark.skipif(
    not (INSTALLED and NODE),
    reason="needs the order controller run as a Pod by a kind node on this machine (make e2e)",
)

CHARTS = REPO / "charts"
WAREHOUSE_NS = "warehouse"
TARGET = "warehouse"
SECRET = "warehouse-kubeconfig"
CALLER = "shop"  # the fulfillment chart's `callers` entry for the shop's order controller


@dataclasses.dataclass
class Warehouse:
    plane: ControlPlane
    kubectl: Kubectl

    def fulfillment(self, name: str) -> dict[str, Any] | None:
        done = self.kubectl("get", "fulfillment", name, "-n", WAREHOUSE_NS, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None


@dataclasses.dataclass
class Shop:
    kubectl: Kubectl
    namespace: str  # where the shop's Orders live

    def order(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl.json("get", "order", name, "-n", self.namespace))

    def phase(self, name: str) -> str | None:
        return self.order(name).get("status", {}).get("phase")

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.kubectl("patch", "order", name, "-n", self.namespace, "--type", "merge", "-p", json.dumps({"spec": spec}))


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == type_), {})


def caller_kubeconfig(warehouse: Warehouse, server: str) -> str:
    """Step 2 of docs/targets.md: the kubeconfig the fulfillment team hands to the shop team, with
    the address the shop's Pods reach the warehouse at; the certificate names 127.0.0.1 and
    localhost, so the name to check is given as `tls-server-name`, as for any address the
    certificate does not list."""
    account = f"fulfillment-fulfillment-controller-caller-{CALLER}"
    token = warehouse.kubectl("create", "token", account, "-n", WAREHOUSE_NS, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(warehouse.plane.kubeconfig.read_text())
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "warehouse", "cluster": {
            "server": server, "certificate-authority-data": ca, "tls-server-name": "localhost"}}],
        "users": [{"name": CALLER, "user": {"token": token}}],
        "contexts": [{"name": "warehouse",
                      "context": {"cluster": "warehouse", "user": CALLER, "namespace": WAREHOUSE_NS}}],
        "current-context": "warehouse",
    })  # fmt: skip


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, kube_env: dict[str, str]) -> Iterator[Warehouse]:
    """The fulfillment team's cluster: its chart installed with a remote caller, its controller running."""
    directory = tmp_path_factory.mktemp("warehouse")
    plane = ControlPlane.start(directory / "kubeconfig", die_with_parent=True)
    controllers = Controllers(kube_env, directory)
    try:
        env = {**kube_env, "KUBECONFIG": str(plane.kubeconfig)}
        kubectl, helm = Kubectl(env), Helm(env)
        values = directory / "values.yaml"
        values.write_text(yaml.safe_dump({
            "watchNamespaces": [WAREHOUSE_NS],
            "callers": [{"name": CALLER, "serviceAccount": {"create": True}}],
        }))  # fmt: skip
        chart = str(CHARTS / "fulfillment-controller")
        helm(
            "install", "fulfillment", chart, "-n", WAREHOUSE_NS, "--create-namespace", "-f", str(values), "--wait=false"
        )
        login = service_account_kubeconfig(
            kubectl, plane.kubeconfig, WAREHOUSE_NS, "fulfillment-fulfillment-controller", directory
        )
        controllers.start("fulfillment", "--namespace", WAREHOUSE_NS, env={**env, "KUBECONFIG": str(login)})
        yield Warehouse(plane, kubectl)
    finally:
        controllers.stop_all()
        plane.stop()


@pytest.fixture(scope="module")
def shop(
    warehouse: Warehouse, kubectl: Kubectl, kube_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """The shop team's side: the warehouse's kubeconfig in a Secret of the order controller's
    namespace and the target declared with `helm upgrade`, then the chart's values put back."""
    assert NODE is not None
    inside = NODE.expose(warehouse.plane.apiserver_port)
    release_ns = installed_namespaces()["order"]
    namespace = f"shop-{uuid.uuid4().hex[:6]}"
    helm = Helm(kube_env)
    chart = str(CHARTS / "order-controller")
    directory = tmp_path_factory.mktemp("shop")
    before = directory / "order-values.json"
    before.write_text(helm("get", "values", "order", "-n", release_ns, "-o", "json").stdout)
    try:
        kubectl("create", "namespace", namespace)
        config = directory / "warehouse.kubeconfig"
        config.write_text(caller_kubeconfig(warehouse, f"https://{inside.address}:{inside.port}"))
        kubectl("create", "secret", "generic", SECRET, "-n", release_ns, f"--from-file=kubeconfig={config}")
        target = {"name": TARGET, "namespace": WAREHOUSE_NS, "kubeconfigSecretRef": {"name": SECRET},
                  "allowedNamespaces": [namespace]}  # fmt: skip
        helm("upgrade", "order", chart, "-n", release_ns, "--reuse-values", "--set", "clusterName=shop",
             "--set-json", f"targets={json.dumps([target])}", "--wait", "--timeout", "3m")  # fmt: skip
        yield Shop(kubectl, namespace)
    finally:
        helm("upgrade", "order", chart, "-n", release_ns, "--reset-values", "-f", str(before), "--wait", "--timeout",
             "3m", check=False)  # fmt: skip
        kubectl("delete", "secret", SECRET, "-n", release_ns, "--ignore-not-found")
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        inside.close()


def test_an_order_in_the_shop_cluster_is_fulfilled_in_the_warehouse_cluster(shop: Shop, warehouse: Warehouse) -> None:
    order = manifests.order("o1", target=TARGET, stepDurationSeconds={"picking": 10, "packing": 1})
    shop.kubectl.apply(order, "-n", shop.namespace)
    name = f"{shop.namespace}.o1"  # a Fulfillment in a target is named after the Order's namespace too
    made = wait_for(lambda: warehouse.fulfillment(name), timeout=90, what="the Fulfillment in the warehouse")
    ref = made["spec"]["orderRef"]
    assert (ref["cluster"], ref["namespace"], ref["name"]) == ("shop", shop.namespace, "o1")
    assert ref["uid"] == shop.order("o1")["metadata"]["uid"]

    # A signal from the shop side reaches the warehouse's spec, and its status comes back.
    shop.patch("o1", {"paused": True})
    wait_for(lambda: warehouse.fulfillment(name), lambda f: f["spec"].get("paused") is True, what="pause sent")
    wait_for(lambda: shop.order("o1"), lambda o: o["status"].get("fulfillment", {}).get("paused") is True,
             what="the warehouse's pause seen by the Order")  # fmt: skip
    shop.patch("o1", {"paused": False})
    wait_for(lambda: shop.phase("o1"), lambda p: p == "Completed", timeout=90, what="the Order Completed")
    done = warehouse.fulfillment(name)
    assert done is not None
    assert done["status"]["phase"] == "Shipped"
    assert condition(shop.order("o1"), "TargetReachable")["status"] == "True"


def test_the_warehouse_down_for_a_while_loses_nothing(shop: Shop, warehouse: Warehouse, kubectl: Kubectl) -> None:
    names = ["kept", "dropped"]
    # Both in flight when the outage starts. The warehouse's steps go on by its own clock, so the
    # one to cancel picks long enough to still be picking when the cancel can reach it.
    for name, picking in zip(names, (30, 300), strict=True):
        order = manifests.order(name, target=TARGET, stepDurationSeconds={"picking": picking, "packing": 0.5})
        shop.kubectl.apply(order, "-n", shop.namespace)
    wait_for(lambda: [shop.phase(n) for n in names], lambda ps: ps == ["Fulfilling"] * 2, timeout=90,
             what="both in flight")  # fmt: skip
    warehouse.plane.stop_apiserver()
    outage = time.monotonic()
    try:
        down = wait_for(
            lambda: shop.order("dropped"),
            lambda o: condition(o, "TargetReachable").get("status") == "False",
            timeout=90,
            what="the Order to say the warehouse is down",
        )
        assert condition(down, "TargetReachable")["reason"] == "Unreachable"
        assert condition(down, "Ready")["reason"] == "TargetUnreachable"
        assert down["status"]["phase"] == "Fulfilling"  # the last known state is kept
        shop.patch("dropped", {"cancelled": True})  # waits in the Order's spec until the warehouse is back
        unreachable = ("get", "events", "-n", shop.namespace, "--field-selector", "reason=TargetUnreachable")
        wait_for(lambda: kubectl.json(*unreachable)["items"], what="a TargetUnreachable Event")
        wait_for(time.monotonic, lambda t: t >= outage + 15, timeout=30, what="15 s of outage")
        assert shop.phase("dropped") == "Fulfilling"  # nothing decided while the warehouse cannot answer
    finally:
        warehouse.plane.start_apiserver(die_with_parent=True)
    wait_for(lambda: [shop.phase(n) for n in names], lambda ps: ps == ["Completed", "Cancelled"], timeout=120,
             what="kept Completed, dropped Cancelled")  # fmt: skip
    for name in names:
        assert condition(shop.order(name), "TargetReachable")["status"] == "True"
        fulfillment = warehouse.fulfillment(f"{shop.namespace}.{name}")
        assert fulfillment is not None
        reasons = [h["reason"] for h in fulfillment["status"]["history"]]
        assert reasons.count("Shipped") + reasons.count("Cancelled") == 1, reasons  # once, never twice
