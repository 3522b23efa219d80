"""How a Description looks: plain text (pipes, logs), rich (a terminal), JSON (scripts).

The header and the rows are computed once (:func:`header`, :func:`cells`); the plain and the rich
layouts only lay them out. Times are UTC.

Every value shown is someone's text (an address, an Event's message: the ``edit`` role can post
Events), so it passes :func:`visible` on its way out: a terminal never runs what it carries, and
one timeline row stays one line.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from typing import TYPE_CHECKING

from orderflow.describe.shape import FULFILLMENT, ORDER, Description, Row, Summary

if TYPE_CHECKING:
    from rich.console import RenderableType

# What a terminal acts on rather than shows: C0 (ESC, BEL, CR, LF, tab...), DEL, C1 (0x9b is CSI
# on its own), the Unicode line and paragraph separators, and the bidirectional overrides and
# isolates (they reorder what follows them on screen).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(text: str) -> str:
    """``text`` with every control character written as its escape (``\\x1b``, ``\\n``, ``\\u2028``),
    as Python writes them: shown, so nothing is hidden, and never acted on."""
    return _CONTROL.sub(_escape, text)


COLUMNS = ("TIME (UTC)", "SINCE", "OBJECT", "WHAT", "TOOK", "DETAIL")


@dataclasses.dataclass(frozen=True)
class Line:
    label: str
    value: str
    style: str = ""


@dataclasses.dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[Line, ...]
    style: str = "bold"


# -- shared content -----------------------------------------------------------------------------


def header(desc: Description) -> list[Section]:
    """The state of both objects now: the one asked about first."""
    order, fulfillment = _order_section(desc), _fulfillment_section(desc)
    sections = [order, fulfillment] if desc.subject == "order" else [fulfillment, order]
    if desc.notes:
        sections.append(Section("Notes", tuple(Line("", note, "yellow") for note in desc.notes), "yellow"))
    return [_visible_section(section) for section in sections]


def _visible_section(section: Section) -> Section:
    lines = tuple(
        dataclasses.replace(line, label=visible(line.label), value=visible(line.value)) for line in section.lines
    )
    return dataclasses.replace(section, title=visible(section.title), lines=lines)


def _order_section(desc: Description) -> Section:
    o = desc.order
    if not o.exists:
        return Section(f"Order {o.name or ''}".rstrip(), (Line("", o.note or "not found", "yellow"),), "yellow")
    lines = [Line("Phase", _phase_text(o), phase_style(o.phase))]
    if o.percent is not None:
        lines.append(Line("Progress", f"{o.percent}%" + (f" ({o.current_step})" if o.current_step else "")))
    lines += _conditions(o)
    if o.tracking_number:
        lines.append(Line("Tracking", o.tracking_number, "bold"))
    if o.target:
        lines.append(Line("Target", o.target))
    if o.due_at:
        lines.append(_due(o))
    if o.signals is not None:
        s = o.signals
        text = f"paused={_b(s.paused)}, cancelled={_b(s.cancelled)}"
        if s.sent_at:
            text += f", sent {fmt_time(s.sent_at)}"
        if s.generation is not None:
            text += f" (Fulfillment generation {s.generation})"
        if s.acknowledged:
            took = (
                f" after {fmt_duration((s.acknowledged_at - s.sent_at).total_seconds())}"
                if (s.acknowledged_at and s.sent_at)
                else ""
            )
            lines.append(Line("Signals", f"{text}: acknowledged{took}", "green"))
        elif s.acknowledged is False:
            seen = "none yet" if s.acknowledged_generation is None else str(s.acknowledged_generation)
            lines.append(Line("Signals", f"{text}: NOT acknowledged yet (observedGeneration {seen})", "yellow"))
        else:
            lines.append(Line("Signals", text))
    if o.shipping_address:
        lines.append(Line("Ship to", o.shipping_address))
    if o.deleting:
        lines.append(Line("Deleting", f"deletion requested {fmt_time(o.deleting)}", "yellow"))
    title = f"Order {o.namespace}/{o.name}"
    if o.created:
        title += f"  created {fmt_time(o.created, date=True, millis=False)}"
    return Section(title, tuple(lines))


def _fulfillment_section(desc: Description) -> Section:
    f = desc.fulfillment
    name = f"Fulfillment {f.namespace}/{f.name}" if f.name else "Fulfillment"
    if not f.exists:
        lines = [Line("", f.note or "not found", "yellow")]
        if f.phase:  # as last reported on the Order
            lines.append(Line("Phase", f.phase, phase_style(f.phase)))
        if f.tracking_number:
            lines.append(Line("Tracking", f.tracking_number, "bold"))
        return Section(name, tuple(lines), "yellow")
    lines = [Line("Phase", _phase_text(f), phase_style(f.phase))]
    if f.context:  # in a target of another cluster, read through the user's context for it
        where = f" (target {desc.order.target})" if desc.order.target else ""
        lines.append(Line("Context", f"{f.context}{where}"))
    if f.percent is not None:
        steps = f" ({f.completed_steps} of {f.total_steps} steps)" if f.total_steps else ""
        lines.append(Line("Progress", f"{f.percent}%{steps}"))
    lines += _conditions(f)
    if f.tracking_number:
        lines.append(Line("Tracking", f.tracking_number, "bold"))
    if f.due_at:
        lines.append(_due(f))
    s = f.signals
    if s is not None and s.generation is not None:
        if s.acknowledged:
            lines.append(Line("Generation", f"{s.generation}, acknowledged (status.observedGeneration)", "green"))
        else:
            seen = "none yet" if s.acknowledged_generation is None else str(s.acknowledged_generation)
            lines.append(
                Line("Generation", f"{s.generation}, NOT acknowledged yet (observedGeneration {seen})", "yellow")
            )
    if f.shipping_address and f.shipping_address != desc.order.shipping_address:
        lines.append(Line("Ship to", f.shipping_address))
    if f.deleting:
        lines.append(Line("Deleting", f"deletion requested {fmt_time(f.deleting)}", "yellow"))
    if f.history_truncated:
        lines.append(Line("History", "status.history keeps the last 20 transitions; older ones show as Events", "dim"))
    title = name + (f"  for Order {f.order_ref}" if f.order_ref else "  (no Order: made by hand)")
    if f.created:
        title += f"  created {fmt_time(f.created, date=True, millis=False)}"
    return Section(title, tuple(lines))


def _due(s: Summary) -> Line:
    """The deadline (spec.activeDeadlineSeconds) and what happened at it."""
    assert s.due_at is not None
    due = fmt_time(s.due_at, date=True, millis=False)
    if s.deadline_exceeded_at is not None:
        late = fmt_duration((s.deadline_exceeded_at - s.due_at).total_seconds())
        what = (
            "the order ended Completed: it shipped first" if s.phase == "Completed" else "its Fulfillment was cancelled"
        )
        return Line(
            "Due", f"{due}: missed, found {late} after it; {what}", "red" if s.phase != "Completed" else "yellow"
        )
    if s.failure_reason == "DeadlineExceeded":
        return Line("Due", f"{due}: missed; the fulfillment failed at it", "red")
    if s.completed_at is not None and s.completed_at <= s.due_at:
        return Line("Due", f"{due}: met", "green")
    return Line("Due", due)


def _phase_text(s: Summary) -> str:
    if s.phase is None:
        return "not reported yet (has its controller seen it?)"
    text = s.phase
    if s.step is not None:
        text += f", {fmt_duration(s.step.elapsed_seconds)} into the step" + (" (paused)" if s.step.paused else "")
    elif s.paused:
        text += " (paused)"
    if s.completed_at and s.created:
        text += f", finished {fmt_duration((s.completed_at - s.created).total_seconds())} after creation"
    return text


def _conditions(s: Summary) -> list[Line]:
    lines = []
    for label, c in (("Ready", s.ready), ("Stalled", s.stalled)):
        if c is None:
            continue
        bad = (label == "Stalled") == (c.status == "True")
        message = f"{c.reason}: {c.message}" if c.message else c.reason
        lines.append(Line(label, f"{c.status:5}  {message}", "red" if label == "Stalled" and bad else ""))
    return lines


def phase_style(phase: str | None) -> str:
    if phase in ("Completed", "Shipped"):
        return "bold green"
    if phase in ("Failed", "Invalid"):
        return "bold red"
    if phase in ("Cancelled",):
        return "bold yellow"
    return "bold cyan"


def cells(row: Row, date: bool = False) -> tuple[str, str, str, str, str, str]:
    return (
        fmt_time(row.time, date=date, millis=not row.whole_seconds),
        f"+{fmt_duration(row.since_start)}",
        visible(row.object),
        visible(row.what),
        fmt_duration(row.duration) if row.duration is not None else "",
        visible(row.detail),
    )


def row_style(row: Row) -> str:
    if row.kind == "event":
        return "red" if row.detail.startswith("Warning:") else "dim"
    if row.kind == "condition":
        if row.what in ("Stalled=True", "Accepted=False", "SignalsAccepted=False", "SignalsAcknowledged=False"):
            return "red"
        return "blue"
    if row.kind in ("signal", "acknowledged"):
        return "magenta"
    if row.kind == "phase":
        return phase_style(row.what)
    if row.kind == "history":
        return "red" if row.what == "Failed" else "cyan"
    return "bold"


def _spans_days(rows: tuple[Row, ...]) -> bool:
    return bool(rows) and rows[0].time.date() != rows[-1].time.date()


def timeline_title(desc: Description) -> str:
    events = desc.order.events + desc.fulfillment.events
    return (
        f"Timeline: {len(desc.timeline)} entries, oldest first ({events} Events; "
        "an Event that repeats an entry is folded into it)"
    )


# -- plain text ---------------------------------------------------------------------------------


def plain(desc: Description) -> str:
    out: list[str] = []
    for section in header(desc):
        out.append(section.title)
        width = max((len(line.label) for line in section.lines), default=0)
        for line in section.lines:
            out.append(f"  {line.label:{width}}  {line.value}".rstrip() if line.label else f"  {line.value}")
        out.append("")
    out.append(timeline_title(desc))
    out += plain_rows(desc.timeline, header_row=True)
    return "\n".join(out) + "\n"


def plain_rows(rows: tuple[Row, ...], header_row: bool = False, date: bool | None = None) -> list[str]:
    table = [cells(row, _spans_days(rows) if date is None else date) for row in rows]
    if header_row:
        table.insert(0, COLUMNS)
    if not table:
        return []
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in table]


def status_line(desc: Description) -> str:
    """One line for a follower: where both objects are now."""
    parts = []
    for s in (desc.order, desc.fulfillment):
        if not s.exists:
            parts.append(f"{s.kind} {s.name or ''}: {s.note or 'absent'}")
            continue
        text = f"{s.kind} {s.name}: {s.phase or 'not reported'}"
        if s.kind == FULFILLMENT and s.percent is not None:
            text += f" {s.percent}%"
        if s.paused:
            text += " (paused)"
        if s.ready is not None:
            text += f", Ready={s.ready.status}"
        parts.append(text)
    return visible(" | ".join(parts))


# -- JSON -------------------------------------------------------------------------------------


_JSON_RAW_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def to_json(desc: Description, indent: int | None = 2) -> str:
    """JSON escapes C0 itself; the other control characters are escaped too (``\\u009b``), so
    that ``-o json`` read on a terminal is as safe. The values are unchanged."""
    text = json.dumps(desc.wire(), indent=indent, ensure_ascii=False)
    return _JSON_RAW_CONTROL.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


# -- rich -------------------------------------------------------------------------------------


def rich(desc: Description, max_rows: int | None = None) -> RenderableType:
    """The terminal layout; ``max_rows`` keeps the newest rows (a live view must fit the screen)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = []
    for section in header(desc):
        grid = Table.grid(padding=(0, 2), pad_edge=True)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for line in section.lines:
            grid.add_row(line.label, Text(line.value, style=line.style))
        parts += [Text(section.title, style=section.style), grid, Text("")]

    rows = desc.timeline
    hidden = 0
    if max_rows is not None and len(rows) > max_rows:
        hidden = len(rows) - max_rows
        rows = rows[hidden:]
    table = Table(box=box.SIMPLE_HEAD, title=timeline_title(desc), title_justify="left", pad_edge=False, expand=False)
    for name in COLUMNS:
        table.add_column(
            name,
            no_wrap=name != "DETAIL",
            justify="right" if name in ("SINCE", "TOOK") else "left",
            overflow="fold",
        )
    if hidden:
        table.add_row("", "", "", Text(f"… {hidden} earlier", style="dim"), "", "")
    date = _spans_days(desc.timeline)
    for row in rows:
        style = row_style(row)
        time_, since, obj, what, took, detail = cells(row, date)
        table.add_row(
            Text(time_, style="dim"),
            Text(since, style="dim"),
            Text(obj, style="bold" if obj == ORDER else ""),
            Text(what, style=style),
            took,
            Text(detail, style="red" if style == "red" else ""),
        )
    parts.append(table)
    return Group(*parts)


def header_height(desc: Description) -> int:
    return sum(len(section.lines) + 2 for section in header(desc))


# -- formatting ---------------------------------------------------------------------------------


def fmt_time(value: datetime.datetime, date: bool = False, millis: bool = True) -> str:
    """``12:00:03.512``; a time kept in whole seconds (Events, creation) as ``12:00:03``, so that
    it does not look more precise than it is."""
    utc = value.astimezone(datetime.UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    if millis:
        text += f".{utc.microsecond // 1000:03d}"
    return text + (" UTC" if date else "")


def fmt_duration(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 10:
        return f"{sign}{s:.3f}s"
    if s < 60:
        return f"{sign}{s:.1f}s"
    if s < 3600:
        return f"{sign}{int(s // 60)}m{int(s % 60):02d}s"
    return f"{sign}{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _b(value: bool | None) -> str:
    return "?" if value is None else str(value).lower()
