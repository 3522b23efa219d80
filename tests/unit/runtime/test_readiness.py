"""Readiness: the verdict from Kopf's start-up state and the latest API check, and the thin parts
around it (the steps of a check, the loop, the HTTP endpoint)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import pytest
import requests

from orderflow.runtime import readiness
from orderflow.runtime.pure.errors import Forbidden
from orderflow.runtime.readiness import Check, Endpoint, Readiness, Step, judge

R = TypeVar("R")


def run(coro: Callable[[], Awaitable[R]]) -> R:
    return asyncio.run(asyncio.wait_for(coro(), timeout=10))


# -- the verdict ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started", "last", "now", "ready", "says"),
    [
        (False, Check(at=99.0), 100.0, False, "start-up handlers have not finished"),
        (True, None, 100.0, False, "no API check has finished yet"),
        (True, Check(at=97.0, error="list orders.orderflow.dev in all namespaces: 403 Forbidden: no"), 100.0,
         False, "API check failed 3s ago: list orders.orderflow.dev in all namespaces: 403 Forbidden: no"),
        (True, Check(at=100.0 - readiness.MAX_AGE - 1), 100.0, False, "no API check has finished for 11s"),
        (True, Check(at=100.0 - readiness.MAX_AGE), 100.0, True, "ok: API check succeeded 10s ago"),
        (True, Check(at=98.0), 100.0, True, "ok"),
    ],
    ids=["kopf-starting", "no-check-yet", "check-failed", "check-stale", "just-fresh-enough", "fresh"],
)  # fmt: skip
def test_the_verdict_says_ready_only_after_start_up_and_a_recent_successful_check(
    started: bool, last: Check | None, now: float, ready: bool, says: str
) -> None:
    verdict = judge(started, last, now)
    assert verdict.ready is ready
    assert says in verdict.reason


def test_a_failure_is_reported_however_old_it_is() -> None:
    # The loop records every check, so an old failure means no check has ended since: still failing.
    verdict = judge(True, Check(at=0.0, error="boom"), now=1000.0)
    assert not verdict.ready
    assert "boom" in verdict.reason


def test_an_api_refusal_reads_as_code_reason_and_message() -> None:
    exc = Forbidden(403, "Forbidden", 'orders.orderflow.dev is forbidden: cannot list resource "orders"')
    assert readiness.describe(exc) == '403 Forbidden: orders.orderflow.dev is forbidden: cannot list resource "orders"'


def test_a_connection_error_reads_the_same_each_time_and_stays_short() -> None:
    def failure(address: str) -> str:
        cause = f'NameResolutionError("<urllib3.connection.HTTPSConnection object at {address}>: Failed to resolve")'
        return readiness.describe(requests.ConnectionError(f"Max retries exceeded (Caused by {cause})" + " x" * 500))

    assert failure("0x7f00aa") == failure("0x7f11bb")  # so the log says it once, not every check
    assert failure("0x7f00aa").startswith("ConnectionError: Max retries exceeded")
    assert len(failure("0x7f00aa")) <= 300


# -- the steps of one check ----------------------------------------------------------------------


def test_the_first_failing_step_is_named_and_later_ones_are_not_run() -> None:
    ran: list[str] = []

    def ok(name: str) -> Callable[[], None]:
        return lambda: ran.append(name)

    def refused() -> None:
        ran.append("b")
        raise Forbidden(403, "Forbidden", "no")

    steps = [Step("list in a", ok("a")), Step("list in b", refused), Step("list in c", ok("c"))]
    assert readiness.run_steps(steps) == "list in b: 403 Forbidden: no"
    assert ran == ["a", "b"]


def test_a_once_step_runs_until_it_has_succeeded_once() -> None:
    outcomes = [RuntimeError("not yet"), None]
    calls = 0

    def create() -> None:
        nonlocal calls
        calls += 1
        outcome = outcomes.pop(0) if outcomes else None
        if outcome:
            raise outcome

    steps = [Step("create", create, once=True), Step("list", lambda: None)]
    assert readiness.run_steps(steps) == "create: RuntimeError: not yet"
    assert readiness.run_steps(steps) is None
    assert readiness.run_steps(steps) is None
    assert calls == 2


def test_only_changes_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    state = Readiness(started=lambda: True, clock=lambda: 0.0)
    caplog.set_level(logging.INFO, logger="orderflow.runtime.readiness")
    for error in [None, "403 Forbidden", "403 Forbidden", "404 NotFound", None, None]:
        state.record(error)
    assert [r.getMessage() for r in caplog.records] == [
        "not ready: 403 Forbidden",
        "not ready: 404 NotFound",
        "ready: the API check succeeds again",
    ]


# -- the loop and the endpoint -------------------------------------------------------------------


class Counting(Readiness):
    """Records like Readiness, and lets a test wait for the n-th record instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(started=lambda: True)
        self.errors: list[str | None] = []
        self.changed = asyncio.Event()

    def record(self, error: str | None) -> None:
        super().record(error)
        self.errors.append(error)
        self.changed.set()


def test_the_loop_checks_again_and_again_and_records_each_result() -> None:
    results = iter([RuntimeError("down"), None, None])

    def step() -> None:
        result = next(results, None)
        if result:
            raise result

    async def scenario() -> list[str | None]:
        state = Counting()
        loop = asyncio.create_task(readiness.keep_checking([Step("list", step)], state, interval=0))
        while len(state.errors) < 3:
            state.changed.clear()
            await state.changed.wait()
        loop.cancel()
        return state.errors[:3]

    assert run(scenario) == ["list: RuntimeError: down", None, None]


def test_the_endpoint_serves_the_verdict_with_its_reason() -> None:
    async def scenario() -> list[tuple[int, str]]:
        started = False
        state = Readiness(started=lambda: started)
        server = await readiness.serve(Endpoint("127.0.0.1", 0, "/readyz"), state)
        host, port = server.addresses[0][:2]
        seen = []
        try:
            async with aiohttp.ClientSession(f"http://{host}:{port}") as http:
                for _ in ("not started", "started"):
                    async with http.get("/readyz") as response:
                        seen.append((response.status, await response.text()))
                    started = True
                    state.record(None)
                async with http.get("/healthz") as response:
                    seen.append((response.status, ""))
        finally:
            await server.cleanup()
        return seen

    (starting, ready, elsewhere) = run(scenario)
    assert starting == (503, "starting: Kopf's start-up handlers have not finished\n")
    assert ready[0] == 200
    assert ready[1].startswith("ok: API check succeeded")
    assert elsewhere[0] == 404


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://0.0.0.0:8081/readyz", Endpoint("0.0.0.0", 8081, "/readyz")),
        ("http://127.0.0.1:9000", Endpoint("127.0.0.1", 9000, "/")),
    ],
)
def test_an_endpoint_url_names_host_port_and_path(url: str, expected: Endpoint) -> None:
    assert readiness.parse_endpoint(url) == expected


@pytest.mark.parametrize("url", ["https://0.0.0.0:8081/readyz", "http://0.0.0.0/readyz", "0.0.0.0:8081", ""])
def test_an_endpoint_url_without_http_host_and_port_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="expected http://HOST:PORT/PATH"):
        readiness.parse_endpoint(url)


def test_the_command_line_refuses_a_bad_readiness_url_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orderflow.cli import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["run", "order", "--readiness", "0.0.0.0:8081"])
    assert "expected http://HOST:PORT/PATH" in capsys.readouterr().err
    monkeypatch.setenv("ORDERFLOW_READINESS", "http://0.0.0.0:8081/readyz")
    monkeypatch.setenv("ORDERFLOW_PRIORITY", "7")
    args = parser().parse_args(["run", "order"])
    assert (args.readiness, args.priority) == ("http://0.0.0.0:8081/readyz", 7)
