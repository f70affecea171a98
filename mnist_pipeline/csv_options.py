"""The CSV export's options (``export.csv``, ``datasets.<d>.export.csv``): their types and the
rules types cannot express. The CSV export imports this module, and ``check`` through
mnist_pipeline.formats: a change here re-runs CSV exports only."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mnist_pipeline.config import DatasetSpec, FormatOptions, Problems
from mnist_pipeline.validation_options import SplitMethod, validation_size_problems

MAX_DECIMALS = 10


class CsvScale(enum.Enum):
    none = "none"
    unit = "unit"


class LabelPosition(enum.Enum):
    first = "first"
    last = "last"


@dataclass
class CsvOptions:
    header: bool
    label_position: LabelPosition
    scale: CsvScale
    decimals: int
    gzip: bool
    validation_size: int
    validation_split: SplitMethod
    seed: int
    extended_labels: bool


def csv_problems(options: CsvOptions, dataset: DatasetSpec) -> Problems:
    problems = validation_size_problems(options.validation_size, dataset)
    if not 0 <= options.decimals <= MAX_DECIMALS:
        problems.append(("decimals", f"expected 0 to {MAX_DECIMALS}, found {options.decimals}"))
    return problems


CSV = FormatOptions("csv", CsvOptions, csv_problems)
