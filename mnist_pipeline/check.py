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
import re
from pathlib import Path

from mnist_pipeline.config import Params
from mnist_pipeline.errors import ConfigError, PipelineError
from mnist_pipeline.fsio import symlinked_part, write_bytes_atomic
from mnist_pipeline.stage import run_stage, stage_parser

CHECKED = b"params.yaml passed mnist_pipeline.check\n"
#: A resolver call (``${oc.env:TOKEN}``, ``${oc.decode:...}``): DVC resolves it while composing,
#: so this machine's value would reach params.yaml, dvc.lock, the run record and the dataset card.
#: Plain node interpolations (``${export.workers}``) and the resolvers that only read the config
#: itself copy nothing from outside and stay allowed.
RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
CONFIG_ONLY_RESOLVERS = ("oc.dict.keys", "oc.dict.values", "oc.select")
#: Every folder a dataset's stages write below ``data/<dataset>/`` (dvc.yaml names them).
DATASET_FOLDERS = ("raw", "idx", "decoded", "export")


def check(params: Params, conf_dir: Path, marker: Path) -> str:
    """The rules loading cannot see (what conf/ asks DVC to resolve, output folders that are
    links), then the marker."""
    for path in sorted(conf_dir.rglob("*.yaml")):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            calls = [name for name in RESOLVER_CALL.findall(line) if name not in CONFIG_ONLY_RESOLVERS]
            if calls:
                raise ConfigError(
                    f"{path}:{number}: `${{{calls[0]}:...}}` would copy a value of this machine into "
                    "params.yaml, dvc.lock and the exports; put mirrors and download settings in "
                    "mnist-pipeline.local.yaml and credentials in ~/.netrc (README: Mirrors)"
                )
    for name in params.datasets:
        # Outputs are persisted, so DVC deletes nothing before a stage refuses; but it checks cached
        # outputs out wherever their folders point. Stop at the first stage instead.
        for folder in (marker.parent / name / part for part in DATASET_FOLDERS):
            linked = symlinked_part(folder)
            if linked is not None:
                raise PipelineError(
                    f"{linked}: is a symbolic link; refusing to let any stage write {folder} through it"
                )
    write_bytes_atomic(marker, CHECKED)
    return f"params valid for {', '.join(params.datasets)} -> {marker}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "", per_dataset=False)
    parser.add_argument(
        "--conf", type=Path, default=Path("conf"), help="the config folder params.yaml is composed from"
    )
    parser.add_argument("marker", type=Path, help="file written when the params pass")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage("check", lambda params: check(params, args.conf, args.marker), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
