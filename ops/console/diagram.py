"""The saga's state diagram as SVG shapes, laid out from saga.machine.TABLE; pure, no I/O.

Edges are the table's rows aggregated per (from, to) pair, so a new row shows up by itself; a
state the layout does not know yet is still drawn (in a spare slot) rather than left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from saga.machine import NO_SAGA, SAME, TABLE

WIDTH, HEIGHT = 760, 300
BOX_W, BOX_H = 132, 52
LOOP_R = 16
_PLACES: Mapping[str, tuple[int, int]] = {
    NO_SAGA: (70, 150),
    "Submitted": (240, 150),
    "StockReserved": (450, 150),
    "Confirmed": (660, 64),
    "Failed": (660, 236),
}
_SPARE = [(450, 40), (450, 262), (240, 40), (240, 262)]


@dataclass(frozen=True)
class Node:
    """One state box: its centre and the sagas in it now (None for the start pseudo-state)."""

    state: str
    x: int
    y: int
    count: int | None

    @property
    def left(self) -> int:
        """x of the box's left side."""
        return self.x - BOX_W // 2

    @property
    def top(self) -> int:
        """y of the box's top side."""
        return self.y - BOX_H // 2


@dataclass(frozen=True)
class Edge:
    """An arrow between two states, standing for every row that takes it (named in `rows`)."""

    source: str
    target: str
    rows: tuple[str, ...]
    path: str
    """SVG path data: a straight line between the boxes, or a loop over the box."""

    @property
    def title(self) -> str:
        """Tooltip: the pair and every row name."""
        return f"{self.source} → {self.target}: " + ", ".join(self.rows)


@dataclass(frozen=True)
class Diagram:
    """Every node and edge of the drawing."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int = WIDTH
    height: int = HEIGHT


def transitions() -> dict[tuple[str, str], list[str]]:
    """(from, to) -> names of the rows that take it, in table order (internal rows loop)."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for row in TABLE:
        for source in row.during:
            target = source if row.go_to == SAME else row.go_to
            names = pairs.setdefault((source, target), [])
            if row.name not in names:
                names.append(row.name)
    return pairs


def states() -> list[str]:
    """Every state the table names, the start pseudo-state first."""
    seen: list[str] = []
    for source, target in transitions():
        for state in (source, target):
            if state not in seen:
                seen.append(state)
    return sorted(
        seen, key=lambda s: (s != NO_SAGA, list(_PLACES).index(s) if s in _PLACES else 99)
    )


def diagram(counts: Mapping[str, int]) -> Diagram:
    """The drawing with `counts` (sagas per state) in the boxes; a missing state counts 0."""
    spare = iter(_SPARE)
    nodes = {}
    for state in states():
        x, y = _PLACES.get(state) or next(spare, (WIDTH // 2, HEIGHT // 2))
        count = None if state == NO_SAGA else counts.get(state, 0)
        nodes[state] = Node(state, x, y, count)
    edges = tuple(
        Edge(source, target, tuple(rows), _path(nodes[source], nodes[target]))
        for (source, target), rows in transitions().items()
    )
    return Diagram(tuple(nodes.values()), edges)


def _path(source: Node, target: Node) -> str:
    if source.state == target.state:
        x, top = source.x, source.top
        return (
            f"M {x - LOOP_R} {top} C {x - LOOP_R} {top - 2 * LOOP_R}, "
            f"{x + LOOP_R} {top - 2 * LOOP_R}, {x + LOOP_R} {top}"
        )
    x1, y1 = _border(source, target.x, target.y)
    x2, y2 = _border(target, source.x, source.y)
    return f"M {x1:.1f} {y1:.1f} L {x2:.1f} {y2:.1f}"


def _border(node: Node, toward_x: float, toward_y: float) -> tuple[float, float]:
    """Where the line from the box's centre toward a point leaves the box."""
    dx, dy = toward_x - node.x, toward_y - node.y
    if dx == 0 and dy == 0:
        return float(node.x), float(node.y)
    # Scale the direction until it meets a vertical or a horizontal side, whichever is first.
    scale = min(
        (BOX_W / 2) / abs(dx) if dx else math.inf,
        (BOX_H / 2) / abs(dy) if dy else math.inf,
    )
    return node.x + dx * scale, node.y + dy * scale
