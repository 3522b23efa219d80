"""How a Description is shown: the plain, rich and JSON layouts, the address kept to the header, and
no control character of anyone's text sent to the terminal."""

from __future__ import annotations

import io
import json
import re

from orderflow.describe import render

from .stories import HOSTILE, PERSONAL, TRACKING, hostile_story, shown_controls, story

# -- output ---------------------------------------------------------------------------------------


def test_the_json_shape() -> None:
    document = json.loads(render.to_json(story()))
    assert set(document) == {"order", "fulfillment", "timeline"}
    row_keys = {"time", "object", "kind", "what", "detail", "sinceStartSeconds", "durationSeconds"}
    assert all(set(row) == row_keys for row in document["timeline"])
    assert document["timeline"][0]["time"] == "2026-11-25T12:00:00Z"
    order, fulfillment = document["order"], document["fulfillment"]
    assert order["phase"] == "Completed"
    assert order["exists"] is True
    assert order["ready"]["status"] == "True"
    assert order["signals"]["acknowledged"] is True
    assert fulfillment["progress"] == {"percent": 100, "currentStep": "Shipped", "completedSteps": 3, "totalSteps": 3}
    assert fulfillment["trackingNumber"] == TRACKING
    assert set(order) == set(fulfillment)  # one shape for both


def test_the_plain_text_layout() -> None:
    text = render.plain(story())
    lines = text.splitlines()
    assert lines[0].startswith("Order shop/o1  created 2026-11-25 12:00:00 UTC")
    assert "  Phase     Completed, finished 5.600s after creation" in lines
    assert any(line.startswith("Fulfillment shop/o1  for Order o1") for line in lines)
    assert f"  Tracking  {TRACKING}" in lines
    header = next(line for line in lines if line.startswith("TIME (UTC)"))
    assert header.split() == ["TIME", "(UTC)", "SINCE", "OBJECT", "WHAT", "TOOK", "DETAIL"]
    picked = next(line for line in lines if " Picked " in line)
    assert picked.split()[:5] == ["12:00:05.000", "+5.000s", "Fulfillment", "Picked", "1.600s"]
    assert "\x1b[" not in text


def test_the_subject_comes_first() -> None:
    assert render.plain(story("fulfillment")).startswith("Fulfillment shop/o1")


def test_the_rich_layout() -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, force_terminal=True, width=160).print(render.rich(story()))
    text = out.getvalue()
    assert "\x1b[" in text  # styled
    assert "Completed" in text
    assert "Signal acknowledged" in text
    assert TRACKING in text
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=160).print(render.rich(story(), max_rows=3))
    assert "… 13 earlier" in out.getvalue()


# -- personal data --------------------------------------------------------------------------------


def test_the_plain_and_json_outputs_keep_the_address_to_the_header() -> None:
    desc = story()
    text = render.plain(desc)
    timeline = text.split("Timeline:", 1)[1]
    assert "Ada Lovelace" in text.split("Timeline:", 1)[0]
    for word in PERSONAL:
        assert word not in timeline
    document = json.loads(render.to_json(desc))
    rows = json.dumps(document["timeline"])
    assert "Ada Lovelace" in json.dumps(document["fulfillment"])
    for word in PERSONAL:
        assert word not in rows


# -- hostile text: whatever a person with the edit role (or status access) writes ----------------


def test_plain_text_shows_control_characters_as_escapes_and_each_row_on_one_line() -> None:
    desc = hostile_story()
    text = render.plain(desc)
    assert shown_controls(text) == set()
    for shown in ("\\x1b[31mred", "\\x9b2J", "\\u2028", "\\n12:00:09.000"):
        assert shown in text
    lines = text.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("TIME (UTC)")) + 1 :]
    assert len(table) == len(desc.timeline)  # no forged rows
    assert shown_controls(render.status_line(desc)) == set()


def test_the_terminal_layout_writes_only_its_own_colours() -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, force_terminal=True, width=400).print(render.rich(hostile_story()))
    text = out.getvalue()
    own_colours = re.compile(r"\x1b\[[0-9;]*m")
    assert shown_controls(own_colours.sub("", text)) == set()
    assert "\\x1b]52;c;" in text  # shown, not run


def test_json_escapes_what_a_terminal_could_run() -> None:
    text = render.to_json(hostile_story())
    assert shown_controls(text) == set()
    assert json.loads(text)["fulfillment"]["stalled"]["message"] == HOSTILE  # the value itself, unchanged
