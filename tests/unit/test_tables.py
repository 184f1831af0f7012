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
