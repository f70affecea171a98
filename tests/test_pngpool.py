"""The PNG encoders live and die with their stage: they are threads of it, so a SIGKILLed
export leaves no process behind, and Ctrl-C at any moment (starting, encoding) is one line."""

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

#: Enough random images that encoding them takes the two encoders a few seconds.
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


def threads_of(pid: int) -> int:
    """The number of threads of process ``pid`` (0 once it is gone)."""
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


def start_export(tmp_path: Path, tiny: TinyDataset, out: Path) -> subprocess.Popen[bytes]:
    """export_png with 2 workers on ``IMAGES`` random images, in a session of its own (as under a
    terminal, where Ctrl-C reaches the whole process group)."""
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
    return stage


def wait_for_encoders(stage: subprocess.Popen[bytes]) -> None:
    """Until the stage runs its main thread and two encoder threads (numpy's own threads, if
    any, count too: at least three is enough to know the encoding has started)."""
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts Python slowly
    while threads_of(stage.pid) < 3 and stage.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stage.poll() is None, "the stage finished before its encoders could be seen"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to see the encoders")
def test_encoders_are_threads_and_a_killed_export_leaves_nothing(tmp_path: Path, tiny: TinyDataset) -> None:
    out = tmp_path / "data" / "png"
    stage = start_export(tmp_path, tiny, out)
    wait_for_encoders(stage)
    assert not children_of(stage.pid), "the encoders should be threads of the stage, not processes that outlive it"
    os.kill(stage.pid, signal.SIGKILL)
    stage.wait()
    assert not out.exists()  # nothing half-written where the output belongs


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to see the encoders")
@pytest.mark.parametrize("delay", [0.0, 0.5])
def test_ctrl_c_while_encoding_is_one_line(tmp_path: Path, tiny: TinyDataset, delay: float) -> None:
    """Ctrl-C to the terminal's process group as the encoders start, or while they encode: the
    stage answers in one line, and stops within seconds, not after encoding every queued range."""
    out = tmp_path / "data" / "png"
    stage = start_export(tmp_path, tiny, out)
    wait_for_encoders(stage)
    time.sleep(delay)
    sent = time.monotonic()
    os.killpg(stage.pid, signal.SIGINT)
    _, err = stage.communicate(timeout=60)
    assert (stage.returncode, err.decode().splitlines()) == (130, ["export_png@mnist: interrupted"])
    assert time.monotonic() - sent < 10
    assert not out.exists()
