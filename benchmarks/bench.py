"""``make bench``: the scale benchmark (bench_scale.py) and the DVC one (bench_pipeline.py) in
one run, one machine description, one goals table; markdown on stdout and in
benchmarks/results/latest.md (figures as JSON in latest.json). Both halves read MNIST from one
``--mirror`` (default: ../shared/mirror/mnist beside the project); every repository they use
is a fresh copy of the project's tracked files, whatever state this working copy is in.

Usage: ``python benchmarks/bench.py [--quick] [--mirror DIR] [--scale N] [--emnist] [--rounds R]
[--dvc-rounds R] [--no-remotes] [--first-result] [--only scale|dvc] [--wait MINUTES] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
from benchmarks import bench_pipeline, bench_scale  # noqa: E402  (run as a script, too)
from benchmarks.machine import machine_section  # noqa: E402
from benchmarks.rounds import load_average  # noqa: E402
from benchmarks.tables import goals_section  # noqa: E402

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_scale.add_common_arguments(parser)
    bench_pipeline.add_pipeline_arguments(parser)
    parser.add_argument("--only", choices=("scale", "dvc"), help="run one of the two benchmarks")
    args = parser.parse_args()
    problem = bench_scale.mirror_problem(args.mirror)
    if problem:
        print(f"bench: error: {problem}", file=sys.stderr)
        return 1
    mirror = args.mirror.resolve()
    started = time.monotonic()
    sections = ["# Benchmark" + (" (--quick: small sizes, one round of the DVC comparisons)" if args.quick else "")]
    sections.append(machine_section(Path(tempfile.gettempdir())))
    goals: list[list[str]] = []
    data: dict[str, object] = {"quick": args.quick}
    # The scale half's trees are removed only at the end: deleting them would slow every file the
    # DVC half creates for minutes after (fsprobe.py).
    scale_root = Path(tempfile.mkdtemp(prefix="mnist-bench-scale-"))
    try:
        if args.only in (None, "scale"):
            rounds = bench_scale.export_rounds(args)
            scale = bench_scale.run_scale(mirror, args.scale, args.emnist, args.quick, args.wait, rounds, scale_root)
            sections.append(scale.markdown)
            goals += scale.goals
            data["scale"] = scale.data
        if args.only in (None, "dvc"):
            dvc = bench_pipeline.run_pipeline(bench_pipeline.options_from(args))
            sections.append(dvc.markdown)
            goals += dvc.goals
            data["dvc"] = dvc.data
    finally:
        bench_scale.remove_scratch(scale_root, args.keep)
    sections.append(goals_section(goals))
    minutes = (time.monotonic() - started) / 60
    sections.append(f"Whole benchmark: {minutes:.1f} minutes; load average at the end: {load_average():.2f}.")
    data["minutes"] = round(minutes, 2)
    text = "\n\n".join(sections) + "\n"
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(text)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
