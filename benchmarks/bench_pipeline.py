"""What DVC costs the pipeline, against the bare work and against DVC's own floors, measured in
interleaved rounds (rounds.py) on fresh copies of the project (copies.py), the MNIST archives
served from ``--mirror`` through ``MNIST_PIPELINE_MIRRORS``.

In one run:
- cold ``dvc exp run`` of the default pipeline vs the same stages' commands run bare (each side
  in its own fresh copy); the last DVC copy, committed, is the baseline of what follows;
- no-op ``dvc status`` there vs in an empty repository (``git init && dvc init``);
- a two-point queued npz sweep (``dvc exp run --queue -S 'export.npz.scale=unit,standardize'
  -S export.npz.dtype=float32``, ``dvc queue start -j 1``, until both are done) vs the bare work
  of the stages the sweep ran (read from ``dvc queue logs``) for both points plus DVC's
  per-experiment floor: the same queued two-point sweep of a one-stage pipeline (``echo``);
- DVC's floor for as many stages as each pipeline below has: a cold ``dvc exp run`` of a chain
  of ``echo`` stages (one param, one dep, one output each), and its built no-op status;
- all 12 datasets of ``conf/dataset/`` selected, on small generated archives in their real
  layouts (family.py): the cold ``dvc exp run`` that builds them vs its stages run bare, then
  no-op ``dvc status`` of the built repo vs the empty repo (a quick run measures the status of
  the selected, unbuilt repo only);
- full run only (or ``--first-result``): time to first result, from ``git clone`` of a fresh
  copy to ``data/mnist/export/npz/mnist.npz`` with ``make repro MIRROR=<mirror>``, the runtime
  venv built from requirements.lock included;
- full run only: ``dvc push``, then in a fresh clone ``dvc pull`` and the ``dvc repro`` that
  completes the workspace, through a local, an S3 (moto) and an SSH remote.

Goals, on the medians: cold ``dvc exp run`` ≤ 1.25x the bare work; no-op status ≤ 1.3x the empty
repository's with MNIST, ≤ 2x with the 12 datasets; sweep ≤ 1.3x its bare work plus DVC's floor;
first result ≤ 2.5 minutes.

Usage: ``make bench`` (this and bench_scale.py) or ``python benchmarks/bench_pipeline.py
[--mirror DIR] [--quick] [--dvc-rounds R] [--no-remotes] [--first-result] [--keep]``.
Results also go to benchmarks/results/pipeline.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks import copies  # noqa: E402  (run as a script, too)
from benchmarks.copies import (  # noqa: E402
    StageCommand,
    commit_all,
    compose,
    empty_dvc_repo,
    fresh_copy,
    stage_commands,
    stage_label,
)
from benchmarks.family import generate_family  # noqa: E402
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
from benchmarks.stages import StageRun, describe_run, run_stages  # noqa: E402
from benchmarks.synthetic import MNIST_MIRROR, mirror_env  # noqa: E402
from benchmarks.tables import goals_section, markdown_table, megabytes, seconds, verdict  # noqa: E402
from tests.support.remotes import configure_remote, s3_server, ssh_server, sshd_available  # noqa: E402
from tests.support.repos import VENV_BIN, run, tool_env  # noqa: E402

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
BENCH_DIR = Path(__file__).resolve().parent
DATASET = "mnist"
COLD_GOAL = Goal("wall", "<=", 1.25)
STATUS_GOAL = Goal("wall", "<=", 1.3)
FAMILY_STATUS_GOAL = Goal("wall", "<=", 2.0)
SWEEP_GOAL = Goal("wall", "<=", 1.3)
FIRST_RESULT_GOAL_SECONDS = 150.0
SWEEP = ("export.npz.scale=unit,standardize", "export.npz.dtype=float32")
#: The sweep's points, as the bare side composes them.
SWEEP_POINTS = (
    ("export.npz.scale=unit", "export.npz.dtype=float32"),
    ("export.npz.scale=standardize", "export.npz.dtype=float32"),
)
FLOOR_SWEEP = ("value=1,2",)
STATUS_ROUNDS = 5
QUICK_STATUS_ROUNDS = 3
#: The family's archives at 1/N of their real row counts.
FAMILY_DIVISOR, QUICK_FAMILY_DIVISOR = 100, 500
#: A quick run builds the family with one format: its status still covers every dataset's stages.
QUICK_FAMILY_FORMATS = "formats=[npz]"
#: The family's cold run against bare: one round (each side builds 12 datasets).
FAMILY_ROUNDS = 1
FIRST_RESULT = Path("data") / DATASET / "export" / "npz" / f"{DATASET}.npz"
RUNNING_STAGE = re.compile(r"Running stage '([^']+)'")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def dvc(repo: Path, *arguments: str, env: dict[str, str] | None = None) -> Measurement:
    return measure(["dvc", *arguments], repo, env=tool_env() | (env or {}))


@dataclass
class Results:
    """Everything the DVC half measured."""

    comparisons: list[Comparison] = field(default_factory=list)
    bare_stages: list[StageRun] = field(default_factory=list)
    other: list[list[str]] = field(default_factory=list)
    goals: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def cold_vs_bare(
    root: Path, name: str, rounds: int, env: dict[str, str], results: Results, **copy: Any
) -> tuple[Comparison, Path | None]:
    """Cold ``dvc exp run`` in one fresh copy against the stage commands bare in another, per
    round; also the last copy DVC built (None if every DVC run failed)."""
    built: list[Path] = []
    dvc_arguments = ["exp", "run", *(part for o in copy.get("overrides", ()) for part in ("-S", o))]

    def with_dvc(index: int) -> Sample:
        repo = fresh_copy(root / f"{name}-dvc-{index}", **copy)
        measured = dvc(repo, *dvc_arguments, env=env)
        if measured.ok:
            built.append(repo)
        return sample_of([measured])

    def bare(index: int) -> Sample:
        workdir = fresh_copy(root / f"{name}-bare-{index}", **copy)
        runs = run_stages(stage_commands(workdir), env, on_done=lambda r: log(describe_run(r)))
        if index == 0 and name == DATASET:
            results.bare_stages = runs
        return sample_of([r.measurement for r in runs])

    comparison = Comparison(f"cold `dvc exp run` vs its stages bare, {name}", "dvc exp run", "bare", goals=(COLD_GOAL,))
    interleave(comparison, rounds, with_dvc, bare, log)
    return comparison, built[-1] if built else None


def status_vs_floor(repo: Path, floor: Path, what: str, goal: Goal | None, rounds: int, results: Results) -> Comparison:
    """``dvc status`` in ``repo`` against the empty repository ``floor``; a built repo (with a
    ``goal``) must say it is up to date."""
    comparison = Comparison(f"no-op `dvc status`, {what}", what, "empty repo", goals=(goal,) if goal else ())
    last: list[Measurement] = []

    def ours(_: int) -> Sample:
        last.append(dvc(repo, "status"))
        return sample_of([last[-1]])

    interleave(comparison, rounds, ours, lambda _: sample_of([dvc(floor, "status")]), log)
    if goal and last and last[-1].ok and "up to date" not in last[-1].stdout:
        results.notes.append(f"{what}: `dvc status` was not clean: {' '.join(last[-1].stdout.split())[:300]}")
    return comparison


def echo_repo(directory: Path, stages: int, *, built: bool, files: int = 1) -> Path:
    """DVC's floor for a pipeline of ``stages`` stages, with Hydra, as ours: a chain of
    ``echo ${value} > s<i>.txt``, each stage tracking ``value`` and depending on the previous
    one's persisted output; committed after a ``dvc repro`` if ``built``, before any run if not.
    With ``files`` > 1 the chain is cut into that many ``p<k>/dvc.yaml`` (each with its own
    dvc.lock, run from the root), which ``dvc exp run -P`` runs: the layout of one pipeline file
    per dataset."""
    empty_dvc_repo(directory)
    (directory / ".dvc" / "config").write_text("[core]\n    analytics = false\n[hydra]\n    enabled = true\n")
    (directory / "conf").mkdir()
    (directory / "conf" / "config.yaml").write_text("value: 0\n")
    compose(directory)
    for part in range(files):
        lines = ["stages:"] if files == 1 else ["vars:", "  - ../params.yaml", "stages:"]
        for index in range(part * stages // files, (part + 1) * stages // files):
            lines += [f"  s{index}:", f"    cmd: echo ${{value}} > s{index}.txt", "    params:", "      - value"]
            lines += [] if files == 1 else ["    wdir: .."]
            if index:
                lines += ["    deps:", f"      - s{index - 1}.txt"]
            lines += ["    outs:", f"      - s{index}.txt:", "          persist: true"]
        folder = directory if files == 1 else directory / f"p{part:02d}"
        folder.mkdir(exist_ok=True)
        (folder / "dvc.yaml").write_text("\n".join(lines) + "\n")
    if built:
        run(directory, "dvc", "repro", "-q", "--all-pipelines")
    commit_all(directory, f"{stages} echo stages in {files} dvc.yaml")
    return directory


def echo_floor(root: Path, stages: int, floor: Path, rounds: int, results: Results) -> None:
    """DVC's own cost for ``stages`` stages that do next to nothing: a cold ``dvc exp run`` in a
    fresh clone of the chain, then no-op ``dvc status`` of the built chain against the empty
    repository; the pipeline's own figures with as many stages read against these."""
    chain = echo_repo(root / f"echo-{stages}", stages, built=False)
    clone = root / f"echo-{stages}-cold"
    run(root, "git", "clone", "-q", str(chain), str(clone))
    cold = dvc(clone, "exp", "run")
    results.other.append([f"DVC's floor: cold `dvc exp run` of {stages} chained `echo` stages", _cell(cold)])
    if cold.ok:
        commit_all(clone, "built")
        comparison = status_vs_floor(clone, floor, f"{stages} chained `echo` stages built (DVC's floor)", None,
                                     rounds, results)  # fmt: skip
        results.comparisons.append(comparison)


def split_echo_floor(root: Path, stages: int, files: int, results: Results) -> None:
    """The same chain cut into ``files`` dvc.yaml files: what one pipeline file (and lock) per
    dataset would save DVC. Only the cold run: after each stage DVC rewrites the whole lock
    file it belongs to, so the smaller the lock, the less each stage costs."""
    chain = echo_repo(root / f"echo-{stages}-in-{files}", stages, built=False, files=files)
    clone = root / f"echo-{stages}-in-{files}-cold"
    run(root, "git", "clone", "-q", str(chain), str(clone))
    cold = dvc(clone, "exp", "run", "--all-pipelines")
    results.other.append(
        [f"DVC's floor: cold `dvc exp run -P` of {stages} chained `echo` stages in {files} dvc.yaml files", _cell(cold)]
    )


@dataclass(frozen=True)
class SweepRun:
    sample: Sample
    names: list[str]


def queued_sweep(repo: Path, overrides: tuple[str, ...], env: dict[str, str]) -> SweepRun:
    """The sweep driver under the launcher: wall until done, CPU of everything incl. the worker."""
    command = [sys.executable, str(BENCH_DIR / "queue_sweep.py"), str(repo), *overrides]
    measured = measure(command, repo, env=tool_env() | env, timeout=1800)
    try:
        reported = json.loads(measured.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return SweepRun(Sample(0.0, 0.0, measured.failure()), [])
    if reported["failure"] or not measured.ok:
        return SweepRun(Sample(0.0, 0.0, str(reported["failure"] or measured.failure())), [])
    return SweepRun(Sample(float(reported["seconds"]), measured.cpu_seconds), list(reported["names"]))


def ran_stages(repo: Path, name: str) -> list[str]:
    """The stages one queued experiment ran, from its log."""
    logs = run(repo, "dvc", "queue", "logs", name, check=False)
    return RUNNING_STAGE.findall(logs.stdout + logs.stderr)


def sweep_vs_floor(baseline: Path, root: Path, rounds: int, env: dict[str, str], results: Results) -> Comparison:
    floor_repo = echo_repo(root / "trivial", 1, built=True)
    original = (baseline / "params.yaml").read_bytes()
    stages = {stage.name: stage for stage in stage_commands(baseline)}
    changed: list[StageCommand] = []
    comparison = Comparison(
        "two-point queued npz sweep vs its stages bare + DVC's per-experiment floor",
        "sweep",
        "bare + floor",
        goals=(SWEEP_GOAL,),
    )
    floor_samples: list[Sample] = []

    def ours(_: int) -> Sample:
        swept = queued_sweep(baseline, SWEEP, env)
        if swept.sample.ok and not changed:
            names = ran_stages(baseline, swept.names[0])
            changed.extend(stages[n] for n in names if n in stages)
            results.other.append(["stages the sweep ran per experiment", ", ".join(names) or "none"])
        return swept.sample

    def bare_plus_floor(_: int) -> Sample:
        floor = queued_sweep(floor_repo, FLOOR_SWEEP, {})
        floor_samples.append(floor.sample)
        if not changed:
            return Sample(0.0, 0.0, "the sweep's stages are not known (the sweep failed)")
        measured: list[Measurement | None] = []
        for point in SWEEP_POINTS:
            compose(baseline, point)
            measured += [r.measurement for r in run_stages(changed, env)]
        (baseline / "params.yaml").write_bytes(original)
        bare = sample_of(measured)
        if not (bare.ok and floor.sample.ok):
            return Sample(0.0, 0.0, bare.failure or floor.sample.failure)
        return Sample(bare.seconds + floor.sample.seconds, bare.cpu_seconds + floor.sample.cpu_seconds)

    # The sweep goes first in the first round: the bare side needs the stages it ran.
    interleave(comparison, rounds, ours, bare_plus_floor, log)
    floors = [s for s in floor_samples if s.ok]
    if floors:
        wall = statistics.median(s.seconds for s in floors)
        cpu = statistics.median(s.cpu_seconds for s in floors)
        floor_text = f"{wall:.2f} s (CPU {cpu:.2f} s)"
        results.other.append(["DVC's floor: two queued experiments of a one-stage pipeline", floor_text])
    return comparison


def family(root: Path, quick: bool, floor: Path, results: Results) -> None:
    """The 12 datasets on generated archives: cold ``dvc exp run`` vs bare, then no-op status of
    the built repo vs the floor. A quick run only selects them (building 12 datasets costs DVC
    two and a half minutes) and measures the status of the unbuilt repo, with no goal."""
    probe = fresh_copy(root / "family-probe", commit=False)
    generated = generate_family(probe, root / "family-mirror", QUICK_FAMILY_DIVISOR if quick else FAMILY_DIVISOR)
    env = {"MNIST_PIPELINE_MIRRORS": str(generated.mirror)}
    overrides = [f"dataset=[{','.join(generated.names)}]", *([QUICK_FAMILY_FORMATS] if quick else [])]
    what = f"{len(generated.names)} datasets ({generated.images:,} generated images)"
    copy: dict[str, Any] = {"conf_files": generated.conf_files, "overrides": overrides}
    if quick:
        repo = fresh_copy(root / "family-selected", **copy)
        stages = len(stage_commands(repo))
        comparison = status_vs_floor(
            repo, floor, f"{what} selected, not built (quick), {stages} stages", None, _status_rounds(quick), results
        )
        results.comparisons.append(comparison)
        results.notes.append("12 datasets: a full run builds them and judges the status goal (≤ 2x) on the built repo")
        return
    comparison, built_repo = cold_vs_bare(root, "family", FAMILY_ROUNDS, env, results, **copy)
    comparison.what = f"cold `dvc exp run` vs its stages bare, {what}"
    results.comparisons.append(comparison)
    if built_repo is None:
        results.notes.append(f"{what}: the build failed, no status measured")
        return
    stages = len(stage_commands(built_repo))
    results.comparisons.append(
        status_vs_floor(
            built_repo, floor, f"{what} built, {stages} stages", FAMILY_STATUS_GOAL, _status_rounds(quick), results
        )
    )
    echo_floor(root, stages, floor, STATUS_ROUNDS, results)
    split_echo_floor(root, stages, len(generated.names), results)


def _status_rounds(quick: bool) -> int:
    return QUICK_STATUS_ROUNDS if quick else STATUS_ROUNDS


def _cell(measured: Measurement) -> str:
    if not measured.ok:
        return f"failed: {measured.failure()}"
    return f"{measured.seconds:.2f} s (CPU {measured.cpu_seconds:.2f} s)"


def first_result(root: Path, mirror: Path, results: Results) -> None:
    """``git clone`` of a fresh copy, then ``make repro MIRROR=<mirror>`` (runtime venv included),
    timed to the first ``mnist.npz``."""
    origin = fresh_copy(root / "origin")
    clone = root / "first-clone"
    run(root, "git", "clone", "-q", str(origin), str(clone))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MNIST_PIPELINE_MIRRORS")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN)
    env["DVC_NO_ANALYTICS"] = "1"
    seen: dict[str, float] = {}
    done = threading.Event()
    started = time.perf_counter()

    def watch() -> None:
        marks = {"venv": clone / ".venv" / ".installed", "npz": clone / FIRST_RESULT}
        while not done.wait(0.2):
            for name, path in marks.items():
                if name not in seen and path.exists():
                    seen[name] = time.perf_counter() - started

    log("time to first result: git clone, make repro (builds the runtime venv)")
    load_start = load_average()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    measured = measure(["make", "repro", f"MIRROR={mirror}"], clone, env=env, timeout=3600)
    done.set()
    watcher.join()
    venv_mb = _tree_bytes(clone / ".venv") / (1 << 20)
    first = seen.get("npz")
    load = f"load {load_start:.2f} → {load_average():.2f}"
    results.other += [
        ["time to first result: `git clone` → `make repro MIRROR=…` → mnist.npz", f"{seconds(first)} s ({load})"],
        ["… of which the runtime venv (requirements.lock)", f"{seconds(seen.get('venv'))} s, {venv_mb:.0f} MB"],
        ["… whole `make repro`", _cell(measured)],
    ]
    results.goals.append(
        [
            "time to first result (fresh clone, venv included)",
            f"≤ {FIRST_RESULT_GOAL_SECONDS / 60:g} minutes",
            "failed" if first is None else f"{first / 60:.2f} minutes ({load})",
            verdict(None if first is None else first <= FIRST_RESULT_GOAL_SECONDS),
        ]
    )
    results.data["first_result"] = {"seconds": first, "venv_seconds": seen.get("venv"), "venv_mb": venv_mb}


def _tree_bytes(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def no_op_repro(repo: Path, results: Results) -> None:
    repeats = [dvc(repo, "repro") for _ in range(3)]
    good = [m.seconds for m in repeats if m.ok]
    cell = f"{statistics.median(good):.2f} s (median of 3)" if good else f"failed: {repeats[0].failure()}"
    results.other.append(["no-op `dvc repro`, MNIST", cell])


def remote_round_trips(repo: Path, root: Path, results: Results) -> None:
    log("remote: local folder")
    remote_round_trip(repo, root, "local", str(root / "store"), results)
    log("remote: S3 (moto)")
    with s3_server(root) as endpoint:
        endpoint.create_bucket("bench")
        options = {"endpointurl": endpoint.url}
        remote_round_trip(repo, root, "s3", "s3://bench/mnist", results, options, env=endpoint.environment())
    why_not = sshd_available()
    if why_not is None:
        log("remote: SSH (OpenSSH)")
        with ssh_server(root / "ssh") as ssh:
            url = f"ssh://{ssh.user}@{ssh.host}:{ssh.port}{root / 'ssh-store'}"
            remote_round_trip(repo, root, "ssh", url, results, local={"keyfile": str(ssh.key_file)})
    else:
        results.notes.append(f"SSH remote not measured: {why_not}")


def remote_round_trip(
    repo: Path,
    root: Path,
    name: str,
    url: str,
    results: Results,
    options: dict[str, str] | None = None,
    local: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Push to a remote, then in a fresh clone pull and run what is left."""
    clone = root / f"clone-{name}"
    run(root, "git", "clone", "-q", str(repo), str(clone))
    for where in (repo, clone):
        configure_remote(where, name, url, options or {}, local or {})
    steps = (
        (f"{name} remote: dvc push", repo, ("push", "-r", name)),
        (f"{name} remote: dvc pull in a fresh clone", clone, ("pull", "-r", name)),
        (f"{name} remote: dvc repro after the pull", clone, ("repro",)),
    )
    for label, where, arguments in steps:
        measured = dvc(where, *arguments, env=env)
        results.other.append([label, _cell(measured)])
        if not measured.ok:
            return
        if arguments == ("repro",):
            ran = RUNNING_STAGE.findall(measured.stdout)
            results.notes.append(f"{name}: after the pull, `dvc repro` ran {', '.join(ran) or 'nothing'}")
    status = dvc(clone, "status")
    if "up to date" not in status.stdout:
        results.notes.append(f"{name}: fresh clone not up to date after pull + repro: {status.stdout.strip()[:300]}")


@dataclass
class PipelineReport:
    markdown: str
    goals: list[list[str]]
    data: dict[str, Any]


@dataclass(frozen=True)
class Options:
    mirror: Path
    rounds: int
    quick: bool
    remotes: bool
    first_result: bool
    keep: bool


def run_pipeline(options: Options) -> PipelineReport:
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-dvc-"))
    results = Results()
    env = mirror_env({DATASET: options.mirror})
    try:
        cold, baseline = cold_vs_bare(root, DATASET, options.rounds, env, results)
        results.comparisons.append(cold)
        floor = empty_dvc_repo(root / "empty")
        if baseline is not None:
            commit_all(baseline, "pipeline ran")
            results.comparisons.append(
                status_vs_floor(baseline, floor, "MNIST built", STATUS_GOAL, _status_rounds(options.quick), results)
            )
            echo_floor(root, len(stage_commands(baseline)), floor, _status_rounds(options.quick), results)
            no_op_repro(baseline, results)
            if options.remotes:
                remote_round_trips(baseline, root, results)
            results.comparisons.append(sweep_vs_floor(baseline, root, options.rounds, env, results))
        else:
            results.notes.append("every cold `dvc exp run` failed: no status, sweep or remote figures")
        family(root, options.quick, floor, results)
        if options.first_result:
            first_result(root, options.mirror, results)
        else:
            results.other.append(["time to first result", "not measured (a full run or --first-result measures it)"])
    finally:
        if not options.keep:
            log(f"removing {root}")
            shutil.rmtree(root, ignore_errors=True)
    return build_report(results, options)


def stage_rows(runs: list[StageRun]) -> list[list[str]]:
    rows = []
    for stage_run in runs:
        label = stage_label(stage_run.stage.name, DATASET)
        measured = stage_run.measurement
        if measured is None:
            rows.append([label, "not run", "—", "—"])
        elif not measured.ok:
            rows.append([label, f"failed: {measured.failure()}", "—", "—"])
        else:
            rows.append(
                [label, seconds(measured.seconds), seconds(measured.cpu_seconds), megabytes(measured.tree_peak_mb)]
            )
    total = sample_of([r.measurement for r in runs])
    if total.ok:
        rows.append(["**sum of the bare work**", f"**{seconds(total.seconds)}**", seconds(total.cpu_seconds), ""])
    return rows


def build_report(results: Results, options: Options) -> PipelineReport:
    goals = [row for comparison in results.comparisons for row in comparison.goal_rows()] + results.goals
    failures = [f"- {c.what}: {why}" for c in results.comparisons for why in c.failures()]
    sections = [
        "## DVC against the bare work and its own floors (real MNIST from the mirror)",
        "Each side of a comparison runs in its own fresh copy of the project (tracked files, params.yaml as "
        "the git index holds it); rounds interleaved, the side going first alternating; ratios are ours / "
        "reference per round, min / **median** / max, and a goal is judged on the median.",
        markdown_table(
            ["stage, run bare (no DVC), first round", "seconds", "CPU seconds", "peak MB, all procs"],
            stage_rows(results.bare_stages),
        ),
        markdown_table(COMPARISON_HEADERS, [c.row() for c in results.comparisons], numeric_from=7),
        markdown_table(["also measured", "value"], results.other, numeric_from=2),
    ]
    notes = results.notes + [f"copies: {note}" for note in _copy_notes()]
    if notes:
        sections.append("\n".join(f"- {note}" for note in notes))
    if failures:
        sections += ["### What failed", "\n".join(failures)]
    data = {
        "comparisons": [c.data() for c in results.comparisons],
        "bare_stages": [
            {"stage": r.stage.name, "seconds": r.measurement.seconds, "cpu_seconds": r.measurement.cpu_seconds}
            for r in results.bare_stages
            if r.measurement is not None
        ],
        "other": results.other,
        "notes": notes,
        "goals": goals,
        "quick": options.quick,
        **results.data,
    }
    return PipelineReport("\n\n".join(sections), goals, data)


def _copy_notes() -> list[str]:
    return list(copies.notes)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-remotes", action="store_true", help="skip the push/pull round trips")
    parser.add_argument("--dvc-rounds", type=int, default=3, help="rounds of the DVC comparisons (default 3)")
    parser.add_argument(
        "--first-result", action="store_true", help="measure the time to first result in a --quick run too"
    )


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        mirror=args.mirror.resolve(),
        rounds=1 if args.quick else args.dvc_rounds,
        quick=args.quick,
        remotes=not (args.no_remotes or args.quick),
        first_result=args.first_result or not args.quick,
        keep=args.keep,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=MNIST_MIRROR, help="folder holding MNIST's four archives")
    parser.add_argument("--quick", action="store_true", help="one round, no remotes, no time to first result")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    add_pipeline_arguments(parser)
    args = parser.parse_args()
    if not args.mirror.is_dir():
        print(f"bench: error: {args.mirror}: expected a folder holding MNIST's archives, found none", file=sys.stderr)
        return 1
    started = time.monotonic()
    machine_md = machine_section(Path(tempfile.gettempdir()))
    report = run_pipeline(options_from(args))
    duration = f"Duration: {(time.monotonic() - started) / 60:.1f} minutes."
    text = "\n\n".join(["# DVC benchmark", machine_md, report.markdown, goals_section(report.goals), duration])
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "pipeline.md").write_text(text + "\n")
    (RESULTS_DIR / "pipeline.json").write_text(json.dumps(report.data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
