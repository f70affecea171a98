"""export_parquet@<dataset> stage: ``<split>.parquet`` in the schema Hugging Face uses for MNIST:
``image`` struct<bytes: binary (PNG), path: string> and ``label`` int64, with the ``huggingface``
schema metadata that makes ``datasets`` decode them as Image and ClassLabel (names: the
dataset's classes). ``path`` names the image as the PNG export's imagefolder layout does.

Options: ``pixels`` adds ``pixels`` fixed_size_list<uint8>[rows * cols] (row-major), for SQL
engines and Spark, which cannot decode PNG; ``extended_labels``, for a dataset whose labels are
a table (QMNIST), adds one int32 column per table column but the class label (already ``label``),
named as in the dataset's ``labels.columns``; for datasets with plain labels it does nothing.

Written a row group at a time: every row group holds exactly ``row_group_size`` rows (the last
one fewer), and memory holds about one row group (~1 KB per 28x28 image with ``pixels``, plus
the writer's own buffers, ~30 MB for the default 10,000 rows).
PNGs are encoded by ``export.workers`` threads, each handed a file and a row range.

Beside the files, ``README.md`` is their Hugging Face dataset card (mnist_pipeline.card), made
from the written files: ``datasets.load_dataset("data/<dataset>/export/parquet")`` reads every
column with its feature type, offline.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from mnist_pipeline.card import CARD_NAME, IMAGE_TYPE, parquet_card
from mnist_pipeline.config import DatasetSpec, Params
from mnist_pipeline.decoded import DecodedSplit
from mnist_pipeline.exports import Write, run_export
from mnist_pipeline.parquet_options import PARQUET, ParquetOptions
from mnist_pipeline.pngpool import class_folder_names, encoded_ranges, index_width, member_name, png_workers

#: Rows per chunk handed to the Parquet writer: its default write batch, so the bytes equal those
#: of one contiguous chunk, while the levels of a list column (``pixels``) are computed per chunk
#: (measured on a 10,000-row group with pixels: Arrow's peak 28 MB instead of 103 MB).
WRITE_CHUNK_ROWS = 1024


def parquet_schema(dataset: DatasetSpec, extra_names: list[str], pixels: bool) -> pa.Schema:
    """The columns and their Hugging Face features: image, label, the extra label columns, pixels."""
    rows, cols = dataset.image_shape
    fields: list[tuple[str, Any]] = [("image", IMAGE_TYPE), ("label", pa.int64())]
    features: dict[str, Any] = {
        "image": {"_type": "Image"},
        "label": {"names": dataset.classes, "_type": "ClassLabel"},
    }
    for name in extra_names:
        fields.append((name, pa.int32()))
        features[name] = {"dtype": "int32", "_type": "Value"}
    if pixels:
        fields.append(("pixels", pa.list_(pa.uint8(), rows * cols)))
        # datasets' JSON for a fixed-size list: "Sequence" with a length, which datasets 5 reads
        # as a uint8 list of that length (tests/test_hf.py loads it).
        features["pixels"] = {
            "feature": {"dtype": "uint8", "_type": "Value"},
            "length": rows * cols,
            "_type": "Sequence",
        }
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}, sort_keys=True).encode()}
    return pa.schema(fields, metadata=metadata)


def split_tables(
    split: DecodedSplit,
    schema: pa.Schema,
    extra: list[tuple[int, str]],
    pool: ThreadPoolExecutor | None,
    folders: list[str],
    width: int,
) -> Iterator[pa.Table]:
    """The split's rows as tables of one PNG encoding range each, in order."""
    for start, stop, pngs in encoded_ranges(split.images, pool):
        labels = split.labels.read(start, stop)
        paths = [
            member_name(split.name, label, index, width, folders).encode()
            for index, label in zip(range(start, stop), labels.tolist(), strict=True)
        ]
        images = pa.StructArray.from_arrays(
            [arrow_bytes(pngs, pa.binary()), arrow_bytes(paths, pa.string())], fields=list(IMAGE_TYPE)
        )
        columns: list[pa.Array] = [images, arrow_numbers(labels, pa.int64())]
        if extra and split.table is not None:
            table = split.table.read(start, stop)
            columns += [arrow_numbers(table[:, index], pa.int32()) for index, _ in extra]
        if "pixels" in schema.names:
            flat = arrow_numbers(split.images.read(start, stop).reshape(-1), pa.uint8())
            columns.append(pa.FixedSizeListArray.from_arrays(flat, schema.field("pixels").type.list_size))
        yield pa.Table.from_arrays(columns, schema=schema)


# The columns are built from their buffers, not with pa.array(): wherever pandas is installed,
# pa.array() imports it first (0.27 s here, a sixth of the export), to ask whether its input is
# a pandas object.


#: The Arrow types of the number columns, and the numpy types their buffers hold.
NUMPY_TYPES = {pa.int64(): np.int64, pa.int32(): np.int32, pa.uint8(): np.uint8}


def arrow_numbers(values: npt.NDArray[Any], kind: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``kind``, over their bytes once in ``kind``'s numpy type
    (labels widen to int64; the label tables are int32 and the pixels uint8 already)."""
    # A safe cast only (pa.array() refused overflow; the decoded files' dtypes are checked on opening).
    numbers = np.ascontiguousarray(values.astype(NUMPY_TYPES[kind], casting="safe", copy=False))
    return pa.Array.from_buffers(kind, len(numbers), [None, pa.py_buffer(numbers)])


def arrow_bytes(values: list[bytes], kind: pa.DataType) -> pa.Array:
    """``values`` as an Arrow binary (or, UTF-8, string) array: their bytes in one buffer, and
    their 32-bit offsets into it (the offsets of ``pa.binary()``; one range of PNGs is far below
    2 GiB)."""
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(value) for value in values], out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"{offsets[-1]:,} bytes in one range: expected under 2 GiB for 32-bit offsets")
    data = pa.py_buffer(b"".join(values))
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(offsets.astype(np.int32)), data])


def row_groups(tables: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """``tables`` regrouped into tables of exactly ``size`` rows (the last one fewer), each cut
    into chunks of ``WRITE_CHUNK_ROWS``, so that the file depends on ``size`` only, not on how
    the rows arrived."""
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        pending.append(table)
        count += table.num_rows
        while count >= size:
            merged = pa.concat_tables(pending)
            yield _rechunked(merged.slice(0, size))
            pending, count = [merged.slice(size)], count - size
    if count:
        yield _rechunked(pa.concat_tables(pending))


def _rechunked(table: pa.Table) -> pa.Table:
    return pa.Table.from_batches(table.combine_chunks().to_batches(max_chunksize=WRITE_CHUNK_ROWS), table.schema)


def write_parquet(path: Path, tables: Iterable[pa.Table], schema: pa.Schema, options: ParquetOptions) -> int:
    """Write the row groups to ``path``; their size in Arrow memory (the card's ``num_bytes``)."""
    num_bytes = 0
    with pq.ParquetWriter(path, schema, compression=options.compression.value) as writer:
        for group in row_groups(tables, options.row_group_size):
            writer.write_table(group, row_group_size=options.row_group_size)
            num_bytes += group.nbytes
    return num_bytes


def export_parquet(
    options: ParquetOptions, dataset: DatasetSpec, splits: list[DecodedSplit], out_dir: Path, *, workers: int = 1
) -> str:
    """Write ``<split>.parquet`` of every split to ``out_dir``, PNGs encoded by ``workers``
    threads. Extra label columns never clash with the file's own (``image``, ``label``,
    ``pixels``): such names are refused when params are loaded."""
    extra = dataset.labels.extra_columns if options.extended_labels else []
    schema = parquet_schema(dataset, [name for _, name in extra], options.pixels)
    folders = class_folder_names(len(dataset.classes))
    width = index_width(splits)
    num_bytes = {}
    with png_workers(workers) as pool:
        for split in splits:
            tables = split_tables(split, schema, extra, pool, folders, width)
            num_bytes[split.name] = write_parquet(out_dir / f"{split.name}.parquet", tables, schema, options)
    # The card is made from the files just written, so its features are their schema.
    (out_dir / CARD_NAME).write_text(parquet_card(dataset, out_dir, num_bytes), encoding="utf-8")
    written = ", ".join(f"{split.name}.parquet {len(split):,} rows" for split in splits)
    return f"{written}, {CARD_NAME} (Hugging Face card)"


def prepare(options: ParquetOptions, params: Params, dataset_name: str) -> Write:
    return functools.partial(export_parquet, options, params.dataset(dataset_name), workers=params.export.workers)


def use_jemalloc() -> None:
    """Make jemalloc Arrow's allocator when this pyarrow build has it: writing a row group with
    ``pixels`` allocates ~100 MB of levels and pages, and jemalloc hands that back to the system
    sooner than mimalloc (pyarrow's default). Measured on MNIST with pixels: peak 247 MB, not 310."""
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def main(argv: list[str] | None = None) -> int:
    use_jemalloc()
    return run_export(PARQUET, prepare, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
