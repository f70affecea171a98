"""The contract of ``decoded.npz``: one ``<split>_images`` (n, rows, cols) uint8 and one
``<split>_labels`` (n,) uint8 array per split, lossless, in the order of the source files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pipeline.errors import DatasetError
from pipeline.fsio import write_npz

Images = npt.NDArray[np.uint8]
HISTOGRAM_SLICE = 1 << 20
Labels = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class SplitArrays:
    images: Images
    labels: Labels

    def __len__(self) -> int:
        return len(self.labels)


def write_decoded(path: Path, splits: dict[str, SplitArrays]) -> None:
    arrays: dict[str, npt.NDArray[np.uint8]] = {}
    for name, split in splits.items():
        arrays[f"{name}_images"] = split.images
        arrays[f"{name}_labels"] = split.labels
    write_npz(path, arrays, compressed=False)  # uncompressed: every export reads it back


def read_decoded(path: Path) -> dict[str, SplitArrays]:
    """Load every split of ``path``, checking the contract above."""
    with np.load(path, allow_pickle=False) as npz:
        names = sorted({key.rsplit("_", 1)[0] for key in npz.files}, key=_split_order)
        splits = {}
        for name in names:
            images, labels = npz[f"{name}_images"], npz[f"{name}_labels"]
            if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != (len(images),):
                raise DatasetError(
                    f"{path}: split {name!r}: expected uint8 images (n, rows, cols) and n labels, "
                    f"found {images.dtype} {images.shape} and {labels.dtype} {labels.shape}"
                )
            splits[name] = SplitArrays(images=images, labels=labels)
    return splits


def _split_order(name: str) -> tuple[int, str]:
    """train, then validation, then test, then anything else by name."""
    known = {"train": 0, "val": 1, "validation": 1, "test": 2}
    return known.get(name, 3), name


def pixel_moments(images: Images) -> tuple[float, float]:
    """Mean and std of the pixel values (0-255), exact and in bounded memory: a 256-bin
    histogram instead of a float copy of every pixel."""
    histogram = np.zeros(256, dtype=np.float64)
    flat = images.reshape(-1)
    # bincount widens its input to int64: in slices, that copy stays at 8 MiB, not 8x the images.
    for start in range(0, len(flat), HISTOGRAM_SLICE):
        histogram += np.bincount(flat[start : start + HISTOGRAM_SLICE], minlength=256)
    values = np.arange(256, dtype=np.float64)
    total = max(histogram.sum(), 1.0)
    mean = float(histogram @ values) / total
    return mean, max(float(histogram @ values**2) / total - mean**2, 0.0) ** 0.5
