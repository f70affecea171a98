"""The params views and what each stage tracks: the files the ``check`` stage writes under
``data/params/`` and every other stage reads.

For each selected dataset ``<d>``:

- ``<d>.json``, the view: params.yaml with only that dataset, plus ``code`` (each stage module's
  code digest) and ``sha256`` (the digests of the dataset's ``BULKY_FACTS``). The dataset's
  stages read their params from it.
- ``<d>/<module>.json``: the keys of the view the stage of ``module`` reads (``STAGE_PARAMS``)
  and its ``code.<module>``, by their dotted names. DVC tracks it whole for that stage, and the
  stage refuses to run when it does not hold the values of its view (mnist_pipeline.stage), so
  that dvc.lock records exactly the values the stage ran with.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mnist_pipeline.errors import ConfigError
from mnist_pipeline.names import DATA_DIR, PARAMS_DIR

#: Where the ``check`` stage writes the views and the tracked files (dvc.yaml names the same folder).
PARAMS_VIEWS = Path(DATA_DIR) / PARAMS_DIR
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
    "report": (*DESCRIBED, "export.formats", "export.trees", "report.samples_per_class"),
}


def params_view(dataset: str, views: Path = PARAMS_VIEWS) -> Path:
    """The params view of ``dataset`` that the ``check`` stage writes."""
    return views / f"{dataset}.json"


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
