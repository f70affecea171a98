"""Write params.yaml from conf/ exactly as `dvc exp run` does (same composer, same dumper).

Command: ``mnist-pipeline params [OVERRIDE ...]`` (Hydra override grammar, like ``-S``).
Plain ``dvc repro`` reads the committed params.yaml and never composes, so after editing
conf/ run ``make params`` (or ``dvc exp run``) and commit the result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from dvc.utils.hydra import compose_and_dump

from mnist_pipeline.fsio import atomic_path, safe_target
from mnist_pipeline.names import CONF_DIR

CONFIG_DIR = Path(CONF_DIR)
CONFIG_NAME = "config"


def compose_params(output: Path, overrides: list[str], config_dir: Path = CONFIG_DIR, root: Path | None = None) -> None:
    """Compose ``config_dir``/config.yaml with ``overrides`` into ``output`` (YAML), atomically.
    ``output`` must be a path inside ``root`` (default: its own folder) reached through no
    symbolic link, and no link itself (a dangling one included): DVC's dumper would follow it."""
    safe_target(output, output.parent if root is None else root)
    with atomic_path(output) as temp:
        compose_and_dump(temp, str(config_dir.resolve()), None, CONFIG_NAME, str(Path.cwd()), overrides)


def composed(overrides: list[str], config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """What ``compose_params`` would write, as data (composed in a scratch folder)."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "params.yaml"
        compose_params(output, overrides, config_dir)
        loaded: dict[str, Any] = yaml.safe_load(output.read_text(encoding="utf-8"))
    return loaded
