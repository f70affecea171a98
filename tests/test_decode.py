"""decode stage: arrays, stats, and what the dataset config promises about them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline import decode
from pipeline.decoded import read_decoded
from pipeline.idx import encode_idx
from tests.conftest import TinyDataset, params_for, write_params


def write_idx_dir(tmp_path: Path, tiny: TinyDataset, **replace: bytes) -> Path:
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    names = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    for split, (images, labels) in tiny.arrays.items():
        image_name, label_name = names[split]
        (idx_dir / image_name).write_bytes(replace.get(f"{split}_images", encode_idx(images)))
        (idx_dir / label_name).write_bytes(replace.get(f"{split}_labels", encode_idx(labels)))
    return idx_dir


def run_decode(tmp_path: Path, tiny: TinyDataset, **replace: bytes) -> tuple[int, Path, Path]:
    idx_dir = write_idx_dir(tmp_path, tiny, **replace)
    decoded, stats = tmp_path / "decoded.npz", tmp_path / "stats.json"
    params = write_params(tmp_path, params_for(tiny, ["unused"]))
    code = decode.main(["--params", str(params), str(idx_dir), str(decoded), str(stats)])
    return code, decoded, stats


def test_decodes_lossless_arrays_and_stats(tmp_path: Path, tiny: TinyDataset) -> None:
    code, decoded, stats_path = run_decode(tmp_path, tiny)
    assert code == 0
    splits = read_decoded(decoded)
    assert list(splits) == ["train", "test"]
    with np.load(decoded) as npz:
        assert sorted(npz.files) == ["test_images", "test_labels", "train_images", "train_labels"]
    for name, (images, labels) in tiny.arrays.items():
        np.testing.assert_array_equal(splits[name].images, images)
        np.testing.assert_array_equal(splits[name].labels, labels)
    stats = json.loads(stats_path.read_text())
    train_images, train_labels = tiny.arrays["train"]
    assert stats["train"]["count"] == len(train_labels)
    assert stats["train"]["class_counts"] == {str(c): int((train_labels == c).sum()) for c in range(10)}
    assert stats["train"]["pixel_mean"] == pytest.approx(train_images.mean(), abs=1e-4)
    assert stats["train"]["pixel_std"] == pytest.approx(train_images.std(), abs=1e-4)


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"train_labels": encode_idx(np.zeros(59, np.uint8))}, "expected 60 labels (one per image), found 59"),
        ({"test_labels": encode_idx(np.full(20, 10, np.uint8))}, "expected labels 0..9, found 10 at index 0"),
        ({"train_images": encode_idx(np.zeros((60, 27, 28), np.uint8))}, "shape (n, 28, 28), found uint8 (60, 27, 28)"),
        ({"train_images": encode_idx(np.zeros((60, 28, 28), np.int8))}, "found int8"),
        ({"train_labels": encode_idx(np.zeros((60, 1), np.uint8))}, "expected uint8 labels of shape (n,)"),
        ({"train_images": b"\x00\x00\x08\x03" + struct.pack(">III", 60, 28, 28)}, "truncated payload"),
        ({"train_images": encode_idx(np.zeros((60, 28, 28), np.uint8)) + b"\x00"}, "trailing bytes"),
        ({"train_images": b"\x00\x01\x08\x03"}, "expected magic 0x0000"),
        ({"train_images": b"\x00\x00\x07\x03"}, "unknown dtype code 0x07"),
    ],
    ids=["count", "label-range", "dims", "dtype", "label-shape", "truncated", "trailing", "magic", "dtype-code"],
)
def test_bad_idx_fails_with_one_line_and_no_output(
    tmp_path: Path, tiny: TinyDataset, replace: dict[str, bytes], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, decoded, stats = run_decode(tmp_path, tiny, **replace)
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("decode: error: ") and "-ubyte" in line and message in line
    assert not decoded.exists() and not stats.exists()
