"""What DVC and sharing cost, on the real MNIST archives served as a folder mirror.

In one run:
- ``--dvc-rounds`` rounds (default 3) of: every stage bare (``python -m mnist_pipeline.<stage>``, no
  DVC) in a fresh copy of the project, with ``datasets.mnist.mirrors`` pointing at the mirror
  folder (seconds and peak memory), then the cold ``dvc exp run`` of the same stages (download
  to every default export) in another fresh git + DVC copy (tests/repos.make_repo); the median
  of the rounds' DVC / bare ratios is the figure (writing 70,000 files on a shared disk varies
  by 2x from one minute to the next; pairing the two runs in time keeps that out of the ratio);
- no-op ``dvc status`` and ``dvc repro`` (median of three);
- for each remote kind (local folder, S3 on a loopback moto server, SSH on a loopback OpenSSH
  server where one can run): ``dvc push``, then in a fresh clone ``dvc pull`` and the
  ``dvc repro`` that completes the workspace (``--no-remotes`` skips them);
- pandas ``to_csv`` against export@csv.

Goals (issue 10): cold ``dvc exp run`` at most 1.25x the bare work; no-op ``dvc status`` at most 0.6 s.

Usage: ``make bench`` (this and bench_scale.py) or ``python benchmarks/bench_pipeline.py
[--mirror DIR] [--no-remotes] [--dvc-rounds R] [--keep]``. Results also go to benchmarks/results/pipeline.md.
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
from tests.support.remotes import configure_remote, s3_server, ssh_server, sshd_available  # noqa: E402
from tests.support.repos import make_repo, run, tool_env  # noqa: E402

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


def bare_run(workdir: Path, mirror: Path) -> tuple[list[StageRun], list[str]]:
    """Every stage of the default pipeline as a plain process in a fresh copy of the project at
    ``workdir``; also the dataset's split names."""
    make_repo(workdir)
    params: dict[str, Any] = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"][DATASET]["mirrors"] = [str(mirror)]
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    formats = list(params["export"]["formats"])
    log(f"bare run of every stage ({', '.join(formats)})")
    runs = run_stages(workdir, pipeline_stages(DATASET, formats), on_done=lambda run: log(describe_run(run)))
    return runs, list(params["datasets"][DATASET]["splits"])


def dvc(repo: Path, *arguments: str, env: dict[str, str] | None = None) -> Measurement:
    return measure(["dvc", *arguments], repo, env=tool_env() | (env or {}))


def cold_exp_run(repo: Path, mirror: Path) -> Measurement:
    """``dvc exp run`` of the whole default pipeline in the fresh repository ``repo``."""
    log("cold dvc exp run")
    return dvc(repo, "exp", "run", "-S", f"datasets.{DATASET}.mirrors=[{mirror}]")


def after_the_run(repo: Path, root: Path, remotes: bool) -> DvcResult:
    """No-op status and repro in ``repo`` (whose pipeline has run), then the remote round trips."""
    result = DvcResult()
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
class Round:
    """One bare run of every stage and, right after it, one cold ``dvc exp run``."""

    bare: list[StageRun]
    cold: Measurement | None

    def bare_total(self) -> float | None:
        if not all(stage_run.ok for stage_run in self.bare):
            return None
        return sum(stage_run.measurement.seconds for stage_run in self.bare if stage_run.measurement is not None)

    def ratio(self) -> float | None:
        total = self.bare_total()
        if total is None or self.cold is None or not self.cold.ok:
            return None
        return self.cold.seconds / total


@dataclass
class PipelineReport:
    markdown: str
    goals: list[list[str]]
    data: dict[str, Any]


def run_pipeline(mirror: Path, remotes: bool, keep: bool, rounds: int) -> PipelineReport:
    """``rounds`` rounds of bare work then cold ``dvc exp run`` (paired, so that a busy spell of
    the shared disk hits both), then the no-op and remote figures in the last round's repo."""
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-dvc-"))
    done: list[Round] = []
    csv_row = None
    after = DvcResult()
    try:
        for index in range(rounds):
            log(f"DVC round {index + 1} of {rounds}")
            workdir = root / f"bare-{index}"
            bare, splits = bare_run(workdir, mirror)
            if index == 0:
                export_csv = next((r.measurement for r in bare if r.stage.label == "export@csv"), None)
                csv_row = naive_csv(workdir, splits, export_csv)
            repo = make_repo(root / f"repo-{index}")
            done.append(Round(bare, cold_exp_run(repo, mirror)))
            if index == rounds - 1 and done[-1].cold is not None and done[-1].cold.ok:
                after = after_the_run(repo, root, remotes)
    finally:
        # Only now: deleting a tree of 70,000 files slows the file creation after it.
        if not keep:
            log(f"removing {root}")
            shutil.rmtree(root, ignore_errors=True)
    return build_report(done, after, csv_row)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def stage_rows(rounds: list[Round]) -> list[list[str]]:
    """Per stage: median seconds over the rounds, largest peaks."""
    rows = []
    for index, first in enumerate(rounds[0].bare):
        measured = [r.bare[index].measurement for r in rounds if index < len(r.bare)]
        good = [m for m in measured if m is not None and m.ok]
        failed = [m for m in measured if m is not None and not m.ok]
        if failed:
            rows.append([first.stage.label, f"failed: {failed[0].failure()}", "—", "—"])
        elif not good:
            rows.append([first.stage.label, "not run", "—", "—"])
        else:
            rows.append(
                [
                    first.stage.label,
                    seconds(_median([m.seconds for m in good])),
                    megabytes(max(m.peak_mb for m in good)),
                    megabytes(max(m.tree_peak_mb for m in good)),
                ]
            )
    totals = [total for total in (r.bare_total() for r in rounds) if total is not None]
    rows.append(["**sum of the bare work**", f"**{seconds(_median(totals))}**", "", ""])
    return rows


def build_report(rounds: list[Round], after: DvcResult, csv_row: list[str] | None) -> PipelineReport:
    round_rows = []
    for index, one in enumerate(rounds, 1):
        cold = None if one.cold is None or not one.cold.ok else one.cold.seconds
        cold_text = seconds(cold) if one.cold is None or one.cold.ok else f"failed: {one.cold.failure()}"
        round_rows.append([str(index), seconds(one.bare_total()), cold_text, ratio(one.ratio())])
    ratios = [value for value in (one.ratio() for one in rounds) if value is not None]
    cold_ratio = _median(ratios)
    round_rows.append(["**median**", "", "", f"**{ratio(cold_ratio)}**"])
    dvc_rows = [[name, seconds(value)] for name, value in after.seconds.items()]
    dvc_rows += [[name, f"failed: {why}"] for name, why in after.failures.items()]
    status = after.seconds.get(STATUS)
    goals = [
        [
            "cold `dvc exp run` / bare work (MNIST, folder mirror)",
            f"≤ {COLD_RATIO_GOAL}x",
            f"{ratio(cold_ratio)} (median of {len(ratios)} rounds)",
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
        f"Each of {len(rounds)} rounds runs every stage bare in a fresh copy of the project, then a cold "
        "`dvc exp run` of the same stages in another fresh git + DVC copy.",
        markdown_table(
            [f"stage, run bare (no DVC): median of {len(rounds)}", "seconds", "peak MB", "all procs MB"],
            stage_rows(rounds),
        ),
        markdown_table(["round", "bare work, s", "cold `dvc exp run`, s", "DVC / bare"], round_rows),
    ]
    if dvc_rows:
        sections.append(markdown_table(["with DVC, after the last round's run", "seconds"], dvc_rows))
    if after.notes:
        sections.append("\n".join(f"- {note}" for note in after.notes))
    if csv_row is not None:
        sections.append(
            markdown_table(["the same work", "naive way", "seconds", "this pipeline", "seconds", "speed-up"], [csv_row])
        )
    data = {
        "rounds": [
            {
                "bare": [
                    {
                        "stage": r.stage.label,
                        "seconds": None if r.measurement is None else round(r.measurement.seconds, 3),
                        "peak_mb": None if r.measurement is None else round(r.measurement.peak_mb, 1),
                        "ok": r.ok,
                    }
                    for r in one.bare
                ],
                "bare_total_s": one.bare_total(),
                "cold_exp_run_s": None if one.cold is None or not one.cold.ok else one.cold.seconds,
            }
            for one in rounds
        ],
        "dvc": after.seconds,
        "dvc_failures": after.failures,
        "notes": after.notes,
        "goals": goals,
    }
    return PipelineReport("\n\n".join(sections), goals, data)


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="folder holding the MNIST archives")
    parser.add_argument("--no-remotes", action="store_true", help="skip the push/pull round trips")
    parser.add_argument("--dvc-rounds", type=int, default=3, help="rounds of bare work + cold dvc exp run (default 3)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    if not args.mirror.is_dir():
        print(f"bench: error: no MNIST mirror at {args.mirror}", file=sys.stderr)
        return 1
    machine_md = machine_section(Path(tempfile.gettempdir()))
    report = run_pipeline(args.mirror.resolve(), not args.no_remotes, args.keep, args.dvc_rounds)
    text = "\n\n".join(["# DVC benchmark", machine_md, report.markdown, goals_section(report.goals)])
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "pipeline.md").write_text(text + "\n")
    (RESULTS_DIR / "pipeline.json").write_text(json.dumps(report.data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
