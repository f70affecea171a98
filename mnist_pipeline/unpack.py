"""unpack stage: turn a PNG export's ``images.zip`` into its browsable tree (``export/images/``).

DVC tracks the tree through its marker (``treemark.MARKER``), which names the zip it was unpacked
from by its sha256: a tree left from another zip shows as changed in ``dvc status``.
The checks, bounds and the rule for where a tree may be written are those of
``mnist_pipeline.tree``, shared with ``mnist-pipeline unpack`` (the zip is hostile input, and a
folder without the tree's marker is not replaced).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_pipeline.config import Params
from mnist_pipeline.stage import params_file, run_stage, stage_parser
from mnist_pipeline.tree import unpack_zip


def unpack(_params: Params, zip_path: Path, tree_dir: Path) -> str:
    return f"{unpack_zip(zip_path, tree_dir):,} files -> {tree_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("archive", type=Path)
    parser.add_argument("tree", type=Path)
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        f"unpack@{args.dataset}",
        lambda params: unpack(params, args.archive, args.tree),
        params_file(args),
        writes=[args.tree],
    )


if __name__ == "__main__":
    raise SystemExit(main())
