"""docs/benchmarks.md: each benchmark replaces its own section, and the cost curve's rewrite keeps them."""

from __future__ import annotations

from pathlib import Path

from orderflow.dev.bench import sections


def test_a_section_is_added_then_replaced_and_the_others_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nthe cost curve\n")
    sections.replace(doc, "deadlines", "## Deadlines\n\nfirst")
    sections.replace(doc, "targets", "## Targets\n\nacross")
    sections.replace(doc, "deadlines", "## Deadlines\n\nsecond")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nthe cost curve\n")
    assert "second" in text
    assert "first" not in text
    assert text.index("second") < text.index("across")  # replaced where it was
    # The cost curve's writer rewrites the file whole and carries the sections over.
    doc.write_text("# Benchmarks\n\na new cost curve\n" + sections.kept(doc))
    again = doc.read_text()
    assert "a new cost curve" in again
    assert "second" in again
    assert "across" in again
