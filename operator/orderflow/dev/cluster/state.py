"""The cluster recorded in a state directory, whichever kind ``orderflow cluster up`` started:
the unprivileged control plane, or the control plane with a node (``--nodes``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from orderflow.dev.cluster import controlplane, node
from orderflow.dev.cluster.controlplane import Process


class Cluster(Protocol):
    server: str
    kubeconfig: Path

    def processes(self) -> Iterator[Process]: ...

    def stop(self) -> None: ...

    def to_state(self) -> dict[str, Any]: ...


def load(state_dir: Path) -> Cluster | None:
    path = controlplane.state_path(state_dir)
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if state.get("kind") == "nodes":
        return node.NodeCluster.from_state(state)
    return controlplane.ControlPlane.from_state(state)


def up(state_dir: Path, kubeconfig: Path, nodes: bool, log: Callable[[str], None] = print) -> Cluster:
    existing = load(state_dir)
    if existing is not None:
        running = all(p.alive() for p in existing.processes())
        same_kind = isinstance(existing, node.NodeCluster) == nodes
        if running and same_kind:
            log(f"Already running: {existing.server}")
            return existing
        if running:
            raise controlplane.ControlPlaneError(
                f"a cluster of the other kind is running from {state_dir}; `orderflow cluster down` it first"
            )
        down(state_dir)  # half dead: clean it up before starting afresh
    if not nodes:
        return controlplane.up(state_dir, kubeconfig, log)
    cluster = node.up(state_dir, kubeconfig, log)
    controlplane.state_path(state_dir).write_text(json.dumps(cluster.to_state(), indent=2))
    return cluster


def down(state_dir: Path) -> bool:
    cluster = load(state_dir)
    if cluster is None:
        return False
    cluster.stop()
    controlplane.state_path(state_dir).unlink(missing_ok=True)
    return True
