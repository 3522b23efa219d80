"""Peering for two replicas: who works (priorities), and the peering objects the controller makes."""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from typing import Any

import kopf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderflow.runtime import peering
from orderflow.runtime.client import Kube
from orderflow.runtime.pure.errors import Conflict, Forbidden
from orderflow.runtime.readiness import run_steps
from orderflow.runtime.runner import RunOptions, api_check_steps, configure_kopf, peering_priority

MS = st.integers(min_value=0, max_value=10_000_000_000_000)  # to the year 2286


@given(MS, MS, st.integers(min_value=0), st.integers(min_value=0))
def test_a_replica_started_earlier_always_outranks_a_later_one(a: int, b: int, seed_a: int, seed_b: int) -> None:
    # Kopf pauses a replica while a live one of higher priority exists: a later replica must never
    # pause the one at work, whatever the tie-break draws.
    if a == b:
        return
    earlier, later = min(a, b), max(a, b)
    assert peering.default_priority(earlier, random.Random(seed_a)) > peering.default_priority(
        later, random.Random(seed_b)
    )


def test_replicas_started_in_the_same_millisecond_get_different_priorities_but_for_a_rare_draw() -> None:
    rng = random.Random(7)
    now = time.time_ns() // 1_000_000
    drawn = {peering.default_priority(now, rng) for _ in range(20)}
    assert len(drawn) > 1
    assert all(-(2**53) < p < 0 for p in drawn)  # exact in JSON; below any explicit --priority ≥ 0


def test_an_explicit_priority_wins_and_standalone_has_none() -> None:
    assert peering_priority(RunOptions(namespaces=[], peering="p", priority=5)) == 5
    assert peering_priority(RunOptions(namespaces=[], peering=None, priority=5)) is None
    default = peering_priority(RunOptions(namespaces=[], peering="p"))
    assert default is not None
    assert default < 0


def test_the_peering_name_of_the_command_line_is_kept() -> None:
    # kopf.run puts --peering's name into the settings before start-up; the controller's start-up
    # settings must not replace it (they once did, with "<component>-peering").
    settings = kopf.OperatorSettings()
    settings.peering.name = "from-the-command-line"
    configure_kopf(settings, "order-controller")
    assert settings.peering.name == "from-the-command-line"


def test_one_cluster_peering_object_when_watching_all_namespaces() -> None:
    assert peering.objects("order-controller-peering", []) == [
        (
            None,
            "clusterkopfpeerings",
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "order-controller-peering"},
            },
        )
    ]


def test_one_namespaced_peering_object_in_each_watched_namespace() -> None:
    found = peering.objects("p", ["shop", "returns"])
    assert [(ns, plural, body["kind"]) for ns, plural, body in found] == [
        ("shop", "kopfpeerings", "KopfPeering"),
        ("returns", "kopfpeerings", "KopfPeering"),
    ]


class FakeKube(Kube):
    """Records requests; ``refuse`` maps a namespace (None: cluster-wide) to the error to raise."""

    def __init__(self, refuse: dict[str | None, Exception] | None = None) -> None:
        self.refuse = refuse or {}
        self.requests: list[tuple[str, str, str | None]] = []

    def create(
        self,
        plural: str,
        namespace: str | None,
        body: dict[str, Any],
        version: str = "",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        self.requests.append(("create", f"{plural}.{version}", namespace))
        if namespace in self.refuse:
            raise self.refuse[namespace]
        return body

    def list_one(self, plural: str, namespace: str | None, timeout: float) -> None:
        self.requests.append(("list", plural, namespace))


def test_existing_peering_objects_are_fine_and_other_refusals_are_raised() -> None:
    exists = Conflict(409, "AlreadyExists", "exists")
    kube = FakeKube({"shop": exists})
    peering.ensure_objects(kube, "p", ["shop", "returns"], timeout=1)
    assert [ns for _, _, ns in kube.requests] == ["shop", "returns"]
    for refusal in (Forbidden(403, "Forbidden", "no"), Conflict(409, "Conflict", "stale")):
        with pytest.raises(type(refusal)):
            peering.ensure_objects(FakeKube({None: refusal}), "p", [], timeout=1)


def test_a_check_creates_the_peering_objects_once_then_lists_the_own_kind_where_it_watches() -> None:
    kube = FakeKube()
    steps = api_check_steps(kube, "orders", RunOptions(namespaces=["shop", "returns"], peering="p"))
    assert [s.label for s in steps] == [
        "create the Kopf peering object p",
        "list orders.orderflow.dev in namespace shop",
        "list orders.orderflow.dev in namespace returns",
    ]
    assert run_steps(steps) is None
    assert run_steps(steps) is None
    assert kube.requests == [
        ("create", "kopfpeerings.kopf.dev/v1", "shop"),
        ("create", "kopfpeerings.kopf.dev/v1", "returns"),
        ("list", "orders", "shop"),
        ("list", "orders", "returns"),
        ("list", "orders", "shop"),
        ("list", "orders", "returns"),
    ]


def test_a_standalone_clusterwide_check_only_lists_in_all_namespaces() -> None:
    steps = api_check_steps(FakeKube(), "fulfillments", RunOptions(namespaces=[]))
    assert [s.label for s in steps] == ["list fulfillments.orderflow.dev in all namespaces"]


# -- what Kopf 1.45 makes of it ------------------------------------------------------------------
# These run Kopf's own peering decision (an internal function): they pin the facts the chart's
# replicas: 2 rests on, and fail loudly if a Kopf upgrade changes them.


def kopf_pauses(me: str, priority: int, records: dict[str, dict[str, Any]]) -> bool:
    """Whether Kopf pauses the replica ``me`` on seeing the peering object's ``status``."""
    from kopf._cogs.aiokits.aiotoggles import Toggle
    from kopf._core.engines.peering import Identity, process_peering_event

    async def decide() -> bool:
        settings = kopf.OperatorSettings()
        settings.peering.name = "p"
        settings.peering.priority = priority
        paused = Toggle(True)  # peering required: Kopf starts paused until it has seen the object
        woken = asyncio.Event()
        woken.set()  # else Kopf waits for the other records to expire before it returns
        await process_peering_event(
            raw_event={"type": None, "object": {"metadata": {"name": "p"}, "status": records}},
            namespace=None,
            resource=None,  # unused: no clean-up, no keep-alive here
            identity=Identity(me),
            settings=settings,
            autoclean=False,
            stream_pressure=woken,
            conflicts_found=paused,
        )
        return paused.is_on()

    return asyncio.run(decide())


def record(priority: int, seen_seconds_ago: float = 0, lifetime: int = 60) -> dict[str, Any]:
    seen = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seen_seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_kopf_lets_the_older_replica_work_and_pauses_the_younger() -> None:
    rng = random.Random(1)
    older = peering.default_priority(1_000_000, rng)
    younger = peering.default_priority(1_000_500, rng)
    records = {"pod-a": record(older), "pod-b": record(younger)}
    assert not kopf_pauses("pod-a", older, records)
    assert kopf_pauses("pod-b", younger, records)


def test_kopf_pauses_both_replicas_of_equal_priority() -> None:
    records = {"pod-a": record(0), "pod-b": record(0)}
    assert kopf_pauses("pod-a", 0, records)
    assert kopf_pauses("pod-b", 0, records)


def test_kopf_resumes_the_standby_when_the_active_record_is_gone_or_expired() -> None:
    # Gone: a replica that exits gracefully removes its record. Expired: one that was killed.
    assert not kopf_pauses("pod-b", -2, {"pod-b": record(-2)})
    assert not kopf_pauses("pod-b", -2, {"pod-a": record(-1, seen_seconds_ago=61), "pod-b": record(-2)})
    assert kopf_pauses("pod-b", -2, {"pod-a": record(-1, seen_seconds_ago=59), "pod-b": record(-2)})


@pytest.mark.parametrize("lifetime", [peering.MIN_LIFETIME, peering.DEFAULT_LIFETIME, peering.KOPF_LIFETIME])
def test_kopf_renews_a_record_lifetime_minus_5_to_10_seconds_after_the_last(
    monkeypatch: pytest.MonkeyPatch, lifetime: int
) -> None:
    # How much of a crashed replica's lifetime is left when it dies (docs/deploy.md, Failover).
    from types import SimpleNamespace

    from kopf._core.engines import peering as kopf_peering

    waits: list[float] = []

    class Enough(Exception):
        pass

    async def touch(**_: Any) -> None:
        pass

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 300:  # every draw of randint(5, 10) many times over
            raise Enough

    fake = SimpleNamespace(sleep=sleep, shield=asyncio.shield, CancelledError=asyncio.CancelledError)
    monkeypatch.setattr(kopf_peering, "touch", touch)
    monkeypatch.setattr(kopf_peering, "asyncio", fake)
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = lifetime
    with pytest.raises(Enough):
        asyncio.run(kopf_peering.keepalive(namespace=None, resource=None, identity="me", settings=settings))  # type: ignore[arg-type]
    shortest, longest = peering.renewal_seconds(lifetime)
    assert set(waits) == set(range(shortest, longest + 1))


def test_a_standby_wakes_when_the_record_it_yields_to_expires_not_at_the_next_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The standby sleeps until the working replica's lastseen + lifetime (that record's own
    # lifetime), then touches its own record: the write wakes its watch, which finds the peer dead.
    from kopf._cogs.aiokits.aiotoggles import Toggle
    from kopf._core.engines import peering as kopf_peering

    slept: list[list[float]] = []
    touched: list[str] = []

    async def sleep(delays: list[float], wakeup: asyncio.Event | None = None) -> None:
        slept.append(delays)  # None: slept to the end, nothing woke it

    async def touch(*, identity: str, **_: Any) -> None:
        touched.append(identity)

    monkeypatch.setattr(kopf_peering.aiotime, "sleep", sleep)
    monkeypatch.setattr(kopf_peering, "touch", touch)
    settings = kopf.OperatorSettings()
    settings.peering.name, settings.peering.priority = "p", -2
    records = {"pod-a": record(-1, seen_seconds_ago=11, lifetime=15), "pod-b": record(-2, lifetime=15)}
    asyncio.run(
        kopf_peering.process_peering_event(
            raw_event={"type": None, "object": {"metadata": {"name": "p"}, "status": records}},
            namespace=None,
            resource=None,  # type: ignore[arg-type]
            identity=kopf_peering.Identity("pod-b"),
            settings=settings,
            autoclean=False,
            stream_pressure=asyncio.Event(),
            conflicts_found=Toggle(True),
        )
    )
    ((delay,),) = slept
    assert 3.5 < delay <= 4.0  # 15 - 11 s: what is left of pod-a's record
    assert touched == ["pod-b"]


def test_a_peering_lifetime_below_ten_seconds_is_refused_with_the_reason() -> None:
    assert peering.check_lifetime(10) == 10
    with pytest.raises(ValueError, match="at least 10 seconds, not 9: Kopf renews"):
        peering.check_lifetime(9)


def test_a_restart_lists_in_pages_and_lets_idle_object_workers_go() -> None:
    # What keeps a restart over many objects from holding memory it needs only for a moment
    # (measured by the benchmark's restart; see runner.configure_kopf).
    settings = kopf.OperatorSettings()
    assert settings.watching.chunk_size is None  # Kopf's default: one list of everything
    configure_kopf(settings, "fulfillment-controller")
    assert settings.watching.chunk_size == 100
    assert settings.queueing.idle_timeout < 1.0
    assert settings.persistence.finalizer == "fulfillment-controller.orderflow.dev/finalizer"
    assert settings.posting.enabled is False


def test_no_diff_base_is_copied_for_change_handlers_the_controllers_do_not_have() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings, "order-controller")
    body = kopf.Body({"metadata": {"name": "o", "annotations": {"a": "b"}}, "spec": {"items": [{"sku": "X"}]}})
    assert settings.persistence.diffbase_storage.build(body=body) == {}
    assert settings.persistence.diffbase_storage.fetch(body=body) is None
    # Sound only while no controller has a change handler (tests/unit/test_architecture.py).
