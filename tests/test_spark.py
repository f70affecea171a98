"""The Parquet and CSV exports in Apache Spark, for every option: each variant is written by its
stage's main() and read back with ``spark.read`` in one line, offline, in a local session; the
rows, labels, pixels (decoded from the PNG bytes, or the ``pixels`` column) and label-table
columns must equal the arrays the stage was given. Slow: a JVM starts once for the module."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mnist_pipeline import export_csv, export_parquet
from tests.support.data import TinyDataset, params_for, write_decoded_dir, write_params

pytestmark = pytest.mark.slow
pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is not installed (make test installs the dev lock)")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime and none is on PATH (.ci/run installs one)", allow_module_level=True)

#: A QMNIST-like label table: the label, then two more columns the extended exports carry.
TABLE_COLUMNS = ["label", "writer_id", "duplicate_of"]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("mnist-pipeline tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def label_table(labels: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(len(labels))
    columns: list[np.ndarray] = [
        labels.astype(np.int32),
        rng.integers(0, 400_000, len(labels)),
        rng.integers(-5, 6, len(labels)),
    ]
    return np.stack(columns, axis=1).astype(np.int32)


def export(root: Path, tiny: TinyDataset, fmt: str, options: dict[str, Any]) -> tuple[Path, dict[str, np.ndarray]]:
    """The ``fmt`` export of the tiny dataset with ``options``, by its stage (a label table when
    the options ask for extended labels): the export folder and the label table of each split."""
    params = params_for(tiny, ["unused"])
    params["export"]["workers"] = 1
    params["export"][fmt].update(options)
    decoded = write_decoded_dir(root / "data" / "mnist" / "decoded", tiny)
    tables = {}
    if options.get("extended_labels"):
        params["datasets"]["mnist"]["labels"] = {
            "layout": "idx_table",
            "columns": TABLE_COLUMNS,
            "column": 0,
            "offset": 0,
        }
        for split, (_, labels) in tiny.arrays.items():
            tables[split] = label_table(labels)
            np.save(decoded / f"{split}_label_table.npy", tables[split])
    stage = {"csv": export_csv, "parquet": export_parquet}[fmt]
    out = root / "data" / "mnist" / "export" / fmt
    assert stage.main(["--params", str(write_params(root, params)), "--dataset", "mnist", str(decoded), str(out)]) == 0
    return out, tables


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"compression": "none"},
        {"compression": "gzip", "row_group_size": 7},
        {"compression": "zstd", "pixels": True},
        {"extended_labels": True, "pixels": True},
    ],
    ids=["default", "uncompressed", "gzip-row-groups", "zstd-pixels", "extended-labels"],
)
def test_spark_reads_the_parquet_export(spark: Any, tmp_path: Path, tiny: TinyDataset, options: dict[str, Any]) -> None:
    out, tables = export(tmp_path, tiny, "parquet", options)
    for split, (images, labels) in tiny.arrays.items():
        rows = spark.read.parquet(str(out / f"{split}.parquet")).collect()  # the README's one line
        assert [row["label"] for row in rows] == labels.tolist()
        decoded = np.stack([np.asarray(Image.open(io.BytesIO(row["image"]["bytes"]))) for row in rows])
        np.testing.assert_array_equal(decoded, images)
        if options.get("pixels"):
            pixels = np.array([row["pixels"] for row in rows], dtype=np.int64)
            np.testing.assert_array_equal(pixels, images.reshape(len(images), -1))
        for index, column in enumerate(TABLE_COLUMNS[1:] if tables else [], start=1):
            assert [row[column] for row in rows] == tables[split][:, index].tolist()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"header": False, "label_position": "last", "gzip": True},
        {"scale": "unit", "decimals": 3},
        {"validation_size": 10, "extended_labels": True},
    ],
    ids=["default", "no-header-label-last-gzip", "unit-3-decimals", "val-extended-labels"],
)
def test_spark_reads_the_csv_export(spark: Any, tmp_path: Path, tiny: TinyDataset, options: dict[str, Any]) -> None:
    out, tables = export(tmp_path, tiny, "csv", options)
    header = options.get("header", True)
    suffix = ".csv.gz" if options.get("gzip") else ".csv"
    expected = dict(tiny.arrays)
    if options.get("validation_size"):  # the first rows of train, as validation_split=first carves them
        images, labels = expected["train"]
        cut = options["validation_size"]
        expected |= {"val": (images[:cut], labels[:cut]), "train": (images[cut:], labels[cut:])}
        tables |= {"val": tables["train"][:cut], "train": tables["train"][cut:]}
    for split, (images, labels) in expected.items():
        frame = spark.read.csv(str(out / f"{split}{suffix}"), header=header, inferSchema=True)  # the README's line
        rows = np.array([list(row) for row in frame.collect()], dtype=np.float64)
        label_column = 0 if options.get("label_position", "first") == "first" else rows.shape[1] - 1
        assert rows[:, label_column].astype(np.int64).tolist() == labels.tolist()
        extra = len(TABLE_COLUMNS) - 1 if tables else 0  # the table's columns follow the label
        if tables:
            assert frame.columns[1 : 1 + extra] == TABLE_COLUMNS[1:]
            np.testing.assert_array_equal(rows[:, 1 : 1 + extra], tables[split][:, 1:])
        first_pixel = 1 + extra if label_column == 0 else 0
        pixels = rows[:, first_pixel : first_pixel + images[0].size]
        scale = 255.0 if options.get("scale") == "unit" else 1.0
        tolerance = 0.5 * 10 ** -options.get("decimals", 4) if scale != 1.0 else 0.0
        np.testing.assert_allclose(pixels, images.reshape(len(images), -1) / scale, atol=tolerance, rtol=0)
        if header:
            assert frame.columns[label_column] == "label"
