"""decode stage: IDX files -> the decoded folder (``mnist_pipeline.decoded``) and ``stats.json``.

The reader is strict (see ``mnist_pipeline.idx``); on top of the format this checks what the dataset
config promises: image shape, image and label counts, the label layout (a uint8 vector or an
int32 table) and every label within the class range once the dataset's offset is applied.
Transposed sources (EMNIST) are turned upright here, so every export sees upright images.
Work is done a slice of rows at a time: memory does not grow with the dataset.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnist_pipeline.config import DatasetSpec, LabelSpec, SplitSpec
from mnist_pipeline.decoded import add_to_histogram, batch_ranges, moments, npy_writer
from mnist_pipeline.errors import DatasetError
from mnist_pipeline.fsio import atomic_outputs
from mnist_pipeline.idx import open_idx
from mnist_pipeline.names import images_path, labels_path, payload_name, table_path
from mnist_pipeline.records import SplitStats, stats_document
from mnist_pipeline.rows import RowFile
from mnist_pipeline.stage import params_file, run_stage, stage_parser


def stored_labels(rows: npt.NDArray[Any], labels: LabelSpec) -> npt.NDArray[np.int64]:
    """Rows of a label file -> class labels as stored (before the offset): the rows themselves,
    or the label column of a table."""
    return (rows[:, labels.column] if labels.source.table else rows).astype(np.int64)


def check_images_header(images_idx: RowFile, shape: tuple[int, int], transposed: bool) -> None:
    stored = (shape[1], shape[0]) if transposed else shape
    if images_idx.dtype != np.dtype(">u1") or len(images_idx.shape) != 3 or images_idx.shape[1:] != stored:
        raise DatasetError(
            f"{images_idx.path}: expected uint8 images of shape (n, {stored[0]}, {stored[1]}), "
            f"found {images_idx.dtype.name} {images_idx.shape}"
        )


def check_labels_header(labels_idx: RowFile, labels: LabelSpec, images: int) -> None:
    dtype = np.dtype(labels.source.idx_dtype)
    columns = () if labels.table_width is None else (labels.table_width,)
    found = f"{labels_idx.dtype.name} {labels_idx.shape}"
    if labels_idx.dtype != dtype or labels_idx.shape[1:] != columns or len(labels_idx.shape) != 1 + len(columns):
        wanted = f"{dtype.name} of shape (n{''.join(f', {c}' for c in columns)})"
        raise DatasetError(f"{labels_idx.path}: expected labels {wanted} ({labels.layout.value}), found {found}")
    if len(labels_idx) != images:
        raise DatasetError(f"{labels_idx.path}: expected {images} labels (one per image), found {len(labels_idx)}")


def row_range(split: SplitSpec, available: int, path: Path) -> tuple[int, int]:
    """The rows of the source files this split takes."""
    start, stop = split.row_span
    if (split.rows is None and available != split.count) or stop > available:
        raise DatasetError(f"{path}: expected {split.count} images (rows {start}..{stop}), found {available}")
    return start, stop


def decode_split(name: str, split: SplitSpec, dataset: DatasetSpec, idx_dir: Path, decoded_dir: Path) -> SplitStats:
    """Write the split's decoded files a slice at a time; return its statistics."""
    rows, cols = dataset.image_shape
    num_classes = len(dataset.classes)
    images_idx = open_idx(idx_dir / payload_name(split.images.file, dataset.compression.value))
    labels_idx = open_idx(idx_dir / payload_name(split.labels.file, dataset.compression.value))
    check_images_header(images_idx, (rows, cols), dataset.transposed)
    check_labels_header(labels_idx, dataset.labels, len(images_idx))
    start, stop = row_range(split, len(images_idx), images_idx.path)
    histogram = np.zeros(256, dtype=np.float64)
    class_counts = np.zeros(num_classes, dtype=np.int64)
    with ExitStack() as files:
        images_out = files.enter_context(
            npy_writer(images_path(decoded_dir, name), np.dtype(np.uint8), (split.count, rows, cols))
        )
        labels_out = files.enter_context(npy_writer(labels_path(decoded_dir, name), np.dtype(np.uint8), (split.count,)))
        width = dataset.labels.table_width
        table_out = None
        if width is not None:
            shape = (split.count, width)
            table_out = files.enter_context(npy_writer(table_path(decoded_dir, name), np.dtype(np.int32), shape))
        for low, high in batch_ranges(stop - start):
            images = images_idx.read(start + low, start + high)
            if dataset.transposed:
                images = images.transpose(0, 2, 1)
            images_out.write(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
            add_to_histogram(histogram, images.astype(np.uint8, copy=False))
            label_rows = labels_idx.read(start + low, start + high)
            labels = checked_labels(labels_idx.path, stored_labels(label_rows, dataset.labels), dataset, start + low)
            labels_out.write(labels.astype(np.uint8).tobytes())
            class_counts += np.bincount(labels, minlength=num_classes)
            if table_out is not None:
                table_out.write(np.ascontiguousarray(label_rows, dtype=np.int32).tobytes())
    return split_stats(split.count, class_counts, histogram)


def checked_labels(
    path: Path, stored: npt.NDArray[np.int64], dataset: DatasetSpec, first_row: int
) -> npt.NDArray[np.int64]:
    """Stored labels minus the dataset's offset, every one within the class range."""
    labels = stored - dataset.labels.offset
    bad = np.flatnonzero((labels < 0) | (labels >= len(dataset.classes)))
    if len(bad):
        low, high = dataset.labels.offset, len(dataset.classes) - 1 + dataset.labels.offset
        index = int(bad[0])
        raise DatasetError(
            f"{path}: expected labels {low}..{high}, found {int(stored[index])} at index {first_row + index}"
        )
    return labels


def split_stats(count: int, class_counts: npt.NDArray[np.int64], histogram: npt.NDArray[np.float64]) -> SplitStats:
    mean, std = moments(histogram)
    return SplitStats(
        count=count,
        class_counts=[int(n) for n in class_counts],
        pixel_mean=round(mean, 4),
        pixel_std=round(std, 4),
        pixel_mean_unit=round(mean / 255, 6),
        pixel_std_unit=round(std / 255, 6),
    )


def decode(dataset: DatasetSpec, idx_dir: Path, decoded_dir: Path, stats_path: Path) -> str:
    # The arrays and their stats are replaced together: never one without the other.
    with atomic_outputs(decoded_dir, stats_path) as (staging, staged_stats):
        staging.mkdir()
        stats = {
            split_name: decode_split(split_name, split, dataset, idx_dir, staging)
            for split_name, split in dataset.splits.items()
        }
        staged_stats.write_bytes(stats_document(stats))
    counts = ", ".join(f"{split} {values.count:,}" for split, values in stats.items())
    return f"decoded {counts} -> {decoded_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("idx_dir", type=Path)
    parser.add_argument("decoded", type=Path, help="decoded/ folder to write")
    parser.add_argument("stats", type=Path, help="stats.json (DVC metrics) to write")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        f"decode@{args.dataset}",
        lambda params: decode(params.dataset(args.dataset), args.idx_dir, args.decoded, args.stats),
        params_file(args),
        writes=[args.decoded, args.stats],
    )


if __name__ == "__main__":
    raise SystemExit(main())
