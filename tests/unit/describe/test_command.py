"""``orderflow describe``'s arguments, the kubectl plugin, and following an object (``--watch``): in
plain text only what is new, as JSON one line per change, never a control character."""

from __future__ import annotations

import io
import json

import pytest

from orderflow.cli import kubectl_plugin
from orderflow.describe import command

from .stories import completed_order, hostile_story, paused_fulfillment, shown_controls, story

# -- arguments and the kubectl plugin ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("order/o1",), ("order", "o1")),
        (("orders/o1",), ("order", "o1")),
        (("ord", "o1"), ("order", "o1")),
        (("Fulfillment/o1",), ("fulfillment", "o1")),
        (("ful/o1",), ("fulfillment", "o1")),
        (("fulfillments.orderflow.dev/o1",), ("fulfillment", "o1")),
    ],
)
def test_targets(args: tuple[str, ...], expected: tuple[str, str]) -> None:
    assert command.parse_target(*args) == expected


@pytest.mark.parametrize("args", [("pod/x",), ("order",), ("order/",), ("order/a", "b")])
def test_bad_targets(args: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"."):
        command.parse_target(*args)


def test_the_kubectl_plugin_takes_orderflows_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert kubectl_plugin(["describe", "pod/x"]) == 2
    assert "give order/NAME or fulfillment/NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        kubectl_plugin(["describe", "--help"])
    assert capsys.readouterr().out.startswith("usage: kubectl orderflow describe")


# -- following ------------------------------------------------------------------------------------


def test_following_in_plain_text_appends_only_what_is_new() -> None:
    out = io.StringIO()
    view = command._Appending(out)
    before = story(fulfillment=paused_fulfillment())
    view.show(before)
    first = out.getvalue()
    view.show(story())
    added = out.getvalue()[len(first) :].splitlines()
    assert added[0].startswith("== Order o1: Completed")
    assert any(" Shipped " in line for line in added)
    assert not any(" Started " in line for line in added)  # shown already
    view.show(story())
    assert len(out.getvalue()[len(first) :].splitlines()) == len(added)  # nothing new, nothing printed


def test_following_as_json_prints_one_line_per_change() -> None:
    out = io.StringIO()
    view = command._JsonLines(out)
    view.show(story())
    view.show(story())
    view.show(story(fulfillment=paused_fulfillment()))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["fulfillment"]["phase"] == "Picking"


def test_following_does_not_repeat_a_condition_whose_message_changed_without_a_transition() -> None:
    out = io.StringIO()
    view = command._Appending(out)
    view.show(story())
    before = out.getvalue()
    order = completed_order()
    for c in order["status"]["conditions"]:
        if c["type"] == "Reconciling":
            c["message"] = "a newer message, no transition"
    view.show(story(order=order))
    assert out.getvalue() == before


def test_following_shows_no_control_characters() -> None:
    out = io.StringIO()
    view = command._Appending(out)
    view.show(story("fulfillment"))
    view.show(hostile_story())
    assert shown_controls(out.getvalue()) == set()
