"""Mermaid state diagram generated from the saga table; imports no I/O library or service.

`python -m saga.diagram` rewrites the committed saga/diagram.mmd; a test keeps it current.
"""

from __future__ import annotations

from pathlib import Path

from saga.instance import FINAL_STATES
from saga.machine import DUPLICATE, NO_SAGA, SAME, TABLE, Row

DIAGRAM_PATH = Path(__file__).with_name("diagram.mmd")

_GUARDED = frozenset((state, row.when) for row in TABLE if row.guard for state in row.during)


def _node(state: str) -> str:
    return "[*]" if state == NO_SAGA else state


def _label(row: Row, source: str) -> str:
    if row.guard:
        condition = f" [{row.guard}]"
    else:
        # An unguarded row after guarded ones only applies when none of theirs holds.
        condition = " [otherwise]" if (source, row.when) in _GUARDED else ""
    duplicate = " (duplicate)" if row.then == DUPLICATE else ""
    return f"{row.when}{condition} / {row.name}{duplicate}"


def mermaid() -> str:
    """The table as a Mermaid stateDiagram-v2: one edge per row and source state."""
    lines = [
        "stateDiagram-v2",
        "    %% Generated from saga/machine.py TABLE by `python -m saga.diagram`.",
    ]
    for row in TABLE:
        for source in row.during:
            dest = source if row.go_to == SAME else row.go_to
            lines.append(f"    {_node(source)} --> {dest} : {_label(row, source)}")
    lines += [f"    {state.value} --> [*]" for state in sorted(FINAL_STATES)]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write the diagram next to this module."""
    DIAGRAM_PATH.write_text(mermaid(), encoding="utf-8")


if __name__ == "__main__":
    main()
