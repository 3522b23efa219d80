"""Reading both objects from the API server: the Fulfillment in a target of another cluster through a
context of the user's kubeconfig (which one, and why it cannot read), and watching them."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest
import requests

from orderflow.describe import render, source
from orderflow.describe.shape import Snapshot
from orderflow.describe.timeline import describe
from orderflow.runtime.pure.errors import Forbidden

from .stories import at, in_target, shipped_fulfillment

# -- a target in another cluster ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("eu=kind-warehouse", ("eu", "kind-warehouse")),
        ("kind-warehouse", (None, "kind-warehouse")),
        ("arn:aws:eks:eu-west-1:1:cluster/wh=x", (None, "arn:aws:eks:eu-west-1:1:cluster/wh=x")),  # no target name
    ],
)
def test_target_context_values(value: str, expected: tuple[str | None, str]) -> None:
    assert source.parse_target_context(value) == expected


@pytest.mark.parametrize("value", ["", "eu="])
def test_bad_target_context_values(value: str) -> None:
    with pytest.raises(ValueError, match="CONTEXT"):
        source.parse_target_context(value)


def test_the_context_for_a_target_named_by_the_user_else_named_as_the_target() -> None:
    known = ("shop", "eu", "kind-warehouse")
    assert source.choose_context("eu", {"eu": "kind-warehouse"}, known) == ("kind-warehouse", True)
    assert source.choose_context("eu", {"us": "x", None: "kind-warehouse"}, known) == ("kind-warehouse", True)
    assert source.choose_context("eu", {}, known) == ("eu", False)
    assert source.choose_context("us", {}, known) == (None, False)


def test_why_a_context_cannot_read_it_is_one_line_in_the_servers_words() -> None:
    from orderflow.runtime.pure.errors import ApiError

    with pytest.raises(requests.ConnectionError) as refused_info:  # port 1: nothing listens, refused at once
        requests.get("https://127.0.0.1:1/apis/orderflow.dev/v1alpha1/namespaces/w/fulfillments/o1", timeout=5)
    refused = refused_info.value
    server = "https://127.0.0.1:1"
    told = source.why_not("eu", refused, server)
    assert told == "context eu cannot reach the API server at https://127.0.0.1:1: [Errno 111] Connection refused"
    forbidden = Forbidden(403, "Forbidden", 'fulfillments.orderflow.dev "shop.o1" is forbidden')
    assert source.why_not("eu", forbidden, server).startswith("context eu is not allowed to read it at ")
    assert "401 Unauthorized" in source.why_not("eu", ApiError(401, "Unauthorized", "Unauthorized"), server)
    for exc in (refused, forbidden):
        assert "\n" not in source.why_not("eu", exc, server)


class FakeContexts(source.Contexts):
    """A kubeconfig with these contexts; reading through one fails as told, or finds ``found``."""

    def __init__(self, names: tuple[str, ...], chosen: dict[str | None, str], fails: Exception | None = None,
                 found: dict[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(None, chosen)
        self.names, self.fails, self.found, self.asked = names, fails, found, []

    def choose(self, target: str) -> tuple[str | None, bool]:
        return source.choose_context(target, self.chosen, self.names)

    def reader(self, context: str) -> source.Reader:
        self.asked.append(context)
        reader = source.Reader(FakeApi())  # type: ignore[arg-type]
        reader.context = context
        fails, found = self.fails, self.found

        def find(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
            if fails is not None:
                raise fails
            return found

        reader.kube.find = find  # type: ignore[method-assign]
        return reader


class FakeApi:
    url = "https://warehouse.example:6443"


class LocalSource(source.Source):
    """The Order's cluster, holding ``here`` (None: nothing of that name)."""

    def __init__(self, contexts: source.Contexts, here: dict[str, Any] | None = None) -> None:
        super().__init__(FakeApi(), contexts)  # type: ignore[arg-type]
        self.here = here

    def _find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.here


def test_without_a_context_for_the_target_it_says_how_to_name_one() -> None:
    order, _ = in_target()
    found = LocalSource(FakeContexts(("shop",), {}))._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.body is None
    assert found.note is not None
    assert "no context of your kubeconfig is named eu" in found.note
    assert "--target-context eu=CONTEXT" in found.note
    desc = describe(Snapshot("order", "o1", "shop", order, None, fulfillment_note=found.note), at(60))
    assert desc.fulfillment.phase == "Shipped"  # as the Order last saw it
    assert desc.fulfillment.note == found.note


def test_a_context_named_as_the_target_is_read_when_the_fulfillment_is_not_in_this_cluster() -> None:
    order, fulfillment = in_target()
    contexts = FakeContexts(("shop", "eu"), {}, found=fulfillment)
    found = LocalSource(contexts)._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.body is fulfillment
    assert found.reader is not None
    assert found.reader.context == "eu"
    # In this cluster already (a target that is another namespace): no other context is tried.
    contexts = FakeContexts(("shop", "eu"), {}, found=None)
    assert LocalSource(contexts, here=fulfillment)._find_in_target(order, "warehouse", "shop.o1", "eu").body
    assert contexts.asked == []


def test_a_context_named_by_the_user_is_the_only_place_looked() -> None:
    order, fulfillment = in_target()
    stranger = shipped_fulfillment(order_uid=None)
    contexts = FakeContexts(("shop", "eu"), {"eu": "kind-warehouse"}, found=fulfillment)
    found = LocalSource(contexts, here=stranger)._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.body is fulfillment
    assert contexts.asked == ["kind-warehouse"]


CANNOT_REACH = "context kind-warehouse cannot reach the API server at https://warehouse.example:6443"


@pytest.mark.parametrize(
    ("fails", "said"),
    [
        (requests.ConnectionError("[Errno 111] Connection refused"), f"{CANNOT_REACH}: [Errno 111] Connection refused"),
        (requests.Timeout("read timed out"), f"{CANNOT_REACH}: no answer within 5 s"),
    ],
)
def test_a_context_that_cannot_read_it_is_named_with_the_reason_and_the_order_shown(
    fails: Exception, said: str
) -> None:
    order, _ = in_target()
    contexts = FakeContexts(("shop",), {None: "kind-warehouse"}, fails=fails)
    found = LocalSource(contexts)._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.body is None
    assert found.note == f"in target eu (namespace warehouse): {said}; shown as the Order last saw it"
    plain = render.plain(describe(Snapshot("order", "o1", "shop", order, None, fulfillment_note=found.note), at(60)))
    assert said in plain
    assert "Shipped" in plain


def test_a_context_missing_from_the_kubeconfig_is_said_so() -> None:
    order, _ = in_target()
    contexts = source.Contexts(None, {"eu": "nowhere"})
    found = LocalSource(contexts)._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.note == (
        "in target eu (namespace warehouse): context nowhere is not in the kubeconfig; shown as the Order last saw it"
    )


def test_what_the_other_cluster_says_is_shown_as_escapes() -> None:
    order, fulfillment = in_target()
    fulfillment["status"]["conditions"][0]["message"] = "shipped\x1b]52;c;cm0gLXJmIH4=\x07"
    fails = Forbidden(403, "Forbidden", "no\x1b[2J")
    contexts = FakeContexts(("eu",), {}, fails=fails)
    found = LocalSource(contexts)._find_in_target(order, "warehouse", "shop.o1", "eu")
    for snapshot in (
        Snapshot("order", "o1", "shop", order, fulfillment, fulfillment_context="eu\x1b[31m"),
        Snapshot("order", "o1", "shop", order, None, fulfillment_note=found.note),
    ):
        text = render.plain(describe(snapshot, at(60)))
        assert "\x1b" not in text
        assert "\\x1b" in text


# -- watching -------------------------------------------------------------------------------------


def test_following_watches_the_fulfillment_where_it_was_read() -> None:
    order, fulfillment = in_target()
    watched: list[tuple[str, str, str | None]] = []

    class Recording(LocalSource):
        def _watch(self, stream: source.Stream, namespace: str, notices: Any, stop: Any) -> None:
            watched.append((stream.what, namespace, stream.reader.context if stream.reader else None))

    contexts = FakeContexts(("eu",), {}, found=fulfillment)
    src = Recording(contexts)
    found = src._find_in_target(order, "warehouse", "shop.o1", "eu")
    assert found.reader is not None
    src.fulfillment_reader = found.reader
    snapshot = Snapshot("order", "o1", "shop", order, fulfillment, fulfillment_context="eu")
    started = src.follow(source.Target("order", "o1", "shop"), snapshot, queue.Queue(), threading.Event())
    for _ in range(500):  # the threads record and end at once
        if len(watched) == started:
            break
        threading.Event().wait(0.01)
    assert sorted(watched) == [
        ("Events of o1", "shop", None),
        ("Events of shop.o1", "warehouse", "eu"),
        ("Fulfillment shop.o1", "warehouse", "eu"),
        ("Order o1", "shop", None),
    ]


def test_watch_stream_lines() -> None:
    assert source._watch_event({"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "7"}}}, "6") == (
        "7",
        True,
    )
    assert source._watch_event({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}, "7") == (
        "9",
        False,
    )
    assert source._watch_event({"type": "ERROR", "object": {"code": 410}}, "9") == (None, True)
    with pytest.raises(source.WatchError):
        source._watch_event({"type": "ERROR", "object": {"code": 500, "message": "boom"}}, "9")
