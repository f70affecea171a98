"""The PNG encoders live and die with their stage: they are threads of it, so a SIGKILLed
export leaves no process behind, and Ctrl-C at any moment (starting, encoding) is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from mnist_pipeline import pngpool
from mnist_pipeline.rows import RowFile
from tests.support.data import TinyDataset, params_for, write_params
from tests.support.repos import tool_env

#: Enough random images that encoding them takes the two encoders a few seconds.
IMAGES = 100_000


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
        # numpy's OpenBLAS would start threads of its own (one per core, less one) at import.
        env=tool_env() | {"OPENBLAS_NUM_THREADS": "1"},
        stderr=subprocess.PIPE,
        start_new_session=True,
        # A terminal's foreground job has Ctrl-C at its default, whatever started the tests: a
        # shell's background job (a CI script's `cmd &`) inherits it ignored, exec included.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - before exec, no threads
    )
    return stage


def wait_for_encoding(stage: subprocess.Popen[bytes], out: Path) -> None:
    """Until the stage's scratch zip (beside ``out``) holds PNGs: the encoders have started and
    returned a range, and the stage is well past its imports."""
    deadline = time.monotonic() + 60  # generous: a loaded CI machine starts Python slowly
    while stage.poll() is None and time.monotonic() < deadline:
        if any(zip_path.stat().st_size > 0 for zip_path in out.parent.glob(f".{out.name}.*.tmp/{out.name}/images.zip")):
            return
        time.sleep(0.01)
    raise AssertionError(f"the stage wrote no PNG in 60 s (exit code {stage.poll()})")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to see the encoders")
def test_encoders_are_threads_and_a_killed_export_leaves_nothing(tmp_path: Path, tiny: TinyDataset) -> None:
    out = tmp_path / "data" / "png"
    stage = start_export(tmp_path, tiny, out)
    wait_for_encoding(stage, out)
    assert threads_of(stage.pid) >= 3, "expected the main thread and two encoder threads"
    assert not children_of(stage.pid), "the encoders should be threads of the stage, not processes that outlive it"
    os.kill(stage.pid, signal.SIGKILL)
    stage.wait()
    assert not out.exists()  # nothing half-written where the output belongs


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to see the encoders")
@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_ctrl_c_while_encoding_is_one_line(tmp_path: Path, tiny: TinyDataset, delay: float) -> None:
    """Ctrl-C to the terminal's process group while the encoders work: the stage alone answers,
    in one line, and leaves no output."""
    out = tmp_path / "data" / "png"
    stage = start_export(tmp_path, tiny, out)
    wait_for_encoding(stage, out)
    time.sleep(delay)
    os.killpg(stage.pid, signal.SIGINT)
    _, err = stage.communicate(timeout=60)
    assert (stage.returncode, err.decode().splitlines()) == (130, ["export_png@mnist: interrupted"])
    assert not out.exists()


def test_a_failure_drops_the_ranges_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception (Ctrl-C, a full disk) while ranges are queued: the ranges not started are
    dropped, and no encoder runs once the pool is left (the scratch it wrote to is removed next)."""
    started: list[int] = []

    def slow_encode(_images: RowFile, start: int, stop: int, _invert: bool) -> list[bytes]:
        started.append(start)
        time.sleep(0.05)
        return [b""] * (stop - start)

    monkeypatch.setattr(pngpool, "encode_rows", slow_encode)
    monkeypatch.setattr(pngpool, "PNG_BATCH", 1)
    images = cast(RowFile, range(100))  # encoded_ranges only takes its length; slow_encode ignores it
    with pytest.raises(RuntimeError), pngpool.png_workers(2) as pool:
        for start, _, _ in pngpool.encoded_ranges(images, pool):
            if start == 3:
                raise RuntimeError("stop")
    ran = len(started)
    time.sleep(0.2)
    # Ranges 0-11 were submitted when range 3 came back (PNG_TASKS_AHEAD ahead); without the
    # cancel, all 12 would run.
    assert len(started) == ran < 4 + pngpool.PNG_TASKS_AHEAD
