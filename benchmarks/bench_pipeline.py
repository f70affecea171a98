"""What DVC and sharing cost, on the real MNIST archives served as a folder mirror.

In one run:
- every stage bare (``python -m mnist_pipeline.<stage>``, no DVC), in a fresh copy of the project,
  with ``datasets.mnist.mirrors`` pointing at the mirror folder: seconds and peak memory;
- the cold ``dvc exp run`` of the same stages (download to every default export) in another
  fresh git + DVC copy (tests/repos.make_repo), against the sum of the bare work;
- no-op ``dvc status`` and ``dvc repro`` (median of three);
- for each remote kind (local folder, S3 on a loopback moto server, SSH on a loopback OpenSSH
  server where one can run): ``dvc push``, then in a fresh clone ``dvc pull`` and the
  ``dvc repro`` that completes the workspace (``--no-remotes`` skips them);
- pandas ``to_csv`` against export@csv.

Goals (issue 10): cold ``dvc exp run`` at most 1.25x the bare work; no-op ``dvc status`` at most 0.6 s.

Usage: ``make bench`` (this and bench_scale.py) or ``python benchmarks/bench_pipeline.py
[--mirror DIR] [--no-remotes] [--keep]``. Results also go to benchmarks/results/mnist_pipeline.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks.machine import machine_section  # noqa: E402  (run as a script, too)
from benchmarks.measure import Measurement, measure  # noqa: E402
from benchmarks.stages import StageRun, describe_run, pipeline_stages, run_stages  # noqa: E402
from benchmarks.tables import goals_section, markdown_table, megabytes, ratio, seconds, verdict  # noqa: E402
from tests.remotes import configure_remote, s3_server, ssh_server, sshd_available  # noqa: E402
from tests.repos import make_repo, run, tool_env  # noqa: E402

DEFAULT_MIRROR = PROJECT_ROOT.parent / "shared" / "mirror" / "mnist"
RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
DATASET = "mnist"
COLD_RATIO_GOAL = 1.25
STATUS_GOAL_SECONDS = 0.6
NO_OP_REPEATS = 3
STATUS = f"no-op dvc status (median of {NO_OP_REPEATS})"
REPRO = f"no-op dvc repro (median of {NO_OP_REPEATS})"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class DvcResult:
    """Seconds of each DVC operation, by name; failures by name."""

    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def record(self, name: str, measured: Measurement) -> bool:
        if measured.ok:
            self.seconds[name] = measured.seconds
        else:
            self.failures[name] = measured.failure()
        return measured.ok


def bare_run(root: Path, mirror: Path) -> tuple[Path, list[StageRun], list[str]]:
    """Every stage of the default pipeline as a plain process in a fresh copy of the project."""
    workdir = make_repo(root / "bare")
    params: dict[str, Any] = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"][DATASET]["mirrors"] = [str(mirror)]
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    formats = list(params["export"]["formats"])
    log(f"bare run of every stage ({', '.join(formats)})")
    runs = run_stages(workdir, pipeline_stages(DATASET, formats), on_done=lambda run: log(describe_run(run)))
    return workdir, runs, list(params["datasets"][DATASET]["splits"])


def dvc(repo: Path, *arguments: str, env: dict[str, str] | None = None) -> Measurement:
    return measure(["dvc", *arguments], repo, env=tool_env() | (env or {}))


def dvc_run(root: Path, mirror: Path, remotes: bool) -> DvcResult:
    result = DvcResult()
    repo = make_repo(root / "repo")
    log("cold dvc exp run")
    cold = dvc(repo, "exp", "run", "-S", f"datasets.{DATASET}.mirrors=[{mirror}]")
    if not result.record("cold exp run", cold):
        return result
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "pipeline ran")
    for name, arguments in ((STATUS, ("status",)), (REPRO, ("repro",))):
        repeats = [dvc(repo, *arguments) for _ in range(NO_OP_REPEATS)]
        failed = [m for m in repeats if not m.ok]
        if failed:
            result.failures[name] = failed[0].failure()
            continue
        result.seconds[name] = statistics.median(m.seconds for m in repeats)
        if name == STATUS and "up to date" not in repeats[-1].stdout:
            result.notes.append(f"`dvc status` after the run was not clean: {repeats[-1].stdout.strip()[:300]}")
    if remotes:
        remote_round_trips(repo, root, result)
    return result


def remote_round_trips(repo: Path, root: Path, result: DvcResult) -> None:
    log("remote: local folder")
    remote_round_trip(repo, root, "local", str(root / "store"), result)
    log("remote: S3 (moto)")
    with s3_server(root) as endpoint:
        endpoint.create_bucket("bench")
        options = {"endpointurl": endpoint.url}
        remote_round_trip(repo, root, "s3", "s3://bench/mnist", result, options, env=endpoint.environment())
    why_not = sshd_available()
    if why_not is None:
        log("remote: SSH (OpenSSH)")
        with ssh_server(root / "ssh") as ssh:
            url = f"ssh://{ssh.user}@{ssh.host}:{ssh.port}{root / 'ssh-store'}"
            remote_round_trip(repo, root, "ssh", url, result, local={"keyfile": str(ssh.key_file)})
    else:
        result.notes.append(f"SSH remote not measured: {why_not}")


def remote_round_trip(
    repo: Path,
    root: Path,
    name: str,
    url: str,
    result: DvcResult,
    options: dict[str, str] | None = None,
    local: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Push to a remote, then in a fresh clone pull and run what is left (unpacking the tree)."""
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
        if not result.record(label, measured):
            return
        if arguments == ("repro",):
            ran = [line.split("'")[1] for line in measured.stdout.splitlines() if line.startswith("Running stage '")]
            result.notes.append(f"{name}: after the pull, `dvc repro` ran {', '.join(ran) or 'nothing'}")
    status = dvc(clone, "status")
    if "up to date" not in status.stdout:
        result.notes.append(f"{name}: fresh clone not up to date after pull + repro: {status.stdout.strip()[:300]}")


def naive_csv(workdir: Path, splits: list[str], export_csv: Measurement | None) -> list[str] | None:
    """pandas ``to_csv`` against export@csv: one table row, or None when export@csv failed."""
    if export_csv is None or not export_csv.ok:
        return None
    log("naive: pandas to_csv")
    decoded = workdir / "data" / DATASET / "decoded"
    out = workdir / "naive-csv"
    script = Path(__file__).resolve().parent / "naive_csv.py"
    measured = measure([sys.executable, str(script), str(decoded), str(out), *splits], workdir, env=tool_env())
    if not measured.ok:
        return ["CSV of every split", "pandas `to_csv`", f"failed: {measured.failure()}", "export@csv", "", ""]
    ours_dir = workdir / "data" / DATASET / "export" / "csv"
    same = all((out / f"{split}.csv").read_bytes() == (ours_dir / f"{split}.csv").read_bytes() for split in splits)
    return [
        f"CSV of every split (same bytes: {'yes' if same else 'NO'})",
        "pandas `to_csv`",
        seconds(measured.seconds),
        "export@csv",
        seconds(export_csv.seconds),
        f"{measured.seconds / export_csv.seconds:.1f}x",
    ]


@dataclass
class PipelineReport:
    markdown: str
    goals: list[list[str]]
    data: dict[str, Any]


def run_pipeline(mirror: Path, remotes: bool, keep: bool) -> PipelineReport:
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-dvc-"))
    try:
        workdir, bare, splits = bare_run(root, mirror)
        export_csv = next((r.measurement for r in bare if r.stage.label == "export@csv"), None)
        csv_row = naive_csv(workdir, splits, export_csv)
        shutil.rmtree(workdir, ignore_errors=True)
        dvc_result = dvc_run(root, mirror, remotes)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return build_report(bare, dvc_result, csv_row)


def build_report(bare: list[StageRun], dvc_result: DvcResult, csv_row: list[str] | None) -> PipelineReport:
    complete = all(r.ok for r in bare)
    bare_total = sum(r.measurement.seconds for r in bare if r.measurement is not None and r.ok) if complete else None
    stage_rows = []
    for stage_run in bare:
        measured = stage_run.measurement
        if measured is None:
            stage_rows.append([stage_run.stage.label, "not run", "—", "—"])
        elif not measured.ok:
            stage_rows.append([stage_run.stage.label, f"failed: {measured.failure()}", "—", "—"])
        else:
            stage_rows.append(
                [
                    stage_run.stage.label,
                    seconds(measured.seconds),
                    megabytes(measured.peak_mb),
                    megabytes(measured.tree_peak_mb),
                ]
            )
    stage_rows.append(["**sum of the bare work**", f"**{seconds(bare_total)}**", "", ""])
    cold = dvc_result.seconds.get("cold exp run")
    cold_ratio = None if cold is None or bare_total is None else cold / bare_total
    dvc_rows = []
    for name, value in dvc_result.seconds.items():
        extra = f" ({ratio(cold_ratio)} the bare work)" if name == "cold exp run" else ""
        dvc_rows.append([name, seconds(value) + extra])
    dvc_rows += [[name, f"failed: {why}"] for name, why in dvc_result.failures.items()]
    status = dvc_result.seconds.get(STATUS)
    goals = [
        [
            "cold `dvc exp run` / bare work (MNIST, folder mirror)",
            f"≤ {COLD_RATIO_GOAL}x",
            ratio(cold_ratio),
            verdict(None if cold_ratio is None else cold_ratio <= COLD_RATIO_GOAL),
        ],
        [
            "no-op `dvc status`",
            f"≤ {STATUS_GOAL_SECONDS} s",
            f"{seconds(status)} s",
            verdict(None if status is None else status <= STATUS_GOAL_SECONDS),
        ],
    ]
    sections = [
        "## DVC: every stage bare, then under DVC (real MNIST, folder mirror)",
        markdown_table(["stage, run bare (no DVC)", "seconds", "peak MB", "all procs MB"], stage_rows),
        markdown_table(["with DVC", "seconds"], dvc_rows),
    ]
    if dvc_result.notes:
        sections.append("\n".join(f"- {note}" for note in dvc_result.notes))
    if csv_row is not None:
        sections.append(
            markdown_table(["the same work", "naive way", "seconds", "this pipeline", "seconds", "speed-up"], [csv_row])
        )
    data = {
        "bare": [
            {
                "stage": r.stage.label,
                "seconds": None if r.measurement is None else round(r.measurement.seconds, 3),
                "peak_mb": None if r.measurement is None else round(r.measurement.peak_mb, 1),
                "ok": r.ok,
            }
            for r in bare
        ],
        "bare_total_s": bare_total,
        "dvc": dvc_result.seconds,
        "dvc_failures": dvc_result.failures,
        "notes": dvc_result.notes,
        "goals": goals,
    }
    return PipelineReport("\n\n".join(sections), goals, data)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="folder holding the MNIST archives")
    parser.add_argument("--no-remotes", action="store_true", help="skip the push/pull round trips")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    if not args.mirror.is_dir():
        print(f"bench: error: no MNIST mirror at {args.mirror}", file=sys.stderr)
        return 1
    machine_md = machine_section(Path(tempfile.gettempdir()))
    report = run_pipeline(args.mirror.resolve(), not args.no_remotes, args.keep)
    text = "\n\n".join(["# DVC benchmark", machine_md, report.markdown, goals_section(report.goals)])
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "mnist_pipeline.md").write_text(text + "\n")
    (RESULTS_DIR / "mnist_pipeline.json").write_text(json.dumps(report.data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
