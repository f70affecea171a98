"""Files of fixed-size rows after a header, read a slice at a time: the IDX files decode reads
and the ``.npy`` files every later stage reads.

One ``pread`` per slice, never a memory map, whose touched pages all count as resident memory:
a stage's memory stays bounded whatever the file's size. Whoever opens a file checks its header
and its size against that header first (:func:`mnist_pipeline.idx.open_idx`,
:func:`mnist_pipeline.decoded.open_npy`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mnist_pipeline.errors import DatasetError


@dataclass(frozen=True)
class RowFile:
    """Rows of ``shape[1:]`` items of ``dtype`` (as stored: IDX is big-endian) from ``data_offset`` on."""

    path: Path
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    data_offset: int

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Rows [start, stop) in native byte order, as a new array (one pread); a ``stop`` past
        the last row reads to the end."""
        if start < 0:
            raise ValueError(f"{self.path}: rows from {start}: expected a start of 0 or more")
        stop = min(stop, len(self))
        count = max(stop - start, 0)
        with self.path.open("rb") as stream:
            data = os.pread(stream.fileno(), count * self.row_bytes, self.data_offset + start * self.row_bytes)
        if len(data) != count * self.row_bytes:
            # The size was checked on opening: the file was cut short since.
            raise DatasetError(f"{self.path}: file ends inside row {start + len(data) // max(self.row_bytes, 1)}")
        rows = np.frombuffer(data, dtype=self.dtype).reshape((count, *self.shape[1:]))
        return rows.astype(self.dtype.newbyteorder("="), copy=False)
