"""What creating a file costs the kernel right now, and waiting out the state where it costs 20x.

On ext4 without a journal (this VM's disk), the kernel avoids reusing an inode freed in the last
minute, or the last six while its inode-table block is not yet written back: to create a file it
walks the free inodes of the folder's block group and, for each one freed recently, looks up its
inode-table block and skips it (``recently_deleted()`` in fs/ext4/ialloc.c; only a file system
without a journal takes that path). Measured here with ``perf``: after a tree of 70,000 files
was deleted, creating an empty file took 400-510 µs of system time instead of 21 µs, for about
seven minutes, and ``recently_deleted`` was most of the kernel's time. Both sides of the PNG tree
comparisons create 70,000 files, so in that state they measure the last deletion, not the code.

So the benchmark deletes nothing until it is done, waits at its start for that state to pass
(only on such a file system, bounded), and probes the cost before every round it reports.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Empty files per probe: 0.1 s in the usual state here, 2 s in the slow one.
PROBE_FILES = 5000
#: The usual cost here is 20-22 µs per empty file; the slow state measured 260-510 µs.
USUAL_MICROSECONDS = 60.0
PROBE_PAUSE_SECONDS = 20.0
#: The kernel's window is 60 s, plus 300 s while the inode-table block is dirty.
MAX_WAIT_SECONDS = 480.0


@dataclass(frozen=True)
class Mount:
    """The mount holding a path: its point, device, type and options, as /proc/mounts has them."""

    point: str
    device: str
    fs_type: str
    options: str

    def has_journal(self) -> bool | None:
        """Whether an ext4 mount has a journal (jbd2 lists one per journaled device); None for
        any other file system, or where /proc does not say."""
        journals = Path("/proc/fs/jbd2")
        if self.fs_type != "ext4" or not journals.is_dir():
            return None
        device = Path(self.device).name
        return any(entry.name.startswith(f"{device}-") for entry in journals.iterdir())


def mount_of(path: Path) -> Mount | None:
    """The mount holding ``path`` (the longest mount point it is under), or None."""
    resolved = str(path.resolve())
    best: Mount | None = None
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        device, point, fs_type, options, *_ = line.split()
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point)):
            best = Mount(point, device, fs_type, options)
    return best


def creation_cost(parent: Path, files: int = PROBE_FILES) -> float:
    """CPU microseconds (user + system) this process takes per empty file, creating ``files``
    in a new folder under ``parent``. The folder is kept: deleting it would start the slow state."""
    folder = parent / f"probe-{time.time_ns()}"
    folder.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for index in range(files):
        os.close(os.open(folder / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    after = resource.getrusage(resource.RUSAGE_SELF)
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return spent / files * 1e6


@dataclass
class Settling:
    """The probes taken while waiting for the usual cost, and how long the wait took."""

    probes: list[float] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str = ""

    def text(self) -> str:
        if self.skipped:
            return f"no wait for file creation to settle: {self.skipped}"
        probes = ", ".join(f"{value:.0f}" for value in self.probes)
        settled = bool(self.probes) and self.probes[-1] <= USUAL_MICROSECONDS
        outcome = "settled" if settled else f"still above {USUAL_MICROSECONDS:.0f} µs, measured anyway"
        return (
            f"waited {self.seconds:.0f} s for file creation to settle (ext4 without a journal, see "
            f"benchmarks/fsprobe.py): µs per empty file {probes}; {outcome}"
        )


def settle(parent: Path, max_seconds: float, log: Callable[[str], None]) -> Settling:
    """Probe until creating a file costs its usual, for at most ``max_seconds``; only on ext4
    without a journal, the one file system that takes the slow path."""
    mount = mount_of(parent)
    if mount is None or mount.has_journal() is not False:
        kind = "unknown" if mount is None else f"{mount.fs_type}{', journaled' if mount.has_journal() else ''}"
        return Settling(skipped=f"the file system ({kind}) does not hold freed inodes back")
    if max_seconds <= 0:
        return Settling(skipped="--quick")
    found = Settling()
    started = time.monotonic()
    while True:
        found.probes.append(creation_cost(parent))
        found.seconds = time.monotonic() - started
        if found.probes[-1] <= USUAL_MICROSECONDS or found.seconds + PROBE_PAUSE_SECONDS > max_seconds:
            return found
        log(f"creating a file costs {found.probes[-1]:.0f} µs (usual ≤ {USUAL_MICROSECONDS:.0f}); waiting")
        time.sleep(PROBE_PAUSE_SECONDS)
