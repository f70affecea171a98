"""export_csv@<dataset> stage: one CSV per split (``<split>.csv``, or ``.csv.gz``; ``val`` right
after ``train`` when ``validation_size`` is set), one row per image in dataset order. Default:
Kaggle's header ``label,pixel0,...,pixel783``, the label counting from 0, pixels as integers 0-255.

With ``extended_labels`` and a dataset whose labels are a table (QMNIST), every table column but
the class label (which the ``label`` column already holds) follows the label, named as in the
dataset's ``labels.columns``: ``label,nist_series,writer_id,...,pixel0,...``, or at the end of the
row with ``label_position: last``. For datasets with plain labels the option does nothing.

Rows are formatted with a token table: every cell is one of 256 pixel strings, a label string or
(label tables) one of the values of the chunk, so a chunk of rows becomes bytes with two numpy
operations instead of millions of Python ``str`` calls. Splits are read a batch at a time.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from mnist_pipeline.config import DatasetSpec, Params
from mnist_pipeline.csv_options import CSV, CsvOptions, CsvScale, LabelPosition
from mnist_pipeline.decoded import Batch, DecodedSplit, ExportSplit
from mnist_pipeline.exports import Write, run_export
from mnist_pipeline.validation import with_validation

#: Rows formatted at once: the token lookup makes (rows, cells, token width) bytes, ~15 MB here.
ROWS_PER_CHUNK = 2000
#: Token table rows: pixel tokens, then label tokens, then the chunk's extra values; adding the
#: table's ``row_end`` to a code selects the same token ending in a newline instead of a comma.
_PIXEL, _LABEL, _EXTRA = 0, 256, 512
Codes = npt.NDArray[np.int64]
T = TypeVar("T")

PIXEL_TOKENS: dict[CsvScale, Callable[[int], list[str]]] = {
    CsvScale.none: lambda _decimals: [str(value) for value in range(256)],
    CsvScale.unit: lambda decimals: [f"{value / 255:.{decimals}f}" for value in range(256)],
}


def token_table(pixels: list[str], labels: list[str], extras: list[str]) -> npt.NDArray[np.uint8]:
    """Rows of NUL-padded ASCII: pixel+',' | label+',' | extra+',', then the same ending in '\\n'."""
    values = [*pixels, *labels, *[""] * (_EXTRA - _LABEL - len(labels)), *extras]
    cells = [value + "," for value in values] + [value + "\n" for value in values]
    table = np.array(cells, dtype=np.bytes_)
    return table.view(np.uint8).reshape(len(cells), table.itemsize)


#: Which of (label group, pixel group) comes first in a row.
GROUP_ORDER: dict[LabelPosition, tuple[int, int]] = {LabelPosition.first: (0, 1), LabelPosition.last: (1, 0)}


def in_column_order(label: T, pixels: T, label_position: LabelPosition) -> list[T]:
    groups = (label, pixels)
    return [groups[index] for index in GROUP_ORDER[label_position]]


def csv_chunk(
    batch: Batch, pixels: list[str], labels: list[str], extra_columns: list[int], label_position: LabelPosition
) -> bytes:
    """The CSV lines of ``batch``: the label (then the extra columns) and the pixels, in column order."""
    extras: list[str] = []
    label_codes: Codes = batch.labels.astype(np.int64)[:, None] + _LABEL
    if extra_columns and batch.table is not None:
        values, inverse = np.unique(batch.table[:, extra_columns], return_inverse=True)
        extras = [str(value) for value in values.tolist()]
        label_codes = np.hstack([label_codes, inverse.reshape(len(batch), -1) + _EXTRA])
    pixel_codes: Codes = batch.images.reshape(len(batch), -1).astype(np.int64) + _PIXEL
    codes = np.hstack(in_column_order(label_codes, pixel_codes, label_position))
    codes[:, -1] += _EXTRA + len(extras)  # the last cell of a row ends with a newline, not a comma
    cells = token_table(pixels, labels, extras)[codes]
    text: npt.NDArray[np.uint8] = cells[cells != 0]  # the NUL padding of short tokens dropped
    return text.tobytes()


def header_line(num_pixels: int, extra_names: list[str], label_position: LabelPosition) -> bytes:
    label = ["label", *extra_names]
    pixel_names = [f"pixel{i}" for i in range(num_pixels)]
    columns = [name for group in in_column_order(label, pixel_names, label_position) for name in group]
    return (",".join(columns) + "\n").encode("ascii")


def csv_chunks(split: ExportSplit, options: CsvOptions, num_classes: int, extra_columns: list[int]) -> Iterator[bytes]:
    """The bytes of the split's rows, a chunk of ``ROWS_PER_CHUNK`` rows at a time."""
    pixels = PIXEL_TOKENS[options.scale](options.decimals)
    labels = [str(label) for label in range(num_classes)]
    for batch in split.batches():
        for start in range(0, len(batch), ROWS_PER_CHUNK):
            rows = slice(start, start + ROWS_PER_CHUNK)
            chunk = Batch(
                images=batch.images[rows],
                labels=batch.labels[rows],
                table=None if batch.table is None else batch.table[rows],
            )
            yield csv_chunk(chunk, pixels, labels, extra_columns, options.label_position)


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


@contextmanager
def _plain(raw: BinaryIO) -> Iterator[Writable]:
    yield raw


@contextmanager
def _gzipped(raw: BinaryIO) -> Iterator[Writable]:
    # filename="" and mtime=0 keep the gzip header free of names and times.
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
        yield zipped


#: File suffix and stream wrapper per ``export.csv.gzip``.
CONTAINERS: dict[bool, tuple[str, Callable[[BinaryIO], AbstractContextManager[Writable]]]] = {
    False: (".csv", _plain),
    True: (".csv.gz", _gzipped),
}


def export_csv(options: CsvOptions, dataset: DatasetSpec, splits: list[DecodedSplit], out_dir: Path) -> str:
    """Write one CSV per split to ``out_dir``. Extra label columns never clash with the CSV's
    own (``label``, ``pixel<i>``): such names are refused when params are loaded."""
    rows, cols = dataset.image_shape
    exported = with_validation(splits, options.validation_size, options.validation_split, options.seed)
    extra = dataset.labels.extra_columns if options.extended_labels else []
    suffix, container = CONTAINERS[options.gzip]
    for split in exported:
        with (out_dir / f"{split.name}{suffix}").open("wb") as raw, container(raw) as out:
            if options.header:
                out.write(header_line(rows * cols, [name for _, name in extra], options.label_position))
            for chunk in csv_chunks(split, options, len(dataset.classes), [index for index, _ in extra]):
                out.write(chunk)
    return ", ".join(f"{split.name}{suffix} {len(split):,} rows" for split in exported)


def prepare(options: CsvOptions, params: Params, dataset_name: str) -> Write:
    return functools.partial(export_csv, options, params.dataset(dataset_name))


def main(argv: list[str] | None = None) -> int:
    return run_export(CSV, prepare, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
