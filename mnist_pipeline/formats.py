"""Every export format's options at once: what ``check`` and ``mnist-pipeline datasets`` validate.

Each format's options live in its own module (``<format>_options``), which its export stage
imports alone, so that a change to one format's options re-runs that format's exports and no
other stage. This module is the one place that gathers them; no stage imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnist_pipeline.config import FormatOptions, Params, export_options, params_from_dict, read_params
from mnist_pipeline.csv_options import CSV
from mnist_pipeline.npz_options import NPZ
from mnist_pipeline.parquet_options import PARQUET
from mnist_pipeline.png_options import PNG

#: In KNOWN_FORMATS' order (tests/test_config.py checks they name the same formats).
FORMATS: tuple[FormatOptions[Any], ...] = (CSV, NPZ, PARQUET, PNG)


def validate_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Every rule of a composed config: the schema's (``params_from_dict``), then every format's
    options for every dataset, selected format or not. Raise ConfigError naming the first bad key."""
    params = params_from_dict(raw, source)
    for name in params.datasets:
        for fmt in FORMATS:
            export_options(params, name, fmt, source)
    return params


def load_params(path: Path) -> Params:
    """Read params.yaml (or a dataset's view of it) and check every rule; raise ConfigError
    naming the first bad key."""
    return validate_params(read_params(path), source=str(path))
