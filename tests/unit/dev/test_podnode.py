"""Which node tests/e2e reaches into, from the environment e2e sets."""

from __future__ import annotations

from pathlib import Path

from orderflow.dev.cluster import podnode


def test_the_local_node_by_its_state_directory() -> None:
    found = podnode.from_env({podnode.NODE_STATE_ENV: "/s/e2e"})
    assert isinstance(found, podnode.LocalNode)
    assert found.state_dir == Path("/s/e2e")


def test_a_kind_node_by_its_cluster_name() -> None:
    found = podnode.from_env({podnode.KIND_ENV: "orderflow"})
    assert isinstance(found, podnode.KindNode)
    assert found.container == "orderflow-control-plane"


def test_no_node_when_neither_is_set_or_both_are_empty() -> None:
    assert podnode.from_env({}) is None
    assert podnode.from_env({podnode.NODE_STATE_ENV: "", podnode.KIND_ENV: ""}) is None
