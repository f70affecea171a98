"""The pipeline's stages as plain processes (no DVC), the way dvc.yaml runs them, each measured.

A run happens in a work folder holding ``params.yaml`` and a snapshot of ``mnist_pipeline/`` (so
every size in one benchmark runs the same code, whatever is edited meanwhile); ``python -m``
puts the work folder first on ``sys.path``, so the snapshot is what runs.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.measure import Measurement, measure
from tests.support.repos import PROJECT_ROOT, tool_env

#: Export formats every scale run writes (all the pipeline has).
ALL_FORMATS = ("npz", "csv", "png", "parquet")


@dataclass(frozen=True)
class Stage:
    label: str
    module: str
    arguments: tuple[str, ...]
    #: Labels of earlier stages whose outputs this one reads.
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageRun:
    stage: Stage
    #: None: not run, because a stage it needs failed.
    measurement: Measurement | None

    @property
    def ok(self) -> bool:
        return self.measurement is not None and self.measurement.ok


def pipeline_stages(dataset: str, formats: Sequence[str]) -> list[Stage]:
    """check, then every stage of ``dataset`` in dvc.yaml's order, with dvc.yaml's arguments."""
    data = f"data/{dataset}"
    selected = ("--dataset", dataset)
    exports = [
        Stage(
            f"export@{fmt}",
            f"mnist_pipeline.export_{fmt}",
            (*selected, f"{data}/decoded", f"{data}/export/{fmt}", "--sums", f"{data}/export/{fmt}.sha256"),
            ("decode",),
        )
        for fmt in formats
    ]
    trees = (
        [
            Stage(
                "unpack@png",
                "mnist_pipeline.unpack",
                (*selected, f"{data}/export/png/images.zip", f"{data}/export/images"),
                ("export@png",),
            )
        ]
        if "png" in formats
        else []
    )
    return [
        Stage("check", "mnist_pipeline.check", ("data/params.checked",)),
        Stage("download", "mnist_pipeline.download", (*selected, f"{data}/raw"), ("check",)),
        Stage("verify", "mnist_pipeline.verify", (*selected, f"{data}/raw", f"{data}/checksums.json"), ("download",)),
        Stage("extract", "mnist_pipeline.extract", (*selected, f"{data}/raw", f"{data}/idx"), ("verify",)),
        Stage(
            "decode",
            "mnist_pipeline.decode",
            (*selected, f"{data}/idx", f"{data}/decoded", f"{data}/stats.json"),
            ("extract",),
        ),
        *exports,
        *trees,
        Stage(
            "report",
            "mnist_pipeline.report",
            (*selected, f"{data}/decoded", f"{data}/stats.json", f"{data}/checksums.json", f"{data}/export"),
            ("decode", "verify", *(stage.label for stage in exports)),
        ),
    ]


PACKAGE = "mnist_pipeline"


def snapshot_code(target: Path) -> Path:
    """A copy of the project's ``mnist_pipeline/`` package as it is now, at ``target/mnist_pipeline``."""
    destination = target / PACKAGE
    shutil.copytree(PROJECT_ROOT / PACKAGE, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    return destination


def prepare_workdir(workdir: Path, code: Path, params: dict[str, Any]) -> Path:
    """A fresh work folder: the code snapshot ``code`` and ``params`` as params.yaml."""
    workdir.mkdir(parents=True)
    shutil.copytree(code, workdir / PACKAGE)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return workdir


def run_stage(workdir: Path, stage: Stage, timeout: float = 3600.0) -> Measurement:
    """``python -m <module> <arguments>`` in ``workdir``."""
    return measure([sys.executable, "-m", stage.module, *stage.arguments], workdir, env=tool_env(), timeout=timeout)


def run_stages(
    workdir: Path,
    stages: Sequence[Stage],
    timeout: float = 3600.0,
    on_done: Callable[[StageRun], None] | None = None,
) -> list[StageRun]:
    """Each stage in order (``on_done`` hears of each); a stage whose input stage failed is not run."""
    failed: set[str] = set()
    runs = []
    for stage in stages:
        result = None if failed.intersection(stage.needs) else run_stage(workdir, stage, timeout)
        if result is None or not result.ok:
            failed.add(stage.label)
        runs.append(StageRun(stage, result))
        if on_done is not None:
            on_done(runs[-1])
    return runs


def describe_run(run: StageRun) -> str:
    """``<stage>: <seconds> s, <MB> MB (ok | why it failed)``, for progress lines."""
    if run.measurement is None:
        return f"{run.stage.label}: not run (a stage it needs failed)"
    measured = run.measurement
    state = "ok" if measured.ok else measured.failure()
    return f"{run.stage.label}: {measured.seconds:.2f} s, {measured.peak_mb:.0f} MB ({state})"


def first_failure(runs: Sequence[StageRun]) -> str | None:
    """``<stage>: <why>`` of the first stage that ran and failed, or None."""
    for run in runs:
        if run.measurement is not None and not run.measurement.ok:
            return f"{run.stage.label}: {run.measurement.failure()}"
    return None
