"""The kind node that runs tests/e2e's Pods, as the tests reach it from the host.

Three tests act below the Kubernetes API, and each needs the node:

- read a controller's memory from the kernel, or SIGKILL it: the Pods' processes are processes of
  this machine (a kind node is a podman container here), found by their cgroup
  (``controller_process``);
- give the image a second tag in the node's containerd, for a ``helm upgrade`` to a new tag
  without a registry;
- carry a server on the host's loopback (a second cluster's API server) into the node's network
  namespace, where the Pods reach it on the node's address (``expose``).

``from_env`` reads the kind cluster's name from ``ORDERFLOW_E2E_KIND``, which
``orderflow.dev.cluster.e2e`` sets. Without it the Pods run somewhere this machine cannot see into
(on a GitHub runner, say), and those tests skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from orderflow.dev.cluster import expose, kind

KIND_ENV = "ORDERFLOW_E2E_KIND"


def controller_process(pod_uid: str, procfs: Path = Path("/proc")) -> tuple[int, str]:
    """(pid, memory cgroup) of the controller running in the Pod ``pod_uid``, found on this
    machine by its cgroup (v1 or v2; the memory cgroup is "" where there is no v1 memory line).
    The Pod's cgroup names its uid with dashes (cgroupfs driver) or underscores (systemd's)."""
    marks = (f"pod{pod_uid}", f"pod{pod_uid.replace('-', '_')}")
    for proc in procfs.iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroups = (proc / "cgroup").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in cgroups for mark in marks) and b"orderflow" in cmdline:
            memory = next((line.split(":", 2)[2] for line in cgroups.splitlines() if ":memory:" in line), "")
            return int(proc.name), memory
    raise RuntimeError(f"no controller process of Pod {pod_uid} on this machine: run this on the Pod's node")


class KindNode:
    """The control-plane node of kind cluster ``name``, a podman container on this machine (the
    image's only node: the static CNI config has no routes to other nodes)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.container = f"{name}-control-plane"

    def _podman(self, *args: str) -> str:
        done = subprocess.run(
            ["podman", *args], capture_output=True, text=True, env={**os.environ, **kind.podman_env()}, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def controller_process(self, pod_uid: str) -> tuple[int, str]:
        """(pid, memory cgroup) of the controller in Pod ``pod_uid``, as this machine sees it."""
        return controller_process(pod_uid)

    def tag_image(self, image: str, new: str) -> None:
        """Tag ``image`` as ``new`` in the node's containerd (namespace k8s.io)."""
        self._podman("exec", self.container, "ctr", "-n", "k8s.io", "images", "tag", "--force", image, new)

    def expose(self, target_port: int) -> expose.Exposed:
        """``127.0.0.1:target_port`` of the host, reachable from the Pods at the returned address."""
        pid = int(self._podman("inspect", "--format", "{{.State.Pid}}", self.container).strip())
        return expose.expose(pid, kind.node_address(self.name), target_port)


def from_env(env: Mapping[str, str] = os.environ) -> KindNode | None:
    """The node named by the environment (see the module's doc), or None."""
    name = env.get(KIND_ENV)
    return KindNode(name) if name else None
