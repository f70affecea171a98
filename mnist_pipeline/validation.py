"""The validation split the npz and CSV exports can carve from the training images: by row
index, so no image is copied until a batch is written.

``validation_size`` is checked against the training split with the export's options
(``mnist_pipeline.validation_options``): here it is known to be 0 or smaller than ``train``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from mnist_pipeline.config import TRAIN_SPLIT, VALIDATION_SPLIT
from mnist_pipeline.decoded import DecodedSplit, ExportSplit
from mnist_pipeline.validation_options import SplitMethod

Rows = npt.NDArray[np.intp]


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


def with_validation(splits: list[DecodedSplit], size: int, method: SplitMethod, seed: int) -> list[ExportSplit]:
    """The splits as an export writes them: ``train`` first, then (``size`` > 0) a ``val``
    split of ``size`` training rows, which ``train`` no longer holds, then the other splits in
    config order. Train first whatever the order of params.yaml, as Keras' file has it.

    Both parts keep the original order, so the result depends on the parameters only.
    """
    train = next((split for split in splits if split.name == TRAIN_SPLIT), None)
    others = [ExportSplit(name=split.name, source=split) for split in splits if split is not train]
    if train is None:
        return others
    if size == 0:
        return [ExportSplit(name=TRAIN_SPLIT, source=train), *others]
    chosen = VALIDATION_ROWS[method](len(train), size, seed)
    keep = np.ones(len(train), dtype=bool)
    keep[chosen] = False
    carved = [
        ExportSplit(name=TRAIN_SPLIT, source=train, rows=np.flatnonzero(keep).astype(np.intp)),
        ExportSplit(name=VALIDATION_SPLIT, source=train, rows=chosen),
    ]
    return carved + others
