"""check stage: validate params.yaml before any other stage runs.

This stage depends on the whole of params.yaml and every other stage depends on its marker, so
a bad value in any key, including keys no stage tracks (``export.workers``, ``download.*``),
stops ``dvc repro`` / ``dvc exp run`` here, before anything runs. The marker's bytes never
change, so a passing check re-runs nothing downstream by itself. (Outputs are ``persist: true``
and every stage validates again on its own, so a run that skips this stage, ``dvc repro -s``,
still costs no output: see mnist_pipeline.stage.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_pipeline.config import Params
from mnist_pipeline.fsio import write_bytes_atomic
from mnist_pipeline.stage import run_stage, stage_parser

CHECKED = b"params.yaml passed mnist_pipeline.check\n"


def check(params: Params, marker: Path) -> str:
    """Cross-section rules (the schema's own are checked by loading), then the marker."""
    write_bytes_atomic(marker, CHECKED)
    return f"params valid for {', '.join(params.datasets)} -> {marker}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "", per_dataset=False)
    parser.add_argument("marker", type=Path, help="file written when the params pass")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage("check", lambda params: check(params, args.marker), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
