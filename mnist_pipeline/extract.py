"""extract stage: decompress each verified file into its IDX payload, streamed and bounded.

How a file is compressed is a table (``mnist_pipeline.archive.OPENERS``: gzip, xz, none). A payload
must have exactly its configured size (decompression stops as soon as it goes past it, so a
bomb cannot fill the disk) and every payload digest the config publishes: a same-size IDX
file relabelled by hand in ``raw/`` is caught here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_pipeline.archive import extract_payload
from mnist_pipeline.config import DatasetSpec
from mnist_pipeline.fsio import atomic_dir
from mnist_pipeline.names import payload_name
from mnist_pipeline.stage import params_file, run_stage, stage_parser


def extract(dataset: DatasetSpec, raw_dir: Path, idx_dir: Path) -> str:
    files = dataset.files()
    with atomic_dir(idx_dir) as staging:
        for spec in files:
            extract_payload(
                raw_dir / spec.file,
                staging / payload_name(spec.file, dataset.compression.value),
                spec,
                dataset.compression,
            )
    total = sum(spec.payload_size for spec in files)
    return f"extracted {len(files)} IDX files ({total:,} bytes) -> {idx_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("idx_dir", type=Path)
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        f"extract@{args.dataset}",
        lambda params: extract(params.dataset(args.dataset), args.raw_dir, args.idx_dir),
        params_file(args),
        writes=[args.idx_dir],
    )


if __name__ == "__main__":
    raise SystemExit(main())
