"""The cluster with a node (``orderflow cluster up --nodes``): it runs Pods, nothing it runs can
reach beyond the machine, a failed start says why, and ``down`` leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow.dev.cluster import node, tools
from orderflow.dev.cluster.node import NodeCluster, NodeError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a node needs root (make e2e runs these in CI)")


def kubectl(cluster: NodeCluster, *args: str) -> str:
    done = subprocess.run(
        [str(tools.ensure("kubectl")), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    started = NodeCluster.start(tmp_path_factory.mktemp("node") / "kubeconfig", log=print, die_with_parent=True)
    try:
        yield started
    finally:
        started.stop()


# One DNS question for an A record, asked from inside the node's network namespace.
_DNS_QUERY = """
import socket, struct, sys
name = sys.argv[1]
query = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(query, (sys.argv[2], 53))
answer = s.recv(512)
print(socket.inet_ntoa(answer[-4:]) if struct.unpack(">H", answer[6:8])[0] else "NXDOMAIN")
"""


def in_netns(cluster: NodeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", cluster.layout.netns, *args], capture_output=True, text=True, timeout=30
    )


def test_a_pod_runs_and_cluster_dns_and_the_kubernetes_service_work(cluster: NodeCluster) -> None:
    # The pause image is the only one a fresh node has; its Pod proves sandbox, CNI and kubelet.
    kubectl(cluster, "run", "p", "--image", node.PAUSE_IMAGE, "--image-pull-policy=Never")
    kubectl(cluster, "wait", "--for=condition=Ready", "pod/p", "--timeout=90s")
    assert kubectl(cluster, "get", "pod", "p", "-o", "jsonpath={.status.podIP}").startswith("10.244.0.")
    # What Kopf's in-cluster login needs: kubernetes.default.svc resolves to the Service, whose
    # address kube-proxy forwards to the API server.
    resolved = in_netns(cluster, "python3", "-c", _DNS_QUERY, "kubernetes.default.svc.cluster.local", node.NODE_IP)
    assert resolved.stdout.strip() == node.KUBERNETES_SERVICE_IP, resolved.stderr
    rules = in_netns(cluster, "iptables-save", "-t", "nat").stdout
    assert f"{node.KUBERNETES_SERVICE_IP}/32" in rules


def test_nothing_inside_can_reach_beyond_the_machine(cluster: NodeCluster) -> None:
    route = in_netns(cluster, "ip", "route", "show", "default").stdout
    assert route.strip().startswith("blackhole default")
    # A documentation address (TEST-NET-1) stands for any address off the machine.
    reach = in_netns(cluster, "python3", "-c", "import socket; socket.create_connection(('192.0.2.1', 443), timeout=3)")
    assert reach.returncode != 0
    assert "unreachable" in reach.stderr.lower() or "invalid argument" in reach.stderr.lower(), reach.stderr


def test_down_leaves_no_process_mount_namespace_cgroup_or_state(tmp_path: Path) -> None:
    cluster = NodeCluster.start(tmp_path / "kubeconfig", log=print, die_with_parent=True)
    kubectl(cluster, "run", "p", "--image", node.PAUSE_IMAGE, "--image-pull-policy=Never")
    kubectl(cluster, "wait", "--for=condition=Ready", "pod/p", "--timeout=90s")
    assert node.leftovers(cluster.layout)  # the check sees a running cluster...
    cluster.stop()
    assert node.leftovers(cluster.layout) == []  # ...and nothing once it is down


def test_a_failed_start_says_which_step_failed_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_ensure = tools.ensure

    def broken_kubelet(name: str, log: object = print) -> Path:
        return Path("/bin/false") if name == "kubelet" else real_ensure(name)

    monkeypatch.setattr(tools, "ensure", broken_kubelet)
    workdir = tmp_path / "node"
    namespaces_before = set(_orderflow_netns())
    with pytest.raises(NodeError, match="kubelet exited during start-up"):
        NodeCluster.start(tmp_path / "kubeconfig", log=print, workdir=workdir)
    assert not workdir.exists()
    assert set(_orderflow_netns()) == namespaces_before


def _orderflow_netns() -> list[str]:
    netns = Path("/run/netns")
    return [name for name in os.listdir(netns) if name.startswith("orderflow-")] if netns.is_dir() else []
