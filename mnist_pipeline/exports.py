"""The shell every export stage shares (``run_export``): the decoded folder in, one folder out
(``data/<dataset>/export/<format>/``, replaced as a whole only on success) and, with ``--sums``,
a sha256sum-style file covering every file of that folder.

Only the shell lives here, so that each export's import closure is exactly what it uses: the
validation carve (npz, csv) is ``mnist_pipeline.validation``, the PNG worker pool and the
image-folder names (png, parquet) are ``mnist_pipeline.pngpool``.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

from mnist_pipeline.config import FormatOptions, Options, Params, export_options
from mnist_pipeline.decoded import DecodedSplit, open_decoded
from mnist_pipeline.fsio import atomic_outputs, sha256sum_lines
from mnist_pipeline.stage import params_file, run_stage, stage_parser

#: An export with its options and dataset facts bound: (decoded splits, staging folder) -> summary.
Write = Callable[[list[DecodedSplit], Path], str]


def stage_name(format_name: str, dataset_name: str) -> str:
    """The DVC stage of one format and dataset, as dvc.yaml's ``export_<format>`` foreach names it."""
    return f"export_{format_name}@{dataset_name}"


def run_export(
    fmt: FormatOptions[Options],
    prepare: Callable[[Options, Params, str], Write],
    argv: list[str] | None,
    doc: str,
    after: Callable[[Path], str] | None = None,
) -> int:
    """Run one export stage. ``prepare(options, params, dataset)`` binds the format's own
    options (typed and checked by the format's module, ``fmt``) and the dataset facts it needs
    to the export; ``after(output)``, once the export is in place, returns what to add to the
    summary."""
    parser = stage_parser(doc)
    parser.add_argument("decoded", type=Path, help="decoded/ folder written by the decode stage")
    parser.add_argument("output", type=Path, help="the export folder to write")
    parser.add_argument("--sums", type=Path, help="write sha256 lines of the output here")
    args: argparse.Namespace = parser.parse_args(argv)

    # Wrapped, so that the shell sees the format's module as the stage's code, not this one.
    @functools.wraps(prepare)
    def work(params: Params) -> str:
        options = export_options(params, args.dataset, fmt, str(params_file(args)))
        write = prepare(options, params, args.dataset)
        splits = open_decoded(args.decoded, params.dataset(args.dataset))
        # The folder and its sha256 file are replaced together: never one without the other.
        outputs = (args.output, args.sums) if args.sums else (args.output,)
        with atomic_outputs(*outputs) as staged:
            staged[0].mkdir()
            summary = write(splits, staged[0])
            if args.sums:
                staged[1].write_bytes(sha256sum_lines(staged[0], args.output, args.sums))
        return summary + (after(args.output) if after else "")

    return run_stage(stage_name(fmt.name, args.dataset), work, params_file(args), writes=[args.output, args.sums])
