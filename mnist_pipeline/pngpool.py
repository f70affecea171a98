"""What the PNG and Parquet exports share: PNG encoding spread over worker threads a range
of rows at a time, and the image-folder names of the images (class folders, member paths).

Only those two exports import this module (and, through it, the PNG encoder), so a change to
the encoder re-runs them and no other stage.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from mnist_pipeline.decoded import DecodedSplit, batch_ranges
from mnist_pipeline.png import encode_gray_pngs
from mnist_pipeline.rows import RowFile

#: Images per task handed to a PNG worker: large enough to amortise the task's overhead, small
#: enough to keep every worker busy and the encoded bytes waiting in memory small.
PNG_BATCH = 2000
#: Encoding tasks submitted ahead of the one being written: bounds the PNGs held in memory
#: (8 x 2,000 small PNGs is a few MB) while keeping the workers fed.
PNG_TASKS_AHEAD = 8


def class_folder_names(num_classes: int) -> list[str]:
    """Folder name of each label: zero-padded to the width of the largest, so that sorting the
    names as strings (what torchvision's ImageFolder does) gives back the label order:
    ``0``-``9`` for 10 classes, ``00``-``61`` for 62."""
    width = len(str(num_classes - 1))
    return [f"{label:0{width}d}" for label in range(num_classes)]


def member_name(split: str, label: int, index: int, width: int, folders: list[str], *, flat: bool = False) -> str:
    """An image's path: ``<split>/<class folder>/<index>.png`` (the image-folder layout, what
    Parquet's ``image.path`` holds), or ``flat``, ``<split>/<label>_<index>.png`` (no folders)."""
    padded = f"{index:0{width}d}"
    return f"{split}/{label}_{padded}.png" if flat else f"{split}/{folders[label]}/{padded}.png"


def index_width(splits: list[DecodedSplit]) -> int:
    """Digits of the largest image index, shared by every split so that names sort the same way."""
    return len(str(max(len(split) for split in splits) - 1))


def encode_rows(images: RowFile, start: int, stop: int, invert: bool) -> list[bytes]:
    """PNG bytes of rows [start, stop) of ``images``: what a worker runs, reading its own rows."""
    pixels = images.read(start, stop)
    return encode_gray_pngs(np.invert(pixels) if invert else pixels)


@contextmanager
def png_workers(workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """A pool of ``workers`` threads, or None to encode in this thread.

    Threads, not processes: ``zlib.compress``, where the encoding's time goes, releases the GIL,
    so two threads encode on two cores, and a thread costs nothing to start where a spawned
    process imports numpy and the stage's modules again (about 0.5 s of CPU each, measured on
    MNIST: the export took 15 % less CPU and a little less wall time with threads). Threads also
    die with their stage, whatever kills it, and Ctrl-C reaches only the main thread."""
    if workers == 1:
        yield None
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="png") as pool:
        try:
            yield pool
        except BaseException:
            # Ctrl-C or a failure: drop the ranges not started; those running finish in a moment.
            pool.shutdown(cancel_futures=True)
            raise


def encoded_ranges(
    images: RowFile, pool: ThreadPoolExecutor | None, invert: bool = False
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
        pending.append((start, stop, pool.submit(encode_rows, images, start, stop, invert)))
        if len(pending) > PNG_TASKS_AHEAD:
            first, last, done = pending.popleft()
            yield first, last, done.result()
    while pending:
        first, last, done = pending.popleft()
        yield first, last, done.result()
