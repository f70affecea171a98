"""``make bench``: the scale benchmark (bench_scale.py) and the DVC one (bench_pipeline.py) in
one run, one machine description, one goals table; markdown on stdout and in
benchmarks/results/latest.md (figures as JSON in latest.json).

Usage: ``python benchmarks/bench.py [--scale N] [--emnist] [--quick] [--wait MINUTES]
[--rounds R] [--dvc-rounds R] [--no-remotes] [--only scale|dvc] [--mirror DIR] [--keep]``.
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
from benchmarks import bench_pipeline, bench_scale, synthetic  # noqa: E402  (run as a script, too)
from benchmarks.machine import machine_section  # noqa: E402
from benchmarks.tables import goals_section  # noqa: E402

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_scale.add_common_arguments(parser)
    bench_pipeline.add_pipeline_arguments(parser)
    parser.add_argument("--only", choices=("scale", "dvc"), help="run one of the two benchmarks")
    args = parser.parse_args()
    for mirror in (synthetic.MNIST_MIRROR, args.mirror):
        if not mirror.is_dir():
            print(f"bench: error: no MNIST mirror at {mirror}", file=sys.stderr)
            return 1
    started = time.monotonic()
    sections = ["# Benchmark", machine_section(Path(tempfile.gettempdir()))]
    goals: list[list[str]] = []
    data: dict[str, object] = {}
    if args.only in (None, "scale"):
        scale = bench_scale.run_scale(args.scale, args.emnist, args.quick, args.wait, args.keep, args.rounds)
        sections.append(scale.markdown)
        goals += scale.goals
        data["scale"] = scale.data
    if args.only in (None, "dvc"):
        remotes, rounds = not args.no_remotes and not args.quick, 1 if args.quick else args.dvc_rounds
        dvc = bench_pipeline.run_pipeline(args.mirror.resolve(), remotes, args.keep, rounds)
        sections.append(dvc.markdown)
        goals += dvc.goals
        data["dvc"] = dvc.data
    sections.append(goals_section(goals))
    sections.append(f"Whole benchmark: {(time.monotonic() - started) / 60:.1f} minutes.")
    text = "\n\n".join(sections) + "\n"
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(text)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
