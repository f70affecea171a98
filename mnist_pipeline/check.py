"""check stage: validate params.yaml before any other stage runs.

DVC removes a stage's outputs before it runs the stage's command, so a stage that refused a
bad parameter itself would already have cost its last good output. Every other stage depends
on this stage's output, and this stage depends on the whole of params.yaml: a bad ``-S`` value
stops ``dvc repro`` / ``dvc exp run`` here, with every earlier output in place. The output's
bytes never change, so a passing check re-runs nothing downstream by itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_pipeline.adopt import CODE_FILE, AdoptError, outdated_code
from mnist_pipeline.archive import has_payload_digest
from mnist_pipeline.config import ArchiveCheck, Params
from mnist_pipeline.errors import ConfigError
from mnist_pipeline.fsio import write_bytes_atomic
from mnist_pipeline.stage import run_stage, stage_parser

CHECKED = b"params.yaml passed mnist_pipeline.check\n"


def check(params: Params, marker: Path) -> str:
    """Cross-section rules (the schema's own are checked by loading), then the marker.

    In a team repository (``mnist-pipeline init``) this stage always runs, and it also stops
    the run when the installed package's stage code differs from the digests the repository
    records, naming the command that refreshes them."""
    outdated = outdated_code(Path(CODE_FILE))
    if outdated:
        raise AdoptError(outdated)
    if params.verify.archive is ArchiveCheck.payload:
        for name, dataset in params.datasets.items():
            for spec in dataset.files():
                if not has_payload_digest(spec):
                    raise ConfigError(
                        f"verify.archive: 'payload' needs a published payload digest, "
                        f"and datasets.{name} has none for {spec.file}; use 'strict'"
                    )
    write_bytes_atomic(marker, CHECKED)
    return f"params valid for {', '.join(params.datasets)} -> {marker}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "", per_dataset=False)
    parser.add_argument("marker", type=Path, help="file written when the params pass")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage("check", lambda params: check(params, args.marker), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
