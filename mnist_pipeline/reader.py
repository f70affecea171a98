"""Python reader for the exported npz, in the shape of the classic TensorFlow tutorial's
``input_data.read_data_sets``: train / validation / test ``DataSet`` objects with ``images``,
``labels``, ``num_examples`` and ``next_batch``.

    from mnist_pipeline.reader import read_data_sets
    mnist = read_data_sets("data/mnist/export/npz/mnist.npz", one_hot=True)
    images, labels = mnist.train.next_batch(100)   # float32 (100, 784), float32 (100, 10)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

DEFAULT_VALIDATION_SIZE = 5000
#: The arrays the classic interface needs: a train and a test split.
CLASSIC_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class DataSet:
    """One split. ``next_batch`` walks it in epochs; with ``shuffle`` each epoch has its own
    permutation drawn from a generator seeded once, so a run is repeatable."""

    images: npt.NDArray[Any]
    labels: npt.NDArray[Any]
    seed: int | None = 0
    epochs_completed: int = 0
    _order: npt.NDArray[np.intp] = field(init=False, repr=False)
    _position: int = field(default=0, init=False, repr=False)
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self._rng = np.random.default_rng(self.seed)
        self._order = np.arange(len(self.images))

    @property
    def num_examples(self) -> int:
        return len(self.images)

    def next_batch(self, batch_size: int, shuffle: bool = True) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """The next ``batch_size`` examples; a batch that crosses an epoch end takes the rest of
        the old epoch and the start of the next, reshuffled (as the TensorFlow reader did)."""
        if not 0 < batch_size <= self.num_examples:
            raise ValueError(f"batch_size must be 1..{self.num_examples}, got {batch_size}")
        if self._position == 0 and self.epochs_completed == 0 and shuffle:
            self._order = self._rng.permutation(self.num_examples)
        end = self._position + batch_size
        if end <= self.num_examples:
            chosen = self._order[self._position : end]
            self._position = end
        else:
            rest = self._order[self._position :]
            self.epochs_completed += 1
            self._order = self._rng.permutation(self.num_examples) if shuffle else np.arange(self.num_examples)
            self._position = batch_size - len(rest)
            chosen = np.concatenate([rest, self._order[: self._position]])
        return self.images[chosen], self.labels[chosen]


#: A split's images and labels.
Split = tuple[npt.NDArray[Any], npt.NDArray[Any]]


class Datasets(NamedTuple):
    train: DataSet
    validation: DataSet
    test: DataSet


def read_data_sets(
    npz_path: str | Path,
    *,
    one_hot: bool = False,
    dtype: type[np.floating[Any]] | type[np.uint8] = np.float32,
    reshape: bool = True,
    validation_size: int = DEFAULT_VALIDATION_SIZE,
    num_classes: int | None = None,
    seed: int | None = 0,
) -> Datasets:
    """Read a Keras-style npz (x_train, y_train, x_test, y_test, optionally x_val, y_val).

    Without x_val in the file, validation is the first ``validation_size`` training images.
    ``dtype`` float32 scales uint8 pixels to [0, 1] (float pixels in the file are kept as the
    export scaled them); uint8 needs uint8 pixels in the file. ``reshape`` flattens images to
    (n, pixels).
    Labels are one-hot rows with ``one_hot``, class numbers without, whichever the npz holds
    (``export.npz.one_hot``); ``num_classes`` defaults to the file's: the width of its one-hot
    rows, else one more than its largest label (26 for EMNIST letters, 62 for byclass).
    """
    arrays = _classic_arrays(npz_path, dtype)
    classes = _num_classes(arrays) if num_classes is None else num_classes
    train, validation = _train_and_validation(arrays, validation_size)
    test = (arrays["x_test"], arrays["y_test"])

    def prepare(split: Split, offset: int) -> DataSet:
        images = _as_images(split[0], dtype, reshape)
        labels = _as_labels(split[1], one_hot, classes)
        return DataSet(images, labels, seed=None if seed is None else seed + offset)

    return Datasets(prepare(train, 0), prepare(validation, 1), prepare(test, 2))


def _classic_arrays(npz_path: str | Path, dtype: type[np.generic]) -> dict[str, npt.NDArray[Any]]:
    """Every array of the npz, once it is known to hold a train + test pair ``dtype`` can give."""
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    missing = [key for key in CLASSIC_KEYS if key not in arrays]
    if missing:
        # qmnist_subsets (test10k, test50k) and qmnist_nist (nist) have no train + test pair.
        raise ValueError(
            f"{npz_path}: expected {', '.join(CLASSIC_KEYS)} (the classic reader's train and test splits), "
            f"found {', '.join(sorted(arrays)) or 'no arrays'}; read this file's splits with np.load"
        )
    images_dtype = arrays["x_train"].dtype
    if dtype == np.uint8 and images_dtype != np.uint8:
        # The floats are scaled (export.npz.scale) or standardized: no uint8 pixels to give back.
        raise ValueError(
            f"{npz_path}: dtype uint8: expected uint8 images in the npz (export.npz.dtype=uint8), found "
            f"{images_dtype}; read it with a float dtype"
        )
    return arrays


def _num_classes(arrays: dict[str, npt.NDArray[Any]]) -> int:
    """The width of the file's one-hot rows, else one more than its largest label."""
    labels_in_file = [arrays[key] for key in ("y_train", "y_val", "y_test") if key in arrays]
    one_hot_rows = [y for y in labels_in_file if y.ndim == 2]
    if one_hot_rows:
        return int(one_hot_rows[0].shape[1])
    return 1 + max(int(y.max(initial=0)) for y in labels_in_file)


def _train_and_validation(arrays: dict[str, npt.NDArray[Any]], validation_size: int) -> tuple[Split, Split]:
    """The file's own validation split, else the first ``validation_size`` training images."""
    if "x_val" in arrays:
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_val"], arrays["y_val"])
    if not 0 <= validation_size <= len(arrays["x_train"]):
        raise ValueError(f"validation_size must be 0..{len(arrays['x_train'])}, got {validation_size}")
    images, labels = arrays["x_train"], arrays["y_train"]
    return (images[validation_size:], labels[validation_size:]), (images[:validation_size], labels[:validation_size])


def _as_images(images: npt.NDArray[Any], dtype: type[np.generic], reshape: bool) -> npt.NDArray[Any]:
    if images.dtype == np.uint8 and dtype != np.uint8:
        images = images.astype(dtype) / dtype(255)
    elif images.dtype != dtype:
        images = images.astype(dtype)  # float32 in the file, float64 asked for: the values as they are
    if reshape:
        images = images.reshape(len(images), int(np.prod(images.shape[1:])))
    return images


def _as_labels(labels: npt.NDArray[Any], one_hot: bool, num_classes: int) -> npt.NDArray[Any]:
    converted: npt.NDArray[Any] = labels
    if one_hot and labels.ndim == 1:
        converted = np.eye(num_classes, dtype=np.float32)[labels]
    elif not one_hot and labels.ndim == 2:
        converted = labels.argmax(axis=1).astype(np.uint8 if num_classes <= 256 else np.int64)
    return converted
