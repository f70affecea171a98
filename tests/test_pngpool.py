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


def start_export(tmp_path: Path, tiny: TinyDataset, out: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    """export_png with 2 workers on ``IMAGES`` random images, in a session of its own (as under a
    terminal, a signal to the group reaches the stage and its workers): the process and its
    children (workers, resource tracker) once at least ``2`` are seen."""
    decoded = tmp_path / "data" / "decoded"
    if not decoded.exists():
        rng = np.random.default_rng(0)
        decoded.mkdir(parents=True)
        for split, count in (("train", IMAGES), ("test", 100)):
            np.save(decoded / f"{split}_images.npy", rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8))
            np.save(decoded / f"{split}_labels.npy", (np.arange(count) % 10).astype(np.uint8))
    params = params_for(tiny, ["unused"])
    params["datasets"]["mnist"]["splits"]["train"]["count"] = IMAGES
    params["datasets"]["mnist"]["splits"]["test"]["count"] = 100
    params["export"]["workers"] = 2
    argv = ["--params", str(write_params(tmp_path, params)), "--dataset", "mnist", str(decoded), str(out)]
    stage = subprocess.Popen(
        [sys.executable, "-m", "mnist_pipeline.export_png", *argv],
        env=tool_env(),
        stderr=subprocess.PIPE,
        start_new_session=True,
        # A terminal's foreground job has Ctrl-C at its default, whatever started the tests: a
        # shell's background job (a CI script's `cmd &`) inherits it ignored, exec included.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - before exec, no threads
    )
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts Python slowly
    children: set[int] = set()
    while len(children) < 2 and stage.poll() is None and time.monotonic() < deadline:
        children = children_of(stage.pid)
        time.sleep(0.01)
    return stage, children


def reap(pids: set[int]) -> list[int]:
    """The processes of ``pids`` still alive 10 s on (killed, so no test inherits them)."""
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_killed_export_leaves_no_worker_behind(tmp_path: Path, tiny: TinyDataset) -> None:
    out = tmp_path / "data" / "png"
    stage, workers = start_export(tmp_path, tiny, out)
    while len(workers) < 3 and stage.poll() is None:  # 2 workers + tracker
        workers |= children_of(stage.pid)
        time.sleep(0.05)
    assert len(workers) >= 3 and stage.poll() is None, "the stage finished before its workers could be seen"
    os.kill(stage.pid, signal.SIGKILL)
    stage.wait()
    left = reap(workers)
    assert not left, f"processes of the killed stage still alive: {left}"
    assert not out.exists()  # nothing half-written where the output belongs


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_ctrl_c_while_workers_start_is_one_line(tmp_path: Path, tiny: TinyDataset, delay: float) -> None:
    """Ctrl-C reaches the terminal's whole process group, workers still importing their modules
    included: the stage alone answers, in one line, and no worker prints a traceback."""
    out = tmp_path / "data" / "png"
    stage, children = start_export(tmp_path, tiny, out)
    assert stage.poll() is None, "the stage finished before its workers could be seen"
    time.sleep(delay)
    os.killpg(stage.pid, signal.SIGINT)
    _, err = stage.communicate(timeout=60)
    assert (stage.returncode, err.decode().splitlines()) == (130, ["export_png@mnist: interrupted"])
    assert not reap(children) and not out.exists()
