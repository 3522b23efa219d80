"""The local control plane is a real API server: each test here would fail against a fake one."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from orderflow.dev.testing.plugin import service_account_kubeconfig

GROUP = "test.orderflow.dev"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"sealed": {"type": "boolean"}, "size": {"type": "integer"}},
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "!has(oldSelf.sealed) || !oldSelf.sealed || self.sealed",
                                        "message": "a sealed widget stays sealed",
                                    }
                                ],
                            },
                            "status": {"type": "object", "properties": {"state": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widgets(kubectl: Any, api: Any) -> client.CustomObjectsApi:
    kubectl.apply(WIDGET_CRD)
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=60s")
    return client.CustomObjectsApi(api)


def _widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_cel_transition_rule_rejects_with_its_message(widgets: client.CustomObjectsApi, namespace: str) -> None:
    widgets.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("w", sealed=True))
    with pytest.raises(ApiException) as caught:
        widgets.patch_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w", {"spec": {"sealed": False}})
    assert caught.value.status == 422
    assert "a sealed widget stays sealed" in json.loads(caught.value.body)["message"]


def test_status_goes_only_through_the_status_subresource(widgets: client.CustomObjectsApi, namespace: str) -> None:
    widgets.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("w", size=1))
    after_main = widgets.patch_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", "w", {"status": {"state": "ignored"}}
    )
    assert "status" not in after_main or after_main["status"].get("state") != "ignored"
    after_status = widgets.patch_namespaced_custom_object_status(
        GROUP, "v1", namespace, "widgets", "w", {"status": {"state": "taken"}}
    )
    assert after_status["status"]["state"] == "taken"


def test_generation_moves_only_on_spec_changes(widgets: client.CustomObjectsApi, namespace: str) -> None:
    created = widgets.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("w", size=1))
    assert created["metadata"]["generation"] == 1
    status = widgets.patch_namespaced_custom_object_status(
        GROUP, "v1", namespace, "widgets", "w", {"status": {"state": "x"}}
    )
    assert status["metadata"]["generation"] == 1
    labelled = widgets.patch_namespaced_custom_object(
        GROUP, "v1", namespace, "widgets", "w", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    changed = widgets.patch_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w", {"spec": {"size": 2}})
    assert changed["metadata"]["generation"] == 2


def test_stale_resource_version_gets_409(widgets: client.CustomObjectsApi, namespace: str) -> None:
    created = widgets.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("w", size=1))
    stale = created["metadata"]["resourceVersion"]
    widgets.patch_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w", {"spec": {"size": 2}})
    with pytest.raises(ApiException) as caught:
        widgets.patch_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", "w", {"metadata": {"resourceVersion": stale}, "spec": {"size": 3}}
        )
    assert caught.value.status == 409


def test_a_watch_sees_a_change(widgets: client.CustomObjectsApi, namespace: str) -> None:
    created = widgets.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget("w", size=1))
    seen: list[dict[str, Any]] = []
    w = watch.Watch()

    def follow() -> None:
        for event in w.stream(
            widgets.list_namespaced_custom_object, GROUP, "v1", namespace, "widgets",
            resource_version=created["metadata"]["resourceVersion"], timeout_seconds=20,
        ):  # fmt: skip
            seen.append(event)
            if event["type"] == "MODIFIED":
                w.stop()

    follower = threading.Thread(target=follow)
    follower.start()
    widgets.patch_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w", {"spec": {"size": 5}})
    follower.join(timeout=25)
    assert [e["type"] for e in seen] == ["MODIFIED"]
    assert seen[0]["object"]["spec"]["size"] == 5


def test_rbac_is_enforced_with_a_real_service_account_token(
    kubectl: Any, namespace: str, control_plane: Any, tmp_path: Any
) -> None:
    kubectl("create", "serviceaccount", "reader", "-n", namespace)
    kubectl("create", "role", "reader", "--verb=get", "--resource=configmaps", "-n", namespace)
    kubectl("create", "rolebinding", "reader", "--role=reader", f"--serviceaccount={namespace}:reader", "-n", namespace)
    kubectl("create", "configmap", "c", "-n", namespace, "--from-literal=a=b")
    as_reader = service_account_kubeconfig(kubectl, control_plane.kubeconfig, namespace, "reader", tmp_path)
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(as_reader)))

    core.read_namespaced_config_map("c", namespace)  # get is granted
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace)
    assert caught.value.status == 403

    kubectl("create", "role", "lister", "--verb=list", "--resource=configmaps", "-n", namespace)
    kubectl("create", "rolebinding", "lister", "--role=lister", f"--serviceaccount={namespace}:reader", "-n", namespace)
    assert core.list_namespaced_config_map(namespace).items  # 200 once granted


def test_kubectl_and_helm_report_their_versions(kube_env: dict[str, str]) -> None:
    version = json.loads(
        subprocess.run(["kubectl", "version", "-o", "json"], env=kube_env, capture_output=True, text=True).stdout
    )
    assert version["serverVersion"]["major"] == "1"
    assert version["serverVersion"]["gitVersion"].startswith("v1.36.")
    helm = subprocess.run(["helm", "version", "--short"], env=kube_env, capture_output=True, text=True, check=True)
    assert helm.stdout.startswith("v3.")


def test_a_failed_start_says_why_and_leaves_nothing_running(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import socket

    from orderflow.dev.cluster import controlplane

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([controlplane.free_port(), controlplane.free_port(), taken.getsockname()[1]])
    monkeypatch.setattr(controlplane, "free_port", lambda: next(ports))
    spawned: list[controlplane.Process] = []
    real_spawn = controlplane.ControlPlane._spawn

    def spawn(self: controlplane.ControlPlane, *args: Any) -> controlplane.Process:
        spawned.append(real_spawn(self, *args))
        return spawned[-1]

    monkeypatch.setattr(controlplane.ControlPlane, "_spawn", spawn)
    with pytest.raises(controlplane.ControlPlaneError) as caught:
        controlplane.ControlPlane.start(tmp_path / "kubeconfig", log=lambda _: None)
    taken.close()
    assert "kube-apiserver exited during start-up" in str(caught.value)
    assert "address already in use" in str(caught.value)
    assert [p.name for p in spawned] == ["etcd", "kube-apiserver"]
    for process in spawned:
        assert process.popen is not None
        assert process.popen.returncode is not None  # exited and reaped: nothing left running
    assert not (tmp_path / "kubeconfig").exists()
