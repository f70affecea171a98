"""Benchmark of the pipeline on the real MNIST archives served over loopback.

Prints, side by side in one run:
- each stage run bare (``python -m pipeline.<stage>``, no DVC): seconds and peak memory;
- the cold ``dvc exp run`` (download to every default export) against the sum of the bare work;
- no-op ``dvc status`` and ``dvc repro``;
- for each remote kind (local directory, S3 on a loopback moto server, SSH on a loopback
  OpenSSH server where one can run): ``dvc push``, then in a fresh clone ``dvc pull`` and the
  ``dvc repro`` that completes the workspace;
- the naive ways (a PIL save loop writing 70,000 PNG files, pandas ``to_csv``) against our
  export stages, as ratios.

Usage: ``make bench`` (or ``python benchmarks/bench_pipeline.py [--mirror DIR] [--keep]``).
Needs ../shared/mirror/mnist (or --mirror). Results also go to benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
from tests.remotes import configure_remote, s3_server, ssh_server, sshd_available  # noqa: E402  (shared with the tests)
from tests.repos import make_repo, tool_env  # noqa: E402

DEFAULT_MIRROR = PROJECT_ROOT.parent / "shared" / "mirror" / "mnist"
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "latest.json"

#: Runs a module as __main__ and reports the peak RSS of itself and its children (PNG workers).
PEAK_WRAPPER = """
import resource, runpy, sys
module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    code = exit_.code
else:
    code = 0
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(f"PEAK_KIB={peak}", file=sys.stderr)
sys.exit(code)
"""

BARE_STAGES: list[tuple[str, list[str]]] = [
    ("download", ["data/mnist/raw"]),
    ("verify", ["data/mnist/raw", "data/mnist/checksums.json"]),
    ("extract", ["data/mnist/raw", "data/mnist/idx"]),
    ("decode", ["data/mnist/idx", "data/mnist/decoded.npz", "data/mnist/stats.json"]),
    ("export_npz", ["data/mnist/decoded.npz", "data/mnist/export/mnist.npz"]),
    ("export_csv", ["data/mnist/decoded.npz", "data/mnist/export/csv"]),
    ("export_png", ["data/mnist/decoded.npz", "data/mnist/export/png.zip"]),
    ("unpack", ["data/mnist/export/png.zip", "data/mnist/export/png"]),
    (
        "report",
        ["data/mnist/decoded.npz", "data/mnist/stats.json", "data/mnist/checksums.json", "data/mnist/export"],
    ),
]


def timed(
    cwd: Path, *command: str, env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    full_env = tool_env() | (env or {})
    result = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return elapsed, result


@contextmanager
def loopback_mirror(directory: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def bare_run(workdir: Path, mirror_url: str) -> list[dict[str, Any]]:
    """Each stage as a plain process, in order, on a params.yaml pointing at the mirror."""
    params = (PROJECT_ROOT / "params.yaml").read_text()
    first_mirror = params.split("mirrors:\n", 1)[1].splitlines()[0]
    (workdir / "params.yaml").write_text(params.replace(first_mirror, f"  - {mirror_url}", 1))
    (workdir / "data/mnist/export").mkdir(parents=True)
    rows = []
    for stage, arguments in BARE_STAGES:
        seconds, result = timed(workdir, sys.executable, "-c", PEAK_WRAPPER, f"pipeline.{stage}", *arguments)
        peak_kib = int(result.stderr.rsplit("PEAK_KIB=", 1)[1].split()[0])
        rows.append({"stage": stage, "seconds": round(seconds, 2), "peak_mb": round(peak_kib / 1024, 1)})
    return rows


NAIVE_PNG = """
import sys, numpy as np
from pathlib import Path
from PIL import Image
with np.load(sys.argv[1]) as npz:
    for split in ("train", "test"):
        images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = Path(sys.argv[2]) / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index:05d}.png")
"""

NAIVE_CSV = """
import sys, numpy as np, pandas as pd
from pathlib import Path
Path(sys.argv[2]).mkdir(parents=True)
with np.load(sys.argv[1]) as npz:
    for split in ("train", "test"):
        images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
        frame = pd.DataFrame(images.reshape(len(images), -1), columns=[f"pixel{i}" for i in range(784)])
        frame.insert(0, "label", labels)
        frame.to_csv(Path(sys.argv[2]) / f"{split}.csv", index=False)
"""


def naive_run(workdir: Path, bare: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seconds = {row["stage"]: row["seconds"] for row in bare}
    png_seconds, _ = timed(workdir, sys.executable, "-c", NAIVE_PNG, "data/mnist/decoded.npz", "naive/png")
    csv_seconds, _ = timed(workdir, sys.executable, "-c", NAIVE_CSV, "data/mnist/decoded.npz", "naive/csv")
    same_csv = (workdir / "naive/csv/train.csv").read_bytes() == (
        workdir / "data/mnist/export/csv/train.csv"
    ).read_bytes()
    ours_png = seconds["export_png"] + seconds["unpack"]
    return [
        {
            "work": "70,000 PNG files in an ImageFolder tree",
            "naive": "PIL save loop",
            "naive_s": round(png_seconds, 2),
            "ours": "export@png + unpack@png",
            "ours_s": round(ours_png, 2),
            "speedup": round(png_seconds / ours_png, 2),
        },
        {
            "work": "CSV of train + test (same bytes: %s)" % ("yes" if same_csv else "NO"),
            "naive": "pandas to_csv",
            "naive_s": round(csv_seconds, 2),
            "ours": "export@csv",
            "ours_s": seconds["export_csv"],
            "speedup": round(csv_seconds / seconds["export_csv"], 2),
        },
    ]


def dvc_run(root: Path, mirror_url: str) -> dict[str, float]:
    repo = make_repo(root / "repo")
    figures: dict[str, float] = {}
    figures["cold exp run"], _ = timed(repo, "dvc", "exp", "run", "-S", f"dataset.mirrors=[{mirror_url}]")
    timed(repo, "git", "add", "-A")
    timed(repo, "git", "commit", "-qm", "pipeline ran")
    figures["no-op dvc status"], _ = timed(repo, "dvc", "status")
    figures["no-op dvc repro"], _ = timed(repo, "dvc", "repro")
    figures |= remote_round_trip(repo, root, "local", str(root / "store"))
    with s3_server(root) as endpoint:
        endpoint.create_bucket("bench")
        options = {"endpointurl": endpoint.url}
        figures |= remote_round_trip(repo, root, "s3", "s3://bench/mnist", options, env=endpoint.environment())
    if sshd_available() is None:
        with ssh_server(root / "ssh") as ssh:
            url = f"ssh://{ssh.user}@{ssh.host}:{ssh.port}{root / 'ssh-store'}"
            figures |= remote_round_trip(repo, root, "ssh", url, local={"keyfile": str(ssh.key_file)})
    return {key: round(value, 2) for key, value in figures.items()}


def remote_round_trip(
    repo: Path,
    root: Path,
    name: str,
    url: str,
    options: dict[str, str] | None = None,
    local: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Push to a remote, then in a fresh clone pull and run what is left (unpacking the tree)."""
    clone = root / f"clone-{name}"
    timed(root, "git", "clone", "-q", str(repo), str(clone))
    for where in (repo, clone):
        configure_remote(where, name, url, options or {}, local or {})
    push, _ = timed(repo, "dvc", "push", "-r", name, env=env)
    pull, _ = timed(clone, "dvc", "pull", "-r", name, env=env)
    repro, result = timed(clone, "dvc", "repro")
    _, status = timed(clone, "dvc", "status")
    if "up to date" not in status.stdout or result.stdout.count("Running stage") != 1:
        raise SystemExit(f"{name}: fresh clone not complete after pull + one stage:\n{result.stdout}{status.stdout}")
    return {
        f"{name} remote: dvc push": push,
        f"{name} remote: dvc pull in a fresh clone": pull,
        f"{name} remote: dvc repro after pull (unpack@png)": repro,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()
    if not args.mirror.is_dir():
        print(f"bench: error: no MNIST mirror at {args.mirror}", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-"))
    try:
        with loopback_mirror(args.mirror) as url:
            bare_dir = make_repo(root / "bare")
            bare = bare_run(bare_dir, url)
            naive = naive_run(bare_dir, bare)
            dvc = dvc_run(root, url)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    bare_total = round(sum(row["seconds"] for row in bare), 2)
    report = {"bare": bare, "bare_total_s": bare_total, "dvc": dvc, "naive": naive, "cpus": os.cpu_count()}
    report["cold_over_bare"] = round(dvc["cold exp run"] / bare_total, 2)
    print_report(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def print_report(report: dict[str, Any]) -> None:
    print("| stage (bare, no DVC) | seconds | peak MB |\n|---|---:|---:|")
    for row in report["bare"]:
        print(f"| {row['stage']} | {row['seconds']:.2f} | {row['peak_mb']:.0f} |")
    print(f"| **sum** | **{report['bare_total_s']:.2f}** | |\n")
    print("| DVC operation | seconds |\n|---|---:|")
    for key, value in report["dvc"].items():
        print(f"| {key} | {value:.2f} |")
    print(f"| cold exp run / bare sum | {report['cold_over_bare']:.2f}x |\n")
    print("| work | naive | s | ours | s | speed-up |\n|---|---|---:|---|---:|---:|")
    for row in report["naive"]:
        print(
            f"| {row['work']} | {row['naive']} | {row['naive_s']:.2f} | {row['ours']} | {row['ours_s']:.2f} "
            f"| {row['speedup']:.1f}x |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
