"""export@npz stage: a Keras-style ``mnist.npz`` (x_train, y_train, x_test, y_test; uint8, (n, 28, 28))
by default, reshaped by ``export.npz``: validation split (x_val, y_val), float32 scaling,
flattening, one-hot labels, compression."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from pipeline.config import ArrayDtype, NpzOptions, Params, Scale
from pipeline.decoded import SplitArrays, read_decoded
from pipeline.fsio import write_npz
from pipeline.images import one_hot, scale_images, unit_moments, with_validation
from pipeline.stage import run_export


def npz_arrays(
    splits: dict[str, SplitArrays], options: NpzOptions, num_classes: int
) -> dict[str, npt.NDArray[np.generic]]:
    """The arrays of the npz export, keyed x_<split> / y_<split>, train first."""
    ordered = with_validation(
        splits, options.validation_size, options.validation_split, options.seed, "export.npz.validation_size"
    )
    mean, std = unit_moments(ordered["train"].images) if options.scale is Scale.standardize else (0.0, 1.0)
    label_dtype = np.float32 if options.dtype is ArrayDtype.float32 else np.uint8
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for name, split in ordered.items():
        images: npt.NDArray[np.generic] = split.images
        if options.dtype is ArrayDtype.float32:
            images = scale_images(split.images, options.scale, mean, std)
        if options.flatten:
            images = images.reshape(len(images), -1)
        arrays[f"x_{name}"] = images
        arrays[f"y_{name}"] = one_hot(split.labels, num_classes, label_dtype) if options.one_hot else split.labels
    return arrays


def export_npz(params: Params, decoded_path: Path, npz_path: Path) -> str:
    options = params.export.npz
    arrays = npz_arrays(read_decoded(decoded_path), options, len(params.dataset.classes))
    write_npz(npz_path, arrays, compressed=options.compressed)
    shapes = ", ".join(f"{key} {array.shape}" for key, array in arrays.items())
    return f"{shapes} -> {npz_path}"


def main(argv: list[str] | None = None) -> int:
    return run_export("npz", export_npz, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
