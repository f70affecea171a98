"""The Hugging Face dataset card of a Parquet export: ``export/parquet/README.md``, written by the
parquet export from the files it has just written (what it shares with the export folder's
README.md: mnist_pipeline.cardtext).

The YAML front matter is what ``datasets.load_dataset`` and the Hub read: features from each
file's Parquet schema (every column: Image, ClassLabel with names, the extra label columns, the
``pixels`` list), splits with ``num_examples`` and ``num_bytes`` (Arrow memory, as ``datasets``
writes it), ``configs``/``data_files``, and a license id from the Hub's list. The body says how the
data differs from the published files and from other loaders (orientation, label offset, kept
rows), from the dataset's config facts. Every value from config is escaped for Markdown, and every
front-matter value stays on one line, so no value can close the front matter or forge a heading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mnist_pipeline.cardtext import code, license_metadata, md, source_lines
from mnist_pipeline.config import DatasetSpec
from mnist_pipeline.errors import DatasetError

CARD_NAME = "README.md"
#: Arrow type names -> datasets' Value dtypes (Arrow says "float" for float32).
VALUE_DTYPES = {
    "bool": "bool",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "halffloat": "float16",
    "float": "float32",
    "double": "float64",
    "string": "string",
    "large_string": "large_string",
    "binary": "binary",
}
#: The image column as Hugging Face stores it: the PNG bytes and a path.
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
#: The Hub's size categories: (upper bound, name).
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


@dataclass(frozen=True)
class ParquetSplit:
    """One written ``<split>.parquet``: its features in the card's YAML form and its sizes."""

    name: str
    path: Path
    features: list[dict[str, Any]]
    num_examples: int
    num_bytes: int
    file_bytes: int


def hub_feature(field: pa.Field, declared: Any, path: Path) -> dict[str, Any]:
    """One column as the card's ``dataset_info.features`` entry (the YAML ``datasets`` writes):
    the file's Hugging Face feature where it declares one (Image, ClassLabel), else its Arrow type."""
    kind = declared.get("_type") if isinstance(declared, dict) else None
    arrow = field.type
    if kind == "Image" and arrow == IMAGE_TYPE:
        return {"name": field.name, "dtype": "image"}
    if kind == "ClassLabel" and pa.types.is_integer(arrow) and isinstance(declared.get("names"), list):
        names = {str(index): str(name) for index, name in enumerate(declared["names"])}
        return {"name": field.name, "dtype": {"class_label": {"names": names}}}
    if pa.types.is_fixed_size_list(arrow) and str(arrow.value_type) in VALUE_DTYPES:
        return {"name": field.name, "list": VALUE_DTYPES[str(arrow.value_type)], "length": arrow.list_size}
    if pa.types.is_list(arrow) and str(arrow.value_type) in VALUE_DTYPES:
        return {"name": field.name, "list": VALUE_DTYPES[str(arrow.value_type)]}
    if str(arrow) in VALUE_DTYPES:
        return {"name": field.name, "dtype": VALUE_DTYPES[str(arrow)]}
    raise DatasetError(
        f"{path}: column {field.name!r}: expected an image, a class label, a number or a list of numbers, found {arrow}"
    )


def hub_features(schema: pa.Schema, path: Path) -> list[dict[str, Any]]:
    """Every column of ``schema``, in order, as Hugging Face features."""
    raw = (schema.metadata or {}).get(b"huggingface", b"{}")
    try:
        declared = json.loads(raw).get("info", {}).get("features", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise DatasetError(f"{path}: huggingface schema metadata: expected JSON with info.features") from exc
    if not isinstance(declared, dict):
        declared = {}
    return [hub_feature(field, declared.get(field.name), path) for field in schema]


def read_parquet_split(path: Path, split: str, num_bytes: int) -> ParquetSplit:
    """Features and row count of one written Parquet file, from its schema and footer only.
    ``num_bytes`` is the split's size in Arrow memory, as the writer measured it (what
    ``Dataset.push_to_hub`` records)."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{path}: expected the Parquet file of split {split!r} ({exc})") from exc
    with parquet:
        features = hub_features(parquet.schema_arrow, path)
        return ParquetSplit(split, path, features, parquet.metadata.num_rows, num_bytes, path.stat().st_size)


def read_parquet_splits(parquet_dir: Path, dataset: DatasetSpec, num_bytes: dict[str, int]) -> list[ParquetSplit]:
    """Every split's Parquet file, checked: one schema for all, one row per image of the split."""
    splits = [read_parquet_split(parquet_dir / f"{name}.parquet", name, num_bytes[name]) for name in dataset.splits]
    for split in splits:
        if split.features != splits[0].features:
            raise DatasetError(f"{split.path}: expected the columns of {splits[0].path.name}, found others")
        expected = dataset.splits[split.name].count
        if split.num_examples != expected:
            raise DatasetError(f"{split.path}: expected {expected} rows (one per image), found {split.num_examples}")
    return splits


def size_category(count: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if count < bound), "1M<n<10M")


def card_front_matter(dataset: DatasetSpec, parquet: list[ParquetSplit]) -> str:
    """The YAML header of a Hugging Face dataset card (``datasets.load_dataset`` and the Hub read it)."""
    info: dict[str, Any] = {
        "pretty_name": " ".join(dataset.title.split()),
        **license_metadata(dataset.license, dataset.homepage),
        "task_categories": ["image-classification"],
        "size_categories": [size_category(sum(split.num_examples for split in parquet))],
    }
    info["dataset_info"] = {
        "features": parquet[0].features,
        "splits": [
            {"name": split.name, "num_bytes": split.num_bytes, "num_examples": split.num_examples} for split in parquet
        ],
        "download_size": sum(split.file_bytes for split in parquet),
        "dataset_size": sum(split.num_bytes for split in parquet),
    }
    info["configs"] = [
        {"config_name": "default", "data_files": [{"split": split.name, "path": split.path.name} for split in parquet]}
    ]
    # One line per value (no folding): no line of a value can ever read as the closing "---".
    return "---\n" + yaml.safe_dump(info, sort_keys=False, allow_unicode=True, width=1 << 30) + "---\n"


def parquet_card(dataset: DatasetSpec, parquet_dir: Path, num_bytes: dict[str, int]) -> str:
    """The card of the Parquet files in ``parquet_dir``, made from those files; ``num_bytes``:
    each split's size in Arrow memory, measured while writing."""
    splits = read_parquet_splits(parquet_dir, dataset, num_bytes)
    lines = [
        card_front_matter(dataset, splits),
        *source_lines(dataset),
        "## Loading",
        "",
        '`datasets.load_dataset("<this folder>")` reads the splits with the features above: '
        + ", ".join(f"{code(split.name)} ({split.num_examples:,} rows)" for split in splits)
        + ".",
        "",
        "## Classes",
        "",
        "| label | class |",
        "|---|---|",
        *(f"| {index} | {md(name)} |" for index, name in enumerate(dataset.classes)),
        "",
    ]
    return "\n".join(lines)
