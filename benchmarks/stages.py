"""The pipeline's stages as plain processes (no DVC), each measured: the commands DVC itself
lists for the copy (copies.stage_commands), run by ``/bin/sh -c`` in the stage's folder as
``dvc repro`` runs them, one after another.

``python -m`` puts the stage's folder first on ``sys.path``, so the copy's ``mnist_pipeline/``
runs, not the project's: every size of one benchmark runs the code copied at its start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.copies import StageCommand
from benchmarks.measure import Measurement, measure
from tests.support.repos import tool_env

SHELL = "/bin/sh"


@dataclass(frozen=True)
class StageRun:
    stage: StageCommand
    #: None: not run, because an earlier stage failed.
    measurement: Measurement | None

    @property
    def ok(self) -> bool:
        return self.measurement is not None and self.measurement.ok


def run_stage(stage: StageCommand, env: dict[str, str] | None = None, timeout: float = 3600.0) -> Measurement:
    return measure([SHELL, "-c", stage.command], stage.wdir, env=tool_env() | (env or {}), timeout=timeout)


def run_stages(
    stages: Sequence[StageCommand],
    env: dict[str, str] | None = None,
    timeout: float = 3600.0,
    on_done: Callable[[StageRun], None] | None = None,
) -> list[StageRun]:
    """Each stage in order (``on_done`` hears of each); after a failure the rest are not run,
    as ``dvc repro`` stops."""
    runs: list[StageRun] = []
    failed = False
    for stage in stages:
        result = None if failed else run_stage(stage, env, timeout)
        failed = failed or result is None or not result.ok
        runs.append(StageRun(stage, result))
        if on_done is not None:
            on_done(runs[-1])
    return runs


def describe_run(run: StageRun) -> str:
    """``<stage>: <seconds> s, CPU <seconds> s, <MB> MB (ok | why it failed)``, for progress lines."""
    if run.measurement is None:
        return f"{run.stage.name}: not run (an earlier stage failed)"
    measured = run.measurement
    state = "ok" if measured.ok else measured.failure()
    return (
        f"{run.stage.name}: {measured.seconds:.2f} s, CPU {measured.cpu_seconds:.2f} s, "
        f"{measured.peak_mb:.0f} MB ({state})"
    )


def first_failure(runs: Sequence[StageRun]) -> str | None:
    """``<stage>: <why>`` of the first stage that ran and failed, or None."""
    for run in runs:
        if run.measurement is not None and not run.measurement.ok:
            return f"{run.stage.name}: {run.measurement.failure()}"
    return None
