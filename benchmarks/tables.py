"""Markdown tables for the benchmark reports."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """A GitHub markdown table; columns from ``numeric_from`` on are right-aligned."""
    aligns = ["---" if index < numeric_from else "---:" for index in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def megabytes(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**missed**")


def goals_section(goals: Sequence[Sequence[str]]) -> str:
    return "## Goals\n\n" + markdown_table(["goal", "target", "measured", "verdict"], goals)
