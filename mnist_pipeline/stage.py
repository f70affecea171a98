"""The thin shell every stage shares: the code guard, params loading, logging, one-line errors,
exit codes.

Every output in dvc.yaml is ``persist: true``: DVC leaves the previous outputs in place while a
stage runs, so whatever this shell refuses (params that fail validation, code the team
repository does not record) costs no output, however the stage was started (``dvc repro``,
``repro -s``, ``exp run``, a queued experiment). Stages replace their outputs atomically.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from mnist_pipeline.config import Params, load_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.provenance import CODE_FILE, stale_code

log = logging.getLogger("mnist_pipeline")


def stage_parser(description: str, *, per_dataset: bool = True) -> argparse.ArgumentParser:
    """The arguments every stage takes: the params file and, for per-dataset stages, the
    dataset (a key of ``datasets`` in params.yaml)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="validated params file")
    if per_dataset:
        parser.add_argument("--dataset", required=True, help="name of the dataset in params.yaml (datasets.<name>)")
    return parser


def run_stage(name: str, work: Callable[[Params], str], params_path: Path) -> int:
    """Validate params, run ``work``, log its summary; expected failures become one line, exit 1."""
    _configure_logging(name)
    try:
        stale = stale_code(_stage_module(work), params_path.parent / CODE_FILE)
        if stale:
            raise PipelineError(stale)
        params = load_params(params_path)
        summary = work(params)
    except PipelineError as exc:
        log.error("error: %s", _one_line(str(exc)))
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        log.error("error: %s%s", where, exc.strerror or exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    log.info("%s", summary)
    return 0


def _stage_module(work: Callable[[Params], str]) -> str:
    """The stage's module (``mnist_pipeline.export_csv``), whether it runs as ``python -m`` or
    its ``main`` is called from Python."""
    module = work.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return module


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _configure_logging(name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{name}: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
