"""Deadline lateness: how long after its due time an Order's deadline is acted on, with many due.

Both controllers run as processes against a fresh local control plane. N Orders are created with
steps of a day, so that none ships and each one's deadline (``spec.activeDeadlineSeconds``) ends
it: its Fulfillment is cancelled and the Order ends Failed, reason DeadlineExceeded. The Orders are
created without a deadline; once all N are in flight (Picking), each is given one, so that:

- ``--per-second 0`` (the default): all fall due in the same second (the hardest case: a burst
  of Orders with equal promises; the lateness then is the time to do the work of N cancels);
- ``--per-second R``: they fall due R a second, one after the other, while the rest wait.

For each Order it reports two figures, p50/p99/max over the N:
- *acted*: ``status.deadlineExceededAt - status.dueAt``, the order controller's own clock: how
  late it found the Order past due and sent the cancel;
- *failed*: when a watch saw the Order Failed, minus ``status.dueAt``: the cancel acknowledged by
  the fulfillment controller and the end written, as a user would see it.

    python -m orderflow.dev.bench.deadlines --orders 1000 --per-second 0

With 10,000 in flight, setting the deadlines is itself 10,000 spec changes to reconcile (each
writes status.dueAt): ``--margin`` must leave the controllers time for them (420 s on 2 cores),
or the run stops and says so rather than time that backlog as lateness.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orderflow.api.common import GROUP, VERSION
from orderflow.dev import manifests
from orderflow.dev.bench import record, sections
from orderflow.dev.bench.run import NS, Watcher, log, prepare, warm_up
from orderflow.dev.bench.stats import percentiles
from orderflow.dev.cluster import tools
from orderflow.dev.cluster.controlplane import ControlPlane
from orderflow.dev.harness import Controllers

DAY = 86_400


def _time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _order(name: str, deadline: int | None) -> dict[str, Any]:
    body = manifests.order(name, stepDurationSeconds={"picking": DAY, "packing": DAY})
    if deadline is not None:
        body["spec"]["activeDeadlineSeconds"] = deadline
    return body


def _phase(obj: dict[str, Any]) -> str | None:
    return (obj.get("status") or {}).get("phase")


def run(n_orders: int, per_second: float, margin: float, workers: int) -> dict[str, Any]:
    kubectl = tools.ensure("kubectl")
    workdir = Path(tempfile.mkdtemp(prefix="orderflow-bench-deadlines-"))
    plane = ControlPlane.start(workdir / "kubeconfig", log=log, die_with_parent=True)
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "PATH": f"{kubectl.parent}:{os.environ['PATH']}"}
    controllers = Controllers(env, workdir)
    watchers: list[Watcher] = []
    try:
        objects = prepare(plane, env, workers)
        controllers.start("fulfillment")
        controllers.start("order")
        warm_up(objects)
        # Wall-clock time of each Order's Failed, as a watch saw it (the Watcher keeps monotonic).
        offset = time.time() - time.monotonic()
        orders = Watcher(objects, "orders", lambda o: o["metadata"]["name"] if _phase(o) == "Failed" else None)
        watchers.append(orders)
        names = [f"o-{i:05d}" for i in range(n_orders)]

        log(f"creating {n_orders} orders without a deadline ...")
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(
                pool.map(
                    lambda n: objects.create_namespaced_custom_object(GROUP, VERSION, NS, "orders", _order(n, None)),
                    names,
                )
            )
        create_seconds = time.monotonic() - started

        def in_flight() -> bool:
            return all(
                ((orders.latest.get(n, {}).get("status") or {}).get("fulfillment") or {}).get("phase") == "Picking"
                for n in names
            )

        orders.wait(in_flight, timeout=max(120, n_orders / 5), about=names[-1])
        # The first falls due `margin` seconds after the deadlines are set, the others with it or
        # one after the other at `per_second`.
        first = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=margin)
        created = {n: _time(orders.latest[n]["metadata"]["creationTimestamp"]) for n in names}
        when = {n: first + datetime.timedelta(seconds=i / per_second if per_second else 0) for i, n in enumerate(names)}
        log(f"all {n_orders} in flight; setting deadlines, the first due at {first.isoformat()} ...")
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(
                pool.map(
                    lambda n: objects.patch_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        NS,
                        "orders",
                        n,
                        {"spec": {"activeDeadlineSeconds": math.ceil((when[n] - created[n]).total_seconds())}},
                    ),
                    names,
                )
            )
        # The controllers act on each new deadline (status.dueAt) before the first falls due: what is
        # measured is lateness at the due time, not the backlog that setting N deadlines makes.
        left = (first - datetime.datetime.now(datetime.UTC)).total_seconds()
        orders.wait(
            lambda: all("dueAt" in (orders.latest[n].get("status") or {}) for n in names),
            timeout=max(1.0, left),
            about=names[-1],
        )
        if datetime.datetime.now(datetime.UTC) > first:
            raise RuntimeError(
                f"the controllers took in the deadlines after the first fell due; raise --margin {margin}"
            )
        last_due = max(when.values())
        wait = (last_due - datetime.datetime.now(datetime.UTC)).total_seconds() + max(300, n_orders)
        orders.wait(lambda: all(n in orders.seen for n in names), timeout=wait, about=names[-1])
        acted, failed = [], []
        for n in names:
            status = orders.latest[n]["status"]
            due_at = _time(status["dueAt"])
            acted.append((_time(status["deadlineExceededAt"]) - due_at).total_seconds())
            failed.append(orders.seen[n] + offset - due_at.timestamp())
        outcome = {
            "orders": n_orders,
            "due_per_second": per_second or "all at once",
            "create_seconds": round(create_seconds, 1),
            "acted_lateness": percentiles(acted),
            "failed_lateness": percentiles(failed),
        }
        log(f"deadlines: {json.dumps(outcome)}")
        return outcome
    finally:
        for watcher in watchers:
            watcher.stop()
        controllers.stop_all()
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow.dev.bench.deadlines", description=__doc__)
    parser.add_argument("--orders", type=int, nargs="+", default=[1000])
    parser.add_argument(
        "--per-second", type=float, default=0.0, help="deadlines falling due each second; 0: all in the same second"
    )
    parser.add_argument("--margin", type=float, default=60.0, help="seconds between setting deadlines and their due")
    parser.add_argument("--workers", type=int, default=8, help="client threads creating Orders")
    parser.add_argument("--output", type=Path, default=Path("bench/results/deadlines.json"))
    parser.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    results = [run(n, args.per_second, args.margin, args.workers) for n in args.orders]
    document = {**record.stamp(__spec__.name, argv if argv is not None else sys.argv[1:]), "results": results}
    measured = {(r["due_per_second"], r["orders"]) for r in results}
    runs = record.keep(
        args.output,
        document,
        lambda run: (run["results"][0]["due_per_second"], run["results"][0]["orders"]) in measured,
    )
    text = section(runs)
    sections.replace(args.docs, "deadlines", text)
    print(text)
    return 0


def section(runs: list[dict[str, Any]]) -> str:
    """docs/benchmarks.md's deadline section, from every run kept in the results file."""
    lines = [
        "## Deadlines: how late they are acted on",
        "",
        "`python -m orderflow.dev.bench.deadlines` (`make bench-deadlines`): N Orders in flight with steps of a",
        "day, then each given a deadline; *acted* is `status.deadlineExceededAt - status.dueAt` (the order",
        "controller found it past due and sent the cancel), *failed* is when a watch saw the Order `Failed`",
        "(the Fulfillment cancelled and acknowledged) minus the due time. p50 / p99 / max.",
        "",
        "| Orders in flight | falling due | acted | failed | when, command |",
        "|---|---|---|---|---|",
    ]
    for run_ in runs:
        for r in run_["results"]:
            a, f = r["acted_lateness"], r["failed_lateness"]
            rate = r["due_per_second"]
            due = "all in the same second" if isinstance(rate, str) else f"{rate:g} a second"
            lines.append(
                f"| {r['orders']:,} | {due} | {a['p50_ms']:,.0f} / {a['p99_ms']:,.0f} / {a['max_ms']:,.0f} ms "
                f"| {f['p50_ms']:,.0f} / {f['p99_ms']:,.0f} / {f['max_ms']:,.0f} ms "
                f"| {run_['when']}, `{run_['command']}` |"
            )
    lines += [
        "",
        "What the rows mean. While the deadlines fall due no faster than the controllers can act on",
        "them, each is acted on at its due time, within the work of a few API requests: every",
        "in-flight Order's due time is a wake-up in the order controller's work queue, derived from",
        "`metadata.creationTimestamp` and the spec. When many fall due in the same second, the lateness",
        "is the time to do the work of all of them: each missed deadline costs a cancel sent to the",
        "Fulfillment, its status write, and the Order's status written twice (plus Events), the same",
        "kind of writes as an order's whole flow, which this machine does at the rate in the cost",
        "curve above. A deadline is one second's precision (`activeDeadlineSeconds` is whole seconds",
        "from a creation time kept in whole seconds), so Orders created in one second fall due together.",
        "With 10,000 in flight on this machine, 20 a second is more than the two controllers and the API",
        "server (on the same 2 cores) get done, so the lateness grows through the run: the 1,000 row is",
        "the one where the rate is below that capacity.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
