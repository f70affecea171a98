"""Comparisons that hold on a busy shared machine: interleaved A/B rounds, per-pair ratios.

Each round measures both sides back to back, the side going first alternating from round to
round, so that a busy spell of the machine (other processes, the disk's write-back) hits both;
the figure is the median of the per-round ratios, shown with their minimum and maximum, the
machine's load average at the start and end, and CPU time (user + sys, descendants included)
beside wall time: wall time stretches when another process takes a core, CPU time hardly does.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmarks.measure import Measurement

Metric = Literal["wall", "cpu"]


@dataclass(frozen=True)
class Sample:
    """One side of one round: wall and CPU seconds, or why it failed."""

    seconds: float
    cpu_seconds: float
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def value(self, metric: Metric) -> float:
        return self.seconds if metric == "wall" else self.cpu_seconds


def sample_of(measurements: Sequence[Measurement | None]) -> Sample:
    """The sum of several commands (a side made of stages); failed if any failed or did not run."""
    for measured in measurements:
        if measured is None:
            return Sample(0.0, 0.0, "not run (an earlier step failed)")
        if not measured.ok:
            return Sample(0.0, 0.0, measured.failure())
    return Sample(
        sum(m.seconds for m in measurements if m is not None),
        sum(m.cpu_seconds for m in measurements if m is not None),
    )


@dataclass(frozen=True)
class Goal:
    """``ratio <op> target`` on the median of the per-round ratios of ``metric``."""

    metric: Metric
    op: Literal["<=", ">="]
    target: float

    def met(self, value: float) -> bool:
        return value <= self.target if self.op == "<=" else value >= self.target

    def text(self) -> str:
        return f"{self.metric} {'≤' if self.op == '<=' else '≥'} {self.target:g}x (median)"


@dataclass
class Comparison:
    """Ours against a reference, round by round. ``speedup``: the ratio is reference / ours
    (how many times faster we are), otherwise ours / reference (how many times the floor)."""

    what: str
    ours: str
    reference: str
    speedup: bool = False
    goals: tuple[Goal, ...] = ()
    pairs: list[tuple[Sample, Sample]] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)
    note: str = ""

    def ratios(self, metric: Metric) -> list[float]:
        found = []
        for ours, reference in self.pairs:
            if not (ours.ok and reference.ok):
                continue
            top, bottom = (reference, ours) if self.speedup else (ours, reference)
            if bottom.value(metric) > 0:
                found.append(top.value(metric) / bottom.value(metric))
        return found

    def median_ratio(self, metric: Metric) -> float | None:
        ratios = self.ratios(metric)
        return statistics.median(ratios) if ratios else None

    def median_side(self, side: int, metric: Metric) -> float | None:
        values = [pair[side].value(metric) for pair in self.pairs if pair[side].ok]
        return statistics.median(values) if values else None

    def failures(self) -> list[str]:
        return sorted({s.failure for pair in self.pairs for s in pair if s.failure is not None})

    def ratio_name(self) -> str:
        return "reference / ours" if self.speedup else "ours / reference"

    def spread(self, metric: Metric) -> str:
        ratios = self.ratios(metric)
        if not ratios:
            return "—"
        return f"{min(ratios):.2f} / **{statistics.median(ratios):.2f}** / {max(ratios):.2f}"

    def row(self) -> list[str]:
        """what | ours | reference | wall ratio | CPU ratio | rounds | load."""
        return [
            self.what + (f" ({self.note})" if self.note else ""),
            _side(self, 0),
            f"{self.reference}: {_side(self, 1)}",
            self.spread("wall"),
            self.spread("cpu"),
            f"{len(self.ratios('wall'))}/{len(self.pairs)}",
            f"{self.load[0]:.2f} → {self.load[1]:.2f}",
        ]

    def goal_rows(self) -> list[list[str]]:
        rows = []
        for goal in self.goals:
            value = self.median_ratio(goal.metric)
            measured = "not measured" if value is None else f"{value:.2f}x ({self.ratio_name()}, {goal.metric})"
            verdict = "not measured" if value is None else ("met" if goal.met(value) else "**missed**")
            rows.append([self.what, goal.text(), measured, verdict])
        return rows

    def data(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "ours": self.ours,
            "reference": self.reference,
            "ratio": self.ratio_name(),
            "pairs": [
                [{"s": round(s.seconds, 3), "cpu_s": round(s.cpu_seconds, 3), "failure": s.failure} for s in pair]
                for pair in self.pairs
            ],
            "wall_ratios": [round(r, 3) for r in self.ratios("wall")],
            "cpu_ratios": [round(r, 3) for r in self.ratios("cpu")],
            "load": list(self.load),
            "note": self.note,
        }


def _side(comparison: Comparison, side: int) -> str:
    wall, cpu = comparison.median_side(side, "wall"), comparison.median_side(side, "cpu")
    if wall is None or cpu is None:
        return "failed"
    return f"{wall:.2f} s (CPU {cpu:.2f} s)"


COMPARISON_HEADERS = [
    "comparison",
    "ours: median wall (CPU)",
    "reference: median wall (CPU)",
    "wall ratio min / **median** / max",
    "CPU ratio min / **median** / max",
    "rounds ok",
    "load avg start → end",
]


def load_average() -> float:
    return os.getloadavg()[0]


def interleave(
    comparison: Comparison,
    rounds: int,
    ours: Callable[[int], Sample],
    reference: Callable[[int], Sample],
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """``rounds`` rounds of both sides (ours first in even rounds, the reference first in odd ones)."""
    start = load_average()
    for index in range(rounds):
        if log is not None:
            log(f"{comparison.what}: round {index + 1} of {rounds}")
        if index % 2 == 0:
            mine = ours(index)
            theirs = reference(index)
        else:
            theirs = reference(index)
            mine = ours(index)
        comparison.pairs.append((mine, theirs))
    comparison.load = (start, load_average())
    return comparison
