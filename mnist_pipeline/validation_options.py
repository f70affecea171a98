"""The options of the validation split the npz and CSV exports can carve from the training
images: how its rows are chosen, and the rule its size follows.

Apart from mnist_pipeline.validation, which carves the split with numpy, so that ``check``
validates these options without importing numpy.
"""

from __future__ import annotations

import enum

from mnist_pipeline.config import TRAIN_SPLIT, DatasetSpec, Problems


class SplitMethod(enum.Enum):
    first = "first"
    shuffle = "shuffle"


def validation_size_problems(size: int, dataset: DatasetSpec) -> Problems:
    """``validation_size``: 0, or fewer than the dataset's training images."""
    train = dataset.splits.get(TRAIN_SPLIT)
    if size < 0:
        return [("validation_size", f"expected >= 0, found {size}")]
    if size and train is None:
        return [("validation_size", f"expected 0: this dataset has no {TRAIN_SPLIT!r} split, found {size}")]
    if train is not None and size >= train.count:
        return [("validation_size", f"expected fewer than the {train.count} training images, found {size}")]
    return []
