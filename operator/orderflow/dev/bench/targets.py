"""Across clusters: Orders in one control plane, their Fulfillments in another (a target).

Two local control planes, the shop's and the warehouse's. The order controller runs against the
shop and reaches the warehouse through a kubeconfig in a Secret; a fulfillment controller runs
against each (the warehouse's for the target, the shop's for the same-cluster figure). Measured in
the same run, with zero-length steps:

1. throughput: N Orders from create to Completed, with their Fulfillments in the warehouse
   (``spec.target``), then N more with their Fulfillments beside them in the shop;
2. signal applied across clusters: a ``paused`` patch on an Order -> ``status.paused`` on its
   Fulfillment in the other cluster (the order controller sends, the fulfillment controller acts);
3. status propagation across clusters: that Fulfillment status change -> the Order's mirror of it.
Latencies are taken from watch events of both API servers, on one machine's clock.

    python -m orderflow.dev.bench.targets --orders 500
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from orderflow.api.common import GROUP, VERSION
from orderflow.dev import manifests
from orderflow.dev.bench import record, sections
from orderflow.dev.bench.run import Watcher, log, prepare
from orderflow.dev.bench.stats import percentiles
from orderflow.dev.cluster import tools
from orderflow.dev.cluster.controlplane import ControlPlane
from orderflow.dev.harness import Controllers

SHOP, WAREHOUSE = "shop", "warehouse"


def _phase(obj: dict[str, Any]) -> str | None:
    return (obj.get("status") or {}).get("phase")


def _kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run(["kubectl", *args], input=stdin, text=True, env=env, check=True, capture_output=True)


def run(n_orders: int, n_signals: int, workers: int) -> dict[str, Any]:
    kubectl = tools.ensure("kubectl")
    workdir = Path(tempfile.mkdtemp(prefix="orderflow-bench-targets-"))
    shop = ControlPlane.start(workdir / "shop.kubeconfig", log=log, die_with_parent=True)
    warehouse = ControlPlane.start(workdir / "warehouse.kubeconfig", log=log, die_with_parent=True)
    path = f"{kubectl.parent}:{os.environ['PATH']}"
    shop_env = {**os.environ, "KUBECONFIG": str(shop.kubeconfig), "PATH": path}
    warehouse_env = {**os.environ, "KUBECONFIG": str(warehouse.kubeconfig), "PATH": path}
    controllers = Controllers(shop_env, workdir)
    seen: list[Watcher] = []
    try:
        shop_api = prepare(shop, shop_env, workers, (SHOP,))
        warehouse_api = prepare(warehouse, warehouse_env, workers, (WAREHOUSE,))
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "warehouse-kubeconfig", "namespace": SHOP},
            "data": {"kubeconfig": base64.b64encode(warehouse.kubeconfig.read_bytes()).decode()},
        }
        _kubectl(shop_env, "apply", "-f", "-", stdin=json.dumps(secret))
        declared = workdir / "targets.yaml"
        declared.write_text(
            yaml.safe_dump(
                {
                    "targets": [
                        {
                            "name": "eu",
                            "namespace": WAREHOUSE,
                            "kubeconfigSecretRef": {"name": "warehouse-kubeconfig"},
                            "allowedNamespaces": [SHOP],
                        }
                    ]
                }
            )
        )
        controllers.start("fulfillment", "--namespace", WAREHOUSE, "--step-seconds", "0", env=warehouse_env)
        controllers.start("fulfillment", "--namespace", SHOP, "--step-seconds", "0")
        controllers.start("order", "--namespace", SHOP, "--targets", str(declared), "--secrets-namespace", SHOP)

        orders = Watcher(
            shop_api,
            "orders",
            lambda o: o["metadata"]["name"] if _phase(o) == "Completed" else None,
            namespace=SHOP,
            clock=time.time,
        )
        seen.append(orders)

        def complete(prefix: str, target: str | None, count: int) -> dict[str, float]:
            names = [f"{prefix}-{i:05d}" for i in range(count)]

            def create(name: str) -> None:
                body = manifests.order(name, stepDurationSeconds={"picking": 0, "packing": 0})
                if target:
                    body["spec"]["target"] = target
                shop_api.create_namespaced_custom_object(GROUP, VERSION, SHOP, "orders", body)

            started = time.time()
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                list(pool.map(create, names))
            orders.wait(lambda: all(n in orders.seen for n in names), timeout=max(120, count))
            took = max(orders.seen[n] for n in names) - started
            return {"orders": count, "seconds": round(took, 2), "orders_per_second": round(count / took, 1)}

        complete("warm-up", "eu", 1)
        complete("warm-up-local", None, 1)
        log(f"{n_orders} orders with their Fulfillments in the other cluster ...")
        across = complete("across", "eu", n_orders)
        log(f"across: {across}")
        log(f"{n_orders} orders with their Fulfillments beside them ...")
        beside = complete("beside", None, n_orders)
        log(f"beside: {beside}")

        # 2-3. a pause sent across, applied there, and mirrored back
        names = [f"slow-{i:03d}" for i in range(n_signals)]
        fulfillments = Watcher(
            warehouse_api,
            "fulfillments",
            lambda f: (f["spec"]["orderRef"]["name"], (f.get("status") or {}).get("paused")),
            namespace=WAREHOUSE,
            clock=time.time,
        )
        mirrored = Watcher(
            shop_api,
            "orders",
            lambda o: (o["metadata"]["name"], ((o.get("status") or {}).get("fulfillment") or {}).get("paused")),
            namespace=SHOP,
            clock=time.time,
        )
        seen += [fulfillments, mirrored]
        for name in names:
            body = manifests.order(name, target="eu", stepDurationSeconds={"picking": 86400, "packing": 86400})
            shop_api.create_namespaced_custom_object(GROUP, VERSION, SHOP, "orders", body)
        mirrored.wait(lambda: all((n, False) in mirrored.seen for n in names), timeout=120)
        applied, propagated = [], []
        for name in names:
            sent = time.time()
            shop_api.patch_namespaced_custom_object(GROUP, VERSION, SHOP, "orders", name, {"spec": {"paused": True}})
            key = (name, True)
            fulfillments.wait(lambda: key in fulfillments.seen, timeout=60)  # noqa: B023  # waited on at once
            mirrored.wait(lambda: key in mirrored.seen, timeout=60)  # noqa: B023
            at_warehouse = fulfillments.seen[(name, True)]
            applied.append(at_warehouse - sent)
            propagated.append(mirrored.seen[(name, True)] - at_warehouse)
        outcome = {
            "throughput_across": across,
            "throughput_beside": beside,
            "signal_applied_across": percentiles(applied),
            "status_propagation_across": percentiles(propagated),
        }
        log(f"targets: {json.dumps(outcome)}")
        return outcome
    finally:
        for s in seen:
            s.stop()
        controllers.stop_all()
        shop.stop()
        warehouse.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow.dev.bench.targets", description=__doc__)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--signals", type=int, default=20, help="Orders paused one at a time for the latencies")
    parser.add_argument("--workers", type=int, default=8, help="client threads creating Orders")
    parser.add_argument("--output", type=Path, default=Path("bench/results/targets.json"))
    parser.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    outcome = run(args.orders, args.signals, args.workers)
    document = {**record.stamp(__spec__.name, argv if argv is not None else sys.argv[1:]), **outcome}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    a, b = outcome["throughput_across"], outcome["throughput_beside"]
    s, p = outcome["signal_applied_across"], outcome["status_propagation_across"]
    text = "\n".join(
        [
            "## Across clusters: Orders in one control plane, Fulfillments in another",
            "",
            f"{document['when']}, `{document['command']}` (`make bench-targets`): two local control planes on",
            "the same 2 cores, the order controller reaching the warehouse's through a kubeconfig in a Secret",
            "(a target); a fulfillment controller on each. Zero-length steps; latencies from watch events.",
            "",
            "| measure | result |",
            "|---|---|",
            f"| throughput, Fulfillments in the other cluster "
            f"| {a['orders_per_second']} orders/s ({a['orders']} orders) |",
            f"| throughput, Fulfillments beside the Orders, same run "
            f"| {b['orders_per_second']} orders/s ({b['orders']}) |",
            f"| signal applied across clusters (Order patched → Fulfillment's status there), p50 / p99 "
            f"| {s['p50_ms']:.0f} / {s['p99_ms']:.0f} ms ({s['n']}) |",
            f"| status propagation across clusters (Fulfillment's status → the Order's mirror), p50 / p99 "
            f"| {p['p50_ms']:.0f} / {p['p99_ms']:.0f} ms ({p['n']}) |",
        ]
    )
    sections.replace(args.docs, "targets", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
