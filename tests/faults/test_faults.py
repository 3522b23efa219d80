"""Durability under faults: crashes, an API server restart, and write conflicts, across 50 orders.

After each fault run: every order ends in its correct terminal state, each Order has exactly one
Fulfillment (its own), no history holds a transition twice, and no signal is lost.

Orders come in three kinds, so the right end state is known whatever the timing:
- plain: short steps, nothing sent -> Completed;
- resumed: created paused, resumed later (a signal) -> Completed;
- cancelled: created paused, cancelled later (a signal) -> Cancelled (it cannot have shipped).
"""

from __future__ import annotations

import random
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from orderflow.dev import manifests
from orderflow.dev.cluster.controlplane import free_port
from orderflow.dev.testing.plugin import Cluster, ControllerProcess, Controllers, CustomResources, Kubectl, wait_for

PLAIN, RESUMED, CANCELLED = 30, 10, 10
EXPECTED = {"plain": "Completed", "resumed": "Completed", "cancelled": "Cancelled"}


@pytest.fixture
def rng() -> random.Random:
    seed = random.randrange(1 << 30)
    print(f"fault schedule seed: {seed}")
    return random.Random(seed)


def order(name: str, rng: random.Random, paused: bool) -> dict[str, Any]:
    """Steps of random length, so the faults land at different moments of each workflow."""
    return manifests.order(
        name,
        labels={"kind": name.split("-")[0]},
        paused=paused,
        stepDurationSeconds={"picking": rng.uniform(0.5, 3), "packing": rng.uniform(0.5, 3)},
    )


class Run:
    """Both controllers (restartable), 50 orders, and the signals to send."""

    def __init__(self, controllers: Controllers, namespace: str, crs: CustomResources, rng: random.Random) -> None:
        self.controllers, self.namespace, self.crs, self.rng = controllers, namespace, crs, rng
        self.ports = {"order": free_port(), "fulfillment": free_port()}
        self.running: dict[str, ControllerProcess] = {}
        self.names = (
            [f"plain-{i}" for i in range(PLAIN)]
            + [f"resumed-{i}" for i in range(RESUMED)]
            + [f"cancelled-{i}" for i in range(CANCELLED)]
        )

    def start(self, which: str) -> None:
        own = ["--ack-timeout", "5"] if which == "order" else []  # `run fulfillment` takes no --ack-timeout
        self.running[which] = self.controllers.start(
            which, "--namespace", self.namespace, "--metrics-port", str(self.ports[which]), *own
        )

    def kill(self, which: str) -> None:
        self.running[which].kill()

    def create_orders(self) -> None:
        for name in self.names:
            self.crs.create("orders", order(name, self.rng, paused=not name.startswith("plain")))

    def wait_for_fulfillments(self) -> None:
        """Signals go out once every Order has its Fulfillment, so each one's end state is known."""
        wait_for(
            lambda: len(self.crs.list("fulfillments")),
            lambda n: n >= len(self.names),
            timeout=90,
            what="a Fulfillment for every Order",
        )

    def send_signals(self) -> None:
        for name in self.names:
            if name.startswith("resumed"):
                self.crs.patch("orders", name, {"spec": {"paused": False}})
            elif name.startswith("cancelled"):
                self.crs.patch("orders", name, {"spec": {"cancelled": True}})

    def wait_until_all_final(self, timeout: float = 120) -> None:
        wait_for(
            lambda: {o["metadata"]["name"]: (o.get("status") or {}).get("phase") for o in self.crs.list("orders")},
            lambda phases: all(phases.get(n) in ("Completed", "Cancelled", "Failed") for n in self.names),
            timeout=timeout,
            what="every order to reach a final phase",
        )

    def check(self) -> None:
        orders = {o["metadata"]["name"]: o for o in self.crs.list("orders")}
        fulfillments = self.crs.list("fulfillments")
        by_order: dict[str, list[dict[str, Any]]] = {}
        for f in fulfillments:
            by_order.setdefault(f["spec"]["orderRef"]["name"], []).append(f)
        wrong = {
            name: orders[name]["status"]["phase"]
            for name in self.names
            if orders[name]["status"]["phase"] != EXPECTED[name.split("-")[0]]
        }
        assert not wrong, f"orders in the wrong final phase: {wrong}"
        for name in self.names:
            mine = by_order.get(name, [])
            assert len(mine) == 1, f"{name} has {len(mine)} fulfillments"
            (f,) = mine
            assert f["spec"]["orderRef"]["uid"] == orders[name]["metadata"]["uid"]
            history = [h["reason"] for h in f["status"]["history"]]
            moves = [r for r in history if r not in ("Paused", "Resumed")]
            assert len(moves) == len(set(moves)), f"{name}: a transition twice: {history}"
            kind = name.split("-")[0]
            if kind == "resumed":
                assert "Resumed" in history, f"{name}: the resume signal was lost: {history}"
                assert f["spec"]["paused"] is False
            if kind == "cancelled":
                assert f["spec"]["cancelled"] is True, f"{name}: the cancel signal was lost"
                assert "Shipped" not in history
            assert orders[name]["status"]["fulfillment"]["phase"] == f["status"]["phase"]
        assert len(fulfillments) == len(self.names)

    def metric(self, which: str, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[which]}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(float(m) for m in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M))


@pytest.fixture
def run(controllers: Controllers, namespace: str, crs: CustomResources, rng: random.Random) -> Iterator[Run]:
    return Run(controllers, namespace, crs, rng)


def test_controllers_killed_at_random_moments_lose_nothing(run: Run, rng: random.Random) -> None:
    def crash_and_restart(times: int) -> None:
        for _ in range(times):
            time.sleep(rng.uniform(0.2, 1.5))  # the fault schedule: a random moment
            which = rng.choice(["order", "fulfillment"])
            run.kill(which)
            time.sleep(rng.uniform(0.1, 1.0))
            run.start(which)

    run.start("fulfillment")
    run.start("order")
    run.create_orders()
    crash_and_restart(3)  # while Orders are being taken and Fulfillments created
    run.wait_for_fulfillments()
    down = rng.choice(["order", "fulfillment"])
    run.kill(down)
    run.send_signals()  # sent while a controller is down
    time.sleep(rng.uniform(0.1, 1.0))
    run.start(down)
    crash_and_restart(3)  # while signals are applied and steps run
    run.wait_until_all_final()
    run.check()


def test_an_api_server_restart_mid_run_loses_nothing(run: Run, control_plane: Cluster, rng: random.Random) -> None:
    if control_plane.plane is None:
        pytest.skip("restarts the local API server; not on an existing cluster")
    run.start("fulfillment")
    run.start("order")
    run.create_orders()
    run.wait_for_fulfillments()
    run.send_signals()
    time.sleep(rng.uniform(0.0, 1.0))  # mid-run: signals and steps in flight
    control_plane.plane.stop_apiserver()
    time.sleep(1.0)  # down for a moment, etcd kept
    control_plane.plane.start_apiserver(die_with_parent=True)
    run.wait_until_all_final()
    run.check()


def test_a_concurrent_writer_causing_conflicts_loses_nothing(run: Run, kubectl: Kubectl, rng: random.Random) -> None:
    run.start("fulfillment")
    run.start("order")
    stop = threading.Event()
    writes = 0

    def meddle() -> None:  # bumps resourceVersion on the same objects the controllers write
        nonlocal writes
        while not stop.is_set():
            for plural in ("orders", "fulfillments"):
                for obj in run.crs.list(plural):
                    try:
                        run.crs.patch(
                            plural, obj["metadata"]["name"], {"metadata": {"annotations": {"meddler": str(writes)}}}
                        )
                        writes += 1
                    except ApiException:  # a meddler that loses a race (or finds it gone) goes on
                        continue

    meddler = threading.Thread(target=meddle)
    meddler.start()
    try:
        run.create_orders()
        run.wait_for_fulfillments()
        run.send_signals()
        run.wait_until_all_final()
    finally:
        stop.set()
        meddler.join(timeout=30)
    run.check()
    conflicts = run.metric("fulfillment", "orderflow_write_conflicts_total") + run.metric(
        "order", "orderflow_write_conflicts_total"
    )
    assert writes > 100
    assert conflicts > 0, "the meddler caused no 409: this run did not test conflicts"
