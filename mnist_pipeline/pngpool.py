"""What the PNG and Parquet exports share: PNG encoding spread over worker processes a range
of rows at a time, and the image-folder names of the images (class folders, member paths).

Only those two exports import this module (and, through it, the PNG encoder), so a change to
the encoder re-runs them and no other stage.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np

from mnist_pipeline.config import PngLayout
from mnist_pipeline.decoded import DecodedSplit, batch_ranges
from mnist_pipeline.png import encode_gray_pngs
from mnist_pipeline.rows import RowFile

#: Images per task handed to a PNG worker: large enough to amortise the task's overhead, small
#: enough to keep every worker busy and the encoded bytes waiting in memory small.
PNG_BATCH = 2000
#: Encoding tasks submitted ahead of the one being written: bounds the PNGs held in memory
#: (8 x 2,000 small PNGs is a few MB) while keeping the workers fed.
PNG_TASKS_AHEAD = 8
#: How often a worker checks that its stage is still alive.
ORPHAN_POLL_SECONDS = 0.5


def class_folder_names(num_classes: int) -> list[str]:
    """Folder name of each label: zero-padded to the width of the largest, so that sorting the
    names as strings (what torchvision's ImageFolder does) gives back the label order:
    ``0``-``9`` for 10 classes, ``00``-``61`` for 62."""
    width = len(str(num_classes - 1))
    return [f"{label:0{width}d}" for label in range(num_classes)]


#: Member name per layout, from (split, label, class folder, index padded).
MEMBER_NAMES: dict[PngLayout, Callable[[str, int, str, str], str]] = {
    PngLayout.imagefolder: lambda split, _label, folder, index: f"{split}/{folder}/{index}.png",
    PngLayout.flat: lambda split, label, _folder, index: f"{split}/{label}_{index}.png",
}


def member_name(split: str, label: int, index: int, width: int, layout: PngLayout, folders: list[str]) -> str:
    return MEMBER_NAMES[layout](split, label, folders[label], f"{index:0{width}d}")


def index_width(splits: list[DecodedSplit]) -> int:
    """Digits of the largest image index, shared by every split so that names sort the same way."""
    return len(str(max(len(split) for split in splits) - 1))


def encode_rows(images: RowFile, start: int, stop: int, invert: bool) -> list[bytes]:
    """PNG bytes of rows [start, stop) of ``images``. What a worker runs: it is handed a file and
    a range, never the pixels, so no split is ever pickled."""
    pixels = images.read(start, stop)
    return encode_gray_pngs(np.invert(pixels) if invert else pixels)


@contextmanager
def png_workers(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of ``workers`` processes, or None to encode in this process."""
    if workers == 1:
        yield None
        return
    # Spawned, not forked: forking a process that runs threads (pyarrow's pools) can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        try:
            yield pool
        except BaseException:
            # Ctrl-C or a failure: drop the tasks not started (the workers hold SIGINT off, so
            # they would otherwise encode every queued range before the stage could exit).
            pool.shutdown(cancel_futures=True)
            raise


def exit_with_parent(parent_pid: int) -> None:
    """In a worker: exit as soon as the stage that started it is gone. A killed stage (SIGKILL,
    the OOM killer) never shuts its pool down, and its workers, blocked on their task queue,
    would live on forever, holding the multiprocessing resource tracker alive with them."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(ORPHAN_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C held off meanwhile, and raised again when this ends.
    A worker started meanwhile keeps SIGINT blocked for its whole life (the signal mask
    survives exec): Ctrl-C reaches the terminal's whole process group, and a worker still
    importing its modules would die of it with a traceback. Held so, it reaches only the stage,
    which says ``interrupted`` in one line and shuts the pool down. The signal is blocked for
    this thread (what a new process inherits), and a handler that only notes it stands in
    meanwhile, since the kernel may hand it to another thread of this process (numpy's)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "pthread_sigmask")
        or signal.getsignal(signal.SIGINT) in (None, signal.SIG_IGN)
    ):
        # Only the main thread may set handlers; none to put back; no masks (not POSIX); or
        # Ctrl-C ignored (a background job's), which new workers inherit ignored through exec.
        yield
        return
    noted: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda number, _frame: noted.append(number))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)
    if noted:
        signal.raise_signal(signal.SIGINT)  # to the handler in place again, whatever it is


def encoded_ranges(
    images: RowFile, pool: ProcessPoolExecutor | None, invert: bool = False
) -> Iterator[tuple[int, int, list[bytes]]]:
    """(start, stop, PNG bytes) of every ``PNG_BATCH`` rows of ``images``, in order; the bytes
    are the same whatever the pool, and at most ``PNG_TASKS_AHEAD`` ranges wait in memory."""
    ranges = batch_ranges(len(images), PNG_BATCH)
    if pool is None:
        for start, stop in ranges:
            yield start, stop, encode_rows(images, start, stop, invert)
        return
    pending: deque[tuple[int, int, Future[list[bytes]]]] = deque()
    for start, stop in ranges:
        with interrupts_held():  # a submit may start a worker
            pending.append((start, stop, pool.submit(encode_rows, images, start, stop, invert)))
        if len(pending) > PNG_TASKS_AHEAD:
            first, last, done = pending.popleft()
            yield first, last, done.result()
    while pending:
        first, last, done = pending.popleft()
        yield first, last, done.result()
