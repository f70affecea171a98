"""export_npz@<dataset> stage: ``<dataset>.npz`` in Keras' layout (x_train, y_train, x_test,
y_test; uint8, images (n, rows, cols)) by default, reshaped by ``export.npz``: a validation split
(x_val, y_val, right after train), float32 scaling, flattening, one-hot labels, compression.

With ``extended_labels`` and a dataset whose labels are a table (QMNIST), each split also gets
``y_<split>_table``: the whole decoded table, (n, columns) int32, columns in the order of the
dataset's ``labels.columns``; for datasets with plain labels the option does nothing.

The file is written a batch of rows at a time (``mnist_pipeline.npzstream``), and is byte-identical
to ``np.savez_compressed`` (or ``np.savez``) of the same arrays held whole.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnist_pipeline.config import TRAIN_SPLIT, DatasetSpec, Params
from mnist_pipeline.decoded import DecodedSplit, ExportSplit, Images, add_to_histogram, moments
from mnist_pipeline.exports import Write, run_export
from mnist_pipeline.npz_options import NPZ, ArrayDtype, NpzOptions, Scale
from mnist_pipeline.npzstream import NpzArray, write_npz_stream
from mnist_pipeline.validation import with_validation

Floats = npt.NDArray[np.float32]
LABEL_DTYPES: dict[ArrayDtype, type[np.generic]] = {ArrayDtype.uint8: np.uint8, ArrayDtype.float32: np.float32}


def train_unit_moments(splits: list[ExportSplit]) -> tuple[float, float]:
    """Mean and std of the training images scaled to [0, 1], exact (from a histogram). The
    train split exists: ``standardize`` without one is refused when params are loaded."""
    train = next(split for split in splits if split.name == TRAIN_SPLIT)
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


def one_hot(labels: npt.NDArray[np.uint8], num_classes: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.eye(num_classes, dtype=dtype)[labels]


def _images(split: ExportSplit, options: NpzOptions, mean: float, std: float) -> Iterator[npt.NDArray[Any]]:
    for images in split.select(split.source.images):
        out: npt.NDArray[Any] = images
        if options.dtype is ArrayDtype.float32:
            out = scale_images(images, options.scale, mean, std)
        yield out.reshape(len(out), -1) if options.flatten else out


def _labels(split: ExportSplit, options: NpzOptions, num_classes: int) -> Iterator[npt.NDArray[Any]]:
    for labels in split.select(split.source.labels):
        yield one_hot(labels, num_classes, LABEL_DTYPES[options.dtype]) if options.one_hot else labels


def npz_arrays(splits: list[ExportSplit], options: NpzOptions, dataset: DatasetSpec) -> list[NpzArray]:
    """The arrays of the npz, keyed x_<split>, y_<split> (and y_<split>_table), train first;
    each reads its rows from the decoded files only when written."""
    standardize = options.scale is Scale.standardize
    mean, std = train_unit_moments(splits) if standardize else (0.0, 1.0)
    num_classes = len(dataset.classes)
    rows, cols = dataset.image_shape
    image_dtype = np.dtype(np.float32 if options.dtype is ArrayDtype.float32 else np.uint8)
    image_shape = (rows * cols,) if options.flatten else (rows, cols)
    label_dtype = np.dtype(LABEL_DTYPES[options.dtype] if options.one_hot else np.uint8)
    label_shape = (num_classes,) if options.one_hot else ()
    arrays = []
    for split in splits:
        n = len(split)
        arrays.append(NpzArray(f"x_{split.name}", image_dtype, (n, *image_shape), _images(split, options, mean, std)))
        arrays.append(NpzArray(f"y_{split.name}", label_dtype, (n, *label_shape), _labels(split, options, num_classes)))
        table = split.source.table
        if options.extended_labels and table is not None:
            arrays.append(NpzArray(f"y_{split.name}_table", table.dtype, (n, *table.shape[1:]), split.select(table)))
    return arrays


def export_npz(
    options: NpzOptions, dataset: DatasetSpec, splits: list[DecodedSplit], out_dir: Path, *, name: str
) -> str:
    """Write ``<name>.npz`` of ``splits`` to ``out_dir``; ``name`` is the dataset's."""
    exported = with_validation(splits, options.validation_size, options.validation_split, options.seed)
    arrays = npz_arrays(exported, options, dataset)
    npz_path = out_dir / f"{name}.npz"
    with npz_path.open("wb") as out:
        write_npz_stream(out, arrays, compressed=options.compressed)
    shapes = ", ".join(f"{array.key} {array.shape} {array.dtype}" for array in arrays)
    return f"{npz_path.name}: {shapes}"


def prepare(options: NpzOptions, params: Params, dataset_name: str) -> Write:
    return functools.partial(export_npz, options, params.dataset(dataset_name), name=dataset_name)


def main(argv: list[str] | None = None) -> int:
    return run_export(NPZ, prepare, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
