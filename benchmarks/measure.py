"""Wall time, CPU time and peak memory of one command run as a child process.

- ``seconds``: wall time until the command and every process it left behind have exited;
- ``cpu_seconds``: user + system CPU time of the command and all its descendants. The command
  is started by a small launcher that makes itself the "child subreaper" of everything below it
  (prctl PR_SET_CHILD_SUBREAPER): a daemon the command detaches (DVC's queue worker) is
  re-parented to the launcher instead of init, which waits for it, so its CPU time is counted
  too (``getrusage(RUSAGE_CHILDREN)`` of the launcher). CPU time is what a busy shared machine
  cannot blur: another process stealing a core lengthens wall time, not CPU time;
- ``peak_mb``: ``ru_maxrss`` of the same children, exact: the largest resident set of any one of
  them (never a sum). The launcher is a bare Python, never this process forked: Linux carries
  the resident high-water mark of the process that forks into the child;
- ``tree_peak_mb``: the resident sets of the child and all its live descendants added up,
  sampled from /proc every ``SAMPLE_SECONDS`` (shared pages count once per process, so it
  overstates forked workers a little; a spike shorter than the interval can be missed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.1
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MB = 1 << 20
#: Characters of a failed command's output kept for the report.
OUTPUT_TAIL = 4000
#: argv[1]: where to write the children's usage (JSON); argv[2:]: the command. Exits with the
#: command's code once every descendant, re-parented ones included, has exited.
LAUNCHER = (
    "import ctypes, json, os, resource, subprocess, sys\n"
    "PR_SET_CHILD_SUBREAPER = 36\n"
    "ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "while True:\n"
    "    try:\n"
    "        os.wait()\n"
    "    except ChildProcessError:\n"
    "        break\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    json.dump({'maxrss_kib': usage.ru_maxrss, 'cpu': usage.ru_utime + usage.ru_stime}, out)\n"
    "sys.exit(code)\n"
)


@dataclass(frozen=True)
class Measurement:
    seconds: float
    cpu_seconds: float
    peak_mb: float
    tree_peak_mb: float
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def failure(self) -> str:
        """The last meaningful line of a failed command's output, for a table cell."""
        lines = [line.strip() for line in (self.stderr + "\n" + self.stdout).splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        return f"exit {self.returncode}: {last[:200]}"


def measure(
    command: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 3600.0
) -> Measurement:
    """Run ``command`` in ``cwd`` to completion (its process group is killed after ``timeout``).
    Earlier writes are flushed first, so that their write-back is not charged to ``command``."""
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as scratch:
        usage_file = Path(scratch) / "usage.json"
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(usage_file)]
        started = time.perf_counter()
        process = subprocess.Popen(
            [*launcher, *command], cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )
        sampler = _TreeSampler(process.pid)
        sampler.start()
        watchdog = threading.Timer(timeout, _kill_group, (process.pid,))
        watchdog.start()
        try:
            process.wait()
        finally:
            watchdog.cancel()
            sampler.stop()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        peak_kib, cpu = _usage(usage_file)
    peak_mb = peak_kib * 1024 / MB
    return Measurement(
        seconds=seconds,
        cpu_seconds=cpu,
        peak_mb=peak_mb,
        tree_peak_mb=max(peak_mb, sampler.peak_bytes / MB),
        returncode=process.returncode,
        stdout=stdout if process.returncode == 0 else stdout[-OUTPUT_TAIL:],
        stderr=stderr if process.returncode == 0 else stderr[-OUTPUT_TAIL:],
    )


def _usage(usage_file: Path) -> tuple[int, float]:
    """The launcher's report (peak KiB, CPU seconds); zeros if it wrote none (it was killed)."""
    try:
        usage = json.loads(usage_file.read_text())
        return int(usage["maxrss_kib"]), float(usage["cpu"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0.0


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


class _TreeSampler:
    """Samples the summed RSS of a process and its descendants in a daemon thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            total = sum(_rss_bytes(pid) for pid in _tree(self.pid))
            self.peak_bytes = max(self.peak_bytes, total)


def _tree(root: int) -> list[int]:
    """``root`` and its live descendants (from /proc/<pid>/task/<tid>/children)."""
    found = [root]
    index = 0
    while index < len(found):
        pid = found[index]
        index += 1
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                found.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0
