"""The fulfillment chart's ``callers``: the side that owns the Fulfillments lets a named order
controller drive them in the namespaces this release serves, and nothing more (docs/targets.md).

The first tests read ``helm template``; the others apply the rendered grant to the real API server,
log in as the caller and let the server's own RBAC say what it may do.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow.dev.testing.plugin import REPO, Cluster, Kubectl, service_account_kubeconfig, wait_for

from .conftest import INSTALLED, Helm
from .test_user_flow import render

CHART = "fulfillment-controller"
FULLNAME = f"t-{CHART}"  # render() names the release "t"
RELEASE_NAMESPACE = "orderflow-system"  # where render() installs
# Everything an order controller does to a Fulfillment: start it (create), follow it (get, list,
# watch), signal it through its spec (patch), delete it (deletionPolicy Delete). Never its status.
VERBS = ["get", "list", "watch", "create", "patch", "delete"]
GRANTED = {"apiGroups": ["orderflow.dev"], "resources": ["fulfillments"], "verbs": VERBS}
SAME_CLUSTER = {"name": "shop", "serviceAccount": {"name": "order-controller", "namespace": "shop"}}
REMOTE = {"name": "shop-eu", "serviceAccount": {"create": True}}

local_only = pytest.mark.skipif(bool(INSTALLED), reason="applies the CRDs and the grant itself")


def with_callers(callers: list[dict[str, Any]], *args: str) -> tuple[str, ...]:
    return ("--set-json", f"callers={json.dumps(callers)}", *args)


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def added(helm: Helm, callers: list[dict[str, Any]], *args: str) -> list[dict[str, Any]]:
    """What ``callers`` render beyond what the chart renders with the same other values."""
    base = {key(d) for d in render(helm, CHART, *args)}
    return [d for d in render(helm, CHART, *args, *with_callers(callers)) if key(d) not in base]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return sorted((d for d in docs if d["kind"] == kind), key=key)


# -- what the chart renders -------------------------------------------------------------------


def test_no_callers_grant_nothing(helm: Helm) -> None:
    assert render(helm, CHART, *with_callers([])) == render(helm, CHART)
    assert not [d for d in render(helm, CHART) if "-caller-" in d["metadata"]["name"]]


def test_a_same_cluster_caller_gets_a_role_in_each_watched_namespace(helm: Helm) -> None:
    docs = added(helm, [SAME_CLUSTER], "--set", "watchNamespaces={warehouse-a,warehouse-b}")
    roles, bindings = by_kind(docs, "Role"), by_kind(docs, "RoleBinding")
    assert sorted(key(d) for d in docs) == sorted(
        key(d) for d in roles + bindings
    )  # nothing else, nothing cluster-wide
    assert [key(r) for r in roles] == [
        ("Role", "warehouse-a", f"{FULLNAME}-caller-shop"),
        ("Role", "warehouse-b", f"{FULLNAME}-caller-shop"),
    ]
    for role in roles:
        assert role["rules"] == [GRANTED]
    assert [b["metadata"]["namespace"] for b in bindings] == ["warehouse-a", "warehouse-b"]
    for binding in bindings:
        assert binding["metadata"]["name"] == f"{FULLNAME}-caller-shop"
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"{FULLNAME}-caller-shop",
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "order-controller", "namespace": "shop"}]


def test_without_watch_namespaces_the_grant_is_in_the_release_namespace_only(helm: Helm) -> None:
    # The controller then watches all namespaces, but a caller is never granted cluster-wide.
    docs = added(helm, [SAME_CLUSTER])
    assert sorted(key(d) for d in docs) == [
        ("Role", RELEASE_NAMESPACE, f"{FULLNAME}-caller-shop"),
        ("RoleBinding", RELEASE_NAMESPACE, f"{FULLNAME}-caller-shop"),
    ]


def test_a_caller_in_another_cluster_gets_a_service_account_and_a_token_secret(helm: Helm) -> None:
    docs = added(helm, [REMOTE], "--set", "watchNamespaces={warehouse-a}")
    name = f"{FULLNAME}-caller-shop-eu"
    (account,) = by_kind(docs, "ServiceAccount")
    assert key(account) == ("ServiceAccount", RELEASE_NAMESPACE, name)
    (secret,) = by_kind(docs, "Secret")
    assert secret["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == name
    assert "data" not in secret  # the token controller fills it
    assert "stringData" not in secret
    (role,) = by_kind(docs, "Role")
    assert key(role) == ("Role", "warehouse-a", name)
    assert role["rules"] == [GRANTED]
    (binding,) = by_kind(docs, "RoleBinding")
    assert binding["metadata"]["namespace"] == "warehouse-a"
    assert binding["roleRef"]["name"] == name
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": RELEASE_NAMESPACE}]
    assert len(docs) == 4


def test_the_notes_say_how_to_hand_a_remote_caller_its_kubeconfig(helm: Helm) -> None:
    # Without the CRD: a dry run still checks who owns what it would make, and where the charts are
    # installed (make e2e, kind) the CRD belongs to that release.
    args = with_callers([REMOTE, SAME_CLUSTER], "--set", "watchNamespaces={warehouse-a}", "--set", "crds.install=false")
    done = helm("install", "t", str(REPO / "charts" / CHART), "-n", RELEASE_NAMESPACE, "--dry-run=client", *args)
    notes = done.stdout.split("NOTES:", 1)[1]
    secret = f"{FULLNAME}-caller-shop-eu-token"
    assert f"kubectl get secret -n {RELEASE_NAMESPACE} {secret} -o jsonpath='{{.data.token}}'" in notes
    assert f"kubectl get secret -n {RELEASE_NAMESPACE} {secret} -o jsonpath='{{.data.ca\\.crt}}'" in notes
    assert "kind get kubeconfig --internal --name" in notes
    assert "kubectl create secret generic warehouse-kubeconfig --from-file=kubeconfig=" in notes
    assert "exec" in notes  # refused by the order controller, as auth-provider is
    assert "auth-provider" in notes
    assert "shop/order-controller" in notes  # the same-cluster caller is named too


@pytest.mark.parametrize(
    ("callers", "says"),
    [
        ([{"name": "Shop_1", "serviceAccount": {"create": True}}], "/callers/0/name"),
        ([{"serviceAccount": {"create": True}}], "/callers/0"),
        ([{"name": "shop"}], "/callers/0"),
        ([{"name": "shop", "serviceAccount": {"name": "order-controller"}}], "/callers/0/serviceAccount"),
        (
            [{"name": "shop", "serviceAccount": {"create": True, "name": "x", "namespace": "y"}}],
            "/callers/0/serviceAccount",
        ),
        ([{"name": "shop", "serviceAccount": {"create": False}}], "/callers/0/serviceAccount"),
        ([SAME_CLUSTER | {"verbs": ["update"]}], "/callers/0"),
    ],
)
def test_a_bad_caller_is_rejected_naming_the_value(helm: Helm, callers: list[dict[str, Any]], says: str) -> None:
    done = helm.template(CHART, *with_callers(callers), check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert says in done.stderr


def test_two_callers_of_the_same_name_are_rejected(helm: Helm) -> None:
    done = helm.template(CHART, *with_callers([SAME_CLUSTER, REMOTE | {"name": "shop"}]), check=False)
    assert done.returncode != 0
    assert 'callers: two entries are named "shop"' in done.stderr


# -- what the API server lets the caller do ---------------------------------------------------


def as_caller(kubectl: Kubectl, control_plane: Cluster, namespace: str, account: str, tmp_path: Path) -> Kubectl:
    # A TokenRequest token of the ServiceAccount: what its Secret's token would authenticate as.
    config = service_account_kubeconfig(kubectl, control_plane.kubeconfig, namespace, account, tmp_path)
    return Kubectl({**kubectl.env, "KUBECONFIG": str(config)})


def refused(done: Any) -> bool:
    return bool(done.returncode != 0 and "(Forbidden)" in done.stderr)


def drives_fulfillments_and_nothing_more(admin: Kubectl, caller: Kubectl, namespace: str) -> None:
    """Each verb granted works, as the order controller uses it; everything else is a 403."""
    ns = ("-n", namespace)
    caller("create", *ns, "-f", str(REPO / "examples" / "fulfillment.yaml"))
    assert caller.json("get", *ns, "fulfillment", "parcel-7")["metadata"]["name"] == "parcel-7"
    assert [f["metadata"]["name"] for f in caller.json("get", *ns, "fulfillments")["items"]] == ["parcel-7"]
    # A watch request that the server ends after a second, having sent the ADDED event.
    path = f"/apis/orderflow.dev/v1alpha1/namespaces/{namespace}/fulfillments?watch=true&timeoutSeconds=1"
    assert '"type":"ADDED"' in caller("get", "--raw", path).stdout.replace(" ", "")
    caller("patch", *ns, "fulfillment", "parcel-7", "--type", "merge", "-p", '{"spec":{"started":true}}')
    assert admin.json("get", *ns, "fulfillment", "parcel-7")["spec"]["started"] is True

    # The status is the fulfillment controller's alone.
    status = '{"status":{"phase":"Shipped"}}'
    patch_status = ("patch", *ns, "fulfillment", "parcel-7", "--subresource=status", "--type", "merge", "-p", status)
    assert refused(caller(*patch_status, check=False))
    assert admin.json("get", *ns, "fulfillment", "parcel-7").get("status", {}).get("phase") != "Shipped"
    assert refused(caller("get", *ns, "orders", check=False))
    assert refused(caller("get", *ns, "secrets", check=False))
    # Events on Orders are the order controller's, in its own cluster: none in the target.
    about = {"apiVersion": "orderflow.dev/v1alpha1", "kind": "Fulfillment", "name": "parcel-7", "namespace": namespace}
    event = {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "parcel-7.signal"}, "involvedObject": about,
        "reason": "SignalSent", "message": "started", "type": "Normal",
    }  # fmt: skip
    assert refused(caller("create", *ns, "-f", "-", input=json.dumps(event), check=False))
    assert refused(caller("get", "-n", "default", "fulfillments", check=False))  # only where granted

    caller("delete", *ns, "fulfillment", "parcel-7", "--wait=false")
    wait_for(
        lambda: admin("get", *ns, "fulfillment", "parcel-7", "--ignore-not-found", "-o", "name").stdout,
        lambda out: out.strip() == "",
        timeout=30,
        what="the Fulfillment to be gone",
    )


@local_only
def test_a_same_cluster_caller_drives_fulfillments_and_nothing_more(
    helm: Helm, kubectl: Kubectl, namespace: str, control_plane: Cluster, crds_installed: None, tmp_path: Path
) -> None:
    shop = f"{namespace[:57]}-shop"  # the order controller's own namespace
    kubectl("create", "namespace", shop)
    try:
        kubectl("create", "serviceaccount", "order-controller", "-n", shop)
        caller = {"name": "shop", "serviceAccount": {"name": "order-controller", "namespace": shop}}
        for doc in added(helm, [caller], "--set", f"watchNamespaces={{{namespace}}}"):
            kubectl.apply(doc)
        drives_fulfillments_and_nothing_more(
            kubectl, as_caller(kubectl, control_plane, shop, "order-controller", tmp_path), namespace
        )
    finally:
        kubectl("delete", "namespace", shop, "--wait=false", check=False)


@local_only
def test_a_caller_in_another_cluster_drives_fulfillments_and_nothing_more(
    helm: Helm, kubectl: Kubectl, namespace: str, control_plane: Cluster, crds_installed: None, tmp_path: Path
) -> None:
    # Installed into `namespace` with no watchNamespaces: the grant is in the release namespace.
    for doc in added(helm, [REMOTE], "-n", namespace):
        kubectl.apply(doc)
    account = f"{FULLNAME}-caller-shop-eu"
    secret = kubectl.json("get", "secret", "-n", namespace, f"{account}-token")
    assert secret["type"] == "kubernetes.io/service-account-token"  # accepted by the API server
    # On a real cluster (kind) the controller-manager's token controller fills the Secret with a
    # token of the ServiceAccount, and that is what the fulfillment team hands over (NOTES.txt);
    # the e2e-on-kind work covers it. This control plane has no controller-manager, so the same
    # ServiceAccount logs in with a TokenRequest token: the RBAC under test is the same.
    token = kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    # The kubeconfig built as NOTES.txt and docs/targets.md say, from the server, its CA and the token.
    admin = yaml.safe_load(control_plane.kubeconfig.read_text())["clusters"][0]["cluster"]
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(admin["certificate-authority-data"]))
    config = str(tmp_path / "warehouse.kubeconfig")
    caller = Kubectl({**kubectl.env, "KUBECONFIG": config})
    ca = f"--certificate-authority={tmp_path / 'ca.crt'}"
    caller("config", "set-cluster", "warehouse", f"--server={admin['server']}", ca, "--embed-certs=true")
    caller("config", "set-credentials", "shop-eu", f"--token={token}")
    caller("config", "set-context", "warehouse", "--cluster=warehouse", "--user=shop-eu", f"--namespace={namespace}")
    caller("config", "use-context", "warehouse")
    (tmp_path / "ca.crt").unlink()  # the kubeconfig stands alone, as the one kept in a Secret must
    drives_fulfillments_and_nothing_more(kubectl, caller, namespace)
