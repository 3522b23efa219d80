"""The benchmark: both controllers as processes against the local control plane, zero-length steps.

Measures, in order, for each size of the cost curve (each on a fresh control plane):
1. throughput: N Orders from create to Completed;
2. API cost: requests per order by verb and resource, from the API server's own /metrics;
3. resources: each controller's peak RSS and CPU per order, and the API server's and etcd's CPU;
4. a restart over the N finished Orders and Fulfillments: its API writes (there should be none),
   the time until both controllers have reconciled every object again, their RSS then, and how
   long the next Order takes; then, after a second restart, how long an Order created at once
   takes while they are still catching up (serving again);
5. signal latency: a `paused` patch on a Fulfillment -> `paused` in its status (acknowledged);
6. query propagation: a Fulfillment status change -> the Order's status;
7. the ceiling: the raw status-patch rate of the same API server from plain clients;
8. the floor: the writes an order cannot do without, from a plain client with no controllers;
the flow's throughput is reported as a share of it.
Latencies are taken from watch events, as any client would see them. With ``--peer temporal`` the
seed's workflows on Temporal are measured in the same run (orderflow.dev.bench.peer).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config, watch

from orderflow.api.common import GROUP, VERSION
from orderflow.dev import manifests
from orderflow.dev.bench import sections
from orderflow.dev.bench.stats import percentiles
from orderflow.dev.cluster import tools
from orderflow.dev.cluster.controlplane import ControlPlane, free_port
from orderflow.dev.harness import ControllerProcess, Controllers, cpu_seconds

NS = "bench"
FLOOR = "bench-floor"  # the floor's objects, with no controller running
WARM_UP = "bench-warm-up"  # the controllers' first Order, outside what is measured (see warm_up)
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}  # apiserver_request_total labels verbs as HTTP methods


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Watcher:
    """Records, from a watch of one namespace, when each (name, predicate-key) was first seen, by
    ``clock`` (monotonic; wall-clock to compare times across two API servers' watches)."""

    def __init__(
        self,
        api: client.CustomObjectsApi,
        plural: str,
        key: Callable[[dict[str, Any]], Any],
        *,
        namespace: str = NS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.plural, self.key = api, plural, key
        self.namespace, self.clock = namespace, clock
        self.seen: dict[Any, float] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:  # a dropped stream: watch again (a re-list re-delivers all)
                if not self._stop.is_set():
                    log(f"watch of {self.plural} restarted: {exc}")

    def _follow(self) -> None:
        w = watch.Watch()
        for event in w.stream(
            self.api.list_namespaced_custom_object, GROUP, VERSION, self.namespace, self.plural, timeout_seconds=600
        ):
            now = self.clock()
            obj = event["object"]
            with self.changed:
                self.latest[obj["metadata"]["name"]] = obj
                k = self.key(obj)
                if k is not None and k not in self.seen:
                    self.seen[k] = now
                self.changed.notify_all()
            if self._stop.is_set():
                w.stop()

    def wait(self, predicate: Callable[[], bool], timeout: float, about: str = "") -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    last = json.dumps((self.latest.get(about) or {}).get("status"), default=str)[:3000]
                    raise TimeoutError(f"{self.plural}: condition not reached in {timeout}s; {about} last seen: {last}")
                self.changed.wait(min(left, 1.0))

    def forget(self, name: str) -> None:
        """Forget what was seen of one object, so its next change is timed afresh."""
        with self.changed:
            self.seen = {k: v for k, v in self.seen.items() if k[0] != name}

    def stop(self) -> None:
        self._stop.set()


def order(name: str, picking: float = 0, packing: float = 0) -> dict[str, Any]:
    """An Order whose steps take no time unless asked: the flow's own cost is what is measured."""
    return manifests.order(name, stepDurationSeconds={"picking": picking, "packing": packing})


def hand_made(name: str) -> dict[str, Any]:
    """A Fulfillment made by hand, started, with zero-length steps."""
    return manifests.fulfillment(name, started=True, stepDurationSeconds={"picking": 0, "packing": 0})


def _name_if(obj: dict[str, Any], phase: str) -> str | None:
    return str(obj["metadata"]["name"]) if (obj.get("status") or {}).get("phase") == phase else None


def warm_up(objects: client.CustomObjectsApi, timeout: float = 60) -> None:
    """One Order through both controllers before anything is measured. Started (Kopf's health
    endpoint answers) is not yet watching: the controllers' first lists land a second later, and
    would be counted in the API cost of the orders and timed in their throughput. An Order that
    completes has been seen by every watch it needs, so their start-up is behind the measurement."""
    objects.create_namespaced_custom_object(GROUP, VERSION, WARM_UP, "orders", order("warm-up"))
    deadline = time.monotonic() + timeout
    while True:
        body = cast(dict[str, Any], objects.get_namespaced_custom_object(GROUP, VERSION, WARM_UP, "orders", "warm-up"))
        if _name_if(body, "Completed"):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the warm-up Order did not complete in {timeout}s; last status: {body.get('status')}")
        time.sleep(0.1)


def request_counts(env: dict[str, str]) -> Counter[tuple[str, str]]:
    text = subprocess.run(
        ["kubectl", "get", "--raw", "/metrics"], env=env, check=True, capture_output=True, text=True
    ).stdout
    counts: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            value = float(line.rsplit(" ", 1)[1])
            resource = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
            counts[(labels.get("verb", ""), resource)] += int(value)
    return counts


def scrape(port: int) -> dict[str, float]:
    """A controller's own /metrics, each metric's samples summed over their labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:  # a busy controller
        text = response.read().decode()
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


OURS = {"orders", "orders/status", "fulfillments", "fulfillments/status", "events"}
"""What the controllers write. The API server writes too, on its own (its lease every 10 s, the
kubernetes Service's endpoints): those are no controller's doing and are not counted in a restart."""


def writes_in(requests: Counter[tuple[str, str]]) -> int:
    return sum(count for (verb, resource), count in requests.items() if verb in WRITE_VERBS and resource in OURS)


def measure_restart(
    procs: list[ControllerProcess],
    ports: dict[str, int],
    objects: client.CustomObjectsApi,
    env: dict[str, str],
    n_objects: int,
    timeout: float = 600,
) -> dict[str, Any]:
    """Both controllers stopped gracefully and started again over ``n_objects`` finished Orders and
    as many Fulfillments. Caught up: each has reconciled at least every object once since its start,
    has nothing queued, and has been given nothing new for a second (its own metrics say so: the
    initial list arrives in batches, and the queue empties between them). Then one new Order,
    through both, is timed."""
    for p in procs:
        p.stop()
    before = request_counts(env)
    started = time.monotonic()
    for p in procs:
        p.start()
    healthy = time.monotonic()
    deadline = started + timeout
    caught_up = wait_caught_up(procs, ports, n_objects, deadline)
    requests = request_counts(env) - before
    memory = {p.which: p.memory() for p in procs}
    probe = time.monotonic()
    completed = complete_one(objects, "after-restart", deadline)
    return {
        "objects": n_objects,
        "writes": writes_in(requests),
        "requests": sum(requests.values()),
        "healthy_seconds": round(healthy - started, 2),
        "caught_up_seconds": round(caught_up - started, 2),
        "new_order_completed_seconds": round(completed - probe, 2),
        "rss_mib": {which: round(m.now_mib, 1) for which, m in memory.items()},
    }


def wait_caught_up(procs: list[ControllerProcess], ports: dict[str, int], n_objects: int, deadline: float) -> float:
    """When the last of ``procs`` was last given something, once each has reconciled at least
    ``n_objects`` since its start, has nothing queued and has been given nothing for a second."""
    waiting = {p.which for p in procs}
    quiet_since: dict[str, tuple[float, float]] = {}  # which -> (adds seen, since when)
    caught_up = 0.0
    while waiting:
        for which in list(waiting):
            seen, now = scrape(ports[which]), time.monotonic()
            adds = seen.get("workqueue_adds_total", 0.0)
            done = seen.get("controller_runtime_reconcile_total", 0) >= n_objects and seen.get("workqueue_depth") == 0
            if not done or quiet_since.get(which, (-1.0, now))[0] != adds:
                quiet_since[which] = (adds, now)  # the last time it was given something
            elif now - quiet_since[which][1] >= 1.0:
                waiting.discard(which)
                caught_up = max(caught_up, quiet_since[which][1])
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"not caught up after a restart: {', '.join(sorted(waiting))}")
        time.sleep(0.05)
    return caught_up


def complete_one(objects: client.CustomObjectsApi, name: str, deadline: float) -> float:
    """Create one Order and return when it was first seen Completed (polled every 20 ms)."""
    objects.create_namespaced_custom_object(GROUP, VERSION, NS, "orders", order(name))
    while not _name_if(
        cast(dict[str, Any], objects.get_namespaced_custom_object(GROUP, VERSION, NS, "orders", name)), "Completed"
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Order {name} did not complete")
        time.sleep(0.02)
    return time.monotonic()


def measure_serving(
    procs: list[ControllerProcess],
    ports: dict[str, int],
    objects: client.CustomObjectsApi,
    n_objects: int,
    timeout: float = 600,
) -> dict[str, Any]:
    """Serving again: both controllers restarted over ``n_objects`` finished Orders and as many
    Fulfillments, and an Order created as soon as both are healthy, while they still look at
    every finished object again. Timed from the restart to that Order Completed. A second restart,
    so that the first one's writes and catch-up are measured without it; it returns once caught up."""
    for p in procs:
        p.stop()
    started = time.monotonic()
    for p in procs:
        p.start()
    deadline = started + timeout
    completed = complete_one(objects, "during-restart", deadline)
    wait_caught_up(procs, ports, n_objects, deadline)
    return {"new_order_completed_seconds": round(completed - started, 2)}


FLOOR_WRITES = 4
"""What one order of the benchmark (zero-length steps) cannot do without, whoever runs it: create the
Order and its Fulfillment, write the Fulfillment's status once (Shipped: with no time in a step,
no step in between needs to be durable) and the Order's once (Completed). No finalizer, no Event,
no second Order status: those are what the flow adds for deletion, people and signals."""


def measure_floor(
    objects: client.CustomObjectsApi, env: dict[str, str], n: int, clients: tuple[int, ...] = (8, 16, 32)
) -> dict[str, Any]:
    """The machine's floor, with no controller running: the floor's writes for ``n`` orders from a
    plain client, each order's writes in sequence and orders in parallel, at the best of ``clients``."""
    subprocess.run(["kubectl", "create", "namespace", FLOOR], env=env, check=True, capture_output=True)

    def one(name: str) -> None:
        objects.create_namespaced_custom_object(GROUP, VERSION, FLOOR, "orders", order(name))
        objects.create_namespaced_custom_object(GROUP, VERSION, FLOOR, "fulfillments", hand_made(name))
        objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, FLOOR, "fulfillments", name, {"status": {"phase": "Shipped"}}
        )
        objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, FLOOR, "orders", name, {"status": {"phase": "Completed"}}
        )

    rates = {}
    for threads in clients:
        names = [f"floor-{threads}-{i:05d}" for i in range(n)]
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, names))
        rates[threads] = n / (time.monotonic() - began)
    best = max(rates, key=lambda threads: rates[threads])
    return {
        "writes_per_order": FLOOR_WRITES,
        "orders": n,
        "orders_per_second": round(rates[best], 1),
        "best_client_threads": best,
        "orders_per_second_by_threads": {str(k): round(v, 1) for k, v in rates.items()},
    }


def prepare(
    plane: ControlPlane, env: dict[str, str], workers: int, namespaces: tuple[str, ...] = (NS, WARM_UP)
) -> client.CustomObjectsApi:
    """A fresh control plane made ready: the CRDs installed and Established, the namespaces made,
    and a client with a connection for each of ``workers`` threads (and as many to spare)."""
    crds = yaml.safe_dump_all(manifests.crds())
    subprocess.run(["kubectl", "apply", "-f", "-"], input=crds, text=True, env=env, check=True, capture_output=True)
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Established", "crd", "--all"], env=env, check=True, capture_output=True
    )
    for namespace in namespaces:
        subprocess.run(["kubectl", "create", "namespace", namespace], env=env, check=True, capture_output=True)
    api_client = config.new_client_from_config(config_file=str(plane.kubeconfig))
    api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = workers * 2
    return client.CustomObjectsApi(api_client)


def run(n_orders: int, n_signals: int, workers: int) -> dict[str, Any]:
    """One size: a control plane of its own, both controllers as processes, then each measure in
    turn (the numbers in the comments are those of docs/benchmarks.md's sections)."""
    kubectl = tools.ensure("kubectl")
    workdir = Path(tempfile.mkdtemp(prefix="orderflow-bench-"))
    plane = ControlPlane.start(workdir / "kubeconfig", log=log, die_with_parent=True)
    env = {
        **os.environ,
        "KUBECONFIG": str(plane.kubeconfig),
        "PATH": f"{kubectl.parent}:{os.environ['PATH']}",
    }
    controllers = Controllers(env, workdir)  # each controller's log there too
    watchers: list[Watcher] = []
    try:
        objects = prepare(plane, env, workers)
        # Each controller with its own option only (`run order --step-seconds` is a usage error).
        ports = {"fulfillment": free_port(), "order": free_port()}  # their /metrics: is a restart caught up?
        procs = [
            controllers.start("fulfillment", "--step-seconds", "0", "--metrics-port", str(ports["fulfillment"])),
            controllers.start("order", "--ack-timeout", "30", "--metrics-port", str(ports["order"])),
        ]
        warm_up(objects)
        flow = measure_flow(plane, procs, objects, env, watchers, n_orders, workers)  # 1-3
        # 3b. a restart over every finished object: its writes, its time, its memory
        restart = measure_restart(procs, ports, objects, env, n_orders + 1)  # + the warm-up Order
        log(f"restart: {restart}")
        restart["serving"] = measure_serving(procs, ports, objects, n_orders + 2)  # + after-restart
        log(f"serving again: {restart['serving']}")
        signal_latency, propagation = measure_signals(objects, watchers, n_signals, workers)  # 4
        to_shipped = measure_apply_to_shipped(objects, watchers, max(100, n_signals // 2))  # 4b
        controllers.stop_all()  # the controllers would react to each write; measure the server alone
        ceiling = measure_ceiling(objects, n_orders)  # 6
        floor = measure_floor(objects, env, n=min(n_orders, 1000))
        log(f"floor: {floor}")
        throughput = flow["throughput"]
        return {
            "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            **flow,
            "restart": restart,
            "floor": {**floor, "flow_fraction": round(throughput["orders_per_second"] / floor["orders_per_second"], 2)},
            "apply_to_shipped": percentiles(to_shipped),
            "signal_latency": percentiles(signal_latency),
            "query_propagation": percentiles(propagation),
            "ceiling": {
                **ceiling,
                # the flow's own write rate, for comparison: above the one-client ceiling, the
                # writes of three processes (the client creating orders, two controllers) add up
                "flow_writes_per_second": round(throughput["orders_per_second"] * flow["api_writes_per_order"], 1),
            },
        }
    finally:
        for w in watchers:
            w.stop()
        controllers.stop_all()
        plane.stop()


def measure_flow(
    plane: ControlPlane,
    procs: list[ControllerProcess],
    objects: client.CustomObjectsApi,
    env: dict[str, str],
    watchers: list[Watcher],
    n_orders: int,
    workers: int,
) -> dict[str, Any]:
    """1-3: ``n_orders`` created at once by ``workers`` client threads, until the last Completed:
    the throughput, the API requests per order, and each process's CPU and memory for it."""
    orders = Watcher(objects, "orders", lambda o: _name_if(o, "Completed"))
    watchers.append(orders)
    plane_pids = {proc.name: proc.pid for proc in plane.processes()}  # etcd, kube-apiserver
    cpu_before = {p.which: p.cpu_seconds() for p in procs}
    plane_cpu_before = {name: cpu_seconds(pid) for name, pid in plane_pids.items()}
    requests_before = request_counts(env)
    log(f"creating {n_orders} orders with {workers} client threads ...")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(
            pool.map(
                lambda i: objects.create_namespaced_custom_object(GROUP, VERSION, NS, "orders", order(f"o-{i:05d}")),
                range(n_orders),
            )
        )
    created = time.monotonic()
    orders.wait(lambda: len(orders.seen) >= n_orders, timeout=max(120, n_orders))
    finished = max(orders.seen.values())
    time.sleep(2)  # let trailing Events and acknowledgements land before counting
    requests = request_counts(env) - requests_before
    cpu = {p.which: p.cpu_seconds() - cpu_before[p.which] for p in procs}
    plane_cpu = sum(cpu_seconds(pid) - plane_cpu_before[name] for name, pid in plane_pids.items())
    memory = {p.which: p.memory() for p in procs}
    per_order = {
        f"{verb} {res}": round(count / n_orders, 2) for (verb, res), count in sorted(requests.items()) if count
    }
    writes = sum(count for (verb, _), count in requests.items() if verb in WRITE_VERBS) / n_orders
    throughput = {
        "orders": n_orders,
        "create_seconds": round(created - started, 2),
        "create_to_last_completed_seconds": round(finished - started, 2),
        "orders_per_second": round(n_orders / (finished - started), 1),
    }
    log(f"throughput: {throughput}")
    return {
        "throughput": throughput,
        "api_writes_per_order": round(writes, 2),
        "api_requests_per_order": per_order,
        "controllers": {
            which: {
                "cpu_seconds_per_1000_orders": round(cpu[which] * 1000 / n_orders, 1),
                "rss_mib_after": round(memory[which].now_mib, 1),
                "peak_rss_mib": round(memory[which].peak_mib, 1),
            }
            for which in cpu
        },
        "control_plane_cpu_ms_per_order": round(plane_cpu * 1000 / n_orders, 1),
    }


SIGNAL_TARGETS = 20  # Fulfillments paused and resumed in turn by measure_signals


def measure_signals(
    objects: client.CustomObjectsApi, watchers: list[Watcher], n_signals: int, workers: int
) -> tuple[list[float], list[float]]:
    """4: pause/resume Fulfillments whose step never ends on its own, one signal at a time: from
    the patch to the Fulfillment's acknowledgement (signal latency), and from there to the
    Order's mirror of it (query propagation)."""
    fulfill = Watcher(
        objects,
        "fulfillments",
        lambda f: (f["metadata"]["name"], (f.get("status") or {}).get("observedGeneration")),
    )
    watchers.append(fulfill)
    names = [f"slow-{i:03d}" for i in range(SIGNAL_TARGETS)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(
            pool.map(
                lambda name: objects.create_namespaced_custom_object(
                    GROUP, VERSION, NS, "orders", order(name, picking=86400, packing=86400)
                ),
                names,
            )
        )
    fulfill.wait(
        lambda: all((fulfill.latest.get(n, {}).get("status") or {}).get("phase") == "Picking" for n in names),
        timeout=120,
    )
    orders_follow = Watcher(
        objects,
        "orders",
        lambda o: (o["metadata"]["name"], ((o.get("status") or {}).get("fulfillment") or {}).get("paused")),
    )
    watchers.append(orders_follow)
    # Its first list delivers every Order: from then on it times changes as they come.
    orders_follow.wait(lambda: all(n in orders_follow.latest for n in names), timeout=30)
    signal_latency: list[float] = []
    propagation: list[float] = []
    paused = dict.fromkeys(names, False)

    def one_signal(name: str, value: bool) -> tuple[float, float]:
        orders_follow.forget(name)
        sent = time.monotonic()
        patched = cast(
            dict[str, Any],
            objects.patch_namespaced_custom_object(
                GROUP, VERSION, NS, "fulfillments", name, {"spec": {"paused": value}}
            ),
        )
        acked_key = (name, patched["metadata"]["generation"])
        fulfill.wait(lambda: acked_key in fulfill.seen, timeout=30, about=name)
        acked = fulfill.seen[acked_key]
        mirrored_key = (name, value)
        # Seen since forget(): the Order's mirror of this very change. Two watch streams can
        # skew by a few ms either way; a negative propagation is counted as 0.
        orders_follow.wait(lambda: mirrored_key in orders_follow.seen, timeout=30, about=name)
        return acked - sent, max(0.0, orders_follow.seen[mirrored_key] - acked)

    for i in range(n_signals):
        name = names[i % SIGNAL_TARGETS]
        paused[name] = not paused[name]
        latency, propagated = one_signal(name, paused[name])
        signal_latency.append(latency)
        propagation.append(propagated)
    log("signals done")
    return signal_latency, propagation


def measure_apply_to_shipped(objects: client.CustomObjectsApi, watchers: list[Watcher], count: int) -> list[float]:
    """4b: hand-made Fulfillments, started, zero-length steps, one at a time: from the create to
    Shipped in its status."""
    shipped = Watcher(objects, "fulfillments", lambda f: _name_if(f, "Shipped"))
    watchers.append(shipped)

    def one_fulfillment(name: str) -> float:
        sent = time.monotonic()
        objects.create_namespaced_custom_object(GROUP, VERSION, NS, "fulfillments", hand_made(name))
        shipped.wait(lambda: name in shipped.seen, timeout=30, about=name)
        return shipped.seen[name] - sent

    return [one_fulfillment(f"hand-{i:03d}") for i in range(count)]


def measure_ceiling(objects: client.CustomObjectsApi, n_orders: int) -> dict[str, float]:
    """6: plain clients patching status as fast as they can, each on objects of its own (writes
    to one object from many clients would measure the server's conflict retries). Run with the
    controllers stopped: they would react to each write."""
    targets = [f"o-{i:05d}" for i in range(min(n_orders, 200))]

    def patch_status(i: int) -> None:
        objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, "fulfillments", targets[i % len(targets)], {"status": {"failureMessage": f"c{i}"}}
        )

    t0 = time.monotonic()
    for i in range(500):
        patch_status(i)
    one_client = 500 / (time.monotonic() - t0)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(patch_status, range(2000)))
    eight_clients = 2000 / (time.monotonic() - t0)
    return {
        "status_patches_per_second_one_client": round(one_client, 1),
        "status_patches_per_second_eight_clients": round(eight_clients, 1),
    }


def pct(d: dict[str, float]) -> str:
    return f"p50 {d['p50_ms']:.0f} ms, p95 {d['p95_ms']:.0f} ms, p99 {d['p99_ms']:.0f} ms"


def markdown(results: list[dict[str, Any]], command: str, peer: dict[str, Any] | None = None) -> str:
    """docs/benchmarks.md: the cost curve over every size run, the largest size in detail, and
    the peer beside orderflow when it ran."""
    result = results[-1]
    t, c, s, q = result["throughput"], result["ceiling"], result["signal_latency"], result["query_propagation"]
    a, r, f = result["apply_to_shipped"], result["restart"], result["floor"]
    lines = [
        "# Benchmarks",
        "",
        f"Latest run: {result['when']}, on {result['machine']['cores']} cores ({result['machine']['platform']},",
        f"Python {result['machine']['python']}); the control plane and both controllers on the same machine.",
        "",
        f"Command: `{command}`",
        "",
        "## The cost curve",
        "",
        "Each size on a fresh control plane, zero-length steps. RSS during the run is each controller's peak;",
        "after a restart, its RSS once it has reconciled every object again. CPU is utime+stime per order.",
        "",
        "| orders | orders/s | floor orders/s (share) | API writes / requests per order "
        "| RSS order / fulfillment, run | RSS after restart | CPU ms/order: order, fulfillment, API server+etcd "
        "| restart: writes, caught up, next order | a new Order during the catch-up, from the restart |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in results:
        ctl, rs, fl = x["controllers"], x["restart"], x["floor"]
        total = sum(x["api_requests_per_order"].values())
        lines.append(
            f"| {x['throughput']['orders']:,} | {x['throughput']['orders_per_second']} "
            f"| {fl['orders_per_second']} ({fl['flow_fraction']:.0%}) "
            f"| {x['api_writes_per_order']} / {total:.1f} "
            f"| {ctl['order']['peak_rss_mib']} / {ctl['fulfillment']['peak_rss_mib']} MiB "
            f"| {rs['rss_mib']['order']} / {rs['rss_mib']['fulfillment']} MiB "
            f"| {ctl['order']['cpu_seconds_per_1000_orders']}, {ctl['fulfillment']['cpu_seconds_per_1000_orders']}, "
            f"{x['control_plane_cpu_ms_per_order']} "
            f"| {rs['writes']}, {rs['caught_up_seconds']} s, {rs['new_order_completed_seconds']} s "
            f"| {rs['serving']['new_order_completed_seconds']} s |"
        )
    lines += [
        "",
        f"## {t['orders']:,} orders in detail",
        "",
        "| measure | result | target (#12) |",
        "|---|---|---|",
        f"| throughput, create → Completed "
        f"| {t['orders_per_second']} orders/s ({t['create_to_last_completed_seconds']} s) | ≥ 40 orders/s at 10,000 |",
        f"| the machine's floor: {f['writes_per_order']} writes per order from a plain client, no controllers "
        f"| {f['orders_per_second']} orders/s ({f['best_client_threads']} threads); the flow reaches "
        f"{f['flow_fraction']:.0%} | ≥ 70 % |",
        f"| API writes per order, everything counted | {result['api_writes_per_order']} | ≤ 8 |",
        f"| a hand-made Fulfillment, zero-length steps: create → Shipped in status, n={a['n']} | {pct(a)} | |",
        f"| signal latency (`paused` patch → acknowledged in status), n={s['n']} | {pct(s)} | p99 ≤ 100 ms |",
        f"| query propagation (Fulfillment status → Order status), n={q['n']} | {pct(q)} | p99 ≤ 100 ms |",
        f"| restart over {r['objects']:,} finished Orders and Fulfillments: writes; healthy; caught up; "
        f"the next Order completed after | {r['writes']}; {r['healthy_seconds']} s; {r['caught_up_seconds']} s; "
        f"{r['new_order_completed_seconds']} s | 0 writes |",
        "| serving again: an Order created as soon as both restarted controllers are healthy, while they "
        f"look at every finished object again: restart → Completed | {r['serving']['new_order_completed_seconds']} s "
        "| serving in ≤ 20 s |",
    ]
    for which, u in result["controllers"].items():
        usage = f"{u['peak_rss_mib']} MiB / {u['cpu_seconds_per_1000_orders']} s"
        lines.append(f"| {which} controller: peak RSS / CPU per 1,000 orders | {usage} | ≤ 100 MiB at 10,000 |")
    lines += [
        f"| API server + etcd: CPU per order | {result['control_plane_cpu_ms_per_order']} ms | |",
        "| ceiling: status patches/s, 1 client / 8 clients "
        f"| {c['status_patches_per_second_one_client']} / {c['status_patches_per_second_eight_clients']} | |",
        f"| the flow's API writes/s (orders/s times writes per order) | {c['flow_writes_per_second']} | |",
    ]
    if peer is not None:
        lines += peer_section(results[0], peer)
    lines += [
        "",
        "API requests per order, by verb and resource (from `apiserver_request_total`):",
        "",
        "| verb resource | per order |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in result["api_requests_per_order"].items()),
        "",
    ]
    return "\n".join(lines)


def peer_section(ours: dict[str, Any], peer: dict[str, Any]) -> list[str]:
    """orderflow beside the seed on Temporal, same window, same machine (orderflow.dev.bench.peer)."""
    ctl = ours["controllers"]
    cpu = (
        sum(ctl[w]["cpu_seconds_per_1000_orders"] for w in ctl) + ours["control_plane_cpu_ms_per_order"]
    )  # s per 1,000 orders is ms per order
    rows = [
        (
            "orderflow",
            ours["throughput"]["orders_per_second"],
            pct(ours["signal_latency"]),
            pct(ours["query_propagation"]),
            f"{cpu:.1f}",
            f"{ctl['order']['peak_rss_mib']} + {ctl['fulfillment']['peak_rss_mib']} MiB (controllers)",
        )
    ]
    for name, x in peer["runs"].items():
        rows.append(
            (
                f"Temporal, {name.replace('_', ' ')}",
                round(x["orders_per_s"], 1),
                pct(x["signal"]),
                pct(x["propagation"]),
                f"{sum(x['cpu_ms_per_order'].values()):.1f}",
                f"{x['rss_mib']['server']:.0f} MiB (server) + {x['rss_mib']['worker']:.0f} MiB (worker)",
            )
        )
    best = max(x["orders_per_s"] for x in peer["runs"].values())
    return [
        "",
        f"## Beside the peer: the seed's workflows on Temporal, {peer['orders']:,} orders, same run",
        "",
        f"Temporal CLI {peer['temporal']} dev server (in-memory SQLite), temporalio {peer['sdk']}, one worker "
        "process serving both task queues; the order workflow starts the fulfillment through an activity, "
        "signals it, and polls its status by query (every 5 s as the seed does, and with no pause). "
        "CPU counts the server and the worker, as orderflow's counts both controllers, the API server and etcd.",
        "",
        "| system | orders/s | signal applied | status propagation | CPU ms/order | peak RSS |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(str(v) for v in row)} |" for row in rows),
        "",
        f"orderflow / best peer: {ours['throughput']['orders_per_second'] / best:.2f} times the orders/s "
        "(target: at least 1.5).",
    ]


QUICK = (200, 40)  # orders, signals: the CI size, a smoke run of every measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow.dev.bench", description=__doc__)
    parser.add_argument(
        "--orders", default="1000,10000", help="sizes of the cost curve, comma-separated (default: 1000,10000)"
    )
    parser.add_argument("--signals", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help=f"one small size ({QUICK[0]} orders), for CI")
    parser.add_argument("--peer", choices=["temporal"], help="also run the seed's workflows on Temporal, same run")
    parser.add_argument("--client-threads", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench") / "results")
    parser.add_argument("--docs", type=Path, default=Path("docs") / "benchmarks.md")
    args = parser.parse_args(argv)
    sizes = [QUICK[0]] if args.quick else [int(n) for n in args.orders.split(",")]
    signals = QUICK[1] if args.quick else args.signals
    results = []
    for n in sizes:
        log(f"== {n} orders")
        results.append(run(n, signals, args.client_threads))
    peer_result = None
    if args.peer:
        from orderflow.dev.bench import peer

        log(f"== the peer: {sizes[0]} orders on Temporal")
        peer_result = peer.measured(sizes[0], signals)
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"sizes": results, "peer": peer_result}
    (args.out / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    command = " ".join(["python -m orderflow.dev.bench", *(argv if argv is not None else sys.argv[1:])])
    args.docs.write_text(markdown(results, command.strip(), peer_result) + sections.kept(args.docs))
    print(json.dumps(document, indent=2))
    return 0
