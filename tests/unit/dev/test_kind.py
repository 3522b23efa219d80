"""The pure parts of ``orderflow kind``: kubeadm's image list, kind's config, the node's files,
what ``down`` may delete, what the host lacks, and the rule that a node address is used only when
the host routes it through the kind bridge."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from orderflow.dev.cluster import kind

REPO = Path(__file__).parents[3]

KUBEADM_LIST = """\
registry.k8s.io/kube-apiserver:v1.36.3
registry.k8s.io/kube-controller-manager:v1.36.3
registry.k8s.io/kube-scheduler:v1.36.3
registry.k8s.io/kube-proxy:v1.36.3
registry.k8s.io/coredns/coredns:v1.14.2
registry.k8s.io/pause:3.10.2
registry.k8s.io/etcd:3.6.8-0
"""


def test_kubeadms_image_list_is_read_by_component_name() -> None:
    found = kind.parse_image_list(KUBEADM_LIST)
    assert found["coredns"] == "registry.k8s.io/coredns/coredns:v1.14.2"
    assert found["etcd"] == "registry.k8s.io/etcd:3.6.8-0"
    assert len(found) == 7


def test_an_image_list_of_another_shape_is_refused_with_what_it_listed() -> None:
    with pytest.raises(kind.KindError, match=r"kubeadm lists images \[.*'kube-apiserver'.*\], expected"):
        kind.parse_image_list(KUBEADM_LIST.replace("registry.k8s.io/pause:3.10.2\n", ""))


def test_the_cluster_is_named_as_kind_config_yaml_names_it(tmp_path: Path) -> None:
    assert kind.cluster_name(REPO / "kind-config.yaml") == "orderflow"
    unnamed = tmp_path / "kind.yaml"
    unnamed.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    assert kind.cluster_name(unnamed) == "kind"  # kind's own default
    with pytest.raises(kind.KindError, match="cannot read the kind config"):
        kind.cluster_name(tmp_path / "missing.yaml")


def test_containerds_config_parses_and_keeps_what_this_vm_needs() -> None:
    config = tomllib.loads(kind.containerd_config("registry.k8s.io/pause:3.10.2"))
    assert config["version"] == 3
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.10.2"


def test_the_static_cni_config_hands_out_the_nodes_pod_range_without_masquerading() -> None:
    conflist = json.loads(kind.cni_config())
    ptp = conflist["plugins"][0]
    assert ptp["type"] == "ptp"
    assert ptp["ipMasq"] is False  # nothing a Pod sends is rewritten to leave by the node
    assert ptp["ipam"]["ranges"] == [[{"subnet": kind.POD_RANGE, "gateway": kind.POD_GATEWAY}]]


NETAVARK_ONLY = """\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:NETAVARK-HOSTPORT-DNAT - [0:0]
-A PREROUTING -j NETAVARK-HOSTPORT-DNAT
-A NETAVARK-HOSTPORT-DNAT -p tcp --dport 6443 -j DNAT
COMMIT
"""


def test_down_deletes_a_table_only_when_netavark_is_all_it_holds() -> None:
    assert kind.netavark_only(NETAVARK_ONLY)
    # Somebody else's rule in a built-in chain, or a chain of their own: the table stays.
    assert not kind.netavark_only(NETAVARK_ONLY.replace("COMMIT", "-A POSTROUTING -j MASQUERADE\nCOMMIT"))
    assert not kind.netavark_only(NETAVARK_ONLY.replace("COMMIT", ":DOCKER - [0:0]\nCOMMIT"))


def test_a_host_without_the_tools_is_told_all_it_lacks_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kind.shutil, "which", lambda command: None)
    monkeypatch.setattr(kind.os, "geteuid", lambda: 1000)
    with pytest.raises(kind.KindError) as raised:
        kind.check_host()
    message = str(raised.value)
    assert "buildah, mmdebstrap, podman not found on PATH" in message
    assert kind.APT_INSTALL in message
    assert "crun" not in kind.APT_INSTALL
    assert "go not found on PATH" in message
    assert "run as root" in message


def fake_podman(monkeypatch: pytest.MonkeyPatch, route: str) -> None:
    answers = {
        ("inspect",): "10.89.0.2 \n",
        ("network", "inspect"): json.dumps([{"name": "kind", "internal": True, "network_interface": "podman1"}]),
    }

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        out = answers[args[:2]] if args[:2] in answers else answers[args[:1]]
        return subprocess.CompletedProcess(["podman", *args], 0, out, "")

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert argv == ["ip", "route", "get", "10.89.0.2"]
        return subprocess.CompletedProcess(argv, 0, route, "")

    monkeypatch.setattr(kind, "_podman", podman)
    monkeypatch.setattr(kind.subprocess, "run", run)


def test_the_node_address_is_used_when_the_host_routes_it_through_the_kind_bridge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_podman(monkeypatch, "10.89.0.2 dev podman1 src 10.89.0.1 uid 0 \n    cache \n")
    assert kind.node_address("orderflow") == "10.89.0.2"


def test_a_node_address_the_default_route_would_carry_off_the_machine_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_podman(monkeypatch, "10.89.0.2 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0 \n    cache \n")
    with pytest.raises(kind.KindError, match=r"does not route 10\.89\.0\.2 through the kind bridge \(podman1\)"):
        kind.node_address("orderflow")
