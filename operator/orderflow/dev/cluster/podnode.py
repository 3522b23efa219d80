"""The node that runs tests/e2e's Pods, as the tests reach it from the host: the local node
(``make e2e``) or the node container of a kind cluster (``make e2e-kind``).

Three tests act below the Kubernetes API, and each needs the node:

- read a controller's memory from the kernel, or SIGKILL it: on both nodes the Pods' processes are
  processes of this machine (a kind node is a podman container here), found by their cgroup
  (``node.controller_process``);
- give the image a second tag in the node's containerd, for a ``helm upgrade`` to a new tag
  without a registry;
- carry a server on the host's loopback (a second cluster's API server) into the node's network
  namespace, where the Pods reach it on the node's address (``expose``).

``from_env`` reads which node it is from what ``orderflow.dev.cluster.e2e`` sets:
``ORDERFLOW_E2E_NODE_STATE`` (the local node's state directory) or ``ORDERFLOW_E2E_KIND`` (the
kind cluster's name). With neither, the Pods run somewhere this machine cannot see into.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from orderflow.dev.cluster import expose, kind, node, state

NODE_STATE_ENV = "ORDERFLOW_E2E_NODE_STATE"
KIND_ENV = "ORDERFLOW_E2E_KIND"


class PodNode(Protocol):
    def controller_process(self, pod_uid: str) -> tuple[int, str]:
        """(pid, memory cgroup) of the controller in Pod ``pod_uid``, as this machine sees it."""
        ...

    def tag_image(self, image: str, new: str) -> None:
        """Tag ``image`` as ``new`` in the node's containerd (namespace k8s.io)."""
        ...

    def expose(self, target_port: int) -> expose.Exposed:
        """``127.0.0.1:target_port`` of the host, reachable from the Pods at the returned address."""
        ...


class LocalNode:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def controller_process(self, pod_uid: str) -> tuple[int, str]:
        return node.controller_process(pod_uid)

    def tag_image(self, image: str, new: str) -> None:
        recorded = json.loads((self.state_dir / "cluster.json").read_text())
        ctr = [recorded["ctr"], "-a", recorded["containerd_socket"], "-n", "k8s.io"]
        subprocess.run([*ctr, "images", "tag", "--force", image, new], check=True, capture_output=True)

    def expose(self, target_port: int) -> expose.Exposed:
        cluster = state.load(self.state_dir)
        if not isinstance(cluster, node.NodeCluster):
            raise RuntimeError(f"no local node recorded in {self.state_dir}")
        return expose.expose(cluster.layout.netns, node.NODE_IP, target_port)


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
        return node.controller_process(pod_uid)

    def tag_image(self, image: str, new: str) -> None:
        self._podman("exec", self.container, "ctr", "-n", "k8s.io", "images", "tag", "--force", image, new)

    def expose(self, target_port: int) -> expose.Exposed:
        pid = int(self._podman("inspect", "--format", "{{.State.Pid}}", self.container).strip())
        return expose.expose_pid(pid, kind.node_address(self.name), target_port)


def from_env(env: Mapping[str, str] = os.environ) -> PodNode | None:
    """The node named by the environment (see the module's doc), or None."""
    if env.get(NODE_STATE_ENV):
        return LocalNode(Path(env[NODE_STATE_ENV]))
    if env.get(KIND_ENV):
        return KindNode(env[KIND_ENV])
    return None
