"""check stage: validate params.yaml before any other stage runs, and write each selected
dataset's params view and what each of its stages tracks.

This stage depends on params.yaml (as a file), conf/ and the package, and writes, for every
selected dataset:

- ``data/params/<d>.json``, the view: params.yaml with only that dataset in ``datasets`` (and
  in ``export.build``), every shared section kept, same keys, plus ``code``: the digest of each
  stage module's import closure (mnist_pipeline.provenance), and ``sha256``: the digests of
  the dataset's bulky facts (``BULKY_FACTS``). The dataset's stages read their params from it.
- ``data/params/<d>/<module>.json``: the keys of the view the stage of ``module`` reads
  (``STAGE_PARAMS``) and its ``code.<module>``, which the stage tracks whole in dvc.yaml.

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
that records other code than it runs, so a run that skips this stage, ``dvc repro -s``, still
costs no output and records nothing false: see mnist_pipeline.stage.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from mnist_pipeline.config import params_from_dict, read_params
from mnist_pipeline.errors import ConfigError, PipelineError
from mnist_pipeline.fsio import atomic_dir, symlinked_part
from mnist_pipeline.provenance import PACKAGE, code_digest
from mnist_pipeline.stage import PARAMS_VIEWS, params_view, run_stage, stage_parser

#: A resolver call (``${oc.env:TOKEN}``, ``${oc.decode:...}``): DVC resolves it while composing,
#: so this machine's value would reach params.yaml, dvc.lock, the run record and the dataset card.
#: Plain node interpolations (``${export.workers}``) and the resolvers that only read the config
#: itself copy nothing from outside and stay allowed.
RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
CONFIG_ONLY_RESOLVERS = ("oc.dict.keys", "oc.dict.values", "oc.select")
#: Every folder a dataset's stages write below ``data/<dataset>/`` (dvc.yaml names them).
DATASET_FOLDERS = ("raw", "idx", "decoded", "export")
#: Dataset facts the stages track by their sha256 (``sha256.<fact>`` in the view) instead of by
#: value: the files of every split (names, sizes, digests) and the class names, dozens of lines
#: each. DVC rewrites all of dvc.lock after every stage, so each stage's copy of them made a run
#: cost (stages x lock size); their values are in params.yaml and in the view beside the digest.
BULKY_FACTS = ("splits", "classes")
#: The keys check adds to every view (a params.yaml setting one would be overwritten).
VIEW_ONLY_KEYS = ("code", "sha256")
#: What a dataset card describes: the Parquet export's card (mnist_pipeline.card) and the report
#: read the same facts.
DESCRIBED = (
    "datasets.{dataset}.title",
    "datasets.{dataset}.homepage",
    "datasets.{dataset}.license",
    "datasets.{dataset}.citation",
    "sha256.classes",
    "datasets.{dataset}.labels",
    "datasets.{dataset}.transposed",
    "sha256.splits",
    "datasets.{dataset}.image_shape",
)
#: What each stage module reads from its dataset's view, and so what it tracks: check writes these
#: keys (``{dataset}``: the dataset's name), with ``code.<module>``, into
#: ``data/params/<dataset>/<module>.json``, and the stage tracks that file whole in dvc.yaml. DVC
#: compares a whole params file by its top-level keys; a list of keys costs it a walk of the
#: whole view per key (dpath), which was a third of a 12-dataset no-op ``dvc status``.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    # Mirrors and download settings are not tracked: they change where bytes come from, never
    # which bytes are accepted (this machine's own mirrors are not params at all: machine.py).
    "download": ("sha256.splits", "datasets.{dataset}.container", "datasets.{dataset}.compression", "verify.archive"),
    "verify": ("sha256.splits", "datasets.{dataset}.compression", "verify.archive"),
    "extract": ("sha256.splits", "datasets.{dataset}.compression"),
    "decode": (
        "sha256.splits",
        "datasets.{dataset}.image_shape",
        "datasets.{dataset}.transposed",
        "datasets.{dataset}.labels",
        "sha256.classes",
    ),
    "export_npz": ("export.npz", "datasets.{dataset}.export.npz", "sha256.classes"),
    "export_csv": ("export.csv", "datasets.{dataset}.export.csv", "sha256.classes", "datasets.{dataset}.labels"),
    "export_png": ("export.png", "datasets.{dataset}.export.png", "sha256.classes"),
    "export_parquet": ("export.parquet", "datasets.{dataset}.export.parquet", *DESCRIBED),
    # No option changes the tree: only its code.
    "unpack": (),
    "report": (*DESCRIBED, "export.formats", "report.samples_per_class"),
}


def check(params_path: Path, conf_dir: Path, views: Path) -> str:
    """The rules loading cannot see (what conf/ asks DVC to resolve, output folders that are
    links), then the views. The views are made from the very bytes validated here."""
    raw = read_params(params_path)
    params = params_from_dict(raw, source=str(params_path))
    for written in VIEW_ONLY_KEYS:
        if written in raw:
            raise ConfigError(f"{written}: expected no such key in params.yaml; check writes it into the views")
    for path in sorted(conf_dir.rglob("*.yaml")):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            calls = [name for name in RESOLVER_CALL.findall(line) if name not in CONFIG_ONLY_RESOLVERS]
            if calls:
                raise ConfigError(
                    f"{path}:{number}: `${{{calls[0]}:...}}` would copy a value of this machine into "
                    "params.yaml, dvc.lock and the exports; put mirrors and download settings in "
                    "mnist-pipeline.local.yaml and credentials in ~/.netrc (README: Mirrors)"
                )
    # Outputs are persisted, so DVC deletes nothing before a stage refuses; but it checks cached
    # outputs out wherever their folders point. Stop at the first stage instead.
    data = views.parent
    for folder in [views, *(data / name / part for name in params.datasets for part in DATASET_FOLDERS)]:
        linked = symlinked_part(folder)
        if linked is not None:
            raise PipelineError(f"{linked}: is a symbolic link; refusing to let any stage write {folder} through it")
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


def tracked_file(dataset: str, module: str, views: Path = PARAMS_VIEWS) -> Path:
    """The params file the stage of ``module`` tracks whole for ``dataset`` (dvc.yaml names it)."""
    return views / dataset / f"{module}.json"


def tracked_params(view: dict[str, Any], dataset: str, module: str) -> dict[str, Any]:
    """What the stage of ``module`` reads from ``view``, by the view's dotted keys:
    ``code.<module>`` and its ``STAGE_PARAMS``. Dotted keys at the top keep dvc.lock as compact
    as a list of keys would, and make ``dvc status`` name the key that changed."""
    tracked: dict[str, Any] = {}
    for key in (f"code.{module}", *(key.format(dataset=dataset) for key in STAGE_PARAMS[module])):
        value: Any = view
        try:
            for part in key.split("."):
                value = value[part]
        except (KeyError, TypeError):
            raise ConfigError(f"{key}: expected in params.yaml (the {module} stage reads it), found nothing") from None
        tracked[key] = value
    return tracked


def dataset_view(raw: dict[str, Any], name: str, code: dict[str, str]) -> dict[str, Any]:
    """params.yaml as the stages of dataset ``name`` see it: every shared section, and of the
    selected datasets only ``name``, in ``datasets`` and in ``export.build``; then ``code``, and
    ``sha256``: the digest of each of the dataset's ``BULKY_FACTS``, which the stages track
    in their place."""
    export = raw["export"]
    build = {
        fmt: [selected for selected in names if selected == name] for fmt, names in export.get("build", {}).items()
    }
    dataset = raw["datasets"][name]
    return {
        **raw,
        "export": {**export, "build": build},
        "datasets": {name: dataset},
        "code": code,
        "sha256": {fact: fact_digest(dataset.get(fact)) for fact in BULKY_FACTS},
    }


def fact_digest(value: Any) -> str:
    """sha256 of a value's compact JSON, keys in their composed order: the order of the splits is
    the order of stats.json, the card and the report, so reordering them is a change."""
    canonical = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "", per_dataset=False)
    parser.add_argument(
        "--conf", type=Path, default=Path("conf"), help="the config folder params.yaml is composed from"
    )
    parser.add_argument("views", type=Path, help=f"folder receiving one params view per dataset ({PARAMS_VIEWS})")
    args: argparse.Namespace = parser.parse_args(argv)
    # run_stage validates params.yaml first, as for every stage; check reads it once more to
    # write the views from bytes it has validated itself.
    return run_stage("check", lambda _: check(args.params, args.conf, args.views), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
