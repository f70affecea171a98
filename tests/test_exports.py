"""Every export format and option, read back with the tools its users use and compared
pixel for pixel with the decoded arrays; and the same bytes on every run."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline import export_csv, export_npz, export_parquet, export_png, report, unpack
from pipeline import images as images_module
from pipeline.decoded import SplitArrays, write_decoded
from tests.conftest import TinyDataset, params_for, sha256_tree, write_params


@pytest.fixture
def decoded(tmp_path: Path, tiny: TinyDataset) -> Path:
    path = tmp_path / "decoded.npz"
    write_decoded(path, {name: SplitArrays(images=i, labels=lab) for name, (i, lab) in tiny.arrays.items()})
    return path


def run_stage(module: Any, tmp_path: Path, tiny: TinyDataset, decoded: Path, out: Path, **options: Any) -> None:
    sections = {f"export.{key}": value for key, value in options.items() if key != "workers"}
    params = params_for(tiny, ["unused"], **sections)
    if "workers" in options:
        params["export"]["workers"] = options["workers"]
    params_path = write_params(tmp_path / f"params-{out.name}", params)
    assert module.main(["--params", str(params_path), str(decoded), str(out)]) == 0


# npz -------------------------------------------------------------------------------------


def test_npz_default_is_keras_layout(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "mnist.npz"
    run_stage(export_npz, tmp_path, tiny, decoded, out)
    with np.load(out) as npz:
        assert npz.files == ["x_train", "y_train", "x_test", "y_test"]
        for split in ("train", "test"):
            images, labels = tiny.arrays[split]
            assert npz[f"x_{split}"].dtype == np.uint8 and npz[f"x_{split}"].shape == images.shape
            np.testing.assert_array_equal(npz[f"x_{split}"], images)
            np.testing.assert_array_equal(npz[f"y_{split}"], labels)
    with zipfile.ZipFile(out) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}


@pytest.mark.parametrize("method", ["first", "shuffle"])
def test_npz_validation_split(tmp_path: Path, tiny: TinyDataset, decoded: Path, method: str) -> None:
    out = tmp_path / "mnist.npz"
    run_stage(
        export_npz, tmp_path, tiny, decoded, out, npz={"validation_size": 12, "validation_split": method, "seed": 3}
    )
    images = tiny.arrays["train"][0]
    with np.load(out) as npz:
        assert npz.files[:4] == ["x_train", "y_train", "x_val", "y_val"]
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
    out = tmp_path / "mnist.npz"
    run_stage(export_npz, tmp_path, tiny, decoded, out, npz={"dtype": "float32", "scale": scale})
    train = tiny.arrays["train"][0].astype(np.float64)
    mean, std = (train / 255).mean(), (train / 255).std()
    with np.load(out) as npz:
        for split in ("train", "test"):
            assert npz[f"x_{split}"].dtype == np.float32
            want = expected(tiny.arrays[split][0].astype(np.float64), mean, std)
            np.testing.assert_allclose(npz[f"x_{split}"], want, rtol=1e-5, atol=1e-6)


def test_npz_flatten_one_hot_uncompressed(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "mnist.npz"
    run_stage(export_npz, tmp_path, tiny, decoded, out, npz={"flatten": True, "one_hot": True, "compressed": False})
    images, labels = tiny.arrays["train"]
    with np.load(out) as npz:
        assert npz["x_train"].shape == (len(images), 784)
        np.testing.assert_array_equal(npz["x_train"], images.reshape(len(images), 784))
        assert npz["y_train"].shape == (len(labels), 10) and npz["y_train"].dtype == np.uint8
        np.testing.assert_array_equal(npz["y_train"].argmax(axis=1), labels)
        assert (npz["y_train"].sum(axis=1) == 1).all()
    with zipfile.ZipFile(out) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


# csv -------------------------------------------------------------------------------------


def test_csv_default_is_kaggle_style(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "csv"
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
    out = tmp_path / "csv"
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
    out = tmp_path / "csv"
    run_stage(export_csv, tmp_path, tiny, decoded, out, csv={"scale": "unit", "decimals": 3})
    images, labels = tiny.arrays["test"]
    with (out / "test.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:2] == ["label", "pixel0"]
    first = rows[1]
    assert first[0] == str(labels[0])
    assert all(len(cell.split(".")[1]) == 3 for cell in first[1:])
    np.testing.assert_allclose([float(c) for c in first[1:]], images[0].ravel() / 255, atol=5e-4)


# png -------------------------------------------------------------------------------------


def read_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L" and image.format == "PNG"
        return np.asarray(image)


def test_png_zip_and_unpacked_tree_are_imagefolder(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    archive_path = tmp_path / "png.zip"
    run_stage(export_png, tmp_path, tiny, decoded, archive_path)
    tree = tmp_path / "png"
    params = write_params(tmp_path / "unpack", params_for(tiny, ["unused"]))
    assert unpack.main(["--params", str(params), str(archive_path), str(tree)]) == 0
    manifest = list(csv.DictReader((tree / "manifest.csv").open()))
    assert len(manifest) == sum(len(labels) for _, labels in tiny.arrays.values())
    for split, (images, labels) in tiny.arrays.items():
        rows = [row for row in manifest if row["split"] == split]
        assert [int(row["index"]) for row in rows] == list(range(len(labels)))
        for row in rows:
            index, label = int(row["index"]), int(row["label"])
            assert row["path"] == f"{split}/{label}/{index:02d}.png"
            assert label == labels[index]
            np.testing.assert_array_equal(read_png((tree / row["path"]).read_bytes()), images[index])
        assert sorted(p.name for p in (tree / split).iterdir()) == [str(c) for c in range(10)]


def test_png_flat_layout_inverted(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    archive_path = tmp_path / "png.zip"
    run_stage(export_png, tmp_path, tiny, decoded, archive_path, png={"layout": "flat", "invert": True})
    images, labels = tiny.arrays["test"]
    with zipfile.ZipFile(archive_path) as archive:
        name = f"test/{labels[3]}_03.png"
        np.testing.assert_array_equal(read_png(archive.read(name)), 255 - images[3])
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())


def test_unpack_refuses_escaping_member(tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../outside.png", b"x")
    params = write_params(tmp_path, params_for(tiny, ["unused"]))
    assert unpack.main(["--params", str(params), str(evil), str(tmp_path / "tree")]) == 1
    assert "refusing member '../../outside.png'" in capsys.readouterr().err
    assert not (tmp_path / "tree").exists() and not (tmp_path.parent / "outside.png").exists()


# parquet ---------------------------------------------------------------------------------


def test_parquet_has_hugging_face_schema(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    out = tmp_path / "parquet"
    run_stage(export_parquet, tmp_path, tiny, decoded, out)
    for split, (images, labels) in tiny.arrays.items():
        table = pq.read_table(out / f"{split}.parquet")
        assert str(table.schema.field("image").type) == "struct<bytes: binary, path: string>"
        assert str(table.schema.field("label").type) == "int64"
        features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
        assert features["label"] == {"_type": "ClassLabel", "names": [str(c) for c in range(10)]}
        assert features["image"] == {"_type": "Image"}
        rows = table.to_pylist()
        assert [row["label"] for row in rows] == labels.tolist()
        for index, row in enumerate(rows):
            np.testing.assert_array_equal(read_png(row["image"]["bytes"]), images[index])
        frame = pd.read_parquet(out / f"{split}.parquet")
        assert list(frame.columns) == ["image", "label"]


# report ----------------------------------------------------------------------------------


def test_report_grid_plot_data_and_card(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    stats: dict[str, dict[str, Any]] = {
        split: {"count": len(labels), "class_counts": {str(c): int((labels == c).sum()) for c in range(10)}}
        for split, (_, labels) in tiny.arrays.items()
    }
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    checksums = {"archives": [{"file": "a.gz", "passed": "archive", "actual": {"size": 1, "sha256": "ab" * 32}}]}
    (tmp_path / "checksums.json").write_text(json.dumps(checksums))
    out = tmp_path / "export"
    params = write_params(tmp_path, params_for(tiny, ["unused"], report={"samples_per_class": 3}))
    args = [str(decoded), str(tmp_path / "stats.json"), str(tmp_path / "checksums.json"), str(out)]
    assert report.main(["--params", str(params), *args]) == 0
    with Image.open(out / "samples.png") as grid:
        assert grid.size == (24 + 3 * 56, 10 * 56)
    rows = list(csv.DictReader((out / "class_distribution.csv").open()))
    assert len(rows) == 20 and rows[0] == {
        "class": "0",
        "split": "train",
        "count": str(stats["train"]["class_counts"]["0"]),
    }
    card = (out / "README.md").read_text()
    assert "CC BY-SA 3.0" in card and "LeCun" in card and f"| train | {len(tiny.arrays['train'][1])} |" in card
    assert "ab" * 32 in card


# reproducibility -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "options"),
    [
        (export_npz, "mnist.npz", {"npz": {"validation_size": 7, "validation_split": "shuffle"}}),
        (export_npz, "mnist.npz", {"npz": {"dtype": "float32", "scale": "standardize", "one_hot": True}}),
        (export_csv, "csv", {"csv": {"gzip": True, "scale": "unit"}}),
        (export_png, "png.zip", {}),
        (export_parquet, "parquet", {"parquet": {"compression": "zstd"}}),
    ],
    ids=["npz-split", "npz-float", "csv-gzip", "png", "parquet"],
)
def test_same_params_same_bytes_whatever_the_workers(
    tmp_path: Path,
    tiny: TinyDataset,
    decoded: Path,
    module: Any,
    name: str,
    options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images_module, "PNG_BATCH", 16)  # several batches, so two workers really share the work
    digests: list[object] = []
    for workers in (1, 2, 2):
        out = tmp_path / f"w{workers}-{len(digests)}" / name
        out.parent.mkdir()
        run_stage(module, out.parent, tiny, decoded, out, workers=workers, **options)
        digests.append(sha256_tree(out) if out.is_dir() else hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1] == digests[2]


def test_sums_file_verifies_with_sha256sum(tmp_path: Path, tiny: TinyDataset, decoded: Path) -> None:
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    params = write_params(tmp_path, params_for(tiny, ["unused"]))
    for module, out in ((export_csv, "csv"), (export_npz, "tiny.npz")):
        sums = export_dir / f"{out.split('.')[0]}.sha256"
        args = ["--params", str(params), str(decoded), str(export_dir / out), "--sums", str(sums)]
        assert module.main(args) == 0
        checked = subprocess.run(
            ["sha256sum", "-c", sums.name], cwd=export_dir, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (export_dir / "csv.sha256").read_text().splitlines()[0].endswith("  csv/test.csv")
