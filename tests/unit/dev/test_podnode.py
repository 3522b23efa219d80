"""The kind node tests/e2e reaches into: named by the environment e2e sets, its Pods' processes
found on this machine by their cgroup."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.dev.cluster import podnode

UID = "0b6c1c2e-9f1a-4d1e-8e0f-3a2b1c0d9e8f"


def test_a_kind_node_by_its_cluster_name() -> None:
    found = podnode.from_env({podnode.KIND_ENV: "orderflow"})
    assert isinstance(found, podnode.KindNode)
    assert found.container == "orderflow-control-plane"


def test_no_node_when_unset_or_empty() -> None:
    assert podnode.from_env({}) is None
    assert podnode.from_env({podnode.KIND_ENV: ""}) is None


def fake_proc(root: Path, pid: int, cgroup: str, cmdline: bytes) -> None:
    entry = root / str(pid)
    entry.mkdir()
    (entry / "cgroup").write_text(cgroup)
    (entry / "cmdline").write_bytes(cmdline)


def test_the_controller_is_found_by_its_pods_cgroup_under_either_driver(tmp_path: Path) -> None:
    v1 = f"12:memory:/kubelet/kubepods/burstable/pod{UID}/c0ffee\n1:name=systemd:/kubelet/x\n"
    fake_proc(tmp_path, 10, v1.replace(f"pod{UID}", "podother"), b"python\0-m\0orderflow\0run\0order\0")
    fake_proc(tmp_path, 11, v1, b"/pause\0")  # the sandbox: same Pod, not the controller
    fake_proc(tmp_path, 12, v1, b"/usr/local/bin/python\0/usr/local/bin/orderflow\0run\0order\0")
    (tmp_path / "self").mkdir()  # not a pid
    assert podnode.controller_process(UID, tmp_path) == (12, f"/kubelet/kubepods/burstable/pod{UID}/c0ffee")

    systemd = tmp_path / "systemd"
    systemd.mkdir()
    v2 = f"0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID.replace('-', '_')}.slice/cri.scope\n"
    fake_proc(systemd, 7, v2, b"orderflow\0run\0fulfillment\0")
    assert podnode.controller_process(UID, systemd) == (7, "")


def test_no_controller_says_where_to_run(tmp_path: Path) -> None:
    fake_proc(tmp_path, 5, "0::/user.slice\n", b"orderflow\0run\0order\0")
    with pytest.raises(RuntimeError, match="run this on the Pod's node"):
        podnode.controller_process(UID, tmp_path)
