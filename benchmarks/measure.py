"""Wall time and peak memory of one command run as a child process.

Peak memory comes two ways:
- ``peak_mb``: ``ru_maxrss`` of the command, exact: the largest resident set of the command or
  of any descendant it waited for (a stage's PNG workers), never a sum. The command is started
  by a small launcher (GNU time, else a bare Python), never forked straight from this process:
  Linux carries the resident high-water mark of the process that forks into the child, so a
  benchmark holding 150 MB would see every command peak at 150 MB at least;
- ``tree_peak_mb``: the resident sets of the child and all its live descendants added up,
  sampled from /proc every ``SAMPLE_SECONDS`` (shared pages count once per process, so it
  overstates forked workers a little; a spike shorter than the interval can be missed).
"""

from __future__ import annotations

import contextlib
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
GNU_TIME = Path("/usr/bin/time")
#: The launcher used where GNU time is missing: runs argv[2:], writes its peak (KiB) to argv[1].
PYTHON_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


@dataclass(frozen=True)
class Measurement:
    seconds: float
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
        peak_file = Path(scratch) / "peak_kib"
        started = time.perf_counter()
        process = subprocess.Popen(
            [*_launcher(peak_file), *command], cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
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
        peak_mb = _peak_kib(peak_file) * 1024 / MB
    return Measurement(
        seconds=seconds,
        peak_mb=peak_mb,
        tree_peak_mb=max(peak_mb, sampler.peak_bytes / MB),
        returncode=process.returncode,
        stdout=stdout if process.returncode == 0 else stdout[-OUTPUT_TAIL:],
        stderr=stderr if process.returncode == 0 else stderr[-OUTPUT_TAIL:],
    )


def _launcher(peak_file: Path) -> list[str]:
    if GNU_TIME.exists():
        return [str(GNU_TIME), "--quiet", "--format", "%M", "--output", str(peak_file)]
    return [sys.executable, "-I", "-S", "-c", PYTHON_LAUNCHER, str(peak_file)]


def _peak_kib(peak_file: Path) -> int:
    """The launcher's report; 0 if it wrote none (it was killed)."""
    try:
        return int(peak_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0


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
