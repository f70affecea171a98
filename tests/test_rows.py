"""rows.RowFile: slices of an IDX or .npy file, one pread each, in native byte order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.decoded import open_npy
from mnist_pipeline.errors import DatasetError
from mnist_pipeline.idx import encode_idx, open_idx


def test_idx_slices_equal_the_whole_file_in_native_order(tmp_path: Path) -> None:
    table = np.arange(-60, 60, dtype=np.int32).reshape(20, 6) * 70_000
    path = tmp_path / "table-idx2-int"
    path.write_bytes(encode_idx(table))
    rows = open_idx(path)
    assert (len(rows), rows.shape[1:], rows.row_bytes) == (20, (6,), 24)
    parts = [rows.read(start, start + 7) for start in range(0, 20, 7)]
    assert all(part.dtype == np.dtype("=i4") for part in parts)
    np.testing.assert_array_equal(np.concatenate(parts), table)
    assert rows.read(18, 99).shape == (2, 6)  # a stop past the end is clamped


def test_npy_slices_equal_the_whole_file(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(11, 4, 3), dtype=np.uint8)
    path = tmp_path / "train_images.npy"
    np.save(path, images)
    rows = open_npy(path, np.dtype(np.uint8), (4, 3))
    np.testing.assert_array_equal(np.concatenate([rows.read(0, 5), rows.read(5, 11)]), images)


def test_a_file_cut_short_after_opening_is_one_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(encode_idx(np.arange(10, dtype=np.uint8)))
    rows = open_idx(path)
    with path.open("r+b") as stream:
        stream.truncate(path.stat().st_size - 3)
    with pytest.raises(DatasetError, match=f"^{path}: file ends inside row 7$"):
        rows.read(0, 10)
