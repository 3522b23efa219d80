"""Waiting at scale: N workflows in flight with long steps, what they cost while they wait, how late
their steps end, and a restart of both controllers in the middle; beside the seed's design on
Temporal (its order workflow polls its fulfillment every 5 s), in the same run.

Both controllers run as processes against a fresh local control plane. N Orders are created at a
steady rate, each with a Picking step of ``--picking-seconds`` (long enough that all N are in
flight together) and a Packing step of a day (it never ends in the run). Then:

1. waiting: once every Order mirrors its Fulfillment's Picking, a quiet window of ``--window``
   seconds: utime+stime of each controller, the API server and etcd (from /proc), API requests
   (``apiserver_request_total``, before and after), each controller's RSS;
2. a restart: ``--restart-lead`` seconds before the first step falls due, both controllers are
   stopped (SIGTERM, or SIGKILL with ``--kill``) and started again. Serving again is when each has
   reconciled every object since its start and has nothing queued (its own metrics); the API
   writes from the stop to then, beyond those the due transitions explain (writes per transition
   by resource, measured in the same wave after the restart);
3. lateness: the N Picking steps fall due at the creation rate, during and after the restart. A
   step's due time is its history's entry into Picking plus its duration (``lateness.py``); its end
   is when a watch saw the Fulfillment in Packing. p50/p99/max over all, and over those due
   before serving again counted from then.

The peer (``--peer temporal``, orderflow.dev.bench.peer): the same N, rate and step, on a fresh
Temporal dev server after orderflow's run; CPU of the server and the worker while all wait,
their RSS, and each Picking step's end in the fulfillment workflow's own time.

    python -m orderflow.dev.bench.waiting --orders 1000 --per-second 20 --picking-seconds 150 --peer temporal
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from orderflow.api.common import GROUP, VERSION
from orderflow.dev import manifests
from orderflow.dev.bench import record, sections
from orderflow.dev.bench.lateness import parse_time, step_lateness
from orderflow.dev.bench.run import (
    NS,
    OURS,
    WRITE_VERBS,
    Watcher,
    log,
    prepare,
    request_counts,
    scrape,
    warm_up,
)
from orderflow.dev.bench.stats import percentiles
from orderflow.dev.cluster import tools
from orderflow.dev.cluster.controlplane import ControlPlane, free_port
from orderflow.dev.harness import ControllerProcess, Controllers, cpu_seconds, memory

DAY = 86_400
ACK_TIMEOUT = 30.0
"""The order controller's --ack-timeout: each new Order is looked at once more this long after its
Fulfillment was created (is the signal acknowledged?). The quiet window begins after the last
of those looks, so that it measures waiting, not the tail of the creation."""
STORAGE_METRICS = ("apiserver_storage_size_bytes", "apiserver_storage_db_total_size_in_bytes")


def _storage_bytes(env: dict[str, str]) -> float | None:
    """etcd's database size as the API server reports it (uncompacted revisions included)."""
    text = subprocess.run(
        ["kubectl", "get", "--raw", "/metrics"], env=env, check=True, capture_output=True, text=True
    ).stdout
    for name in STORAGE_METRICS:
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if re.match(rf"{name}[{{ ]", line)]
        if values:
            return max(values)
    return None


def _mirrored(obj: dict[str, Any]) -> str | None:
    return ((obj.get("status") or {}).get("fulfillment") or {}).get("phase")


def _ours(requests: Counter[tuple[str, str]]) -> dict[str, int]:
    """What the controllers' resources saw, as ``VERB resource``: the API server's own (leases,
    endpoints, /metrics) left out."""
    return {f"{verb} {res}": n for (verb, res), n in sorted(requests.items()) if n and res in OURS}


def _writes(requests: Counter[tuple[str, str]]) -> Counter[str]:
    return Counter({res: n for (verb, res), n in requests.items() if verb in WRITE_VERBS and res in OURS and n})


def serving(procs: list[ControllerProcess], ports: dict[str, int], n_objects: int, deadline: float) -> dict[str, float]:
    """When each restarted controller first had reconciled every object since its start with
    nothing queued (its own metrics, polled every 50 ms); serving again is the later of the two.
    Unlike the cost curve's caught-up, no quiet second is asked for: with steps falling due
    steadily, work keeps coming."""
    served: dict[str, float] = {}
    while True:
        now = time.monotonic()
        for p in procs:
            if p.which in served:
                continue
            m = scrape(ports[p.which])
            if m.get("controller_runtime_reconcile_total", 0) >= n_objects and m.get("workqueue_depth") == 0:
                served[p.which] = now
        if len(served) == len(procs):
            return served
        if now > deadline:
            raise TimeoutError(f"not serving again after a restart: {served}")
        time.sleep(0.05)


def start_profiles(procs: list[ControllerProcess], directory: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each controller (``--profile DIR``): where a slow catch-up goes."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy on PATH: pip install py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(p.pid),
                "--rate",
                "100",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(directory / f"{p.which}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in procs
    ]


def stop_profiles(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    for spy in spies:
        spy.wait(timeout=60)


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """From py-spy's collapsed stacks: the share of samples each function was on the stack
    (inclusive) and on top of it (self), the ``top`` of each."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [re.sub(r" \(.*/(?:site-packages|operator)/", " (", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n

    def share(counts: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counts.most_common(top)] if total else []

    return {"samples": total, "inclusive_percent": share(inclusive), "self_percent": share(own)}


class Scenario:
    """One run's shared state: the control plane, the controllers, the watches, the N names and
    when each one's Picking began; ``run`` calls its phases in order."""

    def __init__(self, workdir: Path, plane: ControlPlane, n_orders: int, per_second: float, picking: float) -> None:
        kubectl = tools.ensure("kubectl")
        self.plane = plane
        self.env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "PATH": f"{kubectl.parent}:{os.environ['PATH']}"}
        self.controllers = Controllers(self.env, workdir)
        self.watchers: list[Watcher] = []
        self.n_orders = n_orders
        self.per_second = per_second
        self.picking = picking
        self.durations = {"picking": picking, "packing": DAY}
        self.names = [f"w-{i:05d}" for i in range(n_orders)]
        self.starts: dict[str, float] = {}  # each one's entry into Picking, monotonic
        self.offset = time.time() - time.monotonic()  # watch times are monotonic; history is wall-clock

    def start(self, workers: int) -> None:
        """The CRDs, both controllers warmed up, the watches of both kinds."""
        objects = prepare(self.plane, self.env, workers)
        self.objects = objects
        self.ports = {"fulfillment": free_port(), "order": free_port()}
        self.procs = [
            self.controllers.start("fulfillment", "--metrics-port", str(self.ports["fulfillment"])),
            self.controllers.start(
                "order", "--ack-timeout", f"{ACK_TIMEOUT:g}", "--metrics-port", str(self.ports["order"])
            ),
        ]
        warm_up(objects)
        self.plane_pids = {proc.name: proc.pid for proc in self.plane.processes()}
        self.fulfillments = Watcher(
            objects, "fulfillments", lambda f: (f["metadata"]["name"], (f.get("status") or {}).get("phase"))
        )
        self.orders = Watcher(objects, "orders", lambda o: (o["metadata"]["name"], _mirrored(o)))
        self.watchers += [self.fulfillments, self.orders]

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        self.controllers.stop_all()

    def rss(self) -> dict[str, float]:
        return {p.which: p.memory().now_mib for p in self.procs}

    def fill(self, workers: int, window: float, lead: float) -> tuple[float, float, float]:
        """Create the N Orders at the rate, wait until every one mirrors Picking, then past the
        last acknowledgement look; return the creation's and the filling's seconds, and when the
        first step falls due."""
        log(f"creating {self.n_orders} orders, {self.per_second:g} a second, picking {self.picking:g} s ...")
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = []
            for i, name in enumerate(self.names):
                time.sleep(max(0.0, began + i / self.per_second - time.monotonic()))
                body = manifests.order(name, stepDurationSeconds=self.durations)
                futures.append(
                    pool.submit(self.objects.create_namespaced_custom_object, GROUP, VERSION, NS, "orders", body)
                )
            for future in futures:
                future.result()
        create_seconds = time.monotonic() - began
        seen = self.orders.seen
        self.orders.wait(
            lambda: all((n, "Picking") in seen for n in self.names),
            timeout=max(120, self.n_orders / 5),
            about=self.names[-1],
        )
        in_flight_seconds = time.monotonic() - began
        latest = self.fulfillments.latest
        self.starts = {
            n: parse_time(latest[n]["status"]["history"][0]["time"]).timestamp() - self.offset for n in self.names
        }
        first_due = min(self.starts.values()) + self.picking
        log(
            f"all {self.n_orders} in flight after {in_flight_seconds:.0f} s; "
            f"first step due in {first_due - time.monotonic():.0f} s"
        )
        time.sleep(max(3.0, began + in_flight_seconds + ACK_TIMEOUT + 3 - time.monotonic()))
        if time.monotonic() + window > first_due - lead:
            raise RuntimeError(
                f"the quiet window ({window:g} s) would not end before the first step falls due: "
                "raise --picking-seconds"
            )
        return create_seconds, in_flight_seconds, first_due

    def measure_waiting(self, window: float, idle_rss: dict[str, float]) -> dict[str, Any]:
        """Phase 1: what ``window`` seconds of waiting cost."""
        procs, ports = self.procs, self.ports
        requests_before = request_counts(self.env)
        cpu_before = {p.which: p.cpu_seconds() for p in procs}
        plane_before = {name: cpu_seconds(pid) for name, pid in self.plane_pids.items()}
        reconciles_before = {
            p.which: scrape(ports[p.which]).get("controller_runtime_reconcile_total", 0) for p in procs
        }
        time.sleep(window)
        reconciles = {
            p.which: scrape(ports[p.which]).get("controller_runtime_reconcile_total", 0) - reconciles_before[p.which]
            for p in procs
        }
        cpu = {p.which: p.cpu_seconds() - cpu_before[p.which] for p in procs}
        cpu.update({name: cpu_seconds(pid) - plane_before[name] for name, pid in self.plane_pids.items()})
        quiet = request_counts(self.env) - requests_before
        rss = self.rss()
        plane_rss = {name: memory(pid).now_mib for name, pid in self.plane_pids.items()}
        per_minute = 60 / window * 1000 / self.n_orders
        per_10000 = 10_000 / self.n_orders
        waiting = {
            "window_seconds": window,
            "cpu_seconds_per_1000_waiting_per_minute": {k: round(v * per_minute, 4) for k, v in cpu.items()},
            "core_percent": {k: round(v / window * 100, 3) for k, v in cpu.items()},
            "core_percent_per_10000_waiting": {k: round(v / window * 100 * per_10000, 3) for k, v in cpu.items()},
            "controllers_core_percent_per_10000_waiting": round(
                (cpu["order"] + cpu["fulfillment"]) / window * 100 * per_10000, 3
            ),
            "reconciles": reconciles,
            "api_requests": _ours(quiet),
            "api_requests_per_waiting_per_minute": round(sum(_ours(quiet).values()) / self.n_orders * 60 / window, 5),
            "rss_mib": {k: round(v, 1) for k, v in rss.items()},
            "rss_mib_idle": {k: round(v, 1) for k, v in idle_rss.items()},
            "control_plane_rss_mib": {k: round(v, 1) for k, v in plane_rss.items()},
        }
        log(f"waiting: {json.dumps(waiting)}")
        return waiting

    def ended(self, name: str) -> float:
        """When a watch saw ``name``'s Picking end (monotonic)."""
        return self.fulfillments.seen[(name, "Packing")]

    def measure_restart(
        self, first_due: float, lead: float, kill: bool, profile: Path | None = None
    ) -> tuple[dict[str, Any], float]:
        """Phase 2: both controllers stopped ``lead`` seconds before the first step falls due and
        started again; return what it cost, and when they served again. With ``profile``, py-spy
        samples each from its start until it serves again."""
        time.sleep(max(0.0, first_due - lead - time.monotonic()))
        before = request_counts(self.env)
        stopped = time.monotonic()
        for p in self.procs:
            p.kill() if kill else p.terminate()
        for p in self.procs:
            p.stop()
        for p in self.procs:
            p.start()
        healthy = time.monotonic()
        spies = start_profiles(self.procs, profile) if profile else []
        each_served = serving(self.procs, self.ports, self.n_orders + 1, stopped + 600)  # + the warm-up Order
        stop_profiles(spies)
        served = max(each_served.values())
        restart_requests = request_counts(self.env) - before
        restart_end = time.monotonic()
        rss_after = self.rss()

        # Writes per due transition, by resource, in the same wave once served again.
        last_due = max(self.starts.values()) + self.picking
        reference_end = min(last_due - 1, restart_end + 20)
        reference: Counter[str] = Counter()
        ref_start = ref_stop = 0.0
        if reference_end > restart_end + 3:
            ref_before = request_counts(self.env)
            ref_start = time.monotonic()
            time.sleep(reference_end - ref_start)
            reference = _writes(request_counts(self.env) - ref_before)
            ref_stop = time.monotonic()
        seen = self.fulfillments.seen
        self.fulfillments.wait(
            lambda: all((n, "Packing") in seen for n in self.names), timeout=last_due - time.monotonic() + 300
        )
        transitions_reference = sum(1 for n in self.names if ref_start <= self.ended(n) <= ref_stop)
        transitions_restart = sum(1 for n in self.names if stopped <= self.ended(n) <= served)
        # The writes were counted until restart_end, a moment after serving: the steps that ended
        # in between explain writes too (at 20 a second, about 4 of them).
        transitions_counted = sum(1 for n in self.names if stopped <= self.ended(n) <= restart_end)
        restart_writes = _writes(restart_requests)
        explained = {
            res: round(reference[res] / transitions_reference * transitions_counted, 1) if transitions_reference else 0
            for res in restart_writes
        }
        extra = {res: round(n - explained[res], 1) for res, n in restart_writes.items() if n - explained[res] > 0.5}
        restart: dict[str, Any] = {
            "signal": "SIGKILL" if kill else "SIGTERM",
            "healthy_seconds": round(healthy - stopped, 2),
            "serving_seconds": round(served - stopped, 2),
            "serving_seconds_each": {k: round(v - stopped, 2) for k, v in each_served.items()},
            "writes": dict(restart_writes),
            "due_transitions_in_restart": transitions_restart,
            "writes_per_transition_after": {
                res: round(n / max(1, transitions_reference), 2) for res, n in reference.items()
            },
            "writes_beyond_due_transitions": extra,
            "rss_mib_after": {k: round(v, 1) for k, v in rss_after.items()},
        }
        if profile:
            restart["profile"] = {p.which: summarize_profile(profile / f"{p.which}.txt") for p in self.procs}
        log(f"restart: {json.dumps(restart)}")
        return restart, served

    def measure_lateness(self, served: float) -> dict[str, Any]:
        """Phase 3: how late each Picking step ended, from its history and the watch."""
        late_all: list[float] = []
        late_during: list[float] = []
        late_during_from_served: list[float] = []
        after: list[float] = []
        served_wall = datetime.datetime.fromtimestamp(served + self.offset, datetime.UTC)
        for n in self.names:
            history = self.fulfillments.latest[n]["status"]["history"]
            ended = {"Picking": datetime.datetime.fromtimestamp(self.ended(n) + self.offset, datetime.UTC)}
            late = step_lateness(history, self.durations, ended)
            if "Picking" not in late:
                continue
            late_all.append(late["Picking"])
            if self.starts[n] + self.picking < served:
                late_during.append(late["Picking"])
                late_during_from_served.append(
                    step_lateness(history, self.durations, ended, since=served_wall)["Picking"]
                )
            else:
                after.append(late["Picking"])
        lateness = {
            "all": percentiles(late_all),
            "histogram_100ms": dict(
                sorted(Counter(f"{int(x * 10) / 10:.1f}" for x in late_all).items(), key=lambda kv: float(kv[0]))
            ),
            "due_before_serving": percentiles(late_during) if late_during else None,
            "due_before_serving_from_serving": percentiles(late_during_from_served) if late_during else None,
            "due_after_serving": percentiles(after) if after else None,
        }
        log(f"lateness: {json.dumps(lateness)}")
        return lateness


def run(
    n_orders: int,
    per_second: float,
    picking: float,
    window: float,
    lead: float,
    kill: bool,
    workers: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="orderflow-bench-waiting-"))
    plane = ControlPlane.start(workdir / "kubeconfig", log=log, die_with_parent=True)
    scenario = Scenario(workdir, plane, n_orders, per_second, picking)
    try:
        scenario.start(workers)
        idle_rss = scenario.rss()
        storage_before = _storage_bytes(scenario.env)
        create_seconds, in_flight_seconds, first_due = scenario.fill(workers, window, lead)
        waiting = scenario.measure_waiting(window, idle_rss)
        storage_in_flight = _storage_bytes(scenario.env)
        restart, served = scenario.measure_restart(first_due, lead, kill, profile)
        lateness = scenario.measure_lateness(served)
        return {
            "orders": n_orders,
            "per_second": per_second,
            "picking_seconds": picking,
            "create_seconds": round(create_seconds, 1),
            "in_flight_seconds": round(in_flight_seconds, 1),
            "waiting": waiting,
            "restart": restart,
            "lateness": lateness,
            "etcd_bytes": {"idle": storage_before, "in_flight": storage_in_flight, "end": _storage_bytes(scenario.env)},
        }
    finally:
        scenario.stop()
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow.dev.bench.waiting", description=__doc__)
    parser.add_argument("--orders", type=int, nargs="+", default=[1000])
    parser.add_argument("--per-second", type=float, default=20.0, help="Orders created a second")
    parser.add_argument("--picking-seconds", type=float, default=150.0, help="each Order's Picking step")
    parser.add_argument("--window", type=float, default=60.0, help="the quiet window, seconds")
    parser.add_argument("--restart-lead", type=float, default=2.0, help="restart this long before the first due")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the controllers instead of SIGTERM")
    parser.add_argument("--peer", choices=["temporal"], help="also run the seed's design on Temporal, same run")
    parser.add_argument("--workers", type=int, default=8, help="client threads creating Orders")
    parser.add_argument(
        "--profile", type=Path, help="py-spy each restarted controller until it serves again; collapsed stacks here"
    )
    parser.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    parser.add_argument("--output", type=Path, default=Path("bench/results/waiting.json"))
    parser.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    results = []
    for n in args.orders:
        log(f"== waiting: {n} orders")
        result: dict[str, Any] = {
            "orderflow": run(n, args.per_second, args.picking_seconds, args.window, args.restart_lead, args.kill,
                             args.workers, args.profile / str(n) if args.profile else None)
        }  # fmt: skip
        if args.peer:
            from orderflow.dev.bench import peer

            log(f"== waiting on the peer: {n} orders")
            try:
                result["peer"] = peer.waiting(n, args.per_second, args.picking_seconds, args.window)
            except Exception as exc:  # the peer not keeping up is a result too
                result["peer"] = {"orders": n, "error": f"{type(exc).__name__}: {exc}"}
            log(f"peer: {json.dumps(result['peer'])}")
        results.append(result)
    document = {
        **record.stamp(__spec__.name, _without_note(argv or sys.argv[1:])),
        "note": args.note,
        "results": results,
    }
    measured = {r["orderflow"]["orders"] for r in results}
    runs = record.keep(args.output, document, lambda run: run["results"][0]["orderflow"]["orders"] in measured)
    text = section(runs)
    sections.replace(args.docs, "waiting", text)
    print(text)
    return 0


def _without_note(argv: list[str]) -> list[str]:
    """The command as run, without its --note (said in a column of its own)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--note":
            skip = True
        elif not arg.startswith("--note="):
            kept.append(arg)
    return kept


def _ms(p: dict[str, float] | None) -> str:
    return "—" if p is None else f"{p['p50_ms']:,.0f} / {p['p99_ms']:,.0f} / {p['max_ms']:,.0f} ms"


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Issue #22's targets against one size's results: (target, measured, reached)."""
    o = result["orderflow"]
    w, rs, lt = o["waiting"], o["restart"], o["lateness"]
    both = w["controllers_core_percent_per_10000_waiting"]
    late = [lt["all"]["p99_ms"]]
    if lt["due_before_serving_from_serving"]:
        late.append(lt["due_before_serving_from_serving"]["p99_ms"])
    beyond = sum(rs["writes_beyond_due_transitions"].values())
    rows = [
        ("both controllers ≤ 1 % of a core per 10,000 waiting", f"{both:.3f} %", both <= 1.0),
        (
            "about 0 API requests per waiting workflow",
            f"{w['api_requests_per_waiting_per_minute']:.4f} a minute",
            w["api_requests_per_waiting_per_minute"] < 0.001,
        ),
        (
            "step lateness p99 ≤ 1 s, steps due during the restart included (from serving again)",
            " / ".join(f"{x:,.0f} ms" for x in late),
            max(late) <= 1000,
        ),
        (
            "each controller ≤ 150 MiB RSS (at 10,000 in flight)",
            ", ".join(f"{k} {v:.0f} MiB" for k, v in {**w["rss_mib"], **rs["rss_mib_after"]}.items()),
            max([*w["rss_mib"].values(), *rs["rss_mib_after"].values()]) <= 150,
        ),
        (
            "a restart serves again in ≤ 20 s, no writes beyond the due step transitions",
            f"{rs['serving_seconds']} s, {beyond:g} writes",
            rs["serving_seconds"] <= 20 and beyond == 0,
        ),
    ]
    peer = result.get("peer")
    if peer and "error" not in peer:
        theirs = sum(peer["core_percent_per_10000_waiting"].values())
        ours = both + sum(
            v for k, v in w["core_percent_per_10000_waiting"].items() if k not in ("order", "fulfillment")
        )
        rows.append(
            (
                "≤ 1/20 of the seed's design on Temporal (CPU while waiting, everything counted)",
                f"{ours:.2f} % against {theirs:.0f} % of a core per 10,000 ({ours / theirs:.4f})",
                ours <= theirs / 20,
            )
        )
    return rows


def section(runs: list[dict[str, Any]]) -> str:
    """docs/benchmarks.md's waiting section, from every run kept in the results file."""
    lines = [
        "## Waiting: workflows in flight with long steps, and a restart among them",
        "",
        "`python -m orderflow.dev.bench.waiting` (`make bench-waiting`): N Orders created at a steady rate, a",
        "Picking step long enough that all N wait together. While they wait, over a quiet window: CPU",
        "(utime+stime from /proc) as % of one core per 10,000 waiting, API requests per waiting workflow",
        "per minute (`apiserver_request_total` on orders, fulfillments, their status and events), RSS.",
        "Both controllers are restarted a few seconds before the first step falls due; *serving* is when",
        "each has reconciled every object since its start with nothing queued. Lateness: a watch seeing",
        "the Fulfillment in Packing minus the due time (its history's entry into Picking plus the",
        "step), p50 / p99 / max; steps due before serving again are also counted from then.",
        "The peer: the seed's workflows on a Temporal dev server, each order polling its fulfillment",
        "every 5 s, same N, rate and step, after orderflow in the same run; its lateness is the",
        "fulfillment workflow's own time entering Packing minus entering Picking plus the step.",
        "",
        "| in flight | system | CPU % of a core per 10,000 waiting | API requests / waiting / min "
        "| RSS (idle → waiting) | restart: healthy, serving, writes beyond due steps | lateness, all "
        "| due before serving, from serving | when, command, what else ran |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run_ in runs:
        for r in run_["results"]:
            o = r["orderflow"]
            w, rs, lt = o["waiting"], o["restart"], o["lateness"]
            c = w["core_percent_per_10000_waiting"]
            cpu = (
                f"controllers {w['controllers_core_percent_per_10000_waiting']:.3f} (order {c['order']:.3f}, "
                f"fulfillment {c['fulfillment']:.3f}); API server {c.get('kube-apiserver', 0):.3f}, "
                f"etcd {c.get('etcd', 0):.3f}"
            )
            rss = ", ".join(f"{k} {w['rss_mib_idle'][k]:.0f} → {v:.0f} MiB" for k, v in w["rss_mib"].items())
            beyond = sum(rs["writes_beyond_due_transitions"].values())
            lines.append(
                f"| {o['orders']:,} | orderflow | {cpu} | {w['api_requests_per_waiting_per_minute']:.4f} | {rss} "
                f"| {rs['healthy_seconds']} s, {rs['serving_seconds']} s, {beyond:g} ({rs['signal']}; "
                f"{rs['due_transitions_in_restart']} steps fell due meanwhile) "
                f"| {_ms(lt['all'])} | {_ms(lt['due_before_serving_from_serving'])} "
                f"| {run_['when']}, `{run_['command']}`; {run_.get('note') or 'nothing else noted'} |"
            )
            p = r.get("peer")
            if p is None:
                continue
            if "error" in p:
                lines.append(f"| {p['orders']:,} | Temporal, 5 s poll | did not finish: {p['error']} | | | | | | |")
                continue
            pc = p["core_percent_per_10000_waiting"]
            unended = f" ({p['steps_not_ended']:,} steps not ended, left out)" if p.get("steps_not_ended") else ""
            prss = ", ".join(f"{k} {p['rss_mib_idle'][k]:.0f} → {v:.0f} MiB" for k, v in p["rss_mib"].items())
            lines.append(
                f"| {p['orders']:,} | Temporal {p['temporal']}, seed's 5 s poll "
                f"| server {pc['server']:.2f}, worker {pc['worker']:.2f}; together {sum(pc.values()):.2f} "
                f"| (no API server) | {prss} | — | {_ms(p['lateness'])}{unended} | — | same run |"
            )
    for run_ in runs:
        for r in run_["results"]:
            lines += [
                "",
                f"Targets (#22), {r['orderflow']['orders']:,} in flight, run of {run_['when']}:",
                "",
                "| target | measured | |",
                "|---|---|---|",
                *(f"| {t} | {m} | {'reached' if ok else 'missed'} |" for t, m, ok in targets(r)),
            ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
