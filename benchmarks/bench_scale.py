"""How the pipeline scales, and how its exports compare with their floors and the usual ways.

In one run:
1. Synthetic datasets of the MNIST layout (``benchmarks/synthetic.py``, made from the MNIST
   archives of ``--mirror``) at 1x MNIST's size (60,000 + 10,000), at ``--scale`` N x (default
   10) and, with ``--emnist``, at EMNIST byclass's size (697,932 + 116,323, 62 classes, stored
   transposed). Each is added to a copy of the project as ``conf/dataset/<name>.yaml`` with every
   export format and the PNG tree selected, served as a folder mirror through
   ``MNIST_PIPELINE_MIRRORS``, and every stage DVC lists for the copy runs bare (its command, no
   DVC): seconds, CPU seconds, peak memory, cost per image against 1x's.
2. On the 1x data, in ``--rounds`` interleaved rounds (rounds.py): the PNG tree (export_png +
   unpack) against its C floors (encode 70,000 PNGs with one reused deflate stream; create the
   70,000 files from the zip) and against the classic single-process pypng converter; the CSV
   export against pandas ``to_csv``; the Parquet export against Hugging Face ``datasets``' own
   conversion (``Dataset.from_dict`` with an Image feature, ``to_parquet``). A Pillow save loop
   once, for reference.

Goals: cost per image at N x at most 1.1x 1x's; peak memory at most 300 MB per stage process;
on the median of the rounds, PNG tree CPU at most 1.5x the floor's, wall at least 1.5x faster
than pypng; CSV at least 3x faster than pandas; Parquet at least 3x faster than ``datasets``.

``--wait M``: before measuring, retry a small smoke run of every stage for up to M minutes while
stages are being edited. Every size runs one copy of the code, taken at the start.

Usage: ``make bench-scale`` or ``python benchmarks/bench_scale.py [--scale N] [--emnist] [--quick]
[--rounds R] [--wait MINUTES] [--mirror DIR] [--keep]``. ``--quick`` divides every size by 50.
Generated archives are kept in benchmarks/results/synthetic/ (reused while valid); results go
to benchmarks/results/scale.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks import floors, fsprobe, synthetic  # noqa: E402  (run as a script, too)
from benchmarks.copies import StageCommand, compose, fresh_copy, stage_commands, stage_label  # noqa: E402
from benchmarks.machine import machine_section  # noqa: E402
from benchmarks.measure import Measurement, measure  # noqa: E402
from benchmarks.rounds import (  # noqa: E402
    COMPARISON_HEADERS,
    Comparison,
    Goal,
    Sample,
    interleave,
    load_average,
    sample_of,
)
from benchmarks.stages import StageRun, describe_run, first_failure, run_stage, run_stages  # noqa: E402
from benchmarks.tables import goals_section, markdown_table, megabytes, ratio, seconds, verdict  # noqa: E402
from tests.support.repos import tool_env  # noqa: E402

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
SYNTHETIC_DIR = RESULTS_DIR / "synthetic"
BENCH_DIR = Path(__file__).resolve().parent
COST_RATIO_GOAL = 1.1
PEAK_GOAL_MB = 300.0
QUICK_DIVISOR = 50
#: Rounds of each export comparison. Five, not three: on the same code, the medians of three
#: rounds moved by more than their goals from one full run to the next (Parquet 2.5x to 3.7x).
EXPORT_ROUNDS = 5
#: --quick's sizes say little about the exports (start-up dominates); three keep it under 3 minutes.
QUICK_EXPORT_ROUNDS = 3
SMOKE_SCALE = 0.01
RETRY_PAUSE_SECONDS = 120.0
MICRO = 1e6
ALL_FORMATS = "formats=[npz,csv,png,parquet]"
PNG_TREE = "trees=[png]"
PNG_FLOOR_GOAL = Goal("cpu", "<=", 1.5)
PYPNG_GOAL = Goal("wall", ">=", 1.5)
CSV_GOAL = Goal("wall", ">=", 3.0)
PARQUET_GOAL = Goal("wall", ">=", 3.0)
FORMAT_NAMES = {"csv": "CSV", "parquet": "Parquet"}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class SizeResult:
    size: synthetic.SyntheticSize
    generated_seconds: float | None
    runs: list[StageRun]

    def total(self, cpu: bool = False) -> float | None:
        """Seconds (CPU seconds with ``cpu``) of every stage; None unless every stage worked."""
        if not self.runs or not all(run.ok for run in self.runs):
            return None
        measured = [run.measurement for run in self.runs if run.measurement is not None]
        return sum(m.cpu_seconds if cpu else m.seconds for m in measured)

    def stage(self, label: str) -> Measurement | None:
        for run in self.runs:
            if self.label(run) == label and run.measurement is not None and run.measurement.ok:
                return run.measurement
        return None

    def label(self, run: StageRun) -> str:
        return stage_label(run.stage.name, self.size.name)

    def cost_us(self, label: str | None) -> float | None:
        """Microseconds per image of one stage, or of all of them (``label`` None)."""
        elapsed = self.total() if label is None else _seconds_of(self.stage(label))
        return None if elapsed is None else elapsed / self.size.images * MICRO


@dataclass
class ExportComparisons:
    """The 1x comparisons, and what was measured once or went wrong."""

    comparisons: list[Comparison] = field(default_factory=list)
    floor_kind: str = ""
    pil: Measurement | None = None
    #: CPU µs per empty file created just before each PNG round (fsprobe.py)
    creation_probes: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _seconds_of(measurement: Measurement | None) -> float | None:
    return None if measurement is None or not measurement.ok else measurement.seconds


def sizes_for(scale: float, emnist: bool, quick: bool) -> list[synthetic.SyntheticSize]:
    base = 1 / QUICK_DIVISOR if quick else 1.0
    sizes = [synthetic.mnist_size(base)]
    if scale != 1:
        sizes.append(synthetic.mnist_size(scale * base))
    if emnist:
        sizes.append(synthetic.emnist_byclass_size(base))
    return sizes


@dataclass(frozen=True)
class Workdir:
    """A copy of the project with one synthetic dataset selected, and its stages."""

    path: Path
    stages: list[StageCommand]
    env: dict[str, str]


def size_workdir(
    snapshot: Path, target: Path, size: synthetic.SyntheticSize, entry: dict[str, Any], mirror: Path
) -> Workdir:
    """``snapshot`` (a copy of the project) copied to ``target``, with ``size``'s dataset added to
    conf/ and selected alone, every format and the PNG tree too."""
    shutil.copytree(snapshot, target, symlinks=True)
    conf = target / "conf" / "dataset" / f"{size.name}.yaml"
    conf.write_text(synthetic.dataset_conf(size, entry["splits"]))
    compose(target, [f"dataset=[{size.name}]", ALL_FORMATS, PNG_TREE])
    env = synthetic.mirror_env({size.name: mirror})
    return Workdir(target, stage_commands(target), env)


def ready_snapshot(root: Path, mirror: Path, wait_minutes: float) -> tuple[Path, str | None]:
    """A copy of the project; with ``wait_minutes``, one that passes a smoke run of every stage
    (retried while stages are being edited); the copy and the smoke run's failure, if any."""
    deadline = time.monotonic() + wait_minutes * 60
    attempt = 0
    while True:
        attempt += 1
        snapshot = fresh_copy(root / f"code-{attempt}", commit=False)
        if wait_minutes <= 0:
            return snapshot, None
        size = synthetic.mnist_size(SMOKE_SCALE)
        entry, _ = synthetic.ensure_dataset(size, SYNTHETIC_DIR, mirror)
        work = size_workdir(snapshot, root / f"smoke-{attempt}", size, entry, SYNTHETIC_DIR / size.name)
        failure = first_failure(run_stages(work.stages, work.env, timeout=600))
        shutil.rmtree(work.path, ignore_errors=True)
        if failure is None:
            log(f"smoke run passed (attempt {attempt})")
            return snapshot, None
        if time.monotonic() + RETRY_PAUSE_SECONDS > deadline:
            log(f"smoke run failed, measuring anyway: {failure}")
            return snapshot, failure
        log(f"smoke run failed ({failure}); retrying in {RETRY_PAUSE_SECONDS:.0f} s")
        time.sleep(RETRY_PAUSE_SECONDS)


def run_size(
    size: synthetic.SyntheticSize, snapshot: Path, root: Path, mirror: Path
) -> tuple[SizeResult, Workdir, dict[str, Any]]:
    started = time.perf_counter()
    entry, generated = synthetic.ensure_dataset(size, SYNTHETIC_DIR, mirror)
    generated_seconds = time.perf_counter() - started if generated else None
    log(f"{size.description}: {'generated' if generated else 'reused'} archives; running the stages")
    work = size_workdir(snapshot, root / size.name, size, entry, SYNTHETIC_DIR / size.name)
    runs = run_stages(work.stages, work.env, on_done=lambda run: log(describe_run(run)))
    return SizeResult(size, generated_seconds, runs), work, entry


def _stage_running(work: Workdir, module: str) -> StageCommand | None:
    return next((stage for stage in work.stages if stage.runs(module)), None)


def _failed(why: str) -> Sample:
    return Sample(0.0, 0.0, why)


def compare_exports(
    result: SizeResult, work: Workdir, entry: dict[str, Any], scratch: Path, rounds: int
) -> ExportComparisons:
    """On the data of ``result`` (the 1x run), ``rounds`` interleaved rounds of each comparison.
    No tree is deleted meanwhile: on ext4 without a journal, deleting 70,000 files makes creating
    files 20 times as costly for minutes (fsprobe.py), so each PNG round is probed first."""
    found = ExportComparisons()
    programs = floors.floor_programs(RESULTS_DIR / "bin")
    found.floor_kind = programs.kind
    payloads = floors.gunzip_payloads(entry, SYNTHETIC_DIR / result.size.name, scratch / "idx")
    data = work.path / "data" / result.size.name
    trees = scratch / "trees"  # every tree written here is kept until the end (see run_scale)
    trees.mkdir(parents=True)
    export_png, unpack = _stage_running(work, "export_png"), _stage_running(work, "unpack")
    pack = scratch / "floor.pack"
    images = result.size.images

    def ours(index: int) -> Sample:
        if export_png is None or unpack is None:
            return _failed("no export_png or unpack stage in dvc.yaml")
        export = run_stage(export_png, work.env)
        tree = data / "export" / "images"
        if tree.exists():  # moved aside, not deleted, so that unpack writes a new tree as on a first run
            tree.rename(trees / f"ours-{index}")
        return sample_of([export, run_stage(unpack, work.env) if export.ok else None])

    def floor(index: int) -> Sample:
        encode = floors.floor_encode(programs, payloads, pack)
        ours_zip = data / "export" / "png" / "images.zip"
        if not ours_zip.is_file():
            ours_zip = scratch / "floor.zip"
            floors.zip_from_pack(pack, payloads, ours_zip)
            found.notes.append("export_png wrote no zip: the file floor used a zip of the floor's own PNGs")
        return sample_of([encode, floors.floor_tree(programs, ours_zip, trees / f"floor-{index}")])

    def pypng(index: int) -> Sample:
        if not floors.pypng_available():
            return _failed("pypng is not installed (pip install -r benchmarks/requirements.txt)")
        return sample_of([floors.naive_pypng(payloads, trees / f"pypng-{index}")])

    png_floor = Comparison(
        f"PNG tree (export_png + unpack) vs the C floor, {images:,} images",
        "ours",
        "floor",
        goals=(PNG_FLOOR_GOAL,),
    )
    png_pypng = Comparison(
        "PNG tree vs the pypng converter (one process)", "ours", "pypng", speedup=True, goals=(PYPNG_GOAL,)
    )
    start = load_average()
    for index in range(rounds):
        log(f"PNG tree, floor and pypng: round {index + 1} of {rounds}")
        found.creation_probes.append(fsprobe.creation_cost(scratch / "probes"))
        steps: list[tuple[str, Callable[[int], Sample]]] = [("floor", floor), ("ours", ours), ("pypng", pypng)]
        measured = {name: step(index) for name, step in (steps if index % 2 == 0 else steps[::-1])}
        png_floor.pairs.append((measured["ours"], measured["floor"]))
        png_pypng.pairs.append((measured["ours"], measured["pypng"]))
    png_floor.load = png_pypng.load = (start, load_average())
    found.comparisons += [png_floor, png_pypng]
    found.notes.append(_png_sizes(scratch / "floor.pack", data / "export" / "png" / "images.zip", images))
    found.comparisons.append(_naive_export(work, result, "export_csv", "naive_csv.py", "pandas `to_csv`", rounds))
    found.comparisons.append(
        _naive_export(work, result, "export_parquet", "naive_hf.py", "HF `datasets` from_dict + to_parquet", rounds)
    )
    log("naive: Pillow save loop")
    found.pil = floors.naive_pil(payloads, trees / "pil")
    return found


def _naive_export(work: Workdir, result: SizeResult, module: str, script: str, what: str, rounds: int) -> Comparison:
    """Our export stage against a naive script on the same decoded arrays, interleaved."""
    fmt = module.removeprefix("export_")
    comparison = Comparison(
        f"{FORMAT_NAMES[fmt]} export vs {what}",
        "ours",
        what.split(" ", maxsplit=1)[0].strip("`"),
        speedup=True,
        goals=(CSV_GOAL if fmt == "csv" else PARQUET_GOAL,),
    )
    stage = _stage_running(work, module)
    decoded = work.path / "data" / result.size.name / "decoded"
    splits = sorted(path.name.removesuffix("_images.npy") for path in decoded.glob("*_images.npy"))
    scratch = work.path.parent / f"naive-{fmt}"

    def ours(_: int) -> Sample:
        if stage is None:
            return _failed(f"no stage runs mnist_pipeline.{module}")
        return sample_of([run_stage(stage, work.env)])

    def naive(index: int) -> Sample:
        out = scratch / f"round-{index}"
        arguments = [str(decoded), str(out)]
        if fmt == "parquet":
            arguments.append(",".join(result.size.classes))
        env = tool_env() | {"HF_HOME": str(scratch / "hf-home"), "HF_DATASETS_OFFLINE": "1"}
        measured = measure([sys.executable, str(BENCH_DIR / script), *arguments, *splits], work.path, env=env)
        if measured.ok and fmt == "csv" and not _same_csv(out, decoded.parent / "export" / "csv", splits):
            comparison.note = "pandas' CSV differs from ours"
        return sample_of([measured])

    log(f"{comparison.what}: {rounds} rounds")
    return interleave(comparison, rounds, ours, naive)


def _same_csv(naive_dir: Path, ours_dir: Path, splits: list[str]) -> bool:
    return all((naive_dir / f"{s}.csv").read_bytes() == (ours_dir / f"{s}.csv").read_bytes() for s in splits)


def _png_sizes(pack: Path, zip_path: Path, images: int) -> str:
    if not zip_path.is_file():
        return "bytes per PNG: export_png wrote no zip"
    with zipfile.ZipFile(zip_path) as archive:
        pngs = [info.file_size for info in archive.infolist() if info.filename.endswith(".png")]
    ours = sum(pngs) / max(len(pngs), 1)
    floor_text = f"{(pack.stat().st_size - 4 * images) / images:.0f}" if pack.is_file() else "?"
    return f"bytes per PNG: floor {floor_text}, export_png {ours:.0f} ({len(pngs):,} PNGs in its zip)"


def scale_table(results: list[SizeResult]) -> str:
    """One row per stage; per size, seconds (µs per image), CPU seconds and peak MB."""
    base = results[0]
    headers = ["stage"]
    for result in results:
        headers += [
            f"{result.size.description}: s (µs/image)",
            f"{result.size.description}: CPU s",
            f"{result.size.description}: peak MB (all procs)",
        ]
    headers += [f"cost/image {result.size.description} ÷ {base.size.description}" for result in results[1:]]
    rows = []
    for index, run in enumerate(base.runs):
        label = base.label(run)
        row = [label]
        for result in results:
            row += _stage_cells(result, result.runs[index] if index < len(result.runs) else None)
        row += [ratio(_cost_ratio(result, base, label)) for result in results[1:]]
        rows.append(row)
    total = ["**all stages**"]
    for result in results:
        measured = [run.measurement for run in result.runs if run.measurement is not None and run.measurement.ok]
        peak = max((m.peak_mb for m in measured), default=None)
        tree = max((m.tree_peak_mb for m in measured), default=None)
        total += [
            f"**{seconds(result.total())}** ({_micro(result.cost_us(None))})",
            seconds(result.total(cpu=True)),
            f"{megabytes(peak)} ({megabytes(tree)})",
        ]
    total += [f"**{ratio(_cost_ratio(result, base, None))}**" for result in results[1:]]
    rows.append(total)
    return markdown_table(headers, rows)


def _stage_cells(result: SizeResult, run: StageRun | None) -> list[str]:
    if run is None or run.measurement is None:
        return ["not run", "—", "—"]
    measured = run.measurement
    if not measured.ok:
        return ["failed", "—", "—"]
    cost = measured.seconds / result.size.images * MICRO
    return [
        f"{seconds(measured.seconds)} ({_micro(cost)})",
        seconds(measured.cpu_seconds),
        f"{megabytes(measured.peak_mb)} ({megabytes(measured.tree_peak_mb)})",
    ]


def _micro(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _cost_ratio(result: SizeResult, base: SizeResult, label: str | None) -> float | None:
    big, small = result.cost_us(label), base.cost_us(label)
    return None if big is None or small is None or small == 0 else big / small


def goals_rows(results: list[SizeResult], exports: ExportComparisons) -> list[list[str]]:
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
    for result in results:
        measured = [run.measurement for run in result.runs if run.measurement is not None and run.measurement.ok]
        complete = len(measured) == len(result.runs)
        peak = max((m.peak_mb for m in measured), default=None)
        tree = max((m.tree_peak_mb for m in measured), default=None)
        rows.append(
            [
                f"peak memory of any stage process, {result.size.description}",
                f"≤ {PEAK_GOAL_MB:.0f} MB",
                f"{megabytes(peak)} MB largest process, {megabytes(tree)} MB all processes"
                + ("" if complete else " (not every stage ran)"),
                verdict(None if peak is None else peak <= PEAK_GOAL_MB and complete),
            ]
        )
    for comparison in exports.comparisons:
        rows += comparison.goal_rows()
    return rows


def failures(results: list[SizeResult], exports: ExportComparisons | None, smoke_failure: str | None) -> list[str]:
    lines = [f"- smoke run before measuring: {smoke_failure}"] if smoke_failure else []
    for result in results:
        for run in result.runs:
            if run.measurement is None:
                lines.append(f"- {result.size.description}: {run.stage.name} not run (an earlier stage failed)")
            elif not run.measurement.ok:
                lines.append(f"- {result.size.description}: {run.stage.name} failed: {run.measurement.failure()}")
    for comparison in exports.comparisons if exports else []:
        lines += [f"- {comparison.what}: {why}" for why in comparison.failures()]
    return lines


@dataclass
class ScaleReport:
    markdown: str
    goals: list[list[str]]
    data: dict[str, Any]


def run_scale(
    mirror: Path, scale: float, emnist: bool, quick: bool, wait_minutes: float, rounds: int, root: Path
) -> ScaleReport:
    """Everything measured in ``root``, which the caller removes once nothing else is measured:
    deleting the trees slows the file creation after it (fsprobe.py)."""
    exports: ExportComparisons | None = None
    results: list[SizeResult] = []
    snapshot, smoke_failure = ready_snapshot(root, mirror, wait_minutes)
    settling = fsprobe.settle(root / "probes", 0.0 if quick else fsprobe.MAX_WAIT_SECONDS, log)
    for index, size in enumerate(sizes_for(scale, emnist, quick)):
        result, work, entry = run_size(size, snapshot, root, mirror)
        results.append(result)
        if index == 0:
            exports = compare_exports(result, work, entry, root / "floors", rounds)
    assert exports is not None
    return build_report(results, exports, smoke_failure, settling)


def remove_scratch(root: Path, keep: bool) -> None:
    """The benchmark's folder, removed last (or kept with ``--keep``)."""
    if not keep:
        log(f"removing {root}")
        shutil.rmtree(root, ignore_errors=True)


def build_report(
    results: list[SizeResult], exports: ExportComparisons, smoke_failure: str | None, settling: fsprobe.Settling
) -> ScaleReport:
    base = results[0]
    goals = goals_rows(results, exports)
    generated = [
        f"{r.size.description}: {r.size.train:,} + {r.size.test:,} images"
        + ("" if r.generated_seconds is None else f" (generated in {r.generated_seconds:.0f} s)")
        for r in results
    ]
    pil = _seconds_of(exports.pil)
    notes = [
        f"floors: {exports.floor_kind}; each round runs the floor, ours and pypng back to back, in reverse "
        "order every other round; no tree is deleted until every measurement is done",
        f"naive Pillow save loop writing the tree, one process, once: {seconds(pil)} s",
        settling.text(),
        "creating an empty file just before each PNG round: "
        + ", ".join(f"{value:.0f}" for value in exports.creation_probes)
        + f" µs of CPU (usual ≤ {fsprobe.USUAL_MICROSECONDS:.0f}; "
        f"each side of a round creates {base.size.images:,} files)",
        *exports.notes,
    ]
    sections = [
        "## Scale: every stage bare, per size",
        "Synthetic datasets of MNIST's layout: " + "; ".join(generated) + ". "
        "Stages are the commands DVC lists for a copy of the project (every format, the PNG tree), run "
        "one after another without DVC. CPU s: user + system, every thread and child process included. "
        "peak MB: the largest process of the stage (exact: its ru_maxrss); in brackets, all its processes "
        "added up, the measuring launcher included (sampled every 0.1 s). µs/image: the stage's seconds "
        "per image of the dataset.",
        scale_table(results),
        f"## Exports against their floors and the usual ways ({base.size.description})",
        "Interleaved rounds; ratios per round, min / **median** / max; a goal is judged on the median.",
        markdown_table(COMPARISON_HEADERS, [c.row() for c in exports.comparisons], numeric_from=7),
        "\n".join(f"- {note}" for note in notes),
    ]
    problems = failures(results, exports, smoke_failure)
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
                        "stage": run.stage.name,
                        "seconds": None if run.measurement is None else round(run.measurement.seconds, 3),
                        "cpu_seconds": None if run.measurement is None else round(run.measurement.cpu_seconds, 3),
                        "peak_mb": None if run.measurement is None else round(run.measurement.peak_mb, 1),
                        "tree_peak_mb": None if run.measurement is None else round(run.measurement.tree_peak_mb, 1),
                        "ok": run.ok,
                    }
                    for run in r.runs
                ],
            }
            for r in results
        ],
        "comparisons": [c.data() for c in exports.comparisons],
        "creation_probes_us": [round(value, 1) for value in exports.creation_probes],
        "settling_probes_us": [round(value, 1) for value in settling.probes],
        "pil_seconds": pil,
        "notes": notes,
        "goals": goals,
    }
    return ScaleReport("\n\n".join(sections), goals, data)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirror",
        type=Path,
        default=synthetic.MNIST_MIRROR,
        help="folder holding MNIST's four archives (default ../shared/mirror/mnist beside the project)",
    )
    parser.add_argument("--scale", type=float, default=10.0, help="the larger MNIST size, N x MNIST (default 10)")
    parser.add_argument("--emnist", action="store_true", help="also EMNIST byclass's size (62 classes, transposed)")
    parser.add_argument("--quick", action="store_true", help=f"every size / {QUICK_DIVISOR}, for trying the bench")
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="MINUTES", help="retry a failing smoke run for this long"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"interleaved rounds of each export comparison (default {EXPORT_ROUNDS}, {QUICK_EXPORT_ROUNDS} quick)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")


def export_rounds(args: argparse.Namespace) -> int:
    """``--rounds``, or the default for a full or a quick run."""
    if args.rounds is not None:
        return int(args.rounds)
    return QUICK_EXPORT_ROUNDS if args.quick else EXPORT_ROUNDS


def mirror_problem(mirror: Path) -> str | None:
    """Why ``mirror`` cannot serve MNIST, or None."""
    missing = [name for names in synthetic.SOURCE_FILES.values() for name in names if not (mirror / name).is_file()]
    if missing:
        return f"{mirror}: expected MNIST's archives, found no {', '.join(missing)}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    args = parser.parse_args()
    problem = mirror_problem(args.mirror)
    if problem:
        print(f"bench: error: {problem}", file=sys.stderr)
        return 1
    started = time.monotonic()
    machine_md = machine_section(Path(tempfile.gettempdir()))
    mirror = args.mirror.resolve()
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-scale-"))
    try:
        report = run_scale(mirror, args.scale, args.emnist, args.quick, args.wait, export_rounds(args), root)
    finally:
        remove_scratch(root, args.keep)
    duration = f"Duration: {(time.monotonic() - started) / 60:.1f} minutes."
    text = "\n\n".join(["# Scale benchmark", machine_md, report.markdown, goals_section(report.goals), duration])
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "scale.md").write_text(text + "\n")
    (RESULTS_DIR / "scale.json").write_text(json.dumps(report.data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
