"""The benchmark: both controllers as processes against the local control plane, zero-length steps.

Measures, in order:
1. throughput: N Orders from create to Completed;
2. API cost: requests per order by verb and resource, from the API server's own /metrics;
3. resources: each controller's peak RSS and CPU seconds per 1,000 orders;
4. signal latency: a `paused` patch on a Fulfillment -> `paused` in its status (acknowledged);
5. query propagation: a Fulfillment status change -> the Order's status;
6. the ceiling: the raw status-patch rate of the same API server from one plain client.
Latencies are taken from watch events, as any client would see them.
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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config, watch

from orderflow.api.common import GROUP, VERSION
from orderflow.dev import manifests
from orderflow.dev.cluster import tools
from orderflow.dev.cluster.controlplane import ControlPlane
from orderflow.dev.harness import Controllers

NS = "bench"
WARM_UP = "bench-warm-up"  # the controllers' first Order, outside what is measured (see warm_up)
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}  # apiserver_request_total labels verbs as HTTP methods


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50_ms": at(50) * 1000,
        "p95_ms": at(95) * 1000,
        "p99_ms": at(99) * 1000,
        "max_ms": ordered[-1] * 1000,
    }


class Watcher:
    """Records, from a watch, when each (name, predicate-key) was first seen."""

    def __init__(self, api: client.CustomObjectsApi, plural: str, key: Callable[[dict[str, Any]], Any]) -> None:
        self.api, self.plural, self.key = api, plural, key
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
            self.api.list_namespaced_custom_object, GROUP, VERSION, NS, self.plural, timeout_seconds=600
        ):
            now = time.monotonic()
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


def run(n_orders: int, n_signals: int, workers: int) -> dict[str, Any]:
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
        crds = yaml.safe_dump_all(manifests.crds())
        subprocess.run(["kubectl", "apply", "-f", "-"], input=crds, text=True, env=env, check=True, capture_output=True)
        subprocess.run(
            ["kubectl", "wait", "--for=condition=Established", "crd", "--all"], env=env, check=True, capture_output=True
        )
        for namespace in (NS, WARM_UP):
            subprocess.run(["kubectl", "create", "namespace", namespace], env=env, check=True, capture_output=True)
        api_client = config.new_client_from_config(config_file=str(plane.kubeconfig))
        api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = workers * 2
        objects = client.CustomObjectsApi(api_client)
        # Each controller with its own option only (`run order --step-seconds` is a usage error).
        procs = [
            controllers.start("fulfillment", "--step-seconds", "0"),
            controllers.start("order", "--ack-timeout", "30"),
        ]
        warm_up(objects)

        # 1-3. throughput, API cost, resources
        orders = Watcher(objects, "orders", lambda o: _name_if(o, "Completed"))
        watchers.append(orders)
        cpu_before = {p.which: p.cpu_seconds() for p in procs}
        requests_before = request_counts(env)
        log(f"creating {n_orders} orders with {workers} client threads ...")
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(
                pool.map(
                    lambda i: objects.create_namespaced_custom_object(
                        GROUP, VERSION, NS, "orders", order(f"o-{i:05d}")
                    ),
                    range(n_orders),
                )
            )
        created = time.monotonic()
        orders.wait(lambda: len(orders.seen) >= n_orders, timeout=max(120, n_orders))
        finished = max(orders.seen.values())
        time.sleep(2)  # let trailing Events and acknowledgements land before counting
        requests = request_counts(env) - requests_before
        cpu = {p.which: p.cpu_seconds() - cpu_before[p.which] for p in procs}
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

        # 4. signal latency: pause/resume Fulfillments whose step never ends on its own
        n_targets = 20
        fulfill = Watcher(
            objects,
            "fulfillments",
            lambda f: (f["metadata"]["name"], (f.get("status") or {}).get("observedGeneration")),
        )
        watchers.append(fulfill)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(
                pool.map(
                    lambda i: objects.create_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        NS,
                        "orders",
                        order(f"slow-{i:03d}", picking=86400, packing=86400),
                    ),
                    range(n_targets),
                )
            )
        names = [f"slow-{i:03d}" for i in range(n_targets)]
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
            name = names[i % n_targets]
            paused[name] = not paused[name]
            latency, propagated = one_signal(name, paused[name])
            signal_latency.append(latency)
            propagation.append(propagated)
        log("signals done")

        # 4b. a hand-made Fulfillment, started, zero-length steps: create -> Shipped in its status
        shipped = Watcher(objects, "fulfillments", lambda f: _name_if(f, "Shipped"))
        watchers.append(shipped)

        def one_fulfillment(name: str) -> float:
            sent = time.monotonic()
            objects.create_namespaced_custom_object(GROUP, VERSION, NS, "fulfillments", hand_made(name))
            shipped.wait(lambda: name in shipped.seen, timeout=30, about=name)
            return shipped.seen[name] - sent

        to_shipped = [one_fulfillment(f"hand-{i:03d}") for i in range(max(100, n_signals // 2))]

        # 6. the ceiling: plain clients patching status as fast as they can, each on objects of its
        # own (writes to one object from many clients would measure the server's conflict retries).
        controllers.stop_all()  # the controllers would react to each write; measure the server alone
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

        result = {
            "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
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
            "apply_to_shipped": percentiles(to_shipped),
            "signal_latency": percentiles(signal_latency),
            "query_propagation": percentiles(propagation),
            "ceiling": {
                "status_patches_per_second_one_client": round(one_client, 1),
                "status_patches_per_second_eight_clients": round(eight_clients, 1),
                # the flow's own write rate, for comparison: above the one-client ceiling, the
                # writes of three processes (the client creating orders, two controllers) add up
                "flow_writes_per_second": round(throughput["orders_per_second"] * writes, 1),
            },
        }
        return result
    finally:
        for w in watchers:
            w.stop()
        controllers.stop_all()
        plane.stop()


def pct(d: dict[str, float]) -> str:
    return f"p50 {d['p50_ms']:.0f} ms, p95 {d['p95_ms']:.0f} ms, p99 {d['p99_ms']:.0f} ms"


def markdown(result: dict[str, Any], command: str) -> str:
    t, c, s, q = result["throughput"], result["ceiling"], result["signal_latency"], result["query_propagation"]
    a = result["apply_to_shipped"]
    lines = [
        "# Benchmarks",
        "",
        f"Latest run: {result['when']}, on {result['machine']['cores']} cores ({result['machine']['platform']},",
        f"Python {result['machine']['python']}); the control plane and both controllers on the same machine.",
        "",
        f"Command: `{command}`",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| throughput, {t['orders']} orders, create → Completed "
        f"| {t['orders_per_second']} orders/s ({t['create_to_last_completed_seconds']} s) | ≥ 25 orders/s |",
        f"| API writes per order, everything counted | {result['api_writes_per_order']} | ≤ 12 |",
        f"| a hand-made Fulfillment, zero-length steps: create → Shipped in status, n={a['n']} | {pct(a)} | |",
        f"| signal latency (`paused` patch → acknowledged in status), n={s['n']} | {pct(s)} | p99 ≤ 300 ms |",
        f"| query propagation (Fulfillment status → Order status), n={q['n']} | {pct(q)} | p99 ≤ 500 ms |",
    ]
    for which, r in result["controllers"].items():
        usage = f"{r['peak_rss_mib']} MiB / {r['cpu_seconds_per_1000_orders']} s"
        lines.append(f"| {which} controller: peak RSS / CPU per 1,000 orders | {usage} | ≤ 150 MiB |")
    lines += [
        "| ceiling: status patches/s, 1 client / 8 clients "
        f"| {c['status_patches_per_second_one_client']} / {c['status_patches_per_second_eight_clients']} | |",
        f"| the flow's API writes/s (orders/s times writes per order) | {c['flow_writes_per_second']} | |",
        "",
        "API requests per order, by verb and resource (from `apiserver_request_total`):",
        "",
        "| verb resource | per order |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in result["api_requests_per_order"].items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow.dev.bench", description=__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--signals", type=int, default=200)
    parser.add_argument("--client-threads", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench") / "results")
    parser.add_argument("--docs", type=Path, default=Path("docs") / "benchmarks.md")
    args = parser.parse_args(argv)
    result = run(args.orders, args.signals, args.client_threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    command = "make bench" + (
        f" BENCH_ARGS='--orders {args.orders} --signals {args.signals}'"
        if (args.orders, args.signals) != (1000, 200)
        else ""
    )
    args.docs.write_text(markdown(result, command))
    print(json.dumps(result, indent=2))
    return 0
