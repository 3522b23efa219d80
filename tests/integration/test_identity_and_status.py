"""Never act on what is not ours, fixed fields that stay fixed, every error on the object, and
states kstatus recognises: each case once broke, and is checked here on the real API server."""

from __future__ import annotations

import json
import subprocess

import pykube
import pytest

from orderflow.dev import manifests
from orderflow.dev.cluster import tools
from orderflow.dev.testing.plugin import REPO, Cluster, Controllers, CustomResources, Kubectl, wait_for
from orderflow.runtime.client import Kube
from orderflow.runtime.pure.errors import Conflict

from .test_order_controller import condition, order, patch


@pytest.fixture
def both(controllers: Controllers, namespace: str) -> Controllers:
    controllers.start("fulfillment", "--namespace", namespace)
    controllers.start("order", "--namespace", namespace, "--ack-timeout", "3")
    return controllers


hand_made = manifests.fulfillment  # a Fulfillment no Order made: a stranger's, to the order controller


def stalled_reason(crs: CustomResources, name: str) -> str | None:
    return condition(crs.get("orders", name), "Stalled").get("reason") if crs.get("orders", name) else None


def events_of(kubectl: Kubectl, ns: str, name: str) -> list[str]:
    items = kubectl.json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [e["reason"] for e in items if e["involvedObject"]["kind"] == "Order"]


# 1. Deleting an Order refused for a taken name never touches the stranger's Fulfillment.
@pytest.mark.parametrize("policy", ["Cancel", "Delete"])
def test_deleting_an_order_whose_name_was_taken_leaves_the_strangers_fulfillment(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources, policy: str
) -> None:
    kubectl.apply(hand_made("taken"), "-n", namespace)
    kubectl.apply(order("taken", deletionPolicy=policy), "-n", namespace)
    wait_for(lambda: stalled_reason(crs, "taken"), lambda r: r == "FulfillmentNameTaken", what="NameTaken")
    kubectl("delete", "order", "taken", "-n", namespace, "--timeout=30s")
    stranger = crs.get("fulfillments", "taken")
    assert stranger, f"policy {policy} deleted the stranger's Fulfillment"
    assert stranger["spec"].get("cancelled") is not True


# 1b. A delete decided about one object (policy Delete) names its uid: the API server refuses it
# for a same-name replacement the controller's cache has not shown yet.
def test_a_delete_for_one_object_never_removes_another_of_its_name(
    control_plane: Cluster, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(hand_made("same"), "-n", namespace)
    first_uid = crs.get("fulfillments", "same")["metadata"]["uid"]
    kubectl("delete", "fulfillment", "same", "-n", namespace)
    kubectl.apply(hand_made("same"), "-n", namespace)
    kube = Kube(pykube.HTTPClient(pykube.KubeConfig.from_file(str(control_plane.kubeconfig))))
    with pytest.raises(Conflict, match=r"[Pp]recondition"):
        kube.delete("fulfillments", namespace, "same", None, first_uid)
    assert crs.get("fulfillments", "same")["metadata"]["uid"] != first_uid  # still there


# 2. A new Fulfillment of the same name, after ours was deleted, is never adopted.
def test_a_new_same_name_fulfillment_is_reported_never_mirrored_or_signalled(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("o2", picking=60), "-n", namespace)
    wait_for(lambda: crs.get("orders", "o2").get("status", {}).get("fulfillment", {}).get("uid"), what="uid")
    kubectl("delete", "fulfillment", "o2", "-n", namespace)
    wait_for(lambda: stalled_reason(crs, "o2"), lambda r: r == "FulfillmentMissing", what="FulfillmentMissing")
    kubectl.apply(hand_made("o2", started=True, stepDurationSeconds={"picking": 0, "packing": 0}), "-n", namespace)
    wait_for(lambda: stalled_reason(crs, "o2"), lambda r: r == "FulfillmentReplaced", what="FulfillmentReplaced")
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/o2", "--timeout=30s")  # it ships
    patch(kubectl, namespace, "order", "o2", '{"paused": true, "cancelled": true}')
    o = wait_for(lambda: crs.get("orders", "o2"), lambda o: o["status"]["observedGeneration"] == 2, what="gen 2")
    assert o["status"]["phase"] != "Completed"  # the stranger shipped; this order did not
    assert o["status"]["fulfillment"].get("trackingNumber") is None
    stranger = crs.get("fulfillments", "o2")
    assert stranger["metadata"]["generation"] == 1  # never signalled
    assert "FulfillmentReplaced" in events_of(kubectl, namespace, "o2")


# 3. Every valid Order name works: the label derived from it is always a valid label value.
def test_an_order_with_a_long_name_starts_and_completes(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    name = "a-very-long-order-name-" + "x" * 150
    kubectl.apply(order(name), "-n", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", f"order/{name}", "--timeout=60s")
    label = crs.get("fulfillments", name)["metadata"]["labels"]["orderflow.dev/order"]
    assert len(label) <= 63


# 3'. An error the API server gives that retrying cannot mend ends on the Order, with its words.
def test_a_create_the_api_server_refuses_is_a_condition_and_a_warning(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": f"no-embargoed-{namespace}"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["orderflow.dev"], "apiVersions": ["*"],
                                                    "operations": ["CREATE"], "resources": ["fulfillments"]}]},
            "validations": [{"expression": "!object.spec.items.exists(i, i.sku == 'EMBARGOED')",
                             "message": "EMBARGOED goods cannot be fulfilled", "reason": "Invalid"}],
        },
    }  # fmt: skip
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": f"no-embargoed-{namespace}"},
        "spec": {"policyName": f"no-embargoed-{namespace}", "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}},
    }  # fmt: skip
    kubectl.apply(policy)
    kubectl.apply(binding)
    try:
        embargoed = [{"sku": "EMBARGOED", "quantity": 1}]
        wait_for(  # the API server enforces a new policy a moment after it is created
            lambda: kubectl.apply(
                hand_made("probe", items=embargoed), "-n", namespace, "--dry-run=server", check=False
            ),
            lambda done: done.returncode != 0,
            what="the admission policy to be enforced",
        )
        kubectl.apply(order("embargo", items=embargoed), "-n", namespace)
        wait_for(lambda: stalled_reason(crs, "embargo"), lambda r: r == "FulfillmentRejected", what="Rejected")
        o = crs.get("orders", "embargo")
        assert "EMBARGOED goods cannot be fulfilled" in condition(o, "Ready")["message"]
        assert "FulfillmentRejected" in events_of(kubectl, namespace, "embargo")
    finally:
        kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", f"no-embargoed-{namespace}")


# 4. What defines an order is fixed once its Fulfillment exists; the API server says so.
def test_fixed_fields_are_refused_once_the_fulfillment_exists(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    too_big = order("big", items=[{"sku": "A-1", "quantity": 1001}], picking=60)
    kubectl.apply(too_big, "-n", namespace)
    wait_for(lambda: crs.get("orders", "big").get("status", {}).get("phase"), lambda p: p == "Invalid", what="Invalid")
    patch(kubectl, namespace, "order", "big", '{"items": [{"sku": "A-1", "quantity": 1}]}')  # allowed: fixing it
    wait_for(lambda: crs.get("orders", "big")["status"].get("fulfillment"), what="the Fulfillment to exist")
    before = crs.get("orders", "big")
    for change in ('{"items": [{"sku": "A-1", "quantity": 1000}]}', '{"customerEmail": "x@example.com"}',
                   '{"stepDurationSeconds": {"picking": 0}}'):  # fmt: skip
        refused = kubectl("patch", "-n", namespace, "order", "big", "--type", "merge", "-p",
                          '{"spec":' + change + "}", check=False)  # fmt: skip
        assert refused.returncode != 0, change
        assert "is fixed once the order's Fulfillment exists" in refused.stderr
    after = crs.get("orders", "big")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    patch(kubectl, namespace, "order", "big", '{"paused": true}')  # signals still go through
    fulfillment_refused = kubectl("patch", "-n", namespace, "fulfillment", "big", "--type", "merge", "-p",
                                  '{"spec": {"items": [{"sku": "A-1", "quantity": 5}]}}', check=False)  # fmt: skip
    assert fulfillment_refused.returncode != 0
    assert "is fixed once the fulfillment has started" in fulfillment_refused.stderr


# 6. Status and text are input too.
def test_a_clock_in_the_future_does_not_stop_the_step(
    controllers: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(
        hand_made("skewed", started=True, stepDurationSeconds={"picking": 600, "packing": 0}), "-n", namespace
    )
    fulfillment = controllers.start("fulfillment", "--namespace", namespace)
    wait_for(lambda: crs.get("fulfillments", "skewed").get("status", {}).get("phase"), lambda p: p == "Picking")
    fulfillment.stop()
    crs.patch("fulfillments", "skewed", {"status": {"stepResumedAt": "2099-01-01T00:00:00Z",
                                                    "stepElapsedSeconds": 599.5}}, status=True)  # fmt: skip
    controllers.start("fulfillment", "--namespace", namespace)
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/skewed", "--timeout=30s")
    reasons = kubectl.json("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=skewed")["items"]
    assert "ClockInFuture" in [e["reason"] for e in reasons]


def test_shipped_written_by_hand_without_a_tracking_number_is_reported(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("o6", picking=600), "-n", namespace)
    wait_for(lambda: crs.get("fulfillments", "o6").get("status", {}).get("phase"), lambda p: p == "Picking")
    crs.patch("fulfillments", "o6", {"status": {"phase": "Shipped"}}, status=True)
    wait_for(lambda: stalled_reason(crs, "o6"), lambda r: r == "FulfillmentStatusInconsistent", what="reported")
    o = crs.get("orders", "o6")
    assert o["status"]["phase"] != "Completed"
    assert all("None" not in c["message"] for c in o["status"]["conditions"])


@pytest.mark.parametrize(
    ("forged", "why"),
    [
        ({"phase": "Shipped", "trackingNumber": "OF000000000000", "completedAt": "2026-01-01T00:00:00Z"},
         "tracking number that is not its own"),
        ({"phase": "Cancelled", "completedAt": "2026-01-01T00:00:00Z"}, "spec.cancelled is not true"),
    ],
    ids=["shipped", "cancelled"],
)  # fmt: skip
def test_a_forged_final_phase_is_reported_and_deletes_nothing(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources, forged: dict[str, str], why: str
) -> None:
    kubectl.apply(order("forged", picking=600, deletionPolicy="Delete", ttlSecondsAfterFinished=0), "-n", namespace)
    wait_for(lambda: crs.get("fulfillments", "forged").get("status", {}).get("phase"), lambda p: p == "Picking")
    crs.patch("fulfillments", "forged", {"status": forged}, status=True)
    wait_for(lambda: stalled_reason(crs, "forged"), lambda r: r == "FulfillmentStatusInconsistent", what="reported")
    assert why in condition(crs.get("orders", "forged"), "Stalled")["message"]
    assert crs.get("orders", "forged")["status"]["phase"] == "Fulfilling"
    assert "completedAt" not in crs.get("orders", "forged")["status"]
    assert crs.find("fulfillments", "forged") is not None  # nothing expired, nothing deleted


def test_a_completed_at_written_by_hand_is_cleared_and_retention_counts_from_the_real_end(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("early", picking=3, ttlSecondsAfterFinished=3600), "-n", namespace)
    wait_for(lambda: crs.get("orders", "early").get("status", {}).get("phase"), lambda p: p == "Fulfilling")
    crs.patch("orders", "early", {"status": {"completedAt": "2026-01-01T00:00:00Z"}}, status=True)
    kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Completed", "order/early", "--timeout=60s")
    finished = crs.get("orders", "early")["status"]["completedAt"]
    assert finished > "2026-01-02", finished  # the real end, not the forged one
    assert crs.find("orders", "early") is not None  # an hour to live, not already gone


@pytest.mark.parametrize("street", ["\u200b", " ", "\u200b\u200b \t"])
def test_a_street_with_nothing_visible_is_refused(kubectl: Kubectl, namespace: str, street: str) -> None:
    bad = order("blank", shippingAddress={**manifests.ADDRESS, "street": street}, validate=False)
    done = kubectl.apply(bad, "-n", namespace, check=False)
    assert done.returncode != 0
    assert "spec.shippingAddress.street" in done.stderr


def test_skus_are_not_case_sensitive(kubectl: Kubectl, namespace: str) -> None:
    # The model does not know this rule (it is CEL, the API server's): sent as written all the same.
    twice = order("twice", items=[{"sku": "pen-1", "quantity": 1}, {"sku": "PEN-1", "quantity": 2}], validate=False)
    done = kubectl.apply(twice, "-n", namespace, check=False)
    assert done.returncode != 0
    assert "each SKU may appear only once" in done.stderr


# 5. Every state, read by the real kstatus library and by Argo CD's health check (in gopher-lua,
# Argo CD's interpreter) on live objects; `kubectl wait` for each end.
ARGO_HEALTH = REPO / "gitops" / "argocd" / "health.lua"


def read_as(tool: list[str], kubectl: Kubectl, ns: str, kind: str, *names: str) -> dict[str, str]:
    objects = [kubectl.json("get", kind, name, "-n", ns) for name in names]
    done = subprocess.run(tool, input=json.dumps(objects), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {r["name"]: r["status"] for r in json.loads(done.stdout)}


def kstatus(kubectl: Kubectl, ns: str, kind: str, *names: str) -> dict[str, str]:
    return read_as([str(tools.ensure("kstatus"))], kubectl, ns, kind, *names)


def argo_health(kubectl: Kubectl, ns: str, kind: str, *names: str) -> dict[str, str]:
    return read_as([str(tools.ensure("lua-health")), str(ARGO_HEALTH)], kubectl, ns, kind, *names)


def test_kstatus_reads_every_state_as_the_docs_table_says(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("done"), "-n", namespace)
    kubectl.apply(order("running", picking=600), "-n", namespace)
    kubectl.apply(order("paused", picking=600, paused=True), "-n", namespace)
    kubectl.apply(order("cancelled", picking=600), "-n", namespace)
    kubectl.apply(order("failed", picking=600), "-n", namespace)
    kubectl.apply(order("invalid", items=[{"sku": "A-1", "quantity": 1001}]), "-n", namespace)
    kubectl.apply(order("elsewhere", picking=600), "-n", namespace)
    kubectl.apply(hand_made("not-started"), "-n", namespace)
    kubectl.apply(order("late"), "-n", namespace)
    wait_for(lambda: crs.get("orders", "late").get("status", {}).get("phase"), lambda p: p == "Completed")
    patch(kubectl, namespace, "order", "late", '{"cancelled": true}')  # after it shipped: refused, said
    wait_for(lambda: condition(crs.get("orders", "late"), "Ready").get("message", ""), lambda m: "too late" in m,
             what="the late cancel said in Ready")  # fmt: skip
    for name in ("cancelled", "elsewhere", "failed"):
        wait_for(lambda n=name: crs.get("fulfillments", n).get("status", {}).get("phase"), lambda p: p == "Picking",
                 what=f"{name} Picking")  # fmt: skip
    patch(kubectl, namespace, "order", "cancelled", '{"cancelled": true}')
    patch(kubectl, namespace, "fulfillment", "elsewhere", '{"cancelled": true}')
    crs.patch("fulfillments", "failed", {"status": {"phase": "Failed", "failureMessage": "dropped"}}, status=True)

    # Each terminal or waiting state is one `kubectl wait` away.
    for name in ("done", "cancelled", "paused"):
        kubectl("wait", "-n", namespace, "--for=condition=Ready", f"order/{name}", "--timeout=60s")
    for name in ("elsewhere", "invalid", "failed"):
        kubectl("wait", "-n", namespace, "--for=condition=Stalled", f"order/{name}", "--timeout=60s")
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "fulfillment/not-started", "--timeout=60s")

    orders = kstatus(kubectl, namespace, "order", "done", "running", "paused", "cancelled", "failed", "invalid",
                     "elsewhere", "late")  # fmt: skip
    assert orders == {
        "done": "Current", "running": "InProgress", "paused": "Current", "cancelled": "Current",
        "failed": "Failed", "invalid": "Failed", "elsewhere": "Failed", "late": "Current",
    }  # fmt: skip
    fulfillments = kstatus(kubectl, namespace, "fulfillment", "done", "running", "paused", "cancelled",
                           "elsewhere", "not-started")  # fmt: skip
    assert fulfillments == {
        "done": "Current", "running": "InProgress", "paused": "Current", "cancelled": "Current",
        "elsewhere": "Current", "not-started": "Current",
    }  # fmt: skip
    assert argo_health(kubectl, namespace, "order", *orders) == {
        "done": "Healthy", "running": "Progressing", "paused": "Suspended", "cancelled": "Healthy",
        "failed": "Degraded", "invalid": "Degraded", "elsewhere": "Degraded", "late": "Healthy",
    }  # fmt: skip
    assert argo_health(kubectl, namespace, "fulfillment", *fulfillments) == {
        "done": "Healthy", "running": "Progressing", "paused": "Suspended", "cancelled": "Healthy",
        "elsewhere": "Healthy", "not-started": "Suspended",
    }  # fmt: skip
    # A paused or cancelled order in a batch no longer sinks `kubectl wait --all`.
    kubectl("delete", "order", "running", "invalid", "elsewhere", "failed", "-n", namespace, "--timeout=60s")
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "order", "--all", "--timeout=60s")


# 9. Each controller writes under its own name, so managedFields, server-side apply conflicts and
# audit logs say which one wrote: never the client library's, which both would share.
def test_each_controller_writes_as_its_own_field_manager(
    both: Controllers, kubectl: Kubectl, namespace: str, crs: CustomResources
) -> None:
    kubectl.apply(order("named", picking=0, packing=0), "-n", namespace)
    wait_for(lambda: crs.get("orders", "named").get("status", {}).get("phase"), lambda p: p == "Completed")

    def managers(obj: dict[str, object]) -> set[tuple[str, str]]:
        fields = obj["metadata"]["managedFields"]  # type: ignore[index]
        return {(f["manager"], f.get("subresource", "")) for f in fields}  # type: ignore[union-attr]

    assert ("order-controller", "") in managers(crs.get("fulfillments", "named"))  # it made it
    assert ("fulfillment-controller", "status") in managers(crs.get("fulfillments", "named"))
    assert ("order-controller", "status") in managers(crs.get("orders", "named"))
    everyone = managers(crs.get("fulfillments", "named")) | managers(crs.get("orders", "named"))
    assert not [m for m, _ in everyone if m.startswith("pykube")], everyone
