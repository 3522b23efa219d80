"""The peer: the seed's workflows on a Temporal dev server, measured as ``make bench`` measures orderflow.

``make bench-peer`` runs it in the same run as orderflow's own benchmark, so the two share the
machine's state. The Temporal CLI (its dev server: frontend, history, matching and an in-memory
SQLite in one process) is built once from the Go module proxy into the tool cache like every
other tool; the workers are one process, ``python -m orderflow.dev.bench.peer worker``, serving
both task queues, as the seed's one worker does. What is measured, and how it maps:

- orders/s: N order workflows started by 8 client tasks, from the first start to the last result;
- signal applied: a ``pause``/``resume`` signal until the fulfillment's query shows it (there: a
  spec patch until ``status.observedGeneration`` reaches it);
- status propagation: from then until the order's query shows it (there: until the Order mirrors it);
- CPU per order: utime+stime of the server and of the worker over the N orders (there: the API
  server and etcd, and each controller);
- RSS: each process's peak (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from orderflow.dev import harness
from orderflow.dev.bench.stats import percentiles
from orderflow.dev.cluster import tools

SERVER_START_TIMEOUT = 120.0
LATE_LIMIT = 300.0  # seconds past the last due time the waiting variant waits for the last step's end
QUERY_INTERVAL = 0.002  # how often a latency probe asks again: well under the latencies measured


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``temporal server start-dev`` on 127.0.0.1 with an in-memory store, no UI."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = workdir / "temporal.log"
        binary = tools.ensure("temporal", log=lambda line: print(line, file=sys.stderr, flush=True))
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [
                    str(binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
                    "--port", str(self.port), "--http-port", str(_free_port()),
                    "--metrics-port", str(_free_port()), "--log-level", "error",
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    async def connect(self) -> Any:
        from temporalio.client import Client

        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited: {self.log.read_text()[-2000:]}")
            try:
                return await Client.connect(self.address)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        harness.stop(self.popen)


class Worker:
    """The seed's worker, in its own process so its CPU and memory are its own."""

    def __init__(self, address: str, workdir: Path) -> None:
        self.log = workdir / "worker.log"
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "orderflow.dev.bench.peer", "worker", "--address", address],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        harness.stop(self.popen)


async def _worker(address: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker as TemporalWorker

    from orderflow.dev.bench import seed

    client = await Client.connect(address)
    activities = seed.Activities(client)
    workers = [
        TemporalWorker(
            client,
            task_queue=seed.ORDER_QUEUE,
            workflows=[seed.OrderWorkflow],
            activities=[activities.start_fulfillment, activities.query_fulfillment],
        ),
        TemporalWorker(client, task_queue=seed.FULFILLMENT_QUEUE, workflows=[seed.FulfillmentWorkflow]),
    ]
    print("worker ready", flush=True)
    await asyncio.gather(*(w.run() for w in workers))


async def _until(probe: Callable[[], Awaitable[bool]], within: float = 60.0) -> float:
    """Poll ``probe`` until it holds; the monotonic time it first did."""
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(QUERY_INTERVAL)
    return time.monotonic()


async def _throughput(client: Any, n_orders: int, poll: float, run_id: str, clients: int = 8) -> float:
    from orderflow.dev.bench import seed

    started: list[float] = []
    handles: list[Any] = []
    names = iter(range(n_orders))

    async def starter() -> None:
        for i in names:
            started.append(time.monotonic())
            handles.append(
                await client.start_workflow(
                    seed.OrderWorkflow.run,
                    seed.OrderInput(f"{run_id}-{i}", 0.0, poll),
                    id=f"order-{run_id}-{i}",
                    task_queue=seed.ORDER_QUEUE,
                )
            )

    await asyncio.gather(*(starter() for _ in range(clients)))
    limit = asyncio.Semaphore(200)

    async def result(handle: Any) -> float:
        async with limit:
            await handle.result()
            return time.monotonic()

    finished = await asyncio.gather(*(result(h) for h in handles))
    return n_orders / (max(finished) - min(started))


async def _latencies(client: Any, n_signals: int, poll: float, run_id: str, width: int = 20) -> dict[str, list[float]]:
    """On ``width`` orders whose fulfillment step never ends: pause or resume each fulfillment,
    then time the signal applied and the status propagated to the order."""
    from orderflow.dev.bench import seed

    orders = []
    for i in range(width):
        order = await client.start_workflow(
            seed.OrderWorkflow.run,
            seed.OrderInput(f"{run_id}-slow-{i}", 1e6, poll),
            id=f"order-{run_id}-slow-{i}",
            task_queue=seed.ORDER_QUEUE,
        )
        fulfillment = client.get_workflow_handle(seed.fulfillment_id(f"{run_id}-slow-{i}"))
        orders.append((order, fulfillment))

    async def phase_of(handle: Any, query: Any) -> seed.FulfillmentStatus:
        status: seed.FulfillmentStatus = await handle.query(query)
        return status

    for order, _ in orders:  # running, as seen by the order too

        async def picking(order: Any = order) -> bool:
            return (await phase_of(order, seed.OrderWorkflow.get_order_status)).phase == "Picking"

        await _until(picking, within=120)
    applied: list[float] = []
    propagated: list[float] = []

    async def one(order: Any, fulfillment: Any, paused: bool) -> None:
        sent = time.monotonic()
        await fulfillment.signal(seed.FulfillmentWorkflow.pause if paused else seed.FulfillmentWorkflow.resume)

        async def shown(handle: Any, query: Any) -> bool:
            return (await phase_of(handle, query)).paused is paused

        seen = await _until(lambda: shown(fulfillment, seed.FulfillmentWorkflow.get_fulfillment_status))
        mirrored = await _until(lambda: shown(order, seed.OrderWorkflow.get_order_status), within=poll + 60)
        applied.append(seen - sent)
        propagated.append(mirrored - seen)

    rounds = max(1, n_signals // width)
    for r in range(rounds):
        await asyncio.gather(*(one(o, f, paused=r % 2 == 0) for o, f in orders))
    for order, fulfillment in orders:
        await fulfillment.signal(seed.FulfillmentWorkflow.cancel)
        await order.result()
    return {"signal": applied, "propagation": propagated}


@contextlib.contextmanager
def _server(workdir: Path) -> Iterator[Server]:
    server = Server(workdir)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def _worker_process(address: str, workdir: Path) -> Iterator[Worker]:
    """The worker, started once the server answers, and ready once it says so."""
    worker = Worker(address, workdir)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while "worker ready" not in worker.log.read_text(errors="replace"):
            if worker.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the peer's worker did not start: {worker.log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield worker
    finally:
        worker.stop()


async def _measure(server: Server, workdir: Path, n_orders: int, n_signals: int, poll: float) -> dict[str, Any]:
    client = await server.connect()
    with _worker_process(server.address, workdir) as worker:
        measuring = asyncio.ensure_future(_measure_with(client, server, worker, n_orders, n_signals, poll))
        while not measuring.done():  # a worker or server that died would leave every wait hanging
            await asyncio.wait([measuring], timeout=1.0)
            for name, process in (("worker", worker.popen), ("server", server.popen)):
                if process.poll() is not None and not measuring.done():
                    measuring.cancel()
                    raise RuntimeError(f"the peer's {name} exited ({process.returncode}); see {workdir}")
        return measuring.result()


async def _measure_with(
    client: Any, server: Server, worker: Worker, n_orders: int, n_signals: int, poll: float
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    await _throughput(client, 20, poll=0, run_id=f"warm-{run_id}")  # the worker registered, caches warm
    pids = {"server": server.popen.pid, "worker": worker.popen.pid}
    cpu_before = {name: harness.cpu_seconds(pid) for name, pid in pids.items()}
    rate = await _throughput(client, n_orders, poll, run_id)
    cpu = {name: (harness.cpu_seconds(pid) - cpu_before[name]) * 1000 / n_orders for name, pid in pids.items()}
    latencies = await _latencies(client, n_signals, poll, run_id)
    return {
        "orders_per_s": rate,
        "cpu_ms_per_order": cpu,
        "rss_mib": {name: harness.memory(pid).peak_mib for name, pid in pids.items()},
        "signal": percentiles(latencies["signal"]),
        "propagation": percentiles(latencies["propagation"]),
    }


async def _waiting_with(
    client: Any, server: Server, worker: Worker, n_orders: int, per_second: float, step: float, window: float
) -> dict[str, Any]:
    """The waiting scenario (orderflow.dev.bench.waiting) on the seed's design: ``n_orders`` order
    workflows started ``per_second``, each fulfillment step ``step`` seconds, each order polling
    its fulfillment every 5 s as the seed does. While all wait: the server's and the worker's CPU
    over ``window`` seconds and their RSS; then each Picking step's end (the fulfillment's own
    workflow time entering Packing) against its due time (entering Picking plus ``step``)."""
    from orderflow.dev.bench import seed

    run_id = uuid.uuid4().hex[:6]
    await _throughput(client, 20, poll=0, run_id=f"warm-{run_id}")
    pids = {"server": server.popen.pid, "worker": worker.popen.pid}
    idle = {name: harness.memory(pid).now_mib for name, pid in pids.items()}
    ids = [f"{run_id}-{i}" for i in range(n_orders)]
    limit = asyncio.Semaphore(64)

    async def start(order_id: str) -> None:
        async with limit:
            await client.start_workflow(
                seed.OrderWorkflow.run,
                seed.OrderInput(order_id, step, 5.0),
                id=f"order-{order_id}",
                task_queue=seed.ORDER_QUEUE,
            )

    began = time.monotonic()
    starts = []
    for i, order_id in enumerate(ids):
        await asyncio.sleep(max(0.0, began + i / per_second - time.monotonic()))
        starts.append(asyncio.ensure_future(start(order_id)))
    await asyncio.gather(*starts)
    create_seconds = time.monotonic() - began

    async def status(order_id: str) -> seed.FulfillmentStatus:
        async with limit:
            handle = client.get_workflow_handle(seed.fulfillment_id(order_id))
            found: seed.FulfillmentStatus = await handle.query(seed.FulfillmentWorkflow.get_fulfillment_status)
            return found

    waiting = list(ids)
    while waiting:  # every fulfillment started, each order polling it
        # Bounded: a server too busy to answer (10,000 polling on 2 cores) fails here, in time.
        until_window = began + step - window - time.monotonic()
        try:
            phases = await asyncio.wait_for(
                asyncio.gather(*(status(i) for i in waiting), return_exceptions=True), timeout=max(1.0, until_window)
            )
        except TimeoutError:
            raise RuntimeError(
                f"the fulfillments were not all Picking when the quiet window had to begin ({n_orders} started; "
                "the server did not answer their queries in time)"
            ) from None
        waiting = [
            i for i, p in zip(waiting, phases, strict=True) if isinstance(p, BaseException) or p.phase != "Picking"
        ]
        if waiting and time.monotonic() + window > began + step:
            raise RuntimeError(
                f"{len(waiting)} of {n_orders} fulfillments were not yet Picking when the quiet window had to begin"
            )
        if waiting:
            await asyncio.sleep(1.0)
    in_flight_seconds = time.monotonic() - began
    if time.monotonic() + window > began + step:
        raise RuntimeError(f"the peer's first step falls due before the quiet window ends: raise the step ({step} s)")
    cpu_before = {name: harness.cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(window)
    cpu = {name: harness.cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    rss = {name: harness.memory(pid).now_mib for name, pid in pids.items()}
    # Every step's end, however late: a busy server fires timers late, and leaving the latest
    # out would flatter it. Up to `LATE_LIMIT` past the last due time; those not ended by then
    # are counted apart.
    last_due = began + create_seconds + step
    await asyncio.sleep(max(0.0, last_due + 15 - time.monotonic()))
    ended: dict[str, float] = {}
    while True:
        left = [i for i in ids if i not in ended]
        for order_id, found in zip(left, await asyncio.gather(*(status(i) for i in left)), strict=True):
            if "Packing" in found.entered:
                ended[order_id] = found.entered["Packing"] - found.entered["Picking"] - step
        if len(ended) == len(ids) or time.monotonic() > last_due + LATE_LIMIT:
            break
        await asyncio.sleep(5.0)
    late = list(ended.values())
    unfinished = len(ids) - len(ended)
    per_minute = 60 / window * 1000 / n_orders
    return {
        "orders": n_orders,
        "create_seconds": round(create_seconds, 1),
        "in_flight_seconds": round(in_flight_seconds, 1),
        "window_seconds": window,
        "cpu_seconds_per_1000_waiting_per_minute": {k: round(v * per_minute, 3) for k, v in cpu.items()},
        "core_percent_per_10000_waiting": {k: round(v / window * 100 * 10_000 / n_orders, 2) for k, v in cpu.items()},
        "rss_mib": {k: round(v, 1) for k, v in rss.items()},
        "rss_mib_idle": {k: round(v, 1) for k, v in idle.items()},
        "lateness": percentiles(late) if late else None,
        "steps_not_ended": unfinished,
    }


def waiting(n_orders: int, per_second: float, step: float, window: float) -> dict[str, Any]:
    """The waiting scenario on a fresh server and worker."""
    from importlib.metadata import version

    async def measure(server: Server, workdir: Path) -> dict[str, Any]:
        client = await server.connect()
        with _worker_process(server.address, workdir) as worker:
            return await _waiting_with(client, server, worker, n_orders, per_second, step, window)

    with tempfile.TemporaryDirectory(prefix="orderflow-peer-") as tmp, _server(Path(tmp)) as server:
        result = asyncio.run(measure(server, Path(tmp)))
    return {"temporal": tools.TEMPORAL_CLI_VERSION, "sdk": version("temporalio"), "poll_seconds": 5.0, **result}


def run(n_orders: int, n_signals: int, polls: tuple[float, ...] = (5.0, 0.0)) -> dict[str, Any]:
    """The peer measured once per poll interval, each on a fresh server and worker."""
    results: dict[str, Any] = {}
    for poll in polls:
        with tempfile.TemporaryDirectory(prefix="orderflow-peer-") as tmp, _server(Path(tmp)) as server:
            results[f"poll_{poll:g}_s"] = asyncio.run(_measure(server, Path(tmp), n_orders, n_signals, poll))
    return results


def measured(n_orders: int, n_signals: int) -> dict[str, Any]:
    """What the benchmark reports: the runs, and what ran them."""
    from importlib.metadata import version

    return {
        "orders": n_orders,
        "temporal": tools.TEMPORAL_CLI_VERSION,
        "sdk": version("temporalio"),
        "runs": run(n_orders, n_signals),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderflow.dev.bench.peer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run the seed's worker against a server (the benchmark starts it)")
    worker.add_argument("--address", required=True)
    measure = sub.add_parser("measure", help="measure the peer alone and print JSON")
    measure.add_argument("--orders", type=int, default=1000)
    measure.add_argument("--signals", type=int, default=100)
    args = parser.parse_args(argv)
    if args.command == "worker":
        asyncio.run(_worker(args.address))
        return 0
    import json

    print(json.dumps(measured(args.orders, args.signals), indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    os._exit(130)
