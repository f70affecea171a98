"""How the pipeline scales, and how far the PNG tree is from its floor.

In one run:
1. Synthetic datasets of the MNIST layout (``benchmarks/synthetic.py``) at 1x MNIST's size
   (60,000 + 10,000), at ``--scale`` N x (default 10: 600,000 + 100,000) and, with ``--emnist``,
   at EMNIST byclass's size (697,932 + 116,323, 62 classes, stored transposed), each served
   as a folder mirror, each run through every stage bare (``python -m mnist_pipeline.<stage>``, all
   four export formats), measuring seconds, peak memory and the cost per image; the cost of a
   bigger size is compared with 1x's.
2. On the 1x data, the floors of the PNG tree (C: encode 70,000 PNGs with one reused deflate
   stream; create the 70,000 files from export@png's zip) and the naive ways (a Pillow save
   loop; the classic single-process pypng converter), against export@png + unpack@png.

Goals (issue 10): cost per image at 10x at most 1.1x 1x's; peak memory at most 300 MB per stage
at 10x; PNG tree at most 1.25x its floor, and at least 1.5x faster than the pypng converter.

Every size runs one snapshot of ``mnist_pipeline/``, taken once a small smoke run passes every stage
(``--wait M``: retry it for up to M minutes while stages are being edited).

Usage: ``make bench-scale`` or ``python benchmarks/bench_scale.py [--scale N] [--emnist] [--quick]
[--wait MINUTES] [--keep]``. ``--quick`` divides every size by 50. Generated archives are kept in
benchmarks/results/synthetic/ (reused while valid); results go to benchmarks/results/scale.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks import floors, synthetic  # noqa: E402  (run as a script, too)
from benchmarks.machine import machine_section  # noqa: E402
from benchmarks.measure import Measurement  # noqa: E402
from benchmarks.stages import (  # noqa: E402
    ALL_FORMATS,
    StageRun,
    describe_run,
    first_failure,
    pipeline_stages,
    prepare_workdir,
    run_stage,
    run_stages,
    snapshot_code,
)
from benchmarks.tables import goals_section, markdown_table, megabytes, ratio, seconds, verdict  # noqa: E402

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
SYNTHETIC_DIR = RESULTS_DIR / "synthetic"
COST_RATIO_GOAL = 1.1
PEAK_GOAL_MB = 300.0
FLOOR_RATIO_GOAL = 1.25
PYPNG_SPEEDUP_GOAL = 1.5
QUICK_DIVISOR = 50
SMOKE_SCALE = 0.01
RETRY_PAUSE_SECONDS = 120.0
MICRO = 1e6


@dataclass
class SizeResult:
    size: synthetic.SyntheticSize
    generated_seconds: float | None
    runs: list[StageRun]

    def total_seconds(self) -> float | None:
        if not self.runs or not all(run.ok for run in self.runs):
            return None
        return sum(run.measurement.seconds for run in self.runs if run.measurement is not None)

    def stage(self, label: str) -> Measurement | None:
        for run in self.runs:
            if run.stage.label == label and run.measurement is not None and run.measurement.ok:
                return run.measurement
        return None

    def cost_us(self, label: str | None) -> float | None:
        """Microseconds per image of one stage, or of all of them (``label`` None)."""
        elapsed = self.total_seconds() if label is None else _seconds_of(self.stage(label))
        return None if elapsed is None else elapsed / self.size.images * MICRO


@dataclass
class FloorResult:
    """Rounds of the PNG-tree comparison (floors and ours, interleaved) and the naive ways."""

    kind: str
    encode: list[Measurement] = field(default_factory=list)
    tree: list[Measurement] = field(default_factory=list)
    export: list[Measurement] = field(default_factory=list)
    unpack: list[Measurement] = field(default_factory=list)
    pil: Measurement | None = None
    pypng: Measurement | None = None
    notes: list[str] = field(default_factory=list)

    def floor_rounds(self) -> list[float | None]:
        return _round_sums(self.encode, self.tree)

    def ours_rounds(self) -> list[float | None]:
        return _round_sums(self.export, self.unpack)

    def round_ratios(self) -> list[float]:
        """Ours / floor of each round where both sides worked (paired in time)."""
        pairs = zip(self.ours_rounds(), self.floor_rounds(), strict=False)
        return [ours / floor for ours, floor in pairs if ours is not None and floor]


def _round_sums(first: list[Measurement], second: list[Measurement]) -> list[float | None]:
    return [a.seconds + b.seconds if a.ok and b.ok else None for a, b in zip(first, second, strict=False)]


def _present(values: list[float | None]) -> list[float]:
    return [value for value in values if value is not None]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _seconds_of(measurement: Measurement | None) -> float | None:
    return None if measurement is None or not measurement.ok else measurement.seconds


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def sizes_for(scale: float, emnist: bool, quick: bool) -> list[synthetic.SyntheticSize]:
    base = 1 / QUICK_DIVISOR if quick else 1.0
    sizes = [synthetic.mnist_size(base)]
    if scale != 1:
        sizes.append(synthetic.mnist_size(scale * base))
    if emnist:
        sizes.append(synthetic.emnist_byclass_size(base))
    return sizes


def ready_code(root: Path, wait_minutes: float) -> tuple[Path, str | None]:
    """A snapshot of mnist_pipeline/ that passes a smoke run of every stage (retried while stages are
    being edited, up to ``wait_minutes``); the snapshot and the smoke run's failure, if any."""
    deadline = time.monotonic() + wait_minutes * 60
    size = synthetic.mnist_size(SMOKE_SCALE)
    entry, _ = synthetic.ensure_dataset(size, SYNTHETIC_DIR)
    params = synthetic.params_with({size.name: entry}, list(ALL_FORMATS))
    attempt = 0
    while True:
        attempt += 1
        code = snapshot_code(root / f"code-{attempt}")
        workdir = prepare_workdir(root / f"smoke-{attempt}", code, params)
        failure = first_failure(run_stages(workdir, pipeline_stages(size.name, ALL_FORMATS), timeout=600))
        shutil.rmtree(workdir, ignore_errors=True)
        if failure is None:
            log(f"smoke run passed (attempt {attempt})")
            return code, None
        if time.monotonic() + RETRY_PAUSE_SECONDS > deadline:
            log(f"smoke run failed, measuring anyway: {failure}")
            return code, failure
        log(f"smoke run failed ({failure}); retrying in {RETRY_PAUSE_SECONDS:.0f} s")
        time.sleep(RETRY_PAUSE_SECONDS)


def run_size(size: synthetic.SyntheticSize, code: Path, root: Path) -> tuple[SizeResult, Path, dict[str, Any]]:
    started = time.perf_counter()
    entry, generated = synthetic.ensure_dataset(size, SYNTHETIC_DIR)
    generated_seconds = time.perf_counter() - started if generated else None
    log(f"{size.description}: {'generated' if generated else 'reused'} archives; running the stages")
    params = synthetic.params_with({size.name: entry}, list(ALL_FORMATS))
    workdir = prepare_workdir(root / size.name, code, params)
    runs = run_stages(workdir, pipeline_stages(size.name, ALL_FORMATS), on_done=lambda run: log(describe_run(run)))
    return SizeResult(size, generated_seconds, runs), workdir, entry


def run_floors(result: SizeResult, workdir: Path, entry: dict[str, Any], scratch: Path, rounds: int) -> FloorResult:
    """On the data of ``result`` (the 1x run): ``rounds`` rounds of the floors and of export@png +
    unpack@png, interleaved (each going first in turn) so that a busy spell of this shared
    machine hits both; then the naive ways once. No tree is deleted meanwhile: on this disk
    (ext4 mounted with ``discard``), deleting 70,000 files slows the file creation after it."""
    programs = floors.floor_programs(RESULTS_DIR / "bin")
    floor = FloorResult(kind=programs.kind)
    payloads = floors.gunzip_payloads(entry, SYNTHETIC_DIR / result.size.name, scratch / "idx")
    pack = scratch / "floor.pack"
    stages = {run.stage.label: run.stage for run in result.runs if run.ok}
    export_stage, unpack_stage = stages.get("export@png"), stages.get("unpack@png")
    ours_zip = workdir / "data" / result.size.name / "export" / "png" / "images.zip"
    tree_dir = workdir / "data" / result.size.name / "export" / "images"
    trees = scratch / "trees"  # every tree written here is kept until the end (see run_scale)
    trees.mkdir(parents=True)

    def floor_round(index: int) -> None:
        nonlocal ours_zip
        floor.encode.append(floors.floor_encode(programs, payloads, pack))
        if not ours_zip.is_file():
            ours_zip = scratch / "floor.zip"
            floors.zip_from_pack(pack, payloads, ours_zip)
            floor.notes.append("export@png wrote no zip: the file floor used a zip of the floor's own PNGs")
        floor.tree.append(floors.floor_tree(programs, ours_zip, trees / f"floor-{index}"))

    def ours_round(index: int) -> None:
        if export_stage is None or unpack_stage is None:
            return
        floor.export.append(run_stage(workdir, export_stage))
        if tree_dir.exists():  # moved aside, not deleted, so that unpack writes a new tree as on a first run
            tree_dir.rename(trees / f"ours-{index}")
        floor.unpack.append(run_stage(workdir, unpack_stage))

    for index in range(rounds):
        log(f"floors and PNG tree, round {index + 1} of {rounds}")
        order = (floor_round, ours_round) if index % 2 == 0 else (ours_round, floor_round)
        for step in order:
            step(index)
    floor.notes.append(_png_sizes(floor.encode[-1], ours_zip, result.size.images))
    log("naive: Pillow save loop")
    floor.pil = floors.naive_pil(payloads, trees / "pil")
    if floors.pypng_available():
        log("naive: pypng converter")
        floor.pypng = floors.naive_pypng(payloads, trees / "pypng")
    else:
        floor.notes.append("pypng is not installed in this venv (pip install -r benchmarks/requirements.txt)")
    measured = [*floor.encode, *floor.tree, *floor.export, *floor.unpack, floor.pil, floor.pypng]
    floor.notes += sorted({f"failed: {m.failure()}" for m in measured if m is not None and not m.ok})
    return floor


def _png_sizes(encode: Measurement | None, zip_path: Path, images: int) -> str:
    with zipfile.ZipFile(zip_path) as archive:
        pngs = [info.file_size for info in archive.infolist() if info.filename.endswith(".png")]
    ours = sum(pngs) / max(len(pngs), 1)
    floor_text = "?"
    if encode is not None and encode.ok:
        floor_text = f"{int(encode.stdout.split()[2]) / images:.0f}"
    return f"bytes per PNG: floor {floor_text}, export@png {ours:.0f} ({len(pngs):,} PNGs in its zip)"


def scale_table(results: list[SizeResult]) -> str:
    """One row per stage; per size, seconds (µs per image) and peak MB (all processes)."""
    base = results[0]
    headers = ["stage"]
    for result in results:
        headers += [f"{result.size.description}: s (µs/image)", f"{result.size.description}: peak MB (all procs)"]
    headers += [f"cost/image {result.size.description} ÷ {base.size.description}" for result in results[1:]]
    rows = []
    for index, run in enumerate(base.runs):
        row = [run.stage.label]
        for result in results:
            row += _stage_cells(result, result.runs[index] if index < len(result.runs) else None)
        row += [ratio(_cost_ratio(result, base, run.stage.label)) for result in results[1:]]
        rows.append(row)
    total = ["**all stages**"]
    for result in results:
        measured = [run.measurement for run in result.runs if run.measurement is not None and run.measurement.ok]
        peak = max((m.peak_mb for m in measured), default=None)
        tree = max((m.tree_peak_mb for m in measured), default=None)
        total += [
            f"**{seconds(result.total_seconds())}** ({_micro(result.cost_us(None))})",
            f"{megabytes(peak)} ({megabytes(tree)})",
        ]
    total += [f"**{ratio(_cost_ratio(result, base, None))}**" for result in results[1:]]
    rows.append(total)
    return markdown_table(headers, rows)


def _stage_cells(result: SizeResult, run: StageRun | None) -> list[str]:
    if run is None or run.measurement is None:
        return ["not run", "—"]
    measured = run.measurement
    if not measured.ok:
        return ["failed", "—"]
    cost = measured.seconds / result.size.images * MICRO
    return [
        f"{seconds(measured.seconds)} ({_micro(cost)})",
        f"{megabytes(measured.peak_mb)} ({megabytes(measured.tree_peak_mb)})",
    ]


def _micro(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _cost_ratio(result: SizeResult, base: SizeResult, label: str | None) -> float | None:
    big, small = result.cost_us(label), base.cost_us(label)
    return None if big is None or small is None or small == 0 else big / small


def floor_table(base: SizeResult, floor: FloorResult) -> tuple[str, float | None, float | None]:
    """The floor comparison (medians of the rounds); also ours / floor and pypng / ours."""
    encode = _median([m.seconds for m in floor.encode if m.ok])
    tree = _median([m.seconds for m in floor.tree if m.ok])
    floor_total, ours = _median(_present(floor.floor_rounds())), _median(_present(floor.ours_rounds()))
    export = _median([m.seconds for m in floor.export if m.ok])
    unpack = _median([m.seconds for m in floor.unpack if m.ok])
    pil, pypng = _seconds_of(floor.pil), _seconds_of(floor.pypng)
    over_floor = _median(floor.round_ratios())
    pypng_speedup = None if ours is None or pypng is None else pypng / ours
    images = base.size.images
    rows = [
        [f"floor: PNG-encode {images:,} images, one deflate stream (deflateReset)", seconds(encode), ""],
        [f"floor: create the {images:,} files of the tree from export@png's zip", seconds(tree), ""],
        ["**floor total**", seconds(floor_total), "1.00x"],
        ["export@png (PNGs into one zip)", seconds(export), ""],
        ["unpack@png (the tree from the zip)", seconds(unpack), ""],
        ["**this pipeline: export@png + unpack@png**", seconds(ours), f"{ratio(over_floor)} the floor"],
        ["naive: Pillow save loop, one process", seconds(pil), _faster(pil, ours)],
        [
            "naive: pypng converter (`png.from_array(rows, 'L').save` per image), one process",
            seconds(pypng),
            _faster(pypng, ours),
        ],
    ]
    spread = [
        f"floors: {floor.kind}; medians of {len(floor.floor_rounds())} interleaved rounds, each side going first "
        f"in turn; per round, floor total {_list(floor.floor_rounds())} s, ours {_list(floor.ours_rounds())} s, "
        f"ours / floor {_list(floor.round_ratios())} (the compared figure is the median of these); "
        "naive ways once; no tree deleted until every measurement is done",
    ]
    table = markdown_table([f"work ({base.size.description})", "seconds", "compared"], rows, numeric_from=1)
    return table + "\n\n" + "\n".join(f"- {line}" for line in spread), over_floor, pypng_speedup


def _faster(theirs: float | None, ours: float | None) -> str:
    return "" if theirs is None or ours is None or ours == 0 else f"ours {theirs / ours:.2f}x as fast"


def _list(values: list[float] | list[float | None]) -> str:
    return ", ".join("failed" if value is None else f"{value:.2f}" for value in values) or "none"


def goals_rows(results: list[SizeResult], over_floor: float | None, pypng_speedup: float | None) -> list[list[str]]:
    rows = []
    base = results[0]
    for result in results[1:]:
        cost = _cost_ratio(result, base, None)
        rows.append(
            [
                f"cost per image, {result.size.description} / {base.size.description}",
                f"≤ {COST_RATIO_GOAL}x",
                ratio(cost),
                verdict(None if cost is None else cost <= COST_RATIO_GOAL),
            ]
        )
        measured = [run.measurement for run in result.runs if run.measurement is not None and run.measurement.ok]
        complete = len(measured) == len(result.runs)
        peak = max((m.peak_mb for m in measured), default=None)
        tree = max((m.tree_peak_mb for m in measured), default=None)
        rows.append(
            [
                f"peak memory of any stage, {result.size.description}",
                f"≤ {PEAK_GOAL_MB:.0f} MB",
                f"{megabytes(peak)} MB largest process, {megabytes(tree)} MB all processes"
                + ("" if complete else " (not every stage ran)"),
                verdict(None if peak is None else peak <= PEAK_GOAL_MB and complete),
            ]
        )
    rows.append(
        [
            "PNG tree (export@png + unpack@png) / floor",
            f"≤ {FLOOR_RATIO_GOAL}x",
            ratio(over_floor),
            verdict(None if over_floor is None else over_floor <= FLOOR_RATIO_GOAL),
        ]
    )
    rows.append(
        [
            "PNG tree vs pypng converter",
            f"≥ {PYPNG_SPEEDUP_GOAL}x faster",
            ratio(pypng_speedup),
            verdict(None if pypng_speedup is None else pypng_speedup >= PYPNG_SPEEDUP_GOAL),
        ]
    )
    return rows


def failures(results: list[SizeResult], smoke_failure: str | None) -> list[str]:
    lines = [f"- smoke run before measuring: {smoke_failure}"] if smoke_failure else []
    for result in results:
        for run in result.runs:
            if run.measurement is None:
                lines.append(f"- {result.size.description}: {run.stage.label} not run (a stage it needs failed)")
            elif not run.measurement.ok:
                lines.append(f"- {result.size.description}: {run.stage.label} failed: {run.measurement.failure()}")
    return lines


@dataclass
class ScaleReport:
    markdown: str
    goals: list[list[str]]
    data: dict[str, Any]


def run_scale(scale: float, emnist: bool, quick: bool, wait_minutes: float, keep: bool, rounds: int) -> ScaleReport:
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-scale-"))
    try:
        code, smoke_failure = ready_code(root, wait_minutes)
        results: list[SizeResult] = []
        floor: FloorResult | None = None
        for index, size in enumerate(sizes_for(scale, emnist, quick)):
            result, workdir, entry = run_size(size, code, root)
            results.append(result)
            if index == 0:
                floor = run_floors(result, workdir, entry, root / "floors", rounds)
    finally:
        # Only now: deleting a tree of files slows the file creation after it (run_floors).
        if not keep:
            log(f"removing {root}")
            shutil.rmtree(root, ignore_errors=True)
    assert floor is not None
    return build_report(results, floor, smoke_failure)


def build_report(results: list[SizeResult], floor: FloorResult, smoke_failure: str | None) -> ScaleReport:
    base = results[0]
    floors_md, over_floor, pypng_speedup = floor_table(base, floor)
    goals = goals_rows(results, over_floor, pypng_speedup)
    generated = [
        f"{r.size.description}: {r.size.train:,} + {r.size.test:,} images"
        + ("" if r.generated_seconds is None else f" (generated in {r.generated_seconds:.0f} s)")
        for r in results
    ]
    sections = [
        "## Scale: every stage bare, per size",
        "Synthetic datasets of MNIST's layout: " + "; ".join(generated) + ". "
        "Stages run one after another as `python -m mnist_pipeline.<stage>`, all four export formats. "
        "peak MB: the largest process of the stage (exact: its ru_maxrss); in brackets, the stage and its "
        "workers added up (sampled every 0.1 s). µs/image: the stage's seconds per image of the dataset.",
        scale_table(results),
        f"## PNG tree against its floor ({base.size.description})",
        floors_md,
        *([("\n".join(f"- {note}" for note in floor.notes))] if floor.notes else []),
    ]
    problems = failures(results, smoke_failure)
    if problems:
        sections += ["### What failed", "\n".join(problems)]
    data = {
        "sizes": [
            {
                "name": r.size.name,
                "description": r.size.description,
                "images": r.size.images,
                "stages": [
                    {
                        "stage": run.stage.label,
                        "seconds": None if run.measurement is None else round(run.measurement.seconds, 3),
                        "peak_mb": None if run.measurement is None else round(run.measurement.peak_mb, 1),
                        "tree_peak_mb": None if run.measurement is None else round(run.measurement.tree_peak_mb, 1),
                        "ok": run.ok,
                    }
                    for run in r.runs
                ],
            }
            for r in results
        ],
        "floors": {
            "kind": floor.kind,
            **{
                name: [round(m.seconds, 3) for m in getattr(floor, name)]
                for name in ("encode", "tree", "export", "unpack")
            },
            **{name: _seconds_of(getattr(floor, name)) for name in ("pil", "pypng")},
            "notes": floor.notes,
        },
        "goals": goals,
    }
    return ScaleReport("\n\n".join(sections), goals, data)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=float, default=10.0, help="the larger MNIST size, N x MNIST (default 10)")
    parser.add_argument("--emnist", action="store_true", help="also EMNIST byclass's size (62 classes, transposed)")
    parser.add_argument("--quick", action="store_true", help=f"every size / {QUICK_DIVISOR}, for trying the bench")
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="MINUTES", help="retry a failing smoke run for this long"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the floor comparison (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    args = parser.parse_args()
    if not synthetic.MNIST_MIRROR.is_dir():
        print(f"bench: error: no MNIST mirror at {synthetic.MNIST_MIRROR}", file=sys.stderr)
        return 1
    machine_md = machine_section(Path(tempfile.gettempdir()))
    report = run_scale(args.scale, args.emnist, args.quick, args.wait, args.keep, args.rounds)
    text = "\n\n".join(["# Scale benchmark", machine_md, report.markdown, goals_section(report.goals)]) + "\n"
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "scale.md").write_text(text)
    (RESULTS_DIR / "scale.json").write_text(json.dumps(report.data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
