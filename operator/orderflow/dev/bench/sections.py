"""docs/benchmarks.md holds every measured figure; each benchmark owns a section of it.

``make bench`` writes the file whole (the cost curve); the others (deadlines, targets) each own
a section between markers, which they replace with their latest results and which a new
``make bench`` carries over, so no figure is copied by hand or lost.
"""

from __future__ import annotations

import re
from pathlib import Path


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- section: {name} -->", f"<!-- /section: {name} -->"


def replace(doc: Path, name: str, text: str) -> None:
    """Put ``text`` as the section ``name`` of ``doc``: in place of the one there, else at the end."""
    start, end = _markers(name)
    block = f"{start}\n{text.strip()}\n{end}"
    current = doc.read_text() if doc.exists() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip() + "\n\n" + block
    doc.write_text(updated.rstrip() + "\n")


def kept(doc: Path) -> str:
    """Every section of ``doc``, for a writer of the whole file to carry over."""
    if not doc.exists():
        return ""
    found = re.findall(r"<!-- section: [\w-]+ -->.*?<!-- /section: [\w-]+ -->", doc.read_text(), re.S)
    return "".join("\n" + block + "\n" for block in found)
