"""``orderflow describe order/NAME | fulfillment/NAME``: the arguments, one read, or following it live.

Only the standard library is imported here at module level: ``orderflow``'s parser imports this
module to add the subcommand, and must stay quick to start.
"""

from __future__ import annotations

import argparse
import datetime
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from orderflow.describe.shape import Description, Snapshot
    from orderflow.describe.source import Notice, Source, Target

_ALIASES = {
    "order": "order",
    "orders": "order",
    "ord": "order",
    "fulfillment": "fulfillment",
    "fulfillments": "fulfillment",
    "ful": "fulfillment",
    "fulfil": "fulfillment",
}
_GROUP_SUFFIX = ".orderflow.dev"
DEBOUNCE_SECONDS = 0.1  # a status write and its Events arrive together: render once


def parse_target(target: str, name: str | None = None) -> tuple[str, str]:
    """("order" | "fulfillment", name) from ``order/NAME``, ``ful/NAME``, ``orders.orderflow.dev NAME``..."""
    kind, slash, rest = target.partition("/")
    if slash and name:
        raise ValueError(f"give either {target} or a kind and a name, not both")
    if not slash:
        rest = name or ""
    kind = kind.lower().removesuffix(_GROUP_SUFFIX).removesuffix("/v1alpha1")
    if kind not in _ALIASES:
        raise ValueError(f"cannot describe {target!r}: give order/NAME or fulfillment/NAME")
    if not rest:
        raise ValueError(f"which {_ALIASES[kind]}? give {_ALIASES[kind]}/NAME")
    return _ALIASES[kind], rest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="order/NAME|fulfillment/NAME", help="what to describe (also: order NAME)")
    parser.add_argument("name", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument(
        "-n", "--namespace", help="default: the namespace of the kubeconfig's current context, else 'default'"
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help="text (a terminal layout on a TTY, plain text otherwise) or json: "
        '{"order": {...}, "fulfillment": {...}, "timeline": [...]}; with --watch, one JSON document a line',
    )
    parser.add_argument(
        "-w", "--watch", action="store_true", help="follow it live: show it again on every change (Ctrl-C ends)"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, help="default: in a Pod its ServiceAccount, else KUBECONFIG or ~/.kube/config"
    )
    parser.add_argument("--context", help="a context of the kubeconfig other than its current one")
    parser.add_argument(
        "--target-context",
        action="append",
        default=[],
        metavar="TARGET=CONTEXT",
        help="the context of the kubeconfig that reaches the cluster of the Order's target TARGET, to read "
        "its Fulfillment there (repeatable; CONTEXT alone: for whichever target the Order names). "
        "Default: a context named as the target, if the Fulfillment is not in this cluster",
    )


def run(args: argparse.Namespace) -> int:
    from orderflow.describe.source import DescribeError, Source, Target, connect, parse_target_context
    from orderflow.describe.timeline import describe

    try:
        subject, name = parse_target(args.target, args.name)
    except ValueError as exc:
        print(f"orderflow describe: {exc}", file=sys.stderr)
        return 2
    try:
        chosen = dict(parse_target_context(value) for value in args.target_context)
    except ValueError as exc:
        print(f"orderflow describe: --target-context {exc}", file=sys.stderr)
        return 2
    try:
        api, namespace, contexts = connect(args.kubeconfig, args.context, chosen)
        target = Target(subject, name, args.namespace or namespace)
        source = Source(api, contexts)
        snapshot = source.snapshot(target)
    except DescribeError as exc:
        print(f"orderflow describe: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout
    try:
        if args.watch:
            return follow(source, target, snapshot, _view(args.output, out))
        _print(describe(snapshot, _now()), args.output, out)
    except BrokenPipeError:  # `| head`: the reader has seen enough
        # As Python's documentation advises: no second error when the interpreter flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _print(desc: Description, output: str, out: TextIO) -> None:
    if output == "json":
        from orderflow.describe.render import to_json

        out.write(to_json(desc) + "\n")
    elif out.isatty():
        from orderflow.describe.render import rich

        _console(out).print(rich(desc))
    else:
        from orderflow.describe.render import plain

        out.write(plain(desc))


def follow(source: Source, target: Target, snapshot: Snapshot, view: _View) -> int:
    """Show it, then again on each watch event of either object or of their Events, until Ctrl-C
    (exit 0) or until every watch has given up after its reconnects (exit 1)."""
    from orderflow.describe.source import DescribeError
    from orderflow.describe.timeline import describe

    notices: queue.Queue[Notice] = queue.Queue()
    stop = threading.Event()
    try:
        watching = source.follow(target, snapshot, notices, stop)
        view.show(describe(snapshot, _now()))
        while True:
            try:
                batch = [notices.get(timeout=1.0)]
            except queue.Empty:
                if view.ticks:  # a live view's clocks (time into the step) move on
                    view.show(describe(snapshot, _now()))
                continue
            time.sleep(DEBOUNCE_SECONDS)
            while not notices.empty():
                batch.append(notices.get_nowait())
            for notice in batch:
                if notice.gone:
                    watching -= 1
                    view.warn(notice.gone)
            if watching <= 0:
                view.warn("every watch has stopped; giving up")
                return 1
            if any(notice.changed for notice in batch):
                try:
                    snapshot = source.snapshot(target)
                except DescribeError as exc:
                    view.warn(str(exc))
                    continue
                view.show(describe(snapshot, _now()))
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        view.close()


# -- how each output follows ------------------------------------------------------------------


class _View:
    ticks = False

    def show(self, desc: Description) -> None:
        raise NotImplementedError

    def warn(self, message: str) -> None:
        from orderflow.describe.render import visible

        print(f"orderflow describe: {visible(message)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _JsonLines(_View):
    """One JSON document a line, each time something changed."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last = ""

    def show(self, desc: Description) -> None:
        from orderflow.describe.render import to_json

        text = to_json(desc, indent=None)
        if text != self.last:
            self.out.write(text + "\n")
            self.out.flush()
            self.last = text


class _Appending(_View):
    """Plain text for a pipe or a log: everything once, then only the new rows (as ``kubectl get -w``),
    and a status line whenever the objects' state changes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.seen: set[tuple[object, ...]] = set()
        self.status = ""
        self.started = False

    def show(self, desc: Description) -> None:
        from orderflow.describe.render import plain, plain_rows, status_line

        # A condition's message changes without a transition: the same row, not a new one.
        keys = {(r.time, r.object, r.kind, r.what): r for r in desc.timeline}
        status = status_line(desc)
        if not self.started:
            self.out.write(plain(desc))
            self.started = True
        else:
            if status != self.status:
                self.out.write(f"== {status}\n")
            new = tuple(row for key, row in keys.items() if key not in self.seen)
            for line in plain_rows(new, date=False):
                self.out.write(line + "\n")
        self.out.flush()
        self.seen |= set(keys)
        self.status = status


class _Live(_View):
    """A terminal: the whole view redrawn in place, the newest rows kept on screen."""

    ticks = True

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.live: Live = Live(console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def show(self, desc: Description) -> None:
        from orderflow.describe.render import header_height, rich

        room = max(5, self.console.height - header_height(desc) - 8)
        self.live.update(rich(desc, max_rows=room), refresh=True)

    def warn(self, message: str) -> None:
        from rich.text import Text

        from orderflow.describe.render import visible

        self.live.console.print(Text(f"orderflow describe: {visible(message)}", style="yellow"))

    def close(self) -> None:
        self.live.stop()


def _view(output: str, out: TextIO) -> _View:
    if output == "json":
        return _JsonLines(out)
    if out.isatty():
        return _Live(_console(out))
    return _Appending(out)


def _console(out: TextIO) -> Console:
    from rich.console import Console

    return Console(file=out, highlight=False)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
