"""Write params.yaml from conf/ exactly as `dvc exp run` does (same composer, same dumper).

Usage: ``python -m mnist_pipeline.params [OVERRIDE ...]`` (Hydra override grammar, like ``-S``).
Plain ``dvc repro`` reads the committed params.yaml and never composes, so after editing
conf/ run ``make params`` (or ``dvc exp run``) and commit the result.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dvc.utils.hydra import compose_and_dump

CONFIG_DIR = Path("conf")
CONFIG_NAME = "config"


def compose_params(output: Path, overrides: list[str], config_dir: Path = CONFIG_DIR) -> None:
    """Compose ``config_dir``/config.yaml with ``overrides`` into ``output`` (YAML)."""
    compose_and_dump(output, str(config_dir.resolve()), None, CONFIG_NAME, str(Path.cwd()), overrides)


def main(argv: list[str] | None = None) -> int:
    compose_params(Path("params.yaml"), list(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
