"""Text tables: left-aligned columns, the last one unpadded, no trailing spaces."""

from __future__ import annotations

import pytest

from control_plane.tables import column_widths, render_columns


@pytest.mark.parametrize(
    ("headers", "rows", "expected"),
    [
        (("A", "B"), [], ["A  B"]),
        (("A", "B"), [("long", "x"), ("s", "")], ["A     B", "long  x", "s"]),
        (
            ("ACTION", "STATUS", "DETAIL"),
            [("create", "done", "why"), ("prune", "", "")],
            ["ACTION  STATUS  DETAIL", "create  done    why", "prune"],
        ),
        (("ONLY",), [("one",), ("three",)], ["ONLY", "one", "three"]),
    ],
)
def test_columns_are_padded_to_their_widest_cell_but_the_last(
    headers: tuple[str, ...], rows: list[tuple[str, ...]], expected: list[str]
) -> None:
    assert render_columns(headers, rows) == expected


def test_widths_are_of_every_column_but_the_last() -> None:
    assert column_widths(("A", "BB", "C"), [("aaa", "b", "cccccc")]) == (3, 2)


def test_a_row_with_a_missing_cell_is_refused() -> None:
    with pytest.raises(ValueError):
        render_columns(("A", "B", "C"), [("a", "b")])


def test_counts_and_short_shas_as_every_summary_line_shows_them() -> None:
    from control_plane.tables import render_counts, short_sha

    assert render_counts({"create": 2, "update": 0, "prune": 1}) == "2 create, 1 prune"
    assert render_counts({"create": 0}) == "nothing to do"
    assert short_sha("0123456789abcdef") == "01234567"
    assert short_sha(None) == "-"
