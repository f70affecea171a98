"""The decoded intermediate: ``data/<dataset>/decoded/``, one ``.npy`` file per split and kind.

- ``<split>_images.npy``: (n, rows, cols) uint8, upright (transposed sources are turned),
- ``<split>_labels.npy``: (n,) uint8, counting from 0 (the dataset's label offset applied),
- ``<split>_label_table.npy``: (n, columns) int32, for datasets whose labels are a table (QMNIST).

Plain ``.npy`` so that anyone can ``np.load(path, mmap_mode="r")`` them; the stages read them
a slice at a time (:class:`mnist_pipeline.rows.RowFile`), so every stage's memory stays bounded
whatever the dataset size. The files are read as hostile: header, dtype, shape and label range are checked before use.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from mnist_pipeline.config import DatasetSpec
from mnist_pipeline.errors import DatasetError
from mnist_pipeline.fsio import atomic_path
from mnist_pipeline.names import images_path, labels_path, table_path
from mnist_pipeline.rows import RowFile

Images = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.uint8]
Table = npt.NDArray[np.int32]
#: Rows per slice: 10,000 MNIST images are 7.8 MB; every stage's working set is a few slices.
BATCH_ROWS = 10_000
_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 16


def open_npy(path: Path, dtype: np.dtype[Any], trailing_shape: tuple[int, ...] | None) -> RowFile:
    """Open ``path`` after checking its header: ``dtype``, C order, and (when given) the shape
    after the first axis; the file size must match the header exactly."""
    try:
        with path.open("rb") as stream:
            header = _read_header(stream, path)
            data_offset = stream.tell()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: missing (the decode stage writes it)") from exc
    found_dtype, fortran, shape = header
    if found_dtype != dtype or fortran or not shape:
        raise DatasetError(f"{path}: expected a C-ordered {dtype} array, found {found_dtype} shape {shape}")
    if trailing_shape is not None and shape[1:] != trailing_shape:
        raise DatasetError(f"{path}: expected shape (n, {', '.join(map(str, trailing_shape))}), found {shape}")
    npy = RowFile(path=path, dtype=dtype, shape=shape, data_offset=data_offset)
    expected = data_offset + len(npy) * npy.row_bytes
    if path.stat().st_size != expected:
        raise DatasetError(f"{path}: header {shape} needs {expected} bytes, found {path.stat().st_size}")
    return npy


def _read_header(stream: BinaryIO, path: Path) -> tuple[np.dtype[Any], bool, tuple[int, ...]]:
    """Parse a .npy header without numpy's pickle-capable loader (literal dict only)."""
    prefix = stream.read(len(_MAGIC) + 2)
    if len(prefix) < len(_MAGIC) + 2 or prefix[: len(_MAGIC)] != _MAGIC:
        raise DatasetError(f"{path}: expected a .npy file (magic \\x93NUMPY), found {prefix[:8]!r}")
    major = prefix[len(_MAGIC)]
    size_bytes = 2 if major == 1 else 4
    length = int.from_bytes(stream.read(size_bytes), "little")
    if major not in (1, 2, 3) or length > _MAX_HEADER:
        raise DatasetError(f"{path}: unsupported .npy version {major} or header of {length} bytes")
    try:
        header = ast.literal_eval(stream.read(length).decode("latin1"))
        dtype = np.dtype(header["descr"])
        fortran = bool(header["fortran_order"])
        shape = tuple(int(dim) for dim in header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: unreadable .npy header: {exc}") from exc
    if dtype.hasobject or any(dim < 0 for dim in shape):
        raise DatasetError(f"{path}: refusing a .npy of {dtype} shape {shape} (objects or negative sizes)")
    return dtype, fortran, shape


@contextmanager
def npy_writer(path: Path, dtype: np.dtype[Any], shape: tuple[int, ...]) -> Iterator[BinaryIO]:
    """Write a .npy of known ``shape`` a slice at a time: the caller writes the raw C-order
    rows to the yielded stream; the file appears only if exactly that many bytes came."""
    with atomic_path(path) as temp, temp.open("wb") as out:
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        )
        start = out.tell()
        yield out
        written = out.tell() - start
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if written != expected:
            raise DatasetError(f"{path}: wrote {written} bytes for shape {shape}, expected {expected}")


@dataclass(frozen=True)
class DecodedSplit:
    name: str
    images: RowFile
    labels: RowFile
    table: RowFile | None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int]:
        rows, cols = self.images.shape[1:]
        return rows, cols


def open_decoded(decoded_dir: Path, dataset: DatasetSpec) -> list[DecodedSplit]:
    """Every split of ``dataset`` in config order, each file checked against the config:
    dtype, shape, count, and every label within the class range."""
    rows, cols = dataset.image_shape
    splits = []
    for name, spec in dataset.splits.items():
        images = open_npy(images_path(decoded_dir, name), np.dtype(np.uint8), (rows, cols))
        labels = open_npy(labels_path(decoded_dir, name), np.dtype(np.uint8), ())
        width = dataset.labels.table_width
        table = None if width is None else open_npy(table_path(decoded_dir, name), np.dtype(np.int32), (width,))
        for array in (images, labels, table):
            if array is not None and len(array) != spec.count:
                raise DatasetError(f"{array.path}: expected {spec.count} rows (datasets config), found {len(array)}")
        check_label_range(labels, len(dataset.classes))
        splits.append(DecodedSplit(name=name, images=images, labels=labels, table=table))
    return splits


def check_label_range(labels: RowFile, num_classes: int) -> None:
    for start in range(0, len(labels), BATCH_ROWS * 10):
        part = labels.read(start, start + BATCH_ROWS * 10)
        if len(part) and int(part.max()) >= num_classes:
            bad = int(np.argmax(part >= num_classes))
            raise DatasetError(
                f"{labels.path}: expected labels 0..{num_classes - 1}, found {int(part[bad])} at index {start + bad}"
            )


def batch_ranges(count: int, batch: int | None = None) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges covering ``count`` rows; ``batch`` defaults to BATCH_ROWS as it is
    when called (tests shrink it to prove the batch path gives the same bytes)."""
    size = batch or BATCH_ROWS
    for start in range(0, count, size):
        yield start, min(start + size, count)


@dataclass(frozen=True)
class Batch:
    """Consecutive rows of an export split: images, labels and (label tables) the table."""

    images: Images
    labels: Labels
    table: Table | None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ExportSplit:
    """A split as an export writes it: a decoded split, or the rows of one chosen by a
    validation carve (``rows``: sorted indices into ``source``)."""

    name: str
    source: DecodedSplit
    rows: npt.NDArray[np.intp] | None = None

    def __len__(self) -> int:
        return len(self.source) if self.rows is None else len(self.rows)

    def select(self, array: RowFile, batch: int | None = None) -> Iterator[npt.NDArray[Any]]:
        """The rows of ``array`` (one file of the source split) that belong to this split, in
        order, read a window of source rows at a time: one file per pass."""
        for start, stop in batch_ranges(len(array), batch):
            window = array.read(start, stop)
            if self.rows is None:
                yield window
                continue
            low, high = np.searchsorted(self.rows, (start, stop))
            if low < high:
                yield window[self.rows[low:high] - start]

    def batches(self, batch: int | None = None) -> Iterator[Batch]:
        """The split's rows in order: images, labels and table read window by window."""
        source = self.source
        tables: Iterator[Table | None] = (
            self.select(source.table, batch) if source.table is not None else itertools.repeat(None)
        )
        for images, labels, table in zip(
            self.select(source.images, batch), self.select(source.labels, batch), tables, strict=False
        ):
            yield Batch(images=images, labels=labels, table=table)


#: bincount widens its input to int64: in slices of 1 Mi pixels that copy stays at 8 MiB.
HISTOGRAM_SLICE = 1 << 20


def add_to_histogram(histogram: npt.NDArray[np.float64], images: Images) -> None:
    """Add the pixel counts of ``images`` to a 256-bin ``histogram``, in bounded memory."""
    flat = images.reshape(-1)
    for start in range(0, len(flat), HISTOGRAM_SLICE):
        histogram += np.bincount(flat[start : start + HISTOGRAM_SLICE], minlength=256)


def moments(histogram: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Mean and std of the pixel values (0-255) from their histogram: exact, no float copy."""
    values = np.arange(256, dtype=np.float64)
    total = max(histogram.sum(), 1.0)
    mean = float(histogram @ values) / total
    return mean, max(float(histogram @ values**2) / total - mean**2, 0.0) ** 0.5
