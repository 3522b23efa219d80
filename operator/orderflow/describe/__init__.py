"""``orderflow describe``: an Order's or a Fulfillment's story, read from both objects and their Events.

- :mod:`orderflow.describe.timeline`: the pure part, objects in, summaries and timeline rows out;
- :mod:`orderflow.describe.render`: plain text, a rich terminal layout, JSON;
- :mod:`orderflow.describe.source`: reading (and watching) the API server;
- :mod:`orderflow.describe.command`: the arguments and ``--watch``.

Also a kubectl plugin: installed as ``kubectl-orderflow`` on PATH, ``kubectl orderflow describe
order/NAME`` runs :func:`kubectl_plugin` with the same arguments as ``orderflow``.
"""

from __future__ import annotations

import argparse
import sys

PLUGIN = "kubectl orderflow"


def kubectl_plugin(argv: list[str] | None = None) -> int:
    """The ``kubectl-orderflow`` executable: ``kubectl orderflow ARGS`` is ``orderflow ARGS``."""
    from orderflow import cli

    top = cli.parser()
    _rename(top, PLUGIN)
    args = top.parse_args(sys.argv[1:] if argv is None else argv)
    code: int = args.func(args)
    return code


def _rename(parser: argparse.ArgumentParser, prog: str) -> None:
    """Usage and errors name the command as typed: ``kubectl orderflow describe ...``."""
    old = parser.prog
    parser.prog = prog
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.prog = sub.prog.replace(old, prog, 1)
