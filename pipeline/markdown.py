"""Markdown tables, built one way for the report, the model card, the seeds table and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a GitHub-flavoured table: ``| a | b |``, ``|---|---|``, then one line per row.

    Every row must have as many cells as the header; cells are written with ``str``.
    """
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    for number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise ValueError(f"row {number} has {len(row)} cells, the header {len(header)}: {row}")
        lines.append("| " + " | ".join(map(str, row)) + " |")
    return lines
