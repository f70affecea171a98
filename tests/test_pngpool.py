"""The PNG worker pool dies with its stage: a SIGKILLed export leaves no worker and no
multiprocessing resource tracker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.data import TinyDataset, params_for, write_params
from tests.support.repos import tool_env

#: Enough random images that encoding them takes the workers several seconds.
IMAGES = 40_000


def children_of(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_killed_export_leaves_no_worker_behind(tmp_path: Path, tiny: TinyDataset) -> None:
    rng = np.random.default_rng(0)
    decoded = tmp_path / "decoded"
    decoded.mkdir()
    for split, count in (("train", IMAGES), ("test", 100)):
        np.save(decoded / f"{split}_images.npy", rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8))
        np.save(decoded / f"{split}_labels.npy", (np.arange(count) % 10).astype(np.uint8))
    params = params_for(tiny, ["unused"])
    params["datasets"]["mnist"]["splits"]["train"]["count"] = IMAGES
    params["datasets"]["mnist"]["splits"]["test"]["count"] = 100
    params["export"]["workers"] = 2
    argv = ["--params", str(write_params(tmp_path, params)), "--dataset", "mnist", str(decoded), str(tmp_path / "png")]
    stage = subprocess.Popen(
        [sys.executable, "-m", "mnist_pipeline.export_png", *argv], env=tool_env(), stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while len(workers) < 3 and stage.poll() is None and time.monotonic() < deadline:  # 2 workers + tracker
        workers = children_of(stage.pid)
        time.sleep(0.05)
    assert len(workers) >= 3 and stage.poll() is None, "the stage finished before its workers could be seen"
    os.kill(stage.pid, signal.SIGKILL)
    stage.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # do not leave them to the next test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the killed stage still alive: {left}"
    assert not (tmp_path / "png").exists()  # nothing half-written where the output belongs
