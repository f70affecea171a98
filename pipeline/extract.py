"""extract stage: decompress each verified archive into its IDX file, streamed and bounded.

A payload must have exactly its configured size: decompression stops as soon as it goes past
it (a gzip bomb cannot fill the disk), and a short payload is an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.archive import extract_payload
from pipeline.config import Params
from pipeline.fsio import atomic_dir
from pipeline.stage import run_stage, stage_parser


def idx_name(archive_name: str) -> str:
    return archive_name.removesuffix(".gz")


def extract(params: Params, raw_dir: Path, idx_dir: Path) -> str:
    archives = params.dataset.archives()
    with atomic_dir(idx_dir) as staging:
        for spec in archives:
            extract_payload(raw_dir / spec.file, staging / idx_name(spec.file), spec)
    total = sum(spec.payload_size for spec in archives)
    return f"extracted {len(archives)} IDX files ({total:,} bytes) -> {idx_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("idx_dir", type=Path)
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage("extract", lambda params: extract(params, args.raw_dir, args.idx_dir), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
