"""Tables: rows of text as left-aligned columns, the one layout of every text table.

The plan (`control_plane.plans.render_table`) and the report
(`control_plane.reconcile.render_report_table`) print their rows through `render_columns`,
for the CLI, the run's log and its artifacts alike. Plain strings in, lines out: what goes
in a cell and what comes around the table is the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

GAP = "  "  # between two columns


def render_counts(counts: Mapping[str, int]) -> str:
    """`2 create, 1 prune` (actions with none left out), or `nothing to do`: the summary
    line of a plan, a report and a run's final state."""
    return ", ".join(f"{n} {action}" for action, n in counts.items() if n) or "nothing to do"


def short_sha(commit: str | None) -> str:
    """A commit as reports show it (8 characters), `-` for none."""
    return commit[:8] if commit else "-"


def column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> tuple[int, ...]:
    """The width of each column but the last (which is never padded): its longest cell."""
    table = (headers, *rows)
    return tuple(max(len(row[i]) for row in table) for i in range(len(headers) - 1))


def render_columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The header line, then one line per row: every column but the last padded to its
    widest cell, two spaces apart, no trailing spaces."""
    widths = column_widths(headers, rows)
    lines = []
    for row in (headers, *rows):
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append(GAP.join([*padded, row[-1]]).rstrip())
    return lines
