"""What an operator reads from the two controllers as processes: their log, in either format, from
the start-up line to the shutdown line after SIGTERM, and their metrics."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import uuid
from typing import Any

import pykube

from orderflow.dev import manifests
from orderflow.dev.cluster.controlplane import free_port
from orderflow.dev.testing.plugin import Cluster, Controllers, Kubectl, wait_for
from orderflow.runtime.client import AsyncKube, Kube

ADDRESS = {"name": "Ada Lovelace", "street": "12 Square", "city": "London", "postalCode": "SW1Y 4JH", "country": "GB"}
EMAIL = "ada@example.com"


def order(name: str) -> dict[str, Any]:
    """Short steps; personal data that must not reach either log."""
    return manifests.order(
        name, customerEmail=EMAIL, shippingAddress=ADDRESS, stepDurationSeconds={"picking": 0.2, "packing": 0.2}
    )


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(metrics: str, metric: str, **labels: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(metric + "{") or line.startswith(metric + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_logs_from_start_to_sigterm_in_json_and_text_and_the_metrics(
    controllers: Controllers, kubectl: Kubectl, namespace: str
) -> None:
    ports = {"fulfillment": free_port(), "order": free_port()}
    fulfillment = controllers.start(
        "fulfillment", "--namespace", namespace, "--log-format", "json", "--metrics-port", str(ports["fulfillment"])
    )
    orders = controllers.start(
        "order", "--namespace", namespace, "--log-format", "text", "--metrics-port", str(ports["order"])
    )
    kubectl.apply(order("o-logs"), "-n", namespace)
    wait_for(
        lambda: kubectl.json("get", "order", "o-logs", "-n", namespace).get("status", {}).get("phase"),
        lambda phase: phase == "Completed",
        what="the Order to complete",
    )

    # The metrics, as the processes serve them (on 127.0.0.1, the default bind address).
    order_metrics = wait_for(
        lambda: scrape(ports["order"]),
        lambda m: sample(m, "orderflow_transitions_total", controller="order-controller", reason="Completed") == 1,
        what="the order controller to count the Completed transition",
    )
    assert sample(order_metrics, "orderflow_transitions_total", reason="Fulfilling") == 1
    assert sample(order_metrics, "orderflow_unacknowledged_signals", controller="order-controller") == 0
    assert sample(order_metrics, "workqueue_depth", name="order-controller") is not None
    assert (sample(order_metrics, "workqueue_adds_total", name="order-controller") or 0) >= 2
    assert (sample(order_metrics, "controller_runtime_reconcile_total", result="success") or 0) >= 1
    assert sample(order_metrics, "controller_runtime_max_concurrent_reconciles", controller="order-controller") == 4
    assert sample(order_metrics, "rest_client_requests_total", code="201", method="POST") is not None  # the create
    assert sample(order_metrics, "rest_client_requests_total", code="200", method="PATCH") is not None
    assert "_created" not in order_metrics
    fulfillment_metrics = scrape(ports["fulfillment"])
    assert sample(fulfillment_metrics, "orderflow_transitions_total", reason="Shipped") == 1
    assert sample(fulfillment_metrics, "orderflow_step_duration_seconds_bucket", step="Picking", le="1.0") == 1

    fulfillment.stop()  # SIGTERM, as Kubernetes stops a Pod
    orders.stop()
    assert fulfillment.proc is not None
    assert orders.proc is not None
    assert fulfillment.proc.returncode == 0
    assert orders.proc.returncode == 0

    # JSON: every line one object (a log pipeline parses each), from start-up to shutdown.
    entries = [json.loads(line) for line in fulfillment.log.read_text().splitlines()]
    start, last = entries[0], entries[-1]
    assert start["message"].startswith(
        f"starting fulfillment-controller {start['version']}: namespaces={namespace} workers=4 stepSeconds=5.0 "
        "retryPolicy=initial:0.5s,factor:2,max:60s,attempts:10 "
        f"peering=standalone metrics=http://127.0.0.1:{ports['fulfillment']}/metrics log-format=json"
    ), start
    assert start["namespaces"] == [namespace]
    shipped = [e for e in entries if "Shipped" in e.get("transitions", [])]
    assert len(shipped) == 1, entries
    assert shipped[0]["level"] == "info"
    assert shipped[0]["object"] == {"kind": "Fulfillment", "namespace": namespace, "name": "o-logs"}
    assert shipped[0]["message"].startswith(f"Fulfillment {namespace}/o-logs: ")
    assert shipped[0]["phase"] == "Shipped"
    assert re.fullmatch(r"stopped fulfillment-controller after \d+\.\ds", last["message"]), last

    # Text: the same story, one line each.
    text = orders.log.read_text()
    first, *_, final = text.splitlines()
    started = rf"INFO    orderflow\.runtime\.runner: starting order-controller \S+: namespaces={namespace} "
    assert re.search(started, first), first
    assert (
        "workers=4 ackTimeoutSeconds=30.0 retryPolicy=initial:0.5s,factor:2,max:60s,attempts:10 peering=standalone"
        in first
    )
    assert re.search(
        rf"INFO    orderflow\.order: Order {namespace}/o-logs: Pending -> Fulfilling; added finalizer, "
        "created Fulfillment o-logs; events FulfillmentCreated\n",
        text,
    ), text
    assert f"INFO    orderflow.order: Order {namespace}/o-logs: Fulfilling -> Completed; events Completed\n" in text
    assert re.search(r"INFO    orderflow\.runtime\.runner: stopped order-controller after \d+\.\ds$", final), final

    # No personal data in either log.
    for log in (text, fulfillment.log.read_text()):
        assert not [
            value for value in (EMAIL, ADDRESS["name"], ADDRESS["street"], ADDRESS["postalCode"]) if value in log
        ]


def test_events_repeat_as_a_count_and_one_object_cannot_flood_them(
    control_plane: Cluster, kubectl: Kubectl, namespace: str
) -> None:
    """client-go's recorder, on the real API server: the same Event twice is one object whose
    count is 2, and an object gets a burst of 25 Events before the rest are dropped."""
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(control_plane.kubeconfig)))
    kube = AsyncKube(Kube(api, manager="order-controller"), "order-controller")
    order = {"apiVersion": "orderflow.dev/v1alpha1", "kind": "Order",
             "metadata": {"name": "noisy", "namespace": namespace, "uid": str(uuid.uuid4())}}  # fmt: skip

    async def scenario() -> None:
        for _ in range(2):
            kube.event(order, "Normal", "Paused", "paused during Picking")
            await kube.flush()
        for i in range(40):
            kube.event(order, "Warning", "Flapping", f"flapping {i}")
        await kube.flush()

    asyncio.run(scenario())
    events = kubectl.json("get", "events", "-n", namespace)["items"]
    (paused,) = [e for e in events if e["reason"] == "Paused"]
    assert paused["count"] == 2
    assert paused["lastTimestamp"] >= paused["firstTimestamp"]
    assert len([e for e in events if e["reason"] == "Flapping"]) == 25 - 2  # the burst, both Paused posts included
