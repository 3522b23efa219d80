"""Readiness: can this controller reach the API server and use what it watches, right now?

Kopf's health endpoint (``--liveness``, ``/healthz``) answers as long as the operator's event loop
runs, even when every request to the API server fails: right for liveness (a restart never mends a
broken network path or a missing RBAC rule, so liveness must not depend on the API server), wrong
for readiness. Readiness here is served separately (``--readiness``, ``/readyz``) and says ready
only when

- Kopf's start-up has completed (its start-up handlers ran; only then does it watch), and
- the latest API check succeeded recently. A check runs the controller's own requests in a worker
  thread every ``CHECK_INTERVAL`` seconds: list at most one object of the kind the controller owns,
  in each watched namespace (or cluster-wide), with the credentials and RBAC its reconciles use —
  the same request a watch starts with. With peering on, the first check also creates the peering
  objects Kopf needs (see ``orderflow.runtime.peering``).

The decision is the pure function ``judge``; the thread, the loop and the HTTP server around it are
thin. A replica that Kopf peering keeps on standby is ready: it could take over at once, and a
rolling update waits for the new replica to be ready before stopping an old one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence

from aiohttp import web

from orderflow.runtime.pure.errors import ApiError

log = logging.getLogger(__name__)

# With the charts' probe (every 5 s, NotReady after 2 failures) a broken API path turns the pod
# NotReady within about 12 s when requests fail at once (refused, 403, no such host) and 16 s
# when they hang.
CHECK_INTERVAL = 2.0
"""Seconds between the end of one API check and the start of the next."""
CHECK_TIMEOUT = 4.0
"""Seconds a check's request may take: a black-holed API server fails a check instead of hanging it."""
MAX_AGE = CHECK_INTERVAL + 2 * CHECK_TIMEOUT
"""A success older than this says nothing about now: the next check hangs (connect and read each
get ``CHECK_TIMEOUT``; name resolution is not bounded by it) or the check loop has died."""
_MOST = 300  # characters of an error in a reason: enough for the API server's Status message
_ADDRESS = re.compile(r" object at 0x[0-9a-fA-F]+")


@dataclasses.dataclass(frozen=True)
class Check:
    at: float  # time.monotonic() when the check ended
    error: str | None = None  # None: every step succeeded


@dataclasses.dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str  # the response body: why not, or when the API server last answered


def judge(started: bool, last: Check | None, now: float, max_age: float = MAX_AGE) -> Verdict:
    """Ready or not, and why, from Kopf's start-up state and the latest API check."""
    if not started:
        return Verdict(False, "starting: Kopf's start-up handlers have not finished")
    if last is None:
        return Verdict(False, "starting: no API check has finished yet")
    age = now - last.at
    if last.error is not None:
        return Verdict(False, f"API check failed {age:.0f}s ago: {last.error}")
    if age > max_age:
        return Verdict(False, f"no API check has finished for {age:.0f}s: the API server does not answer")
    return Verdict(True, f"ok: API check succeeded {age:.0f}s ago")


def describe(exc: BaseException) -> str:
    """An error as one short line: the API server's code, reason and message, or the exception."""
    text = str(exc) if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
    # urllib3 names connection objects by address: drop it, so one failure reads the same each time.
    text = " ".join(_ADDRESS.sub("", text).split())
    return text if len(text) <= _MOST else text[: _MOST - 1] + "…"


@dataclasses.dataclass
class Step:
    """One request of an API check. ``run`` blocks and raises on failure."""

    label: str  # names the request in a reason, e.g. "list orders.orderflow.dev in shop"
    run: Callable[[], object]
    once: bool = False  # skip it after its first success (creating an object that then exists)
    done: bool = False


def run_steps(steps: Sequence[Step]) -> str | None:
    """Run the steps in order (blocking); the first failure, described, or None."""
    for step in steps:
        if step.once and step.done:
            continue
        try:
            step.run()
        except Exception as exc:  # whatever breaks the check, the reason must say it
            return f"{step.label}: {describe(exc)}"
        step.done = True
    return None


class Readiness:
    """What ``/readyz`` serves: whether Kopf has started, and the latest API check."""

    def __init__(self, started: Callable[[], bool], clock: Callable[[], float] = time.monotonic) -> None:
        self.started = started
        self.clock = clock
        self.last: Check | None = None

    def record(self, error: str | None) -> None:
        before = self.last.error if self.last else None
        self.last = Check(self.clock(), error)
        # Log changes, not every check: the log then tells when and why the pod turned NotReady.
        if error is not None and error != before:
            log.warning("not ready: %s", error)
        elif error is None and before is not None:
            log.info("ready: the API check succeeds again")

    def verdict(self) -> Verdict:
        return judge(self.started(), self.last, self.clock())


async def keep_checking(steps: Sequence[Step], readiness: Readiness, interval: float = CHECK_INTERVAL) -> None:
    """Check, record, wait, forever. One check at a time: a hanging one shows as a stale success."""
    while True:
        readiness.record(await asyncio.to_thread(run_steps, steps))
        await asyncio.sleep(interval)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str


def parse_endpoint(url: str) -> Endpoint:
    """``http://0.0.0.0:8081/readyz`` → where to listen and what path to serve (as Kopf's
    ``--liveness`` takes it)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"expected http://HOST:PORT/PATH, got {url!r}")
    return Endpoint(parts.hostname, parts.port, parts.path or "/")


async def serve(endpoint: Endpoint, readiness: Readiness) -> web.AppRunner:
    """Serve ``GET <path>``: 200 when ready, else 503; the body says why. Stop with ``cleanup()``."""

    async def get(_: web.Request) -> web.Response:
        verdict = readiness.verdict()
        return web.Response(status=200 if verdict.ready else 503, text=verdict.reason + "\n")

    app = web.Application()
    app.router.add_get(endpoint.path, get)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, endpoint.host, endpoint.port).start()
    return runner
