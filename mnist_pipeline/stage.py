"""The thin shell every stage shares: the code guard, params loading, logging, one-line errors,
exit codes.

A per-dataset stage reads its dataset's params view, ``data/params/<dataset>.json``: params.yaml
with only that dataset, written by the ``check`` stage, which writes beside it the keys each
stage reads (``data/params/<dataset>/<module>.json``, mnist_pipeline.views), the file the
stage's DVC params track. The stage runs with exactly the values dvc.lock records for it: it
refuses to run when its view records other code than its own (``stale_view``), or when its
tracked file does not hold its view's values (``tracked_file_mismatch``).

Every output in dvc.yaml is ``persist: true``: DVC leaves the previous outputs in place while a
stage runs, so whatever this shell refuses (params that fail validation, code the team
repository does not record) costs no output, however the stage was started (``dvc repro``,
``repro -s``, ``exp run``, a queued experiment). Stages replace their outputs atomically.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from mnist_pipeline.config import Params, params_from_dict, read_params
from mnist_pipeline.errors import ConfigError, PipelineError, exit_code
from mnist_pipeline.fsio import UnsafePathError, stage_output
from mnist_pipeline.names import CONF_DIR, DATA_DIR, PARAMS_DIR, STAGE_OUTPUTS
from mnist_pipeline.provenance import CODE_FILE, PACKAGE, code_digest, stale_code
from mnist_pipeline.views import PARAMS_VIEWS, STAGE_PARAMS, params_view, tracked_file, tracked_params

log = logging.getLogger("mnist_pipeline")


def stage_parser(description: str, *, per_dataset: bool = True) -> argparse.ArgumentParser:
    """The arguments every stage takes: the params file and, for per-dataset stages, the
    dataset (a key of ``datasets`` in params.yaml)."""
    parser = argparse.ArgumentParser(description=description)
    if per_dataset:
        parser.add_argument("--dataset", required=True, help="name of the dataset in params.yaml (datasets.<name>)")
        parser.add_argument("--params", type=Path, help=f"params file (default: {PARAMS_VIEWS}/<dataset>.json)")
    else:
        parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    return parser


def params_file(args: argparse.Namespace) -> Path:
    """The params a stage parsed by ``stage_parser`` reads: ``--params``, or its dataset's view."""
    return cast(Path, args.params) if args.params is not None else params_view(args.dataset)


def run_stage(name: str, work: Callable[[Params], str], params_path: Path, *, writes: Sequence[Path | None]) -> int:
    """Check the paths the stage ``writes`` (``None``: an optional one not given) are its to
    write (``fsio.stage_output``), validate params, run ``work``, log its summary; expected
    failures become one line, exit 1."""
    _configure_logging(name)

    def checked_run() -> None:
        for path in writes:
            if path is not None:
                stage_output(path)
                foreign = foreign_output(path, name)
                if foreign:
                    raise UnsafePathError(foreign)
        module = _stage_module(work)
        # The stage runs in the repository's root (DVC's wdir), where init writes the record.
        stale = stale_code(module, Path(CODE_FILE))
        if stale:
            raise PipelineError(stale)
        if params_path.parent == PARAMS_VIEWS and not params_path.exists():
            raise ConfigError(missing_view(params_path))
        raw = read_params(params_path)
        params = params_from_dict(raw, source=str(params_path))
        stale = stale_view(module, params, params_path) or tracked_file_mismatch(module, raw, params_path)
        if stale:
            raise PipelineError(stale)
        log.info("%s", work(params))

    return exit_code(checked_run, log.error)


def missing_view(params_path: Path) -> str:
    """What to do when the stage's view is missing: run check, or, without the pipeline's conf/
    here (a subfolder, or a repository that only imports the data), go to the root or adopt."""
    if not Path(CONF_DIR).is_dir():
        return (
            f"{params_path}: not found, nor the {CONF_DIR}/ the check stage writes it from: run from the "
            "repository's root, or adopt the pipeline there first with `mnist-pipeline init`"
        )
    return (
        f"{params_path}: not found; the check stage writes it for each dataset of params.yaml: "
        "run `dvc repro` (or select the dataset with -S dataset=...)"
    )


def foreign_output(path: Path, stage: str) -> str | None:
    """Why ``path`` is not ``stage``'s (``<kind>@<dataset>``) to write, or None: what dvc.yaml
    has another stage, or the same kind of stage for another dataset, write
    (``names.STAGE_OUTPUTS``: ``data/<dataset>/<output>``, ``data/params``), a path inside one,
    or a folder holding such outputs (a dataset's own folder). Other paths below ``data/`` (a
    stage run by hand into ``data/scratch``) are the caller's."""
    kind, _, dataset = stage.partition("@")
    data = Path.cwd() / DATA_DIR
    parts = path.absolute().relative_to(data).parts  # stage_output checked that it is below
    if parts[:1] == (PARAMS_DIR,):
        owner, owner_dataset, inside = "check", "", len(parts) > 1
    elif len(parts) == 1:
        held = [out for outs in STAGE_OUTPUTS.values() for out in outs if (data / parts[0] / out).exists()]
        if not held:
            return None
        return (
            f"{path}: expected {stage}'s own output, found the folder of {parts[0]}'s outputs "
            f"({parts[0]}/{held[0]}, ...); refusing to replace it"
        )
    else:
        rest = "/".join(parts[1:])
        owners = [
            (len(out), name, rest != out)
            for name, outs in STAGE_OUTPUTS.items()
            for out in outs
            if rest == out or rest.startswith(f"{out}/")
        ]
        if not owners:
            return None
        _, owner, inside = max(owners)
        owner_dataset = parts[0]
    if (owner, owner_dataset) == (kind, dataset):
        return None
    whose = f"{owner}@{owner_dataset}" if owner_dataset else owner
    found = f"a path inside what {whose} writes" if inside else f"what {whose} writes"
    return f"{path}: expected {stage}'s own output, found {found} (dvc.yaml); refusing to replace it"


def stale_view(module: str, params: Params, params_path: Path) -> str | None:
    """Why the view records other code for ``module`` than this checkout runs (a module edited
    since check last ran, then a targeted ``dvc repro -s``), or None: dvc.lock records the
    digest of the view, so it must be the code that runs."""
    key = module.removeprefix(f"{PACKAGE}.")
    if key not in params.code or params.code[key] == code_digest(module):
        return None
    return (
        f"{params_path}: records other code for {module} than this checkout runs (edited since the check "
        "stage wrote it); run `dvc repro` (or `dvc repro check` first)"
    )


def tracked_file_mismatch(module: str, view: dict[str, Any], params_path: Path) -> str | None:
    """Why the file DVC tracks for this stage does not hold the values the stage reads from its
    view (one of them edited by hand, or only one checked out), or None: dvc.lock records the
    tracked file, so it must hold what the stage runs with."""
    key = module.removeprefix(f"{PACKAGE}.")
    if params_path.parent != PARAMS_VIEWS or key not in STAGE_PARAMS:
        return None  # a params file given by hand (--params), or the check stage itself
    tracked = tracked_file(params_path.stem, key)
    if tracked.exists() and read_params(tracked) == tracked_params(view, params_path.stem, key):
        return None
    found = "other values" if tracked.exists() else "no file"
    return (
        f"{tracked}: expected the values of {params_path} the {key} stage reads, found {found} (edited by hand?); "
        "run `dvc repro` (or `dvc checkout data/params`)"
    )


def _stage_module(work: Callable[[Params], str]) -> str:
    """The stage's module (``mnist_pipeline.export_csv``), whether it runs as ``python -m`` or
    its ``main`` is called from Python."""
    module = work.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return module


def _configure_logging(name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{name}: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
