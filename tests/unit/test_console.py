"""The console's pure parts: the diagram drawn from the saga table, the session cookie, origins."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from ops.console import auth
from ops.console.diagram import BOX_H, BOX_W, diagram, states, transitions
from ops.console.letters import LetterQuery, hex_dump
from ops.console.web import age
from saga.machine import NO_SAGA, SAME, TABLE
from services.platform.dlq import DeadLetter


def test_every_row_of_the_table_is_on_an_arrow_and_no_arrow_is_made_up() -> None:
    drawn = {(edge.source, edge.target, row) for edge in diagram({}).edges for row in edge.rows}
    expected = {
        (source, source if row.go_to == SAME else row.go_to, row.name)
        for row in TABLE
        for source in row.during
    }
    assert drawn == expected


def test_arrows_are_one_per_pair_of_states() -> None:
    pairs = [(edge.source, edge.target) for edge in diagram({}).edges]
    assert len(pairs) == len(set(pairs)) == len(transitions())


def test_nodes_carry_the_counts_and_the_start_has_none() -> None:
    nodes = {node.state: node for node in diagram({"Submitted": 3, "Failed": 7}).nodes}
    assert set(nodes) == set(states())
    assert nodes[NO_SAGA].count is None
    assert (nodes["Submitted"].count, nodes["Failed"].count, nodes["Confirmed"].count) == (3, 7, 0)


def test_boxes_do_not_overlap() -> None:
    nodes = diagram({}).nodes
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            apart = abs(a.x - b.x) >= BOX_W or abs(a.y - b.y) >= BOX_H
            assert apart, (a.state, b.state)


def test_an_arrow_starts_and_ends_on_the_sides_of_its_boxes() -> None:
    drawing = diagram({})
    nodes = {node.state: node for node in drawing.nodes}
    edge = next(e for e in drawing.edges if (e.source, e.target) == (NO_SAGA, "Submitted"))
    _, x1, y1, _, x2, y2 = edge.path.split()
    assert float(x1) == nodes[NO_SAGA].x + BOX_W / 2
    assert float(x2) == nodes["Submitted"].x - BOX_W / 2
    assert float(y1) == float(y2) == nodes["Submitted"].y


def _request(headers: dict[str, str], method: str = "POST", path: str = "/console/x") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request(
        {"type": "http", "method": method, "path": path, "headers": raw, "query_string": b""}
    )


def test_the_cookie_is_not_the_token_and_only_its_own_value_passes() -> None:
    value = auth.session_value("tok")
    assert "tok" not in value
    assert value != auth.session_value("tok2")
    assert auth.cookie_accepted(_request({"cookie": f"{auth.COOKIE}={value}"}), "tok")
    assert not auth.cookie_accepted(_request({"cookie": f"{auth.COOKIE}={value}x"}), "tok")
    assert not auth.cookie_accepted(_request({"cookie": f"{auth.COOKIE}=tok"}), "tok")
    assert not auth.cookie_accepted(_request({}), "tok")


def test_the_bearer_header_passes_only_with_the_token() -> None:
    assert auth.bearer_accepted(_request({"authorization": "Bearer tok"}), "tok")
    assert not auth.bearer_accepted(_request({"authorization": "Bearer to"}), "tok")
    assert not auth.bearer_accepted(_request({"authorization": "tok"}), "tok")


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"host": "h:1", "origin": "http://h:1"}, True),
        ({"host": "h:1", "referer": "http://h:1/console/"}, True),
        ({"host": "h:1", "origin": "http://evil:1"}, False),
        ({"host": "h:1", "origin": "null"}, False),
        ({"host": "h:1", "origin": "http://h:1.evil"}, False),
        ({"host": "h:1"}, False),
    ],
)
def test_a_change_needs_an_origin_of_this_host(headers: dict[str, str], ok: bool) -> None:
    assert auth.same_origin(_request(headers)) is ok
    assert auth.same_origin(_request(headers, method="GET"))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/stuck", "/console/stuck"),
        ("https://evil.example/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/admin/v1/sagas", "/console/"),
        (None, "/console/"),
    ],
)
def test_after_login_only_console_paths(target: str | None, expected: str) -> None:
    assert auth.safe_next(target) == expected


def test_only_login_and_static_files_need_no_token() -> None:
    assert auth.needs_no_token("/console/login")
    assert auth.needs_no_token("/console/static/htmx.min.js")
    assert not auth.needs_no_token("/console/")
    assert not auth.needs_no_token("/console/loginx")


def _letter(error: str, key: str = "k") -> DeadLetter:
    headers = {"dlq_error": error, "dlq_original_topic": "t1", "dlq_rejected_by": "saga"}
    return DeadLetter(partition=0, offset=1, key=key, value=b"x", headers=headers)


def test_the_text_filter_looks_in_the_reason_and_the_key() -> None:
    letter = _letter("Invalid JSON at byte 0", key="order-42")
    assert LetterQuery(text="invalid json").matches(letter)
    assert LetterQuery(text="ORDER-42", topic="t1", service="saga").matches(letter)
    assert not LetterQuery(text="timeout").matches(letter)
    assert not LetterQuery(topic="t2").matches(letter)


def test_hex_dump_shows_offsets_bytes_and_printable_text() -> None:
    lines = hex_dump(b"\xff{not json}" + bytes(range(10)))
    assert lines[0].startswith("00000000  ff 7b 6e 6f")
    assert lines[0].endswith(".{not json}.....")
    assert lines[1].startswith("00000010  05 06")


def test_ages_read_short() -> None:
    assert [age(None), age(0.25), age(3), age(600), age(9000)] == [
        "-",
        "250 ms",
        "3.0 s",
        "10.0 min",
        "2.5 h",
    ]
