"""A queued sweep, as a user runs one: ``dvc exp run --queue -S ...`` (Hydra sweep syntax),
``dvc queue start -j 1``, then wait until every queued experiment is done; then stop the worker.

Done is read from git, cheaply and without a DVC process: a finished experiment is a ref
``refs/exps/<baseline>/<name>``, a failed one an entry of ``refs/exps/celery/failed``.

Usage: ``python benchmarks/queue_sweep.py REPO OVERRIDE [OVERRIDE ...]`` (each one ``-S``),
run under measure.py's launcher, which also waits for the detached worker and counts its CPU
time. Prints one JSON line: the experiments' names, the seconds from the first ``dvc`` command
until the last experiment was done, and a failure if any.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.1
TIMEOUT_SECONDS = 1800.0
QUEUED = re.compile(r"Queued experiment '([^']+)'")
FAILED_REF = "refs/exps/celery/failed"
#: Seconds without a finished experiment after which an idle queue gets its worker started again.
STALL_SECONDS = 20.0


def worker_busy(repo: Path) -> bool:
    """Whether ``dvc queue status`` reports an active worker."""
    status = subprocess.run(["dvc", "queue", "status"], cwd=repo, capture_output=True, text=True, check=False)
    return "Worker status: 0 active" not in status.stdout


def git_refs(repo: Path) -> list[str]:
    command = ["git", "for-each-ref", "--format=%(refname)", "refs/exps"]
    listed = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    return listed.stdout.split()


def main(argv: list[str]) -> int:
    repo, overrides = Path(argv[0]), argv[1:]
    started = time.perf_counter()
    queue = ["dvc", "exp", "run", "--queue", *(part for override in overrides for part in ("-S", override))]
    queued = subprocess.run(queue, cwd=repo, capture_output=True, text=True, check=False)
    names = QUEUED.findall(queued.stdout + queued.stderr)
    result: dict[str, object] = {"names": names, "seconds": None, "failure": None}
    if queued.returncode != 0 or not names:
        result["failure"] = f"dvc exp run --queue: {(queued.stderr or queued.stdout).strip()[-300:]}"
    else:
        start_worker = ["dvc", "queue", "start", "-j", "1"]
        subprocess.run(start_worker, cwd=repo, capture_output=True, check=False)
        deadline = started + TIMEOUT_SECONDS
        progress, last_progress = -1, time.perf_counter()
        while time.perf_counter() < deadline:
            refs = git_refs(repo)
            if FAILED_REF in refs:
                result["failure"] = "an experiment failed (dvc queue status)"
                break
            done = sum(any(ref.endswith(f"/{name}") for ref in refs) for name in names)
            if done == len(names):
                result["seconds"] = time.perf_counter() - started
                break
            if done != progress:
                progress, last_progress = done, time.perf_counter()
            elif time.perf_counter() - last_progress > STALL_SECONDS and not worker_busy(repo):
                # DVC's worker can shut down while an experiment is still queued (seen here: the
                # queue then waits forever): start it again, as a user would.
                subprocess.run(start_worker, cwd=repo, capture_output=True, check=False)
                last_progress = time.perf_counter()
            time.sleep(POLL_SECONDS)
        else:
            result["failure"] = f"not done after {TIMEOUT_SECONDS:.0f} s"
        subprocess.run(["dvc", "queue", "stop"], cwd=repo, capture_output=True, check=False)
    print(json.dumps(result))
    return 0 if result["failure"] is None else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
