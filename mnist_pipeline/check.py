"""check stage: validate params.yaml before any other stage runs, and write each selected
dataset's params view and what each of its stages tracks.

This stage depends on params.yaml (as a file), conf/ and the package, and writes, for every
selected dataset:

- ``data/params/<d>.json``, the view: params.yaml with only that dataset in ``datasets`` (and
  in ``export.build``), every shared section kept, same keys, plus ``code``: the digest of each
  stage module's import closure (mnist_pipeline.provenance), and ``sha256``: the digests of
  the dataset's bulky facts. The dataset's stages read their params from it.
- ``data/params/<d>/<module>.json``: the keys of the view the stage of ``module`` reads and its
  ``code.<module>``, which the stage tracks whole in dvc.yaml (what the files hold, and the key
  lists: mnist_pipeline.views).

So:

- a bad value in any key, including keys no stage tracks (``export.workers``, ``download.*``),
  stops ``dvc repro`` / ``dvc exp run`` here, before anything else runs (every other stage
  depends on a file of this stage, so DVC orders it first);
- DVC reads one small file per stage on every ``status``, ``repro`` and ``exp run``, whatever
  the number of datasets selected: one shared params.yaml made that cost grow with the square
  of the datasets selected, and a list of keys per stage cost a walk of the whole view per key.
  The files are JSON, which DVC parses with the C parser (its YAML constructor is pure Python);
- a file rewritten with the same values re-runs nothing: DVC compares the tracked values;
- editing a module re-runs exactly the stages whose import closure holds it, with no list of
  module files per stage to keep complete (DVC would also check each listed file on every
  status: about a dozen per stage).

(Outputs are ``persist: true`` and every stage validates its own view again, and refuses one
that records other code than it runs or that its tracked file disagrees with, so a run that
skips this stage, ``dvc repro -s``, still costs no output and records nothing false: see
mnist_pipeline.stage.)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from mnist_pipeline.config import read_params
from mnist_pipeline.errors import ConfigError
from mnist_pipeline.formats import validate_params
from mnist_pipeline.fsio import atomic_dir, refuse_links
from mnist_pipeline.names import CONF_DIR
from mnist_pipeline.provenance import PACKAGE, code_digest
from mnist_pipeline.stage import run_stage, stage_parser
from mnist_pipeline.views import (
    PARAMS_VIEWS,
    STAGE_PARAMS,
    VIEW_ONLY_KEYS,
    dataset_view,
    params_view,
    tracked_file,
    tracked_params,
)

#: A resolver call (``${oc.env:TOKEN}``, ``${oc.decode:...}``): DVC resolves it while composing,
#: so this machine's value would reach params.yaml, dvc.lock, the run record and the dataset card.
#: Plain node interpolations (``${export.workers}``) and the resolvers that only read the config
#: itself copy nothing from outside and stay allowed.
RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
CONFIG_ONLY_RESOLVERS = ("oc.dict.keys", "oc.dict.values", "oc.select")
#: Every folder a dataset's stages write below ``data/<dataset>/`` (dvc.yaml names them).
DATASET_FOLDERS = ("raw", "idx", "decoded", "export")


def check(params_path: Path, conf_dir: Path, views: Path) -> str:
    """The rules loading cannot see (what conf/ asks DVC to resolve, output folders that are
    links), then the views. The views are made from the very bytes validated here."""
    raw = read_params(params_path)
    params = validate_params(raw, source=str(params_path))
    for written in VIEW_ONLY_KEYS:
        if written in raw:
            raise ConfigError(f"{written}: expected no such key in params.yaml; check writes it into the views")
    if not conf_dir.is_dir():
        # Its files are what the resolver rule below reads: none would pass it silently.
        raise ConfigError(f"{conf_dir}: expected the folder params.yaml is composed from, found none")
    for path in sorted(conf_dir.rglob("*.yaml")):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            calls = [name for name in RESOLVER_CALL.findall(line) if name not in CONFIG_ONLY_RESOLVERS]
            if calls:
                raise ConfigError(
                    f"{path}:{number}: `${{{calls[0]}:...}}` would copy a value of this machine into "
                    "params.yaml, dvc.lock and the exports; put mirrors and download settings in "
                    "mnist-pipeline.local.yaml and credentials in ~/.netrc (README: Mirrors)"
                )
    # Outputs are persisted, so DVC deletes nothing before a stage refuses: stop at the first
    # stage, before any stage writes through a linked folder (the shell has checked check's own
    # output, the views). DVC's own checkout, which a queued experiment runs before any stage,
    # follows such a link all the same: that write is DVC's, not a stage's.
    data = views.parent
    for folder in (data / name / part for name in params.datasets for part in DATASET_FOLDERS):
        refuse_links(folder)
    code = {module: code_digest(f"{PACKAGE}.{module}") for module in STAGE_PARAMS}
    # One folder, replaced whole: a dataset no longer selected leaves nothing behind.
    with atomic_dir(views) as scratch:
        for name in params.datasets:
            view = dataset_view(raw, name, code)
            write_json(params_view(name, scratch), view, params_path)
            for module in STAGE_PARAMS:
                write_json(tracked_file(name, module, scratch), tracked_params(view, name, module), params_path)
    return f"params valid for {', '.join(params.datasets)} -> {views}/"


def write_json(path: Path, value: dict[str, Any], params_path: Path) -> None:
    try:
        text = json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # nan or inf under a free-form key (export.formats.<f>, ...)
        raise ConfigError(f"{params_path}: expected finite numbers, found {exc}") from exc
    path.parent.mkdir(exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "", per_dataset=False)
    parser.add_argument(
        "--conf", type=Path, default=Path(CONF_DIR), help="the config folder params.yaml is composed from"
    )
    parser.add_argument("views", type=Path, help=f"folder receiving one params view per dataset ({PARAMS_VIEWS})")
    args: argparse.Namespace = parser.parse_args(argv)
    # run_stage validates params.yaml first, as for every stage; check reads it once more to
    # write the views from bytes it has validated itself.
    return run_stage("check", lambda _: check(args.params, args.conf, args.views), args.params, writes=[args.views])


if __name__ == "__main__":
    raise SystemExit(main())
