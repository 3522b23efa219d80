"""What only real Pods show: the controllers installed by the charts, run by a kind node (``make
e2e`` here, the workflow in GitHub Actions), replaced, rolled, reinstalled, starved of API access and
filled with orders.

These run only in the installed mode (``ORDERFLOW_E2E_INSTALLED``). When the kind node is on this
machine (``orderflow.dev.cluster.podnode``), the tests also read each controller's memory from the
kernel, kill it, and tag the image in the node's containerd.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow.dev import manifests
from orderflow.dev.cluster import podnode
from orderflow.dev.testing.plugin import REPO, Kubectl, wait_for

from .conftest import INSTALLED, installed_namespaces

pytestmark = pytest.mark.skipif(not INSTALLED, reason="needs the charts installed and run as Pods (make e2e)")

NODE = podnode.from_env()  # the node the Pods run on, when this machine can see into it
NOT_HERE = "the Pods' node is not on this machine (ORDERFLOW_E2E_KIND is not set: make e2e sets it)"
IMAGE = os.environ.get("ORDERFLOW_E2E_IMAGE", "")
CHARTS = {"fulfillment": "fulfillment-controller", "order": "order-controller"}
MiB = 1024 * 1024


def order_manifest(name: str, steps: float = 1.0, **spec: Any) -> dict[str, Any]:
    return manifests.order(name, stepDurationSeconds={"picking": steps, "packing": steps}, **spec)


def apply_orders(kubectl: Kubectl, namespace: str, names: list[str], steps: float = 1.0) -> None:
    for start in range(0, len(names), 200):  # one kubectl per 200 objects: a long stdin, few processes
        docs = [order_manifest(name, steps) for name in names[start : start + 200]]
        kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))


def phases(kubectl: Kubectl, namespace: str, kind: str = "orders") -> dict[str, str]:
    items = kubectl.json("get", kind, "-n", namespace)["items"]
    return {o["metadata"]["name"]: o.get("status", {}).get("phase", "") for o in items}


def wait_all_completed(k: Kubectl, namespace: str, count: int, what: str, timeout: float = 180) -> None:
    wait_for(
        lambda: phases(k, namespace),
        lambda p: sorted(p.values()) == ["Completed"] * count,
        timeout=timeout,
        what=what,
    )


def assert_each_fulfillment_moved_once(kubectl: Kubectl, namespace: str) -> None:
    for item in kubectl.json("get", "fulfillments", "-n", namespace)["items"]:
        history = [h["reason"] for h in item["status"]["history"]]
        moves = [reason for reason in history if reason not in ("Paused", "Resumed")]
        assert len(moves) == len(set(moves)), f"{item['metadata']['name']}: a step twice: {history}"


class Release:
    def __init__(self, kubectl: Kubectl, name: str) -> None:
        self.kubectl, self.name = kubectl, name
        self.chart = CHARTS[name]
        self.namespace = installed_namespaces()[name]
        self.deployment = f"{name}-{self.chart}"

    def pods(self) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/name={self.chart}"
        items: list[dict[str, Any]] = self.kubectl.json("get", "pods", "-n", self.namespace, "-l", selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def ready_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.pods() if _condition(p, "Ready") == "True"]

    def helm(self, *args: str) -> None:
        self.kubectl.helm(
            "upgrade", self.name, str(REPO / "charts" / self.chart), "-n", self.namespace, "--reuse-values", *args
        )

    def wait_rolled_out(self) -> None:
        self.kubectl("rollout", "status", f"deployment/{self.deployment}", "-n", self.namespace, "--timeout=180s")


def _condition(obj: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), None)


class HelmKubectl(Kubectl):
    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["helm", *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
        return done


@pytest.fixture
def k(kubectl: Kubectl) -> HelmKubectl:
    return HelmKubectl(kubectl.env)


@pytest.fixture
def order_release(k: HelmKubectl) -> Release:
    return Release(k, "order")


@pytest.fixture
def fulfillment_release(k: HelmKubectl) -> Release:
    return Release(k, "fulfillment")


# -- the user-visible flow, through the Pods -----------------------------------------------------


def test_pause_resume_address_change_and_cancel_by_kubectl_patch(k: HelmKubectl, namespace: str) -> None:
    apply_orders(k, namespace, ["kept", "dropped"], steps=3)
    wait_for(lambda: phases(k, namespace, "fulfillments"), lambda p: p.get("kept") == "Picking", what="Picking")
    k("patch", "-n", namespace, "order", "kept", "--type", "merge", "-p", '{"spec":{"paused":true}}')
    k("wait", "-n", namespace, "--for=condition=Paused", "order/kept", "--timeout=60s")
    address = {"name": "B", "street": "2 Rd", "city": "Paris", "postalCode": "75001", "country": "FR"}
    k(
        "patch",
        "-n",
        namespace,
        "order",
        "kept",
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"shippingAddress": address}}),
    )
    k("patch", "-n", namespace, "order", "kept", "--type", "merge", "-p", '{"spec":{"paused":false}}')
    k("patch", "-n", namespace, "order", "dropped", "--type", "merge", "-p", '{"spec":{"cancelled":true}}')
    k("wait", "-n", namespace, "--for=condition=Ready", "order/kept", "--timeout=120s")
    shipped = k.json("get", "fulfillment", "kept", "-n", namespace)["status"]
    assert shipped["phase"] == "Shipped"
    assert shipped["shippingAddress"]["city"] == "Paris"
    wait_for(lambda: phases(k, namespace), lambda p: p.get("dropped") == "Cancelled", what="the cancelled order")


# -- Pods replaced, rolled, reinstalled ---------------------------------------------------------


def test_deleting_each_controller_pod_mid_flight_loses_nothing(
    k: HelmKubectl, namespace: str, order_release: Release, fulfillment_release: Release
) -> None:
    names = [f"o{i}" for i in range(20)]
    apply_orders(k, namespace, names, steps=2)
    wait_for(lambda: phases(k, namespace, "fulfillments"), lambda p: len(p) == len(names), what="20 Fulfillments")
    for release in (fulfillment_release, order_release):
        (victim,) = release.ready_pods()
        k("delete", "pod", "-n", release.namespace, victim["metadata"]["name"], "--wait=false")
        wait_for(
            release.ready_pods,
            lambda pods, gone=victim["metadata"]["uid"]: len(pods) == 1 and pods[0]["metadata"]["uid"] != gone,
            timeout=120,
            what=f"the {release.name} Deployment to replace its Pod",
        )
    wait_all_completed(k, namespace, len(names), "every order to complete after both Pods were replaced")
    assert_each_fulfillment_moved_once(k, namespace)


@pytest.mark.skipif(NODE is None, reason=f"tags the image in the node's containerd: {NOT_HERE}")
@pytest.mark.skipif(not IMAGE, reason="ORDERFLOW_E2E_IMAGE does not name the installed image")
def test_helm_upgrade_to_a_new_image_tag_rolls_the_pods_and_loses_nothing(
    k: HelmKubectl, namespace: str, order_release: Release, fulfillment_release: Release
) -> None:
    assert NODE is not None
    repository, _, tag = IMAGE.rpartition(":")
    new_tag = f"{tag}-next"
    NODE.tag_image(IMAGE, f"{repository}:{new_tag}")
    names = [f"u{i}" for i in range(10)]
    apply_orders(k, namespace, names, steps=2)
    try:
        for release in (fulfillment_release, order_release):
            release.helm("--set", f"image.tag={new_tag}")
            release.wait_rolled_out()
            (pod,) = release.ready_pods()
            assert pod["spec"]["containers"][0]["image"] == f"{repository}:{new_tag}"
        wait_all_completed(k, namespace, len(names), "every order to complete across the upgrade")
        assert_each_fulfillment_moved_once(k, namespace)
    finally:
        for release in (fulfillment_release, order_release):
            release.helm("--set", f"image.tag={tag}")
            release.wait_rolled_out()


def test_uninstall_then_install_again_serves_orders(k: HelmKubectl, namespace: str, order_release: Release) -> None:
    release = order_release
    values = k.helm("get", "values", release.name, "-n", release.namespace, "-o", "yaml").stdout
    k.helm("uninstall", release.name, "-n", release.namespace, "--wait")
    # The CRD stays (keep policy): uninstalling the controller never deletes everyone's Orders.
    k("get", "crd", "orders.orderflow.dev")
    _install_with_values(k, release, values)
    apply_orders(k, namespace, ["again"], steps=0)
    k("wait", "-n", namespace, "--for=condition=Ready", "order/again", "--timeout=120s")


def _install_with_values(k: HelmKubectl, release: Release, values: str) -> None:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"orderflow-e2e-{release.name}-values.yaml"
    path.write_text(values)
    k.helm(
        "install", release.name, str(REPO / "charts" / release.chart), "-n", release.namespace,
        "-f", str(path), "--wait", "--timeout", "3m",
    )  # fmt: skip


# -- readiness means "can reach the API server" -------------------------------------------------


@pytest.fixture
def cut_off(k: HelmKubectl, order_release: Release) -> Iterator[Release]:
    yield order_release
    order_release.helm()  # re-renders the bindings removed by the test
    wait_for(order_release.ready_pods, lambda pods: len(pods) == 1, timeout=120, what="Ready again")


def test_a_pod_whose_api_access_is_broken_is_not_ready(k: HelmKubectl, cut_off: Release) -> None:
    release = cut_off
    wait_for(release.ready_pods, lambda pods: len(pods) == 1, timeout=60, what="the Pod Ready")
    bindings = k.json(
        "get", "clusterrolebindings,rolebindings", "-A", "-l", f"app.kubernetes.io/instance={release.name}"
    )
    names = [(b["kind"].lower(), b["metadata"]["name"], b["metadata"].get("namespace")) for b in bindings["items"]]
    assert names, "the chart binds its ServiceAccount to its roles"
    for kind, name, ns in names:
        k("delete", kind, name, *(["-n", ns] if ns else []))
    wait_for(release.pods, lambda pods: all(_condition(p, "Ready") == "False" for p in pods), timeout=90,
             what="the Pod to turn NotReady once its API access is refused")  # fmt: skip
    (pod,) = release.pods()
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, "liveness must not restart it for this"


# -- memory under the chart's limit, enforced by the kernel --------------------------------------


def _rss_of_pod(pod: dict[str, Any]) -> tuple[int, int]:
    """(RSS, limit) in bytes of the Pod's controller, read from the kernel: /proc and its cgroup."""
    assert NODE is not None
    pid, memory = NODE.controller_process(pod["metadata"]["uid"])
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    limit = int((Path("/sys/fs/cgroup/memory") / memory.lstrip("/") / "memory.limit_in_bytes").read_text())
    return rss, limit


SUPPORTED_ORDERS = 1000  # docs/deploy.md: the default limits hold this many live Orders and Fulfillments


@pytest.mark.skipif(NODE is None, reason=f"reads the Pods' memory from this machine's kernel: {NOT_HERE}")
def test_memory_stays_under_the_limit_with_the_supported_number_of_orders(
    k: HelmKubectl, namespace: str, order_release: Release, fulfillment_release: Release
) -> None:
    releases = (order_release, fulfillment_release)
    idle = {r.name: _rss_of_pod(r.ready_pods()[0]) for r in releases}
    names = [f"m{i:04d}" for i in range(SUPPORTED_ORDERS)]
    started = time.monotonic()
    apply_orders(k, namespace, names, steps=0)
    wait_for(
        lambda: phases(k, namespace),
        lambda p: list(p.values()).count("Completed") == len(names),
        timeout=900,
        interval=2,
        what=f"{len(names)} orders to complete",
    )
    took = time.monotonic() - started
    for release in releases:
        (pod,) = release.ready_pods()
        status = pod["status"]["containerStatuses"][0]
        assert status["restartCount"] == 0, f"{release.name} restarted: {status.get('lastState')}"
        rss, limit = _rss_of_pod(pod)
        print(
            f"{release.name}: RSS idle {idle[release.name][0] / MiB:.0f} MiB, after {len(names)} orders "
            f"{rss / MiB:.0f} MiB, limit {limit / MiB:.0f} MiB ({len(names) / took:.1f} orders/s)"
        )
        assert limit < 1 << 40, "the chart's memory limit is enforced by the Pod's cgroup"
        assert rss < limit


# -- two replicas with Kopf peering --------------------------------------------------------------


@pytest.fixture
def two_fulfillment_replicas(fulfillment_release: Release) -> Iterator[Release]:
    fulfillment_release.helm("--set", "replicas=2")
    fulfillment_release.wait_rolled_out()
    try:
        yield fulfillment_release
    finally:
        fulfillment_release.helm("--set", "replicas=1")
        fulfillment_release.wait_rolled_out()


@pytest.mark.parametrize("how", ["pod deleted", "process killed"])
def test_the_standby_replica_takes_over_when_the_active_one_goes(
    k: HelmKubectl, namespace: str, two_fulfillment_replicas: Release, how: str
) -> None:
    release = two_fulfillment_replicas
    wait_for(release.ready_pods, lambda pods: len(pods) == 2, timeout=120, what="two Ready replicas")
    peers = wait_for(
        lambda: k.json("get", "clusterkopfpeering", "fulfillment-controller-peering").get("status", {}),
        lambda status: len(status) >= 2,
        what="both replicas in the peering object",
    )
    pods = {p["metadata"]["name"] for p in release.ready_pods()}
    active = max((peer for peer in peers if peer in pods), key=lambda peer: peers[peer]["priority"])
    names = [f"f{i}" for i in range(10)]
    apply_orders(k, namespace, names, steps=2)
    wait_for(lambda: phases(k, namespace, "fulfillments"), lambda p: "Picking" in p.values(), what="work in flight")

    killed_at = time.monotonic()
    if how == "pod deleted":  # graceful: SIGTERM, Kopf leaves the peering at once
        k("delete", "pod", "-n", release.namespace, active, "--wait=false")
    else:  # a crash: SIGKILL on the node, the container restarts and rejoins as the standby
        if NODE is None:
            pytest.skip(f"kills the controller's process on its node: {NOT_HERE}")
        pod = next(p for p in release.ready_pods() if p["metadata"]["name"] == active)
        os.kill(NODE.controller_process(pod["metadata"]["uid"])[0], signal.SIGKILL)
    apply_orders(k, namespace, ["after-failover"], steps=0)
    k("wait", "-n", namespace, "--for=condition=Ready", "order/after-failover", "--timeout=120s")
    failover = time.monotonic() - killed_at
    print(f"failover ({how}): a new order completed {failover:.1f}s after the active replica went")
    wait_all_completed(k, namespace, len(names) + 1, "every in-flight order to complete on the standby")
    assert_each_fulfillment_moved_once(k, namespace)
