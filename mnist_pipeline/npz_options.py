"""The npz export's options (``export.npz``, ``datasets.<d>.export.npz``): their types and the
rules types cannot express. The npz export imports this module, and ``check`` through
mnist_pipeline.formats: a change here re-runs npz exports only."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mnist_pipeline.config import TRAIN_SPLIT, DatasetSpec, FormatOptions, Problems
from mnist_pipeline.validation_options import SplitMethod, validation_size_problems


class ArrayDtype(enum.Enum):
    uint8 = "uint8"
    float32 = "float32"


class Scale(enum.Enum):
    none = "none"
    unit = "unit"
    centered = "centered"
    standardize = "standardize"


@dataclass
class NpzOptions:
    compressed: bool
    validation_size: int
    validation_split: SplitMethod
    seed: int
    dtype: ArrayDtype
    scale: Scale
    flatten: bool
    one_hot: bool
    extended_labels: bool


def npz_problems(options: NpzOptions, dataset: DatasetSpec) -> Problems:
    problems = validation_size_problems(options.validation_size, dataset)
    if options.scale is Scale.standardize and TRAIN_SPLIT not in dataset.splits:
        problems.append(("scale", "'standardize' needs the train split's mean and std; this dataset has none"))
    if options.scale is not Scale.none and options.dtype is not ArrayDtype.float32:
        problems.append(("scale", f"{options.scale.value!r} needs export.npz.dtype float32, found uint8"))
    return problems


NPZ = FormatOptions("npz", NpzOptions, npz_problems)
