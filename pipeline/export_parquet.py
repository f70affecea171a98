"""export@parquet stage: ``<split>.parquet`` in the schema Hugging Face uses for MNIST:
``image`` struct<bytes: binary (PNG), path: string> and ``label`` int64, with the
``huggingface`` schema metadata that makes ``datasets`` decode it as Image / ClassLabel."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import Params, ParquetCompression, PngLayout
from pipeline.decoded import SplitArrays, read_decoded
from pipeline.export_png import index_width, member_name
from pipeline.fsio import atomic_dir
from pipeline.images import encode_pngs
from pipeline.stage import run_export

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def hugging_face_schema(classes: list[str]) -> pa.Schema:
    features = {"image": {"_type": "Image"}, "label": {"names": classes, "_type": "ClassLabel"}}
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}, sort_keys=True).encode()}
    return pa.schema([("image", IMAGE_TYPE), ("label", pa.int64())], metadata=metadata)


def split_table(name: str, split: SplitArrays, classes: list[str], width: int, workers: int) -> pa.Table:
    """One split as a table; ``path`` names the image as the PNG tree does."""
    labels = split.labels.tolist()
    paths = [member_name(name, label, index, width, PngLayout.imagefolder) for index, label in enumerate(labels)]
    images = pa.StructArray.from_arrays(
        [pa.array(encode_pngs(split.images, workers), pa.binary()), pa.array(paths, pa.string())],
        fields=list(IMAGE_TYPE),
    )
    return pa.Table.from_arrays([images, pa.array(labels, pa.int64())], schema=hugging_face_schema(classes))


def export_parquet(params: Params, decoded_path: Path, parquet_dir: Path) -> str:
    options = params.export.parquet
    compression = None if options.compression is ParquetCompression.none else options.compression.value
    splits = read_decoded(decoded_path)
    width = index_width(splits)
    with atomic_dir(parquet_dir) as staging:
        for name, split in splits.items():
            table = split_table(name, split, params.dataset.classes, width, params.export.workers)
            pq.write_table(
                table,
                staging / f"{name}.parquet",
                compression=compression,
                row_group_size=options.row_group_size,
            )
    rows = ", ".join(f"{name}.parquet {len(split):,} rows" for name, split in splits.items())
    return f"{rows} -> {parquet_dir}"


def main(argv: list[str] | None = None) -> int:
    return run_export("parquet", export_parquet, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
