"""Targets on real API servers: an Order drives a Fulfillment in another namespace, or in another
cluster (a second control plane, reached through a kubeconfig in a Secret), and survives the link
going down.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow.dev import manifests
from orderflow.dev.cluster.controlplane import ControlPlane
from orderflow.dev.testing.plugin import Cluster, Controllers, CustomResources, Kubectl, wait_for

from .test_describe import orderflow

pytestmark = pytest.mark.usefixtures("crds_installed")


class Remote:
    """A second cluster (etcd + kube-apiserver) for the warehouse's Fulfillments."""

    def __init__(self, plane: ControlPlane, kubectl: Kubectl, env: dict[str, str]) -> None:
        self.plane, self.kubectl, self.env = plane, kubectl, env

    def fulfillments(self, namespace: str) -> list[dict[str, Any]]:
        return list(self.kubectl.json("get", "fulfillments", "-n", namespace)["items"])

    def fulfillment(self, namespace: str, name: str) -> dict[str, Any] | None:
        done = self.kubectl("get", "fulfillment", name, "-n", namespace, "-o", "json", check=False)
        return yaml.safe_load(done.stdout) if done.returncode == 0 else None


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, kube_env: dict[str, str]) -> Iterator[Remote]:
    plane = ControlPlane.start(tmp_path_factory.mktemp("warehouse") / "kubeconfig", die_with_parent=True)
    try:
        env = {**kube_env, "KUBECONFIG": str(plane.kubeconfig)}
        kubectl = Kubectl(env)
        for crd in manifests.crds():
            kubectl.apply(crd)
        kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        yield Remote(plane, kubectl, env)
    finally:
        plane.stop()


@pytest.fixture
def warehouse_ns(remote: Remote) -> str:
    name = f"warehouse-{uuid.uuid4().hex[:6]}"
    remote.kubectl("create", "namespace", name)
    return name


def declare(tmp_path: Path, *targets: dict[str, Any]) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": list(targets)}))
    return path


def order(name: str, target: str, seconds: float = 0.2, packing: float | None = None, **spec: Any) -> dict[str, Any]:
    steps = {"picking": seconds, "packing": seconds if packing is None else packing}
    return manifests.order(name, target=target, stepDurationSeconds=steps, **spec)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == type_), {})


def phase(crs: CustomResources, name: str) -> str | None:
    return (crs.find("orders", name) or {}).get("status", {}).get("phase")


def mirrors_picking(crs: CustomResources, name: str) -> None:
    """Wait until the Order mirrors its Fulfillment in Picking, wherever that lives."""
    wait_for(
        lambda: (crs.find("orders", name) or {}).get("status", {}).get("fulfillment", {}).get("phase"),
        lambda p: p == "Picking",
        what=f"Order {name} to mirror its Fulfillment Picking",
    )


def kubeconfig_secret(kubectl: Kubectl, namespace: str, name: str, kubeconfig: Path | str) -> None:
    text = kubeconfig.read_text() if isinstance(kubeconfig, Path) else kubeconfig
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"kubeconfig": base64.b64encode(text.encode()).decode()},
    }
    kubectl.apply(secret, "-n", namespace)


# -- another namespace of the same cluster ------------------------------------------------------


def test_an_order_drives_a_fulfillment_in_another_namespace(
    controllers: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    tmp_path: Path,
    kube_env: dict[str, str],
) -> None:
    fulfilment = f"{namespace}-wh"[:63]
    kubectl("create", "namespace", fulfilment)
    targets = declare(tmp_path, {"name": "warehouse", "namespace": fulfilment, "allowedNamespaces": [namespace]})
    controllers.start("fulfillment", "--namespace", fulfilment)
    # The order controller watches Orders in its own namespace only; the target has its own watch.
    controllers.start("order", "--namespace", namespace, "--targets", str(targets), "--cluster-name", "shop")
    kubectl.apply(order("o1", "warehouse", seconds=2), "-n", namespace)
    mirrors_picking(crs, "o1")
    kubectl("patch", "-n", namespace, "order", "o1", "--type", "merge", "-p", '{"spec":{"paused":true}}')
    kubectl("wait", "-n", namespace, "--for=condition=Paused", "order/o1", "--timeout=30s")
    kubectl("patch", "-n", namespace, "order", "o1", "--type", "merge", "-p", '{"spec":{"paused":false}}')
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/o1", "--timeout=60s")
    f = kubectl.json("get", "fulfillment", f"{namespace}.o1", "-n", fulfilment)
    o = crs.get("orders", "o1")
    assert f["spec"]["orderRef"] == {"name": "o1", "uid": o["metadata"]["uid"], "namespace": namespace,
                                     "cluster": "shop"}  # fmt: skip
    assert f["status"]["phase"] == "Shipped"
    assert o["status"]["fulfillment"]["target"] == "warehouse"
    assert o["status"]["fulfillment"]["namespace"] == fulfilment
    assert condition(o, "TargetReachable")["status"] == "True"
    assert not crs.list("fulfillments")  # nothing in the Order's own namespace
    assert "warehouse" in kubectl("get", "orders", "-n", namespace).stdout  # the Target column
    told = json.loads(orderflow(kube_env, "describe", "order/o1", "-n", namespace, "-o", "json").stdout)
    assert told["order"]["target"] == "warehouse"
    assert told["fulfillment"]["exists"] is True
    assert told["fulfillment"]["namespace"] == fulfilment
    assert "Shipped" in [row["what"] for row in told["timeline"]]


def test_a_target_not_allowed_for_the_namespace_creates_nothing_anywhere(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources, tmp_path: Path
) -> None:
    fulfilment = f"{namespace}-wh"[:63]
    kubectl("create", "namespace", fulfilment)
    targets = declare(tmp_path, {"name": "warehouse", "namespace": fulfilment, "allowedNamespaces": ["team-b"]})
    controllers.start("order", "--namespace", namespace, "--targets", str(targets))
    kubectl.apply(order("o1", "warehouse"), "-n", namespace)
    kubectl.apply(order("o2", "nowhere"), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Stalled", "order/o1", "order/o2", "--timeout=30s")
    assert condition(crs.get("orders", "o1"), "Stalled")["reason"] == "TargetNotAllowed"
    assert condition(crs.get("orders", "o2"), "Stalled")["reason"] == "TargetUnknown"
    assert kubectl.json("get", "fulfillments", "-n", fulfilment)["items"] == []
    assert crs.list("fulfillments") == []


# -- another cluster ------------------------------------------------------------------------------


@pytest.fixture
def shop(
    controllers: Controllers, kubectl: Kubectl, namespace: str, remote: Remote, warehouse_ns: str, tmp_path: Path
) -> Controllers:
    """The warehouse team runs its fulfillment controller on its cluster; the shop team runs its
    order controller with a target there, through the warehouse's kubeconfig kept in a Secret."""
    kubeconfig_secret(kubectl, namespace, "warehouse-kubeconfig", remote.plane.kubeconfig)
    targets = declare(
        tmp_path,
        {
            "name": "eu",
            "namespace": warehouse_ns,
            "kubeconfigSecretRef": {"name": "warehouse-kubeconfig"},
            "allowedNamespaces": ["*"],
        },
    )
    controllers.start("fulfillment", "--namespace", warehouse_ns, env=remote.env)
    controllers.start("order", "--namespace", namespace, "--targets", str(targets), "--secrets-namespace", namespace)
    return controllers


def test_an_order_drives_a_fulfillment_in_another_cluster(
    shop: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    remote: Remote,
    warehouse_ns: str,
    kube_env: dict[str, str],
) -> None:
    kubectl.apply(order("o1", "eu", seconds=3), "-n", namespace)
    name = f"{namespace}.o1"
    wait_for(
        lambda: (remote.fulfillment(warehouse_ns, name) or {}).get("status", {}).get("phase"),
        lambda p: p == "Picking",
        what="the Fulfillment in the other cluster",
    )
    moved = {**manifests.ADDRESS, "city": "Leeds", "postalCode": "LS1 1AA"}
    signals = json.dumps({"spec": {"paused": True, "shippingAddress": moved}})
    kubectl("patch", "-n", namespace, "order", "o1", "--type", "merge", "-p", signals)
    kubectl("wait", "-n", namespace, "--for=condition=Paused", "order/o1", "--timeout=30s")
    f = remote.fulfillment(warehouse_ns, name)
    assert f is not None
    assert f["status"]["paused"] is True
    assert f["status"]["shippingAddress"]["city"] == "Leeds"
    kubectl("patch", "-n", namespace, "order", "o1", "--type", "merge", "-p", '{"spec":{"paused":false}}')
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/o1", "--timeout=60s")
    o = crs.get("orders", "o1")
    f = remote.fulfillment(warehouse_ns, name)
    assert f is not None
    assert o["status"]["fulfillment"]["trackingNumber"] == f["status"]["trackingNumber"]
    assert o["status"]["fulfillment"]["uid"] == f["metadata"]["uid"]
    # describe, with the shop's kubeconfig: the other cluster's Fulfillment is not there to read,
    # and it says so, showing what the Order last saw of it.
    told = orderflow(kube_env, "describe", "order/o1", "-n", namespace).stdout
    assert "Target" in told
    assert "not found in this cluster: the target is another cluster" in told
    assert f["status"]["trackingNumber"] in told
    # And with the warehouse's: the Fulfillment alone, and where its Order is.
    there = orderflow(remote.env, "describe", f"fulfillment/{name}", "-n", warehouse_ns).stdout
    assert f"Order o1 is in namespace {namespace}; describe it there" in there
    # A cancel from the shop reaches the warehouse too.
    kubectl.apply(order("o2", "eu", seconds=30), "-n", namespace)
    wait_for(lambda: remote.fulfillment(warehouse_ns, f"{namespace}.o2"), lambda f: f is not None, what="o2")
    kubectl("patch", "-n", namespace, "order", "o2", "--type", "merge", "-p", '{"spec":{"cancelled":true}}')
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Cancelled", "order/o2", "--timeout=30s")


def test_a_strangers_fulfillment_in_the_target_is_reported_never_touched(
    shop: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources, remote: Remote, warehouse_ns: str
) -> None:
    stranger = manifests.fulfillment(f"{namespace}.taken", started=False)
    remote.kubectl.apply(stranger, "-n", warehouse_ns)
    kubectl.apply(order("taken", "eu"), "-n", namespace)
    wait_for(lambda: condition(crs.find("orders", "taken"), "Stalled").get("reason"),
             lambda r: r == "FulfillmentNameTaken", what="the name reported taken")  # fmt: skip
    left = remote.fulfillment(warehouse_ns, f"{namespace}.taken")
    assert left is not None
    assert left["spec"].get("started") is False
    assert "orderRef" not in left["spec"]


def test_a_kubeconfig_that_runs_a_program_is_refused(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources, remote: Remote, tmp_path: Path
) -> None:
    document = yaml.safe_load(remote.plane.kubeconfig.read_text())
    document["users"] = [{"name": "u", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                                          "command": "/bin/true"}}}]  # fmt: skip
    for context in document["contexts"]:
        context["context"]["user"] = "u"
    kubeconfig_secret(kubectl, namespace, "runs-a-program", yaml.safe_dump(document))
    targets = declare(tmp_path, {"name": "eu", "namespace": "x", "kubeconfigSecretRef": {"name": "runs-a-program"},
                                 "allowedNamespaces": ["*"]})  # fmt: skip
    controllers.start("order", "--namespace", namespace, "--targets", str(targets), "--secrets-namespace", namespace)
    kubectl.apply(order("o1", "eu"), "-n", namespace)
    stalled = wait_for(lambda: condition(crs.find("orders", "o1"), "Stalled"),
                       lambda c: c.get("reason") == "KubeconfigRefused", what="KubeconfigRefused")  # fmt: skip
    assert "--allow-exec-kubeconfigs" in stalled["message"]


def test_the_target_down_for_30_seconds_loses_nothing_and_does_nothing_twice(
    shop: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    remote: Remote,
    warehouse_ns: str,
    control_plane: Cluster,
) -> None:
    names = [f"o{i:03d}" for i in range(100)]
    # Picking long enough to be in flight across the outage and the cancels sent after it; all
    # created in one request, so that they start together.
    orders = [order(name, "eu", seconds=75, packing=0.5) for name in names]
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": orders}, "-n", namespace)
    wait_for(lambda: [phase(crs, n) for n in names], lambda ps: all(p == "Fulfilling" for p in ps), timeout=120,
             what="all 100 in flight")  # fmt: skip
    remote.plane.stop_apiserver()
    outage = time.monotonic()
    try:
        wait_for(
            lambda: [condition(crs.get("orders", n), "TargetReachable").get("status") for n in names],
            lambda s: all(x == "False" for x in s),
            timeout=60,
            what="every Order to say the target is down",
        )
        down = crs.get("orders", names[0])
        assert down["status"]["phase"] == "Fulfilling"  # the last known state is kept
        assert down["status"]["fulfillment"]["phase"] == "Picking"
        assert condition(down, "Ready")["reason"] == "TargetUnreachable"
        cancelled = names[::2]
        for name in cancelled:  # signals sent while it is down wait, and go once it is back
            kubectl("patch", "-n", namespace, "order", name, "--type", "merge", "-p", '{"spec":{"cancelled":true}}')
        wait_for(lambda: kubectl.json("get", "events", "-n", namespace, "--field-selector", "reason=TargetUnreachable"),
                 lambda e: bool(e["items"]), what="a TargetUnreachable Event")  # fmt: skip
        # An Order on no target is not slowed down by the one that is down.
        kubectl.apply(manifests.order("local", stepDurationSeconds={"picking": 0, "packing": 0}), "-n", namespace)
        wait_for(lambda: phase(crs, "local"), lambda p: p == "Fulfilling", timeout=30, what="the local Order going on")
        # 30 seconds of outage in all, counted from its start.
        wait_for(time.monotonic, lambda t: t >= outage + 30, timeout=60, what="30 s of outage")
    finally:
        remote.plane.start_apiserver(die_with_parent=True)
    wait_for(
        lambda: [phase(crs, n) for n in names],
        lambda ps: all(p in ("Completed", "Cancelled") for p in ps),
        timeout=180,
        what="every Order final",
    )
    for name in names:
        assert phase(crs, name) == ("Cancelled" if name in cancelled else "Completed"), name
        assert condition(crs.get("orders", name), "TargetReachable")["status"] == "True"
    fulfillments = {f["metadata"]["name"]: f for f in remote.fulfillments(warehouse_ns)}
    assert len(fulfillments) == len(names)  # none made twice
    for f in fulfillments.values():
        reasons = [h["reason"] for h in f["status"]["history"]]
        assert reasons.count("Shipped") + reasons.count("Cancelled") == 1, reasons  # nothing done twice


def grant(remote: Remote, namespace: str, account: str) -> None:
    """The warehouse grants a caller what the fulfillment chart's `callers` grants (docs/targets.md)."""
    remote.kubectl("create", "serviceaccount", account, "-n", namespace)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "caller"},
        "rules": [{"apiGroups": ["orderflow.dev"], "resources": ["fulfillments"],
                   "verbs": ["get", "list", "watch", "create", "patch", "delete"]}],
    }  # fmt: skip
    remote.kubectl.apply(role, "-n", namespace)
    remote.kubectl("create", "rolebinding", account, "-n", namespace, "--role=caller",
                   f"--serviceaccount={namespace}:{account}")  # fmt: skip


def caller_kubeconfig(remote: Remote, namespace: str, account: str) -> str:
    token = remote.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    document = yaml.safe_load(remote.plane.kubeconfig.read_text())
    for context in document["contexts"]:
        context["context"]["user"] = account
    document["users"] = [{"name": account, "user": {"token": token}}]
    return yaml.safe_dump(document)


@pytest.fixture
def shop_as_caller(
    controllers: Controllers, kubectl: Kubectl, namespace: str, remote: Remote, warehouse_ns: str, tmp_path: Path
) -> Controllers:
    """As `shop`, but logged in to the warehouse as a caller with the grant, not as its admin."""
    grant(remote, warehouse_ns, "shop-a")
    kubeconfig_secret(kubectl, namespace, "warehouse-kubeconfig", caller_kubeconfig(remote, warehouse_ns, "shop-a"))
    secret = {"name": "warehouse-kubeconfig"}
    targets = declare(
        tmp_path, {"name": "eu", "namespace": warehouse_ns, "kubeconfigSecretRef": secret, "allowedNamespaces": ["*"]}
    )
    controllers.start("fulfillment", "--namespace", warehouse_ns, env=remote.env)
    policy = ["--retry-initial-interval", "0.2", "--retry-max-interval", "1", "--retry-max-attempts", "3"]
    controllers.start("order", "--namespace", namespace, "--targets", str(targets), "--secrets-namespace", namespace,
                      *policy)  # fmt: skip
    return controllers


def test_a_kubeconfig_secret_rotated_mid_flight_is_used_without_a_restart(
    shop_as_caller: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    remote: Remote,
    warehouse_ns: str,
) -> None:
    kubectl.apply(order("o1", "eu", seconds=20), "-n", namespace)
    mirrors_picking(crs, "o1")
    # The warehouse issues a new credential, the shop stores it, and the old one is revoked.
    grant(remote, warehouse_ns, "shop-b")
    kubeconfig_secret(kubectl, namespace, "warehouse-kubeconfig", caller_kubeconfig(remote, warehouse_ns, "shop-b"))
    remote.kubectl("delete", "serviceaccount", "shop-a", "-n", warehouse_ns)  # its tokens stop working
    kubectl("patch", "-n", namespace, "order", "o1", "--type", "merge", "-p", '{"spec":{"paused":true}}')
    kubectl("wait", "-n", namespace, "--for=condition=Paused", "order/o1", "--timeout=60s")
    kubectl("patch", "-n", namespace, "order", "o1", "--type", "merge", "-p", '{"spec":{"paused":false}}')
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/o1", "--timeout=90s")
    assert shop_as_caller.started[1].alive  # the same process: no restart


def test_a_grant_revoked_in_the_target_stalls_the_order_with_the_servers_message(
    shop_as_caller: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    remote: Remote,
    warehouse_ns: str,
) -> None:
    kubectl.apply(order("o1", "eu", seconds=60), "-n", namespace)
    mirrors_picking(crs, "o1")
    remote.kubectl("delete", "rolebinding", "shop-a", "-n", warehouse_ns)
    kubectl("patch", "-n", namespace, "order", "o1", "--type", "merge", "-p", '{"spec":{"paused":true}}')
    stalled = wait_for(lambda: condition(crs.get("orders", "o1"), "Stalled"),
                       lambda c: "gave up after 3 attempts" in c.get("message", ""), timeout=60,
                       what="the refusal, then the retries run out")  # fmt: skip
    assert stalled["status"] == "True"
    assert stalled["reason"] == "FulfillmentForbidden"
    assert "forbidden" in stalled["message"].lower()


@pytest.mark.parametrize("policy", ["Cancel", "Delete", "Orphan"])
def test_deleting_an_order_while_its_target_is_down_follows_its_policy_once_it_is_back(
    shop: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    remote: Remote,
    warehouse_ns: str,
    policy: str,
) -> None:
    kubectl.apply(order("o1", "eu", seconds=120, deletionPolicy=policy), "-n", namespace)
    name = f"{namespace}.o1"
    wait_for(lambda: (remote.fulfillment(warehouse_ns, name) or {}).get("status", {}).get("phase"),
             lambda p: p == "Picking", what="Picking")  # fmt: skip
    remote.plane.stop_apiserver()
    try:
        wait_for(lambda: condition(crs.get("orders", "o1"), "TargetReachable").get("status"), lambda s: s == "False",
                 what="the target down")  # fmt: skip
        kubectl("delete", "order", "o1", "-n", namespace, "--wait=false")
        if policy == "Orphan":
            wait_for(lambda: crs.find("orders", "o1"), lambda o: o is None, what="the Order gone at once")
        else:
            waiting = wait_for(
                lambda: condition(crs.find("orders", "o1"), "Ready"),
                lambda c: c.get("reason") == "DeletionWaitsForTarget",
                what="the deletion waiting",
            )
            assert f"deletionPolicy {policy} waits" in waiting["message"]
    finally:
        remote.plane.start_apiserver(die_with_parent=True)
    wait_for(lambda: crs.find("orders", "o1"), lambda o: o is None, timeout=60, what="the Order gone")
    left = remote.fulfillment(warehouse_ns, name)
    if policy == "Delete":
        assert left is None or left["metadata"].get("deletionTimestamp")
    elif policy == "Cancel":
        assert left is not None
        assert left["spec"]["cancelled"] is True
    else:
        assert left is not None
        assert left["spec"].get("cancelled") is not True  # left alone


# -- describe, with a context for each cluster ----------------------------------------------------


def with_context(kube_env: dict[str, str], remote: Remote, tmp_path: Path, context: str, server: str | None = None
                 ) -> dict[str, str]:  # fmt: skip
    """The shop's kubeconfig (its current context the shop cluster's) with one more context,
    ``context``, for the warehouse cluster (at ``server``, if given), as a user who works with both
    has it."""
    document = yaml.safe_load(Path(kube_env["KUBECONFIG"]).read_text())
    warehouse = yaml.safe_load(remote.plane.kubeconfig.read_text())
    cluster, user = warehouse["clusters"][0], warehouse["users"][0]
    cluster["name"], user["name"] = "warehouse", "warehouse-admin"
    if server is not None:
        cluster["cluster"]["server"] = server
    document["clusters"].append(cluster)
    document["users"].append(user)
    document["contexts"].append({"name": context, "context": {"cluster": "warehouse", "user": "warehouse-admin"}})
    path = tmp_path / f"kubeconfig-{context}"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return {**kube_env, "KUBECONFIG": str(path)}


def test_describe_reads_the_fulfillment_in_another_cluster_through_the_users_context_for_it(
    shop: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    remote: Remote,
    warehouse_ns: str,
    kube_env: dict[str, str],
    tmp_path: Path,
) -> None:
    kubectl.apply(order("o1", "eu", seconds=0.5), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/o1", "--timeout=60s")
    name = f"{namespace}.o1"
    f = remote.fulfillment(warehouse_ns, name)
    assert f is not None
    # A context named as the target is found without being asked for.
    env = with_context(kube_env, remote, tmp_path, "eu")
    told = json.loads(orderflow(env, "describe", "order/o1", "-n", namespace, "-o", "json").stdout)
    assert told["fulfillment"]["exists"] is True
    assert told["fulfillment"]["uid"] == f["metadata"]["uid"]
    assert told["fulfillment"]["namespace"] == warehouse_ns
    assert told["fulfillment"]["context"] == "eu"
    assert told["fulfillment"]["events"] > 0  # its Events, read in the warehouse cluster
    rows = [(row["object"], row["what"]) for row in told["timeline"]]
    for step in ("Started", "Picked", "Shipped"):  # the Fulfillment's own history, not the Order's mirror
        assert ("Fulfillment", step) in rows, rows
    # One named with --target-context: the plain text says which context it was read through.
    env = with_context(kube_env, remote, tmp_path, "kind-warehouse")
    text = orderflow(env, "describe", "order/o1", "-n", namespace, "--target-context", "eu=kind-warehouse").stdout
    assert f"Fulfillment {warehouse_ns}/{name}  for Order o1" in text
    assert "Context     kind-warehouse (target eu)" in text
    assert "Picked" in text
    # A stranger's Fulfillment of the same name there is reported as not this Order's.
    remote.kubectl("delete", "fulfillment", name, "-n", warehouse_ns)
    stranger = manifests.fulfillment(name, started=False, orderRef={"name": "o1", "uid": f["spec"]["orderRef"]["uid"]})
    remote.kubectl.apply(stranger, "-n", warehouse_ns)
    told = json.loads(
        orderflow(
            env, "describe", "order/o1", "-n", namespace, "--target-context", "kind-warehouse", "-o", "json"
        ).stdout
    )
    assert told["fulfillment"]["exists"] is False
    assert "is not the one it created" in told["fulfillment"]["note"]
    assert "read through context kind-warehouse" in told["fulfillment"]["note"]


def test_describe_says_when_no_context_reaches_the_other_cluster_and_shows_what_the_order_saw(
    shop: Controllers,
    kubectl: Kubectl,
    namespace: str,
    crs: CustomResources,
    remote: Remote,
    warehouse_ns: str,
    kube_env: dict[str, str],
    tmp_path: Path,
) -> None:
    kubectl.apply(order("o1", "eu", seconds=0.2), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/o1", "--timeout=60s")
    tracking = crs.get("orders", "o1")["status"]["fulfillment"]["trackingNumber"]
    # No context for it: the line says how to name one.
    done = orderflow(kube_env, "describe", "order/o1", "-n", namespace)
    assert (
        "no context of your kubeconfig is named eu: to read it there, give --target-context eu=CONTEXT" in done.stdout
    )
    assert tracking in done.stdout
    # A context that cannot reach it (nothing listens on port 1): named, with the reason, no traceback.
    env = with_context(kube_env, remote, tmp_path, "eu", server="https://127.0.0.1:1")
    done = orderflow(env, "describe", "order/o1", "-n", namespace)
    assert (
        "context eu cannot reach the API server at https://127.0.0.1:1: [Errno 111] Connection refused" in done.stdout
    )
    assert tracking in done.stdout  # what the Order last saw
    assert "Traceback" not in done.stderr
    # A context named that the kubeconfig does not have.
    done = orderflow(kube_env, "describe", "order/o1", "-n", namespace, "--target-context", "eu=nowhere")
    assert "context nowhere is not in the kubeconfig" in done.stdout
    # A context whose login the warehouse refuses: Unauthorized, in the API server's words.
    refused = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    refused["clusters"][-1]["cluster"]["server"] = remote.plane.server
    refused["users"][-1]["user"] = {"token": "not-a-token"}
    Path(env["KUBECONFIG"]).write_text(yaml.safe_dump(refused))
    done = orderflow(env, "describe", "order/o1", "-n", namespace)
    assert "context eu was refused at" in done.stdout
    assert "401 Unauthorized" in done.stdout
    assert tracking in done.stdout
