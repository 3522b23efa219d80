"""A benchmark's results file: each run stamped with its command, time and machine, and kept
beside the runs of other settings, so a rerun replaces only what it measured again."""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any


def stamp(module: str, argv: list[str]) -> dict[str, Any]:
    """Where a figure comes from: the command as typed, when, and on what."""
    return {
        "command": " ".join([f"python -m {module}", *argv]),
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
    }


def keep(output: Path, document: dict[str, Any], replaced: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The runs of ``output`` that ``document`` does not replace, then ``document``; written back."""
    previous: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    runs = [run for run in previous.get("runs", []) if not replaced(run)]
    runs.append(document)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    return runs
