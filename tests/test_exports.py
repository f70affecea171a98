"""Every export format and option, read back with the tools its users use and compared pixel for
pixel with the decoded arrays; the same bytes on every run, whatever the workers and the batch
size; the npz byte-identical to numpy's own writer and the CSV to a plain formatter of whole
arrays; memory bounded by reading a batch at a time."""

from __future__ import annotations

import copy
import csv
import gzip
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mnist_pipeline import decoded as decoded_module
from mnist_pipeline import export_csv, export_npz, export_parquet, export_png, pngpool, treemark, zipwriter
from mnist_pipeline import tree as tree_module
from mnist_pipeline.npzstream import NpzArray, write_npz_stream
from mnist_pipeline.rows import RowFile
from tests.support.data import TinyDataset, params_for, sha256_tree, snapshot, write_decoded_dir, write_params

TABLE_COLUMNS = ["label", "writer_id", "duplicate_of"]
Arrays = dict[str, npt.NDArray[Any]]


@pytest.fixture
def decoded(tmp_path: Path, tiny: TinyDataset) -> Path:
    return write_decoded_dir(tmp_path / "data" / "decoded", tiny)


def label_tables(tiny: TinyDataset) -> dict[str, npt.NDArray[np.int32]]:
    """A QMNIST-like table per split: the label, a large id, a small signed value."""
    rng = np.random.default_rng(11)
    tables = {}
    for split, (_, labels) in tiny.arrays.items():
        writer = rng.integers(0, 400_000, size=len(labels))
        duplicate = rng.integers(-5, 6, size=len(labels))
        tables[split] = np.stack([labels.astype(np.int32), writer, duplicate], axis=1).astype(np.int32)
    return tables


@pytest.fixture
def table_decoded(decoded: Path, tiny: TinyDataset) -> Path:
    for split, table in label_tables(tiny).items():
        np.save(decoded / f"{split}_label_table.npy", table)
    return decoded


def stage_params(
    tiny: TinyDataset, workers: int = 1, dataset: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """The committed params around the tiny dataset, with ``export.<section>`` options and
    dataset facts replaced."""
    params = params_for(tiny, ["unused"], **{f"export.{key}": value for key, value in options.items()})
    params["export"]["workers"] = workers
    params["datasets"]["mnist"].update(copy.deepcopy(dataset or {}))
    return params


def run_stage(
    module: Any,
    tmp_path: Path,
    tiny: TinyDataset,
    decoded: Path,
    out: Path,
    workers: int = 1,
    dataset: dict[str, Any] | None = None,
    **options: Any,
) -> None:
    params = stage_params(tiny, workers, dataset, **options)
    params_path = write_params(tmp_path / f"params-{out.parent.name}-{out.name}", params)
    sums = out.parent / f"{out.name}.sha256"
    argv = ["--params", str(params_path), "--dataset", "mnist", str(decoded), str(out), "--sums", str(sums)]
    assert module.main(argv) == 0


TABLE_DATASET = {"labels": {"layout": "idx_table", "columns": TABLE_COLUMNS, "column": 0, "offset": 0}}


# Reference writers: the pre-streaming implementation's semantics on whole arrays ------------------


def reference_split(
    arrays: dict[str, tuple[Any, ...]], size: int, method: str, seed: int
) -> dict[str, tuple[Any, ...]]:
    if not size:
        return dict(arrays)
    train = arrays["train"]
    if method == "first":
        chosen = np.arange(size)
    else:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(train[0]))[:size])
    keep = np.ones(len(train[0]), dtype=bool)
    keep[chosen] = False
    carved = {"train": tuple(a[keep] for a in train), "val": tuple(a[chosen] for a in train)}
    return carved | {name: split for name, split in arrays.items() if name != "train"}


def histogram_moments(images: npt.NDArray[np.uint8]) -> tuple[float, float]:
    histogram = np.bincount(images.reshape(-1), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64)
    mean = float(histogram @ values) / histogram.sum()
    return mean / 255, max(float(histogram @ values**2) / histogram.sum() - mean**2, 0.0) ** 0.5 / 255


def reference_npz(tiny: TinyDataset, options: dict[str, Any]) -> Arrays:
    """What np.savez_compressed was given before streaming: whole arrays, the same formulas."""
    ordered = reference_split(
        dict(tiny.arrays),
        options.get("validation_size", 0),
        options.get("validation_split", "first"),
        options.get("seed", 0),
    )
    float32 = options.get("dtype") == "float32"
    scale = options.get("scale", "none")
    mean, std = histogram_moments(ordered["train"][0]) if scale == "standardize" else (0.0, 1.0)
    arrays: Arrays = {}
    for name, (images, labels) in ordered.items():
        x: npt.NDArray[Any] = images
        if float32:
            x = images.astype(np.float32) / np.float32(255)
            if scale == "centered":
                x = x - np.float32(0.5)
            if scale == "standardize":
                x = (x - np.float32(mean)) / np.float32(std)
        if options.get("flatten"):
            x = x.reshape(len(x), -1)
        arrays[f"x_{name}"] = x
        label_dtype = np.float32 if float32 else np.uint8
        arrays[f"y_{name}"] = np.eye(10, dtype=label_dtype)[labels] if options.get("one_hot") else labels
    return arrays


def savez_bytes(arrays: Arrays, compressed: bool) -> bytes:
    buffer = io.BytesIO()
    save: Any = np.savez_compressed if compressed else np.savez  # the stubs reject **arrays
    save(buffer, **arrays)
    return buffer.getvalue()


def reference_csv(images: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint8], options: dict[str, Any]) -> bytes:
    """Kaggle-style CSV formatted cell by cell with str()/format(), no token tables."""
    decimals = options.get("decimals", 4)
    unit = options.get("scale") == "unit"
    last = options.get("label_position") == "last"
    lines = []
    if options.get("header", True):
        pixel_names = [f"pixel{i}" for i in range(images[0].size)]
        lines.append(",".join([*pixel_names, "label"] if last else ["label", *pixel_names]))
    for image, label in zip(images, labels, strict=True):
        pixels = [f"{v / 255:.{decimals}f}" if unit else str(v) for v in image.reshape(-1).tolist()]
        lines.append(",".join([*pixels, str(label)] if last else [str(label), *pixels]))
    return ("\n".join(lines) + "\n").encode("ascii")


# npz ------------------------------------------------------------------------------------------


def test_npz_default_is_keras_layout(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "data" / "export" / "npz"
    run_stage(export_npz, tmp_path, tiny, decoded, out)
    assert sorted(p.name for p in out.iterdir()) == ["mnist.npz"]
    with np.load(out / "mnist.npz") as npz:
        assert npz.files == ["x_train", "y_train", "x_test", "y_test"]
        for split in ("train", "test"):
            images, labels = tiny.arrays[split]
            assert npz[f"x_{split}"].dtype == np.uint8 and npz[f"x_{split}"].shape == images.shape
            np.testing.assert_array_equal(npz[f"x_{split}"], images)
            np.testing.assert_array_equal(npz[f"y_{split}"], labels)
    with zipfile.ZipFile(out / "mnist.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}


@pytest.mark.parametrize("method", ["first", "shuffle"])
def test_npz_validation_split(tmp_path: Path, tiny: TinyDataset, decoded: Path, method: str) -> None:
    out = tmp_path / "data" / "npz"
    run_stage(
        export_npz, tmp_path, tiny, decoded, out, npz={"validation_size": 12, "validation_split": method, "seed": 3}
    )
    images = tiny.arrays["train"][0]
    with np.load(out / "mnist.npz") as npz:
        assert npz.files == ["x_train", "y_train", "x_val", "y_val", "x_test", "y_test"]
        assert len(npz["x_val"]) == 12 and len(npz["x_train"]) == len(images) - 12
        if method == "first":
            np.testing.assert_array_equal(npz["x_val"], images[:12])
            np.testing.assert_array_equal(npz["x_train"], images[12:])
        else:
            rows = {row.tobytes() for row in images}
            val_rows = {row.tobytes() for row in npz["x_val"]}
            train_rows = {row.tobytes() for row in npz["x_train"]}
            assert val_rows | train_rows == rows and not val_rows & train_rows
            assert val_rows != {row.tobytes() for row in images[:12]}


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ("unit", lambda x, m, s: x / 255),
        ("centered", lambda x, m, s: x / 255 - 0.5),
        ("standardize", lambda x, m, s: (x / 255 - m) / s),
    ],
)
def test_npz_float_scaling(tmp_path: Path, tiny: TinyDataset, decoded: Path, scale: str, expected: Any) -> None:
    out = tmp_path / "data" / "npz"
    run_stage(export_npz, tmp_path, tiny, decoded, out, npz={"dtype": "float32", "scale": scale})
    train = tiny.arrays["train"][0].astype(np.float64)
    mean, std = (train / 255).mean(), (train / 255).std()
    with np.load(out / "mnist.npz") as npz:
        for split in ("train", "test"):
            assert npz[f"x_{split}"].dtype == np.float32
            want = expected(tiny.arrays[split][0].astype(np.float64), mean, std)
            np.testing.assert_allclose(npz[f"x_{split}"], want, rtol=1e-5, atol=1e-6)


def test_npz_flatten_one_hot_uncompressed(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "data" / "npz"
    run_stage(export_npz, tmp_path, tiny, decoded, out, npz={"flatten": True, "one_hot": True, "compressed": False})
    images, labels = tiny.arrays["train"]
    with np.load(out / "mnist.npz") as npz:
        assert npz["x_train"].shape == (len(images), 784)
        np.testing.assert_array_equal(npz["x_train"], images.reshape(len(images), 784))
        assert npz["y_train"].shape == (len(labels), 10) and npz["y_train"].dtype == np.uint8
        np.testing.assert_array_equal(npz["y_train"].argmax(axis=1), labels)
        assert (npz["y_train"].sum(axis=1) == 1).all()
    with zipfile.ZipFile(out / "mnist.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def chunked(array: npt.NDArray[Any], rows: int) -> Iterator[npt.NDArray[Any]]:
    for start in range(0, len(array), rows):
        yield array[start : start + rows]


@pytest.mark.parametrize("compressed", [True, False], ids=["savez_compressed", "savez"])
@pytest.mark.parametrize("rows_per_chunk", [1, 7, 1000])
def test_streaming_npz_writer_is_byte_identical_to_numpy(compressed: bool, rows_per_chunk: int) -> None:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    arrays: Arrays = {
        "x_train": images,
        "y_train": rng.integers(0, 10, size=300, dtype=np.uint8),
        "x_flat": (images.astype(np.float32) / np.float32(255)).reshape(300, -1),
        "y_one_hot": np.eye(62, dtype=np.float32)[rng.integers(0, 62, size=300)],
        "y_train_table": rng.integers(-(2**31), 2**31 - 1, size=(300, 8), dtype=np.int32),
    }
    streamed = io.BytesIO()
    members = [NpzArray(key, a.dtype, a.shape, chunked(a, rows_per_chunk)) for key, a in arrays.items()]
    write_npz_stream(streamed, members, compressed=compressed)
    assert streamed.getvalue() == savez_bytes(arrays, compressed)


NPZ_VARIANTS = {
    "default": {},
    "uncompressed": {"compressed": False},
    "float-unit-flat": {"dtype": "float32", "scale": "unit", "flatten": True},
    "float-none": {"dtype": "float32"},
    "centered-one-hot": {"dtype": "float32", "scale": "centered", "one_hot": True},
    "standardize-val-first": {"dtype": "float32", "scale": "standardize", "validation_size": 9},
    "val-shuffle-one-hot": {"validation_size": 13, "validation_split": "shuffle", "seed": 4, "one_hot": True},
}


@pytest.mark.parametrize("options", NPZ_VARIANTS.values(), ids=NPZ_VARIANTS.keys())
def test_npz_stage_equals_numpy_of_whole_arrays(
    tmp_path: Path, tiny: TinyDataset, decoded: Path, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoded_module, "BATCH_ROWS", 7)  # many batches, some empty for the carved splits
    out = tmp_path / "data" / "npz"
    run_stage(export_npz, tmp_path, tiny, decoded, out, npz=options)
    expected = savez_bytes(reference_npz(tiny, options), options.get("compressed", True))
    assert (out / "mnist.npz").read_bytes() == expected


def test_npz_extended_labels_carry_the_whole_table(tmp_path: Path, tiny: TinyDataset, table_decoded: Path) -> None:
    out = tmp_path / "data" / "npz"
    options = {"extended_labels": True, "validation_size": 10, "validation_split": "shuffle", "seed": 1}
    run_stage(export_npz, tmp_path, tiny, table_decoded, out, dataset=TABLE_DATASET, npz=options)
    tables = label_tables(tiny)
    ordered = reference_split({split: (*tiny.arrays[split], tables[split]) for split in tiny.arrays}, 10, "shuffle", 1)
    with np.load(out / "mnist.npz") as npz:
        keys = [
            f"{kind}_{split}{suffix}" for split in ordered for kind, suffix in (("x", ""), ("y", ""), ("y", "_table"))
        ]
        assert npz.files == keys
        for split, (images, labels, table) in ordered.items():
            assert npz[f"y_{split}_table"].dtype == np.int32 and npz[f"y_{split}_table"].shape == (len(labels), 3)
            np.testing.assert_array_equal(npz[f"y_{split}_table"], table)
            np.testing.assert_array_equal(npz[f"y_{split}"], labels)
            np.testing.assert_array_equal(npz[f"x_{split}"], images)


def test_train_comes_first_whatever_the_order_of_params(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    params = stage_params(tiny, npz={"validation_size": 4})
    splits = params["datasets"]["mnist"]["splits"]
    params["datasets"]["mnist"]["splits"] = {"test": splits["test"], "train": splits["train"]}
    out = tmp_path / "data" / "npz"
    argv = ["--params", str(write_params(tmp_path, params)), "--dataset", "mnist", str(decoded), str(out)]
    assert export_npz.main(argv) == 0
    with np.load(out / "mnist.npz") as npz:
        assert npz.files == ["x_train", "y_train", "x_val", "y_val", "x_test", "y_test"]


def test_extended_labels_do_nothing_without_a_table(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    run_stage(export_npz, tmp_path, tiny, decoded, tmp_path / "data" / "npz", npz={"extended_labels": True})
    run_stage(export_csv, tmp_path, tiny, decoded, tmp_path / "data" / "csv", csv={"extended_labels": True})
    with np.load(tmp_path / "data" / "npz" / "mnist.npz") as npz:
        assert npz.files == ["x_train", "y_train", "x_test", "y_test"]
    assert (tmp_path / "data" / "csv" / "test.csv").read_bytes() == reference_csv(*tiny.arrays["test"], {})


# csv ------------------------------------------------------------------------------------------


def test_csv_default_is_kaggle_style(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "data" / "csv"
    run_stage(export_csv, tmp_path, tiny, decoded, out)
    assert sorted(p.name for p in out.iterdir()) == ["test.csv", "train.csv"]
    for split in ("train", "test"):
        images, labels = tiny.arrays[split]
        frame = pd.read_csv(out / f"{split}.csv")
        assert list(frame.columns) == ["label", *[f"pixel{i}" for i in range(784)]]
        np.testing.assert_array_equal(frame["label"].to_numpy(), labels)
        np.testing.assert_array_equal(frame.drop(columns="label").to_numpy(), images.reshape(len(images), -1))
    assert (out / "train.csv").read_bytes().endswith(b"\n")


def test_csv_no_header_label_last_gzip_with_validation(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "data" / "csv"
    options = {"header": False, "label_position": "last", "gzip": True, "validation_size": 10}
    run_stage(export_csv, tmp_path, tiny, decoded, out, csv=options)
    assert sorted(p.name for p in out.iterdir()) == ["test.csv.gz", "train.csv.gz", "val.csv.gz"]
    raw = (out / "val.csv.gz").read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00", "gzip header must carry no mtime"
    rows = list(csv.reader(io.StringIO(gzip.decompress(raw).decode())))
    images, labels = tiny.arrays["train"]
    assert len(rows) == 10 and len(rows[0]) == 785
    assert [int(row[-1]) for row in rows] == labels[:10].tolist()
    assert [int(v) for v in rows[0][:-1]] == images[0].ravel().tolist()


def test_csv_unit_scale_with_fixed_decimals(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "data" / "csv"
    run_stage(export_csv, tmp_path, tiny, decoded, out, csv={"scale": "unit", "decimals": 3})
    images, labels = tiny.arrays["test"]
    with (out / "test.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:2] == ["label", "pixel0"]
    first = rows[1]
    assert first[0] == str(labels[0])
    assert all(len(cell.split(".")[1]) == 3 for cell in first[1:])
    np.testing.assert_allclose([float(c) for c in first[1:]], images[0].ravel() / 255, atol=5e-4)


CSV_VARIANTS = {
    "default": {},
    "no-header-label-last": {"header": False, "label_position": "last"},
    "unit-10-decimals": {"scale": "unit", "decimals": 10},
    "unit-0-decimals-last": {"scale": "unit", "decimals": 0, "label_position": "last"},
    "val-shuffle": {"validation_size": 11, "validation_split": "shuffle", "seed": 9},
}


@pytest.mark.parametrize("options", CSV_VARIANTS.values(), ids=CSV_VARIANTS.keys())
def test_csv_equals_a_plain_formatter_of_whole_arrays(
    tmp_path: Path, tiny: TinyDataset, decoded: Path, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoded_module, "BATCH_ROWS", 7)
    monkeypatch.setattr(export_csv, "ROWS_PER_CHUNK", 3)
    out = tmp_path / "data" / "csv"
    run_stage(export_csv, tmp_path, tiny, decoded, out, csv=options)
    ordered = reference_split(
        dict(tiny.arrays),
        options.get("validation_size", 0),
        options.get("validation_split", "first"),
        options.get("seed", 0),
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.csv" for name in ordered)
    for name, (images, labels) in ordered.items():
        assert (out / f"{name}.csv").read_bytes() == reference_csv(images, labels, options)


@pytest.mark.parametrize("position", ["first", "last"])
def test_csv_extended_labels_follow_the_label(
    tmp_path: Path, tiny: TinyDataset, table_decoded: Path, position: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoded_module, "BATCH_ROWS", 7)
    out = tmp_path / "data" / "csv"
    options = {"extended_labels": True, "label_position": position}
    run_stage(export_csv, tmp_path, tiny, table_decoded, out, dataset=TABLE_DATASET, csv=options)
    images, labels = tiny.arrays["train"]
    table = label_tables(tiny)["train"]
    with (out / "train.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    reader_columns = list(rows[0])
    pixel_names = [f"pixel{i}" for i in range(784)]
    label_group = ["label", "writer_id", "duplicate_of"]
    assert reader_columns == ([*label_group, *pixel_names] if position == "first" else [*pixel_names, *label_group])
    assert [int(row["label"]) for row in rows] == labels.tolist()
    assert [int(row["writer_id"]) for row in rows] == table[:, 1].tolist()
    assert [int(row["duplicate_of"]) for row in rows] == table[:, 2].tolist()
    assert (table[:, 2] < 0).any(), "negative values are formatted too"
    pixels = np.array([[int(row[name]) for name in pixel_names] for row in rows])
    np.testing.assert_array_equal(pixels, images.reshape(len(images), -1))


def test_extended_column_named_like_an_export_column_is_refused(
    tmp_path: Path, tiny: TinyDataset, table_decoded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = stage_params(tiny, csv={"extended_labels": True})
    params["datasets"]["mnist"]["labels"] = {
        "layout": "idx_table",
        "columns": ["label", "pixel3", "duplicate_of"],
        "column": 0,
        "offset": 0,
    }
    params_path = write_params(tmp_path, params)
    out = tmp_path / "data" / "csv"
    argv = ["--params", str(params_path), "--dataset", "mnist", str(table_decoded), str(out)]
    assert export_csv.main(argv) == 1
    err = capsys.readouterr().err
    assert "datasets.mnist.labels.columns.1" in err and "'pixel3'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# png ------------------------------------------------------------------------------------------


def read_png(data: bytes) -> npt.NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L" and image.format == "PNG"
        return np.asarray(image)


def test_a_new_zip_removes_the_tree_unpacked_from_the_previous_one(
    tmp_path: Path, tiny: TinyDataset, decoded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the tree no longer selected, nothing else would refresh it: after
    ``-S export.png.invert=true`` its readers would get the images the exports no longer hold."""
    out = tmp_path / "data" / "png"
    tree = out.parent / "images"
    run_stage(export_png, tmp_path, tiny, decoded, out)
    tree_module.unpack_zip(out / "images.zip", tree)
    run_stage(export_png, tmp_path, tiny, decoded, out)  # the same zip: the tree is its own
    assert treemark.is_our_tree(tree)
    capsys.readouterr()
    run_stage(export_png, tmp_path, tiny, decoded, out, png={"invert": True})
    assert not tree.exists()
    assert f"removed {tree}, unpacked from the previous zip" in capsys.readouterr().err
    assert sorted(p.name for p in out.parent.iterdir()) == ["decoded", "png", "png.sha256"]
    # A folder of someone else's at that place is never touched.
    tree.mkdir()
    (tree / "notes.txt").write_text("mine")
    run_stage(export_png, tmp_path, tiny, decoded, out)
    assert (tree / "notes.txt").read_text() == "mine"
    # Nor a tree of ours reached through a link: neither the link nor what it points at.
    shutil.rmtree(tree)
    elsewhere = tmp_path / "elsewhere"
    tree_module.unpack_zip(out / "images.zip", elsewhere)
    tree.symlink_to(elsewhere, target_is_directory=True)
    run_stage(export_png, tmp_path, tiny, decoded, out, png={"invert": True})
    assert tree.is_symlink() and treemark.is_our_tree(elsewhere)


def test_png_zip_and_unpacked_tree_are_imagefolder(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "data" / "png"
    run_stage(export_png, tmp_path, tiny, decoded, out)
    assert sorted(p.name for p in out.iterdir()) == ["images.zip"]
    with zipfile.ZipFile(out / "images.zip") as archive:
        infos = archive.infolist()
        assert infos[-1].filename == "manifest.csv"
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in infos)
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        assert all(info.external_attr == 0o644 << 16 for info in infos)
        assert archive.testzip() is None
    tree = tmp_path / "tree"
    tree_module.unpack_zip(out / "images.zip", tree)
    with (tree / "manifest.csv").open(newline="") as handle:
        manifest = list(csv.DictReader(handle))
    assert list(manifest[0]) == ["path", "split", "index", "label", "class"]
    assert len(manifest) == sum(len(labels) for _, labels in tiny.arrays.values())
    for split, (images, labels) in tiny.arrays.items():
        rows = [row for row in manifest if row["split"] == split]
        assert [int(row["index"]) for row in rows] == list(range(len(labels)))
        for row in rows:
            index, label = int(row["index"]), int(row["label"])
            assert row["path"] == f"{split}/{label}/{index:02d}.png"
            assert label == labels[index] and row["class"] == str(label)
            np.testing.assert_array_equal(read_png((tree / row["path"]).read_bytes()), images[index])
        assert sorted(p.name for p in (tree / split).iterdir()) == [str(c) for c in range(10)]


def test_png_flat_layout_inverted(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "data" / "png"
    run_stage(export_png, tmp_path, tiny, decoded, out, png={"layout": "flat", "invert": True})
    images, labels = tiny.arrays["test"]
    train = len(tiny.arrays["train"][1])
    with zipfile.ZipFile(out / "images.zip") as archive:
        names = archive.namelist()
        # each split's PNGs, then its Hugging Face metadata; the manifest last, listing the PNGs only
        assert names[train : train + 2] == ["train/metadata.csv", f"test/{labels[0]}_00.png"]
        assert names[-2:] == ["test/metadata.csv", "manifest.csv"]
        for index in range(len(labels)):
            data = archive.read(f"test/{labels[index]}_{index:02d}.png")
            np.testing.assert_array_equal(read_png(data), 255 - images[index])
        for split, (_, split_labels) in tiny.arrays.items():
            expected = [f"{label}_{index:02d}.png,{label}" for index, label in enumerate(split_labels)]
            assert archive.read(f"{split}/metadata.csv").decode().splitlines() == ["file_name,label", *expected]
        manifest = archive.read("manifest.csv").decode().splitlines()[1:]
        assert [row.split(",")[0] for row in manifest] == [name for name in names if name.endswith(".png")]


@pytest.mark.parametrize("num_classes", [10, 47, 62])
def test_class_folders_sort_into_label_order(num_classes: int) -> None:
    folders = pngpool.class_folder_names(num_classes)
    assert len(set(folders)) == num_classes
    assert sorted(folders) == folders
    assert {folder: index for index, folder in enumerate(sorted(folders))} == {f: i for i, f in enumerate(folders)}
    assert folders[:2] == (["0", "1"] if num_classes <= 10 else ["00", "01"])


def many_classes_dataset(tmp_path: Path, tiny: TinyDataset, classes: list[str]) -> tuple[Path, Any]:
    """The tiny images relabelled 0..len(classes)-1, so every class folder appears."""
    directory = tmp_path / "data" / "decoded-many"
    directory.mkdir(parents=True)
    relabelled = {}
    for split, (images, _) in tiny.arrays.items():
        labels = (np.arange(len(images)) % len(classes)).astype(np.uint8)
        np.save(directory / f"{split}_images.npy", images)
        np.save(directory / f"{split}_labels.npy", labels)
        relabelled[split] = (images, labels)
    return directory, relabelled


def test_imagefolder_tree_gives_every_label_its_class_index_and_names_in_manifest(
    tmp_path: Path, tiny: TinyDataset
) -> None:
    classes = (
        [str(c) for c in range(10)]
        + ["T-shirt/top", 'say "hi", ok', "A/a", "b,c"]
        + [f"class {c}" for c in range(14, 62)]
    )
    directory, relabelled = many_classes_dataset(tmp_path, tiny, classes)
    out = tmp_path / "data" / "png"
    run_stage(export_png, tmp_path, tiny, directory, out, dataset={"classes": classes})
    tree = tmp_path / "tree"
    tree_module.unpack_zip(out / "images.zip", tree)
    with (tree / "manifest.csv").open(newline="") as handle:
        manifest = list(csv.DictReader(handle))
    from torchvision.datasets.folder import find_classes  # noqa: PLC0415 - 4 s to import; this test only

    _, class_to_idx = find_classes(str(tree / "train"))
    assert len(class_to_idx) == 60  # 60 training images: labels 0..59
    for row in manifest:
        label = int(row["label"])
        folder = row["path"].split("/")[1]
        assert row["class"] == classes[label]
        assert folder == f"{label:02d}"
        if row["split"] == "train":
            assert class_to_idx[folder] == label
        np.testing.assert_array_equal(
            read_png((tree / row["path"]).read_bytes()), relabelled[row["split"]][0][int(row["index"])]
        )


def zipfile_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def stored_zip_bytes(tmp_path: Path, members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with (tmp_path / "directory").open("w+b") as directory:
        writer = zipwriter.StoredZipWriter(buffer, directory)
        for name, data in members[:-1]:
            writer.add(name, data)
        last_name, last_data = members[-1]
        (tmp_path / "last").write_bytes(last_data)
        with (tmp_path / "last").open("rb") as source:
            writer.add_file(last_name, source)
        writer.close()
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("count", "zip64_limit"),
    [(5, None), pytest.param(70_000, None, marks=pytest.mark.slow), (40, 1000)],
    ids=["small", "over-65535-members", "offsets-past-zip64-limit"],
)
def test_stored_zip_writer_matches_zipfile(
    tmp_path: Path, count: int, zip64_limit: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if zip64_limit is not None:  # both writers switch to zip64 records at the same, smaller threshold
        monkeypatch.setattr(zipfile, "ZIP64_LIMIT", zip64_limit)
        monkeypatch.setattr(zipwriter, "ZIP64_LIMIT", zip64_limit)
    members = [(f"train/{i % 62:02d}/{i:05d}.png", bytes([i % 256]) * (i % 50)) for i in range(count)]
    members.append(("manifest.csv", b"path,split\n" * 3))
    assert stored_zip_bytes(tmp_path, members) == zipfile_bytes(members)


# parquet --------------------------------------------------------------------------------------


def test_parquet_has_hugging_face_schema(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "data" / "parquet"
    run_stage(export_parquet, tmp_path, tiny, decoded, out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "test.parquet", "train.parquet"]
    for split, (images, labels) in tiny.arrays.items():
        table = pq.read_table(out / f"{split}.parquet")
        assert table.schema.names == ["image", "label"]
        assert str(table.schema.field("image").type) == "struct<bytes: binary, path: string>"
        assert str(table.schema.field("label").type) == "int64"
        features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
        assert features["label"] == {"_type": "ClassLabel", "names": [str(c) for c in range(10)]}
        assert features["image"] == {"_type": "Image"}
        rows = table.to_pylist()
        assert [row["label"] for row in rows] == labels.tolist()
        for index, row in enumerate(rows):
            assert row["image"]["path"] == f"{split}/{labels[index]}/{index:02d}.png"
            np.testing.assert_array_equal(read_png(row["image"]["bytes"]), images[index])
        frame = pd.read_parquet(out / f"{split}.parquet")
        assert list(frame.columns) == ["image", "label"]


def test_parquet_pixels_extended_labels_and_row_groups(
    tmp_path: Path, tiny: TinyDataset, table_decoded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pngpool, "PNG_BATCH", 5)
    out = tmp_path / "data" / "parquet"
    options = {"pixels": True, "extended_labels": True, "row_group_size": 7, "compression": "zstd"}
    classes = [f"class {c}" for c in range(10)]
    dataset = {**TABLE_DATASET, "classes": classes}
    run_stage(export_parquet, tmp_path, tiny, table_decoded, out, dataset=dataset, parquet=options)
    tables = label_tables(tiny)
    for split, (images, labels) in tiny.arrays.items():
        parquet = pq.ParquetFile(out / f"{split}.parquet")
        sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
        assert sizes == [7] * (len(labels) // 7) + ([len(labels) % 7] if len(labels) % 7 else [])
        table = parquet.read()
        assert table.schema.names == ["image", "label", "writer_id", "duplicate_of", "pixels"]
        assert str(table.schema.field("pixels").type) == "fixed_size_list<element: uint8>[784]"
        assert str(table.schema.field("writer_id").type) == "int32"
        features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
        assert features["label"]["names"] == classes
        assert features["pixels"]["length"] == 784 and features["writer_id"] == {"dtype": "int32", "_type": "Value"}
        pixels = np.array(table.column("pixels").to_pylist(), dtype=np.uint8)
        np.testing.assert_array_equal(pixels, images.reshape(len(images), -1))
        assert table.column("writer_id").to_pylist() == tables[split][:, 1].tolist()
        assert table.column("duplicate_of").to_pylist() == tables[split][:, 2].tolist()
        assert table.column("label").to_pylist() == labels.tolist()
        # What SQL users do: the pixels column read without any image decoding.
        frame = pd.read_parquet(out / f"{split}.parquet", columns=["label", "pixels"])
        np.testing.assert_array_equal(np.stack(frame["pixels"].to_list()), images.reshape(len(images), -1))


def test_parquet_export_never_imports_pandas(tmp_path: Path, tiny: TinyDataset, table_decoded: Path) -> None:
    """pa.array() imports pandas wherever it is installed (a sixth of the export's time), so the
    export builds every column from its buffers. In a process of its own: pyarrow asks once."""
    assert importlib.util.find_spec("pandas") is not None  # installed here, or this proves nothing
    dataset = {**TABLE_DATASET, "classes": [str(c) for c in range(10)]}
    params = stage_params(tiny, 2, dataset, parquet={"pixels": True, "extended_labels": True})
    out = tmp_path / "data" / "parquet"
    argv = ["--params", str(write_params(tmp_path / "params.json", params)), "--dataset", "mnist"]
    argv += [str(table_decoded), str(out), "--sums", str(out.parent / "parquet.sha256")]
    code = (
        f"import sys\nfrom mnist_pipeline import export_parquet\n"
        f"print(export_parquet.main({argv!r}), 'pandas' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["0", "False"], result.stderr
    assert pq.read_table(out / "train.parquet").column("label").to_pylist() == tiny.arrays["train"][1].tolist()


# every format ---------------------------------------------------------------------------------


FORMATS = {
    "npz-split": (export_npz, {"npz": {"validation_size": 7, "validation_split": "shuffle"}}),
    "npz-float": (export_npz, {"npz": {"dtype": "float32", "scale": "standardize", "one_hot": True}}),
    "npz-table": (export_npz, {"npz": {"extended_labels": True, "validation_size": 5}}),
    "csv-gzip": (export_csv, {"csv": {"gzip": True, "scale": "unit"}}),
    "csv-table": (export_csv, {"csv": {"extended_labels": True, "validation_size": 5}}),
    "png": (export_png, {}),
    "png-flat": (export_png, {"png": {"layout": "flat", "invert": True}}),
    "parquet": (export_parquet, {"parquet": {"compression": "zstd", "row_group_size": 16}}),
    "parquet-all": (export_parquet, {"parquet": {"pixels": True, "extended_labels": True, "row_group_size": 9}}),
}


@pytest.mark.parametrize(("module", "options"), FORMATS.values(), ids=FORMATS.keys())
def test_same_bytes_whatever_the_workers_and_the_batch_size(
    tmp_path: Path,
    tiny: TinyDataset,
    table_decoded: Path,
    module: Any,
    options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One batch per split in the stage's own thread, then many small batches (some of them empty
    after a validation carve) shared by two encoder threads, twice: the batch path equals the
    whole-array path."""
    digests: list[dict[str, str]] = []
    for run, (workers, batch_rows, png_batch) in enumerate([(1, 10_000, 2000), (2, 7, 5), (2, 7, 5)]):
        monkeypatch.setattr(decoded_module, "BATCH_ROWS", batch_rows)
        monkeypatch.setattr(pngpool, "PNG_BATCH", png_batch)
        out = tmp_path / "data" / f"run{run}"
        run_stage(module, tmp_path, tiny, table_decoded, out, workers=workers, dataset=TABLE_DATASET, **options)
        digests.append(sha256_tree(out))
    assert digests[0] == digests[1] == digests[2]


@pytest.mark.parametrize("module", [export_npz, export_csv, export_png, export_parquet])
def test_exports_read_the_decoded_files_a_batch_at_a_time(
    tmp_path: Path, tiny: TinyDataset, table_decoded: Path, module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoded_module, "BATCH_ROWS", 8)
    monkeypatch.setattr(pngpool, "PNG_BATCH", 6)
    sizes: list[int] = []  # appended to by the encoder threads too (list.append is atomic)
    read = RowFile.read

    def counting_read(self: RowFile, start: int, stop: int) -> npt.NDArray[Any]:
        rows = read(self, start, stop)
        if self.path.name.endswith(("_images.npy", "_label_table.npy")):
            sizes.append(len(rows))
        return rows

    monkeypatch.setattr(RowFile, "read", counting_read)
    options: dict[str, Any] = {section: {"extended_labels": True} for section in ("npz", "csv", "parquet")}
    options["npz"] |= {"validation_size": 9, "dtype": "float32", "scale": "standardize"}
    options["parquet"] |= {"pixels": True}
    run_stage(module, tmp_path, tiny, table_decoded, tmp_path / "data" / "out", dataset=TABLE_DATASET, **options)
    assert 0 < max(sizes) <= 8


def test_sums_file_verifies_with_sha256sum(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    export_dir = tmp_path / "data" / "export"
    export_dir.mkdir()
    params = write_params(tmp_path, params_for(tiny, ["unused"]))
    for module, name in ((export_csv, "csv"), (export_npz, "npz"), (export_png, "png"), (export_parquet, "parquet")):
        sums = export_dir / f"{name}.sha256"
        args = [
            "--params",
            str(params),
            "--dataset",
            "mnist",
            str(decoded),
            str(export_dir / name),
            "--sums",
            str(sums),
        ]
        assert module.main(args) == 0
        checked = subprocess.run(
            ["sha256sum", "-c", sums.name], cwd=export_dir, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (export_dir / "csv.sha256").read_text().splitlines()[0].endswith("  csv/test.csv")
    assert (export_dir / "npz.sha256").read_text().endswith("  npz/mnist.npz\n")
    assert (export_dir / "png.sha256").read_text().endswith("  png/images.zip\n")


def test_summary_is_one_line_naming_the_stage(
    tmp_path: Path, tiny: TinyDataset, decoded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_stage(export_csv, tmp_path, tiny, decoded, tmp_path / "data" / "csv")
    err = capsys.readouterr().err
    assert err == "export_csv@mnist: train.csv 60 rows, test.csv 20 rows\n"


def test_standardize_without_a_train_split_is_refused(
    tmp_path: Path, tiny: TinyDataset, decoded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = stage_params(tiny, npz={"dtype": "float32", "scale": "standardize"})
    params["datasets"]["mnist"]["splits"] = {"test": copy.deepcopy(params["datasets"]["mnist"]["splits"]["test"])}
    out = tmp_path / "data" / "npz"
    argv = ["--params", str(write_params(tmp_path, params)), "--dataset", "mnist", str(decoded), str(out)]
    assert export_npz.main(argv) == 1
    assert "export.npz.scale: 'standardize' needs the train split" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("output", "sums"),
    [("conf", "data/export/csv.sha256"), ("data/export/csv", "params.yaml"), ("../elsewhere", "data/x.sha256")],
)
def test_a_stage_started_by_hand_writes_only_inside_data(
    tmp_path: Path,
    tiny: TinyDataset,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    output: str,
    sums: str,
) -> None:
    """Whatever paths a stage is given, it writes below data/ of its working directory only:
    the project's conf/ and params.yaml, or a folder beside the repository, stay as they are."""
    repo = tmp_path / "repo"
    (repo / "conf").mkdir(parents=True)
    (repo / "conf" / "config.yaml").write_text("defaults: []\n")
    monkeypatch.chdir(repo)
    params = write_params(repo, params_for(tiny, ["unused"]))
    decoded = write_decoded_dir(repo / "data" / "decoded", tiny)
    before = snapshot(tmp_path)
    argv = ["--params", str(params), "--dataset", "mnist", str(decoded), output, "--sums", sums]
    assert export_csv.main(argv) == 1
    refused = output if not output.startswith("data/") else sums
    assert capsys.readouterr().err.splitlines() == [
        f"export_csv@mnist: error: {refused}: expected a path inside data/ of the working directory "
        "(the repository), found one outside it; refusing to write it"
    ]
    assert snapshot(tmp_path) == before
