"""What the export stages share: their shell (``run_export``), validation carving (by row
index, no copy), float scaling, one-hot labels, the extra label columns of label tables, class
folder names, and PNG encoding spread over worker processes a range of rows at a time.

Everything here works a batch of rows at a time: no split's images are ever held whole.
"""

from __future__ import annotations

import argparse
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnist_pipeline.config import DatasetSpec, LabelLayout, Params, PngLayout, Scale, SplitMethod
from mnist_pipeline.decoded import (
    DecodedSplit,
    ExportSplit,
    Images,
    Labels,
    NpyFile,
    add_to_histogram,
    batch_ranges,
    moments,
    open_decoded,
)
from mnist_pipeline.errors import ConfigError
from mnist_pipeline.fsio import atomic_dir, write_sha256sums
from mnist_pipeline.png import encode_gray_pngs
from mnist_pipeline.stage import run_stage, stage_parser

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.intp]
#: Images per task handed to a PNG worker: large enough to amortise the task's overhead, small
#: enough to keep every worker busy and the encoded bytes waiting in memory small.
PNG_BATCH = 2000
#: Encoding tasks submitted ahead of the one being written: bounds the PNGs held in memory
#: (8 x 2,000 small PNGs is a few MB) while keeping the workers fed.
PNG_TASKS_AHEAD = 8
VALIDATION_SPLIT = "val"
TRAIN_SPLIT = "train"


def _first_rows(count: int, size: int, _seed: int) -> Rows:
    return np.arange(size, dtype=np.intp)


def _shuffled_rows(count: int, size: int, seed: int) -> Rows:
    # Sorted, so that the validation images keep their original order.
    return np.sort(np.random.default_rng(seed).permutation(count)[:size]).astype(np.intp)


#: Which training rows become the validation split: the first ones (the classic TensorFlow
#: reader's 5,000) or a sample drawn with the seed.
VALIDATION_ROWS: dict[SplitMethod, Callable[[int, int, int], Rows]] = {
    SplitMethod.first: _first_rows,
    SplitMethod.shuffle: _shuffled_rows,
}


def with_validation(
    splits: list[DecodedSplit], size: int, method: SplitMethod, seed: int, key: str
) -> list[ExportSplit]:
    """The splits as an export writes them: ``train`` first, then (``size`` > 0) a ``val``
    split of ``size`` training rows, which ``train`` no longer holds, then the other splits in
    config order. Train first whatever the order of params.yaml, as Keras' file has it.

    Both parts keep the original order, so the result depends on the parameters only. Only row
    indices are computed: the images stay in the decoded files until a batch is read.
    """
    train = next((split for split in splits if split.name == TRAIN_SPLIT), None)
    others = [ExportSplit(name=split.name, source=split) for split in splits if split is not train]
    if train is None:
        if size:
            raise ConfigError(f"{key}: expected 0: this dataset has no {TRAIN_SPLIT!r} split, found {size}")
        return others
    if size == 0:
        return [ExportSplit(name=TRAIN_SPLIT, source=train), *others]
    if size >= len(train):
        raise ConfigError(f"{key}: expected fewer than the {len(train)} training images, found {size}")
    chosen = VALIDATION_ROWS[method](len(train), size, seed)
    keep = np.ones(len(train), dtype=bool)
    keep[chosen] = False
    carved = [
        ExportSplit(name=TRAIN_SPLIT, source=train, rows=np.flatnonzero(keep).astype(np.intp)),
        ExportSplit(name=VALIDATION_SPLIT, source=train, rows=chosen),
    ]
    return carved + others


def train_unit_moments(splits: list[ExportSplit], key: str) -> tuple[float, float]:
    """Mean and std of the training images scaled to [0, 1], exact (from a histogram)."""
    train = next((split for split in splits if split.name == TRAIN_SPLIT), None)
    if train is None:
        raise ConfigError(f"{key}: 'standardize' needs the train split's mean and std; this dataset has none")
    histogram = np.zeros(256, dtype=np.float64)
    for images in train.select(train.source.images):
        add_to_histogram(histogram, images)
    mean, std = moments(histogram)
    return mean / 255, std / 255


def _unit(images: Images) -> Floats:
    unit = images.astype(np.float32)
    unit /= np.float32(255)
    return unit


def _centered(images: Images, _mean: float, _std: float) -> Floats:
    centered = _unit(images)
    centered -= np.float32(0.5)
    return centered


def _standardized(images: Images, mean: float, std: float) -> Floats:
    standardized = _unit(images)
    standardized -= np.float32(mean)
    standardized /= np.float32(std)
    return standardized


#: uint8 pixels -> float32, in place after the one conversion (one float copy of a batch, not
#: three; the same float32 operations in the same order, so the same bits). ``none`` gives
#: [0, 1] as ``unit`` does: a float32 export has always been scaled, and changing it would
#: change published bytes.
SCALES: dict[Scale, Callable[[Images, float, float], Floats]] = {
    Scale.none: lambda images, _mean, _std: _unit(images),
    Scale.unit: lambda images, _mean, _std: _unit(images),
    Scale.centered: _centered,
    Scale.standardize: _standardized,
}


def scale_images(images: Images, scale: Scale, mean: float, std: float) -> Floats:
    """uint8 pixels -> float32: unit [0, 1], centered [-0.5, 0.5], or standardized (x/255 - mean) / std."""
    return SCALES[scale](images, mean, std)


def one_hot(labels: Labels, num_classes: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.eye(num_classes, dtype=dtype)[labels]


def extra_label_columns(dataset: DatasetSpec, enabled: bool, reserved: set[str], key: str) -> list[tuple[int, str]]:
    """(index, name) of the label-table columns an export adds beside its label: every column
    but the class label itself, which the export's ``label`` column already holds (counting
    from 0). Empty when ``enabled`` is off or the dataset's labels are not a table.

    A name the export uses for its own columns (``reserved``) is refused, naming ``key``.
    """
    if not enabled or dataset.labels.layout is not LabelLayout.idx_table:
        return []
    columns = [(index, name) for index, name in enumerate(dataset.labels.columns) if index != dataset.labels.column]
    for _, name in columns:
        if name in reserved:
            raise ConfigError(
                f"{key}: the label table column {name!r} would repeat a column the export writes itself; "
                "rename it in the dataset's labels.columns"
            )
    return columns


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


def encode_rows(images: NpyFile, start: int, stop: int, invert: bool) -> list[bytes]:
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
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def encoded_ranges(
    images: NpyFile, pool: ProcessPoolExecutor | None, invert: bool = False
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


def run_export(
    format_name: str,
    export: Callable[[Params, str, list[DecodedSplit], Path], str],
    argv: list[str] | None,
    doc: str,
) -> int:
    """The shell of every export stage: the decoded folder in, one folder out
    (``data/<dataset>/export/<format>/``, replaced as a whole only on success) and, with
    ``--sums``, a sha256sum-style file covering every file of that folder."""
    parser = stage_parser(doc)
    parser.add_argument("decoded", type=Path, help="decoded/ folder written by the decode stage")
    parser.add_argument("output", type=Path, help="the export folder to write")
    parser.add_argument("--sums", type=Path, help="write sha256 lines of the output here")
    args: argparse.Namespace = parser.parse_args(argv)

    def work(params: Params) -> str:
        splits = open_decoded(args.decoded, params.dataset(args.dataset))
        with atomic_dir(args.output) as staging:
            summary = export(params, args.dataset, splits, staging)
        if args.sums:
            write_sha256sums(args.output, args.sums)
        return summary

    return run_stage(f"export@{args.dataset}-{format_name}", work, args.params)
