"""decode stage: arrays, stats, and what the dataset config promises about them."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnist_pipeline import decode
from mnist_pipeline import decoded as decoded_module
from mnist_pipeline.config import DatasetSpec, params_from_dict
from mnist_pipeline.errors import DatasetError
from mnist_pipeline.idx import encode_idx
from tests.support.data import TinyDataset, params_for, write_decoded_dir, write_params


def write_idx_dir(folder: Path, tiny: TinyDataset, **replace: bytes) -> Path:
    idx_dir = folder / "idx"
    idx_dir.mkdir(parents=True)
    names = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    for split, (images, labels) in tiny.arrays.items():
        image_name, label_name = names[split]
        (idx_dir / image_name).write_bytes(replace.get(f"{split}_images", encode_idx(images)))
        (idx_dir / label_name).write_bytes(replace.get(f"{split}_labels", encode_idx(labels)))
    return idx_dir


def run_decode(folder: Path, tiny: TinyDataset, **replace: bytes) -> tuple[int, Path, Path]:
    idx_dir = write_idx_dir(folder, tiny, **replace)
    # Not decoded/ and stats.json: below data/<name>/ those are decode@<name>'s (names.STAGE_OUTPUTS).
    decoded, stats = folder / "arrays", folder / "stats-out.json"
    params = write_params(folder, params_for(tiny, ["unused"]))
    code = decode.main(["--params", str(params), "--dataset", "mnist", str(idx_dir), str(decoded), str(stats)])
    return code, decoded, stats


def test_decodes_lossless_arrays_and_stats(tmp_path: Path, tiny: TinyDataset) -> None:
    code, decoded, stats_path = run_decode(tmp_path / "data", tiny)
    assert code == 0
    assert sorted(p.name for p in decoded.iterdir()) == [
        "test_images.npy",
        "test_labels.npy",
        "train_images.npy",
        "train_labels.npy",
    ]
    for name, (images, labels) in tiny.arrays.items():
        np.testing.assert_array_equal(np.load(decoded / f"{name}_images.npy"), images)
        np.testing.assert_array_equal(np.load(decoded / f"{name}_labels.npy"), labels)
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
        ({"train_labels": encode_idx(np.zeros((60, 1), np.uint8))}, "expected labels uint8 of shape (n) (idx_vector)"),
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
    code, decoded, stats = run_decode(tmp_path / "data", tiny, **replace)
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("decode@mnist: error: ") and "-ubyte" in line and message in line
    assert not decoded.exists() and not stats.exists()


def test_slices_give_the_bytes_of_one_pass(tmp_path: Path, tiny: TinyDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch path is the whole-array path: a batch of 7 rows gives the same files."""
    code, decoded, stats = run_decode(tmp_path / "data" / "whole", tiny)
    assert code == 0
    monkeypatch.setattr(decoded_module, "BATCH_ROWS", 7)
    code, sliced, sliced_stats = run_decode(tmp_path / "data" / "sliced", tiny)
    assert code == 0
    for path in decoded.iterdir():
        assert (sliced / path.name).read_bytes() == path.read_bytes()
    assert sliced_stats.read_bytes() == stats.read_bytes()


def family_params(tiny: TinyDataset, **facts: object) -> dict[str, Any]:
    params = params_for(tiny, ["unused"])
    params["datasets"]["mnist"].update(facts)
    return params


def decode_with(folder: Path, tiny: TinyDataset, params: dict[str, Any], **replace: bytes) -> tuple[int, Path]:
    idx_dir = write_idx_dir(folder, tiny, **replace)
    decoded = folder / "arrays"
    path = write_params(folder, params)
    code = decode.main(
        ["--params", str(path), "--dataset", "mnist", str(idx_dir), str(decoded), str(folder / "s.json")]
    )
    return code, decoded


def test_transposed_sources_come_out_upright(tmp_path: Path, tiny: TinyDataset) -> None:
    images, _ = tiny.arrays["train"]
    stored = {
        f"{split}_images": encode_idx(np.ascontiguousarray(arrays[0].transpose(0, 2, 1)))
        for split, arrays in tiny.arrays.items()
    }
    code, decoded = decode_with(tmp_path / "data", tiny, family_params(tiny, transposed=True), **stored)
    assert code == 0
    np.testing.assert_array_equal(np.load(decoded / "train_images.npy"), images)


def test_label_offset_makes_labels_count_from_zero(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    shifted = {f"{split}_labels": encode_idx(arrays[1] + 1) for split, arrays in tiny.arrays.items()}
    offset = {"layout": "idx_vector", "columns": [], "column": 0, "offset": 1}
    code, decoded = decode_with(tmp_path / "data" / "ok", tiny, family_params(tiny, labels=offset), **shifted)
    assert code == 0
    np.testing.assert_array_equal(np.load(decoded / "train_labels.npy"), tiny.arrays["train"][1])
    # Unshifted files hold a 0, below the offset: refused, naming the stored value.
    code, decoded = decode_with(tmp_path / "data" / "bad", tiny, family_params(tiny, labels=offset))
    assert code == 1 and "expected labels 1..10, found 0" in capsys.readouterr().err


def test_label_tables_keep_every_column(tmp_path: Path, tiny: TinyDataset) -> None:
    tables = {}
    for split, (_, labels) in tiny.arrays.items():
        table = np.zeros((len(labels), 3), dtype=np.int32)
        table[:, 0], table[:, 1], table[:, 2] = labels, np.arange(len(labels)) * 7, -1
        tables[f"{split}_labels"] = encode_idx(table)
    layout = {"layout": "idx_table", "columns": ["label", "writer_id", "duplicate_of"], "column": 0, "offset": 0}
    code, decoded = decode_with(tmp_path / "data", tiny, family_params(tiny, labels=layout), **tables)
    assert code == 0
    np.testing.assert_array_equal(np.load(decoded / "test_labels.npy"), tiny.arrays["test"][1])
    table = np.load(decoded / "test_label_table.npy")
    assert table.dtype == np.int32 and table.shape == (20, 3) and table[3, 1] == 21 and table[0, 2] == -1
    test_split = decoded_module.open_decoded(decoded, load_params_dict(family_params(tiny, labels=layout)))[1]
    assert test_split.table is not None and test_split.table.read(0, 2).shape == (2, 3)


def test_rows_take_a_slice_of_shared_files(tmp_path: Path, tiny: TinyDataset) -> None:
    params = family_params(tiny)
    splits = params["datasets"]["mnist"]["splits"]
    splits["test_tail"] = dict(splits["test"], count=5, rows=[15, 20])
    code, decoded = decode_with(tmp_path / "data", tiny, params)
    assert code == 0
    images, labels = tiny.arrays["test"]
    np.testing.assert_array_equal(np.load(decoded / "test_tail_images.npy"), images[15:20])
    np.testing.assert_array_equal(np.load(decoded / "test_tail_labels.npy"), labels[15:20])


def load_params_dict(raw: dict[str, Any]) -> DatasetSpec:
    return params_from_dict(raw).dataset("mnist")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.replace(b"\x93NUMPY", b"\x93NUMPX", 1), "expected a .npy file"),
        (lambda a: a[:-1], "needs"),
    ],
    ids=["magic", "short"],
)
def test_decoded_files_are_read_as_hostile(tmp_path: Path, tiny: TinyDataset, change: Any, message: str) -> None:
    decoded = write_decoded_dir(tmp_path / "decoded", tiny)
    path = decoded / "train_labels.npy"
    path.write_bytes(change(path.read_bytes()))
    with pytest.raises(DatasetError, match=message):
        decoded_module.open_decoded(decoded, load_params_dict(params_for(tiny, ["x"])))


def test_decoded_object_arrays_and_bad_labels_are_refused(tmp_path: Path, tiny: TinyDataset) -> None:
    decoded = write_decoded_dir(tmp_path / "decoded", tiny)
    dataset = load_params_dict(params_for(tiny, ["x"]))
    np.save(decoded / "test_labels.npy", np.array([{"x": 1}] * 20, dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match=r"refusing a \.npy of object"):
        decoded_module.open_decoded(decoded, dataset)
    np.save(decoded / "test_labels.npy", np.full(20, 10, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"expected labels 0\.\.9, found 10 at index 0"):
        decoded_module.open_decoded(decoded, dataset)
    (decoded / "train_images.npy").unlink()
    with pytest.raises(DatasetError, match=r"train_images\.npy: missing"):
        decoded_module.open_decoded(decoded, dataset)
