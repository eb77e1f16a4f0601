"""The committed Mermaid diagram is the one the table generates today."""

from __future__ import annotations

from saga.diagram import DIAGRAM_PATH, mermaid
from saga.machine import TABLE


def test_committed_diagram_is_current() -> None:
    # On failure run `python -m saga.diagram` and commit saga/diagram.mmd.
    assert DIAGRAM_PATH.read_text(encoding="utf-8") == mermaid()


def test_one_edge_per_row_and_source_state() -> None:
    edges = [line for line in mermaid().splitlines() if " : " in line]
    assert len(edges) == sum(len(row.during) for row in TABLE)
    names = [edge.rsplit(" / ", 1)[1].removesuffix(" (duplicate)") for edge in edges]
    for row in TABLE:
        assert names.count(row.name) == len(row.during), row.name
