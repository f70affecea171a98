"""The Parquet export's options (``export.parquet``, ``datasets.<d>.export.parquet``): their
types and the rules types cannot express. The Parquet export imports this module, and ``check``
through mnist_pipeline.formats: a change here re-runs Parquet exports only."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mnist_pipeline.config import DatasetSpec, FormatOptions, Problems

MAX_ROW_GROUP_SIZE = 1_000_000


class ParquetCompression(enum.Enum):
    none = "none"
    snappy = "snappy"
    zstd = "zstd"
    gzip = "gzip"


@dataclass
class ParquetOptions:
    compression: ParquetCompression
    row_group_size: int
    pixels: bool
    extended_labels: bool


def parquet_problems(options: ParquetOptions, _dataset: DatasetSpec) -> Problems:
    if not 1 <= options.row_group_size <= MAX_ROW_GROUP_SIZE:
        return [("row_group_size", f"expected 1 to {MAX_ROW_GROUP_SIZE}, found {options.row_group_size}")]
    return []


PARQUET = FormatOptions("parquet", ParquetOptions, parquet_problems)
