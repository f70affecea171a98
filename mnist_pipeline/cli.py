"""The ``mnist-pipeline`` command: adopt the pipeline in a repository, compose params, unpack a tree.

mnist-pipeline init [--dir DIR]   write stages, conf/, params.yaml and ignore entries here
mnist-pipeline init --upgrade     after upgrading the package: refresh them (re-runs what changed)
mnist-pipeline params [OVERRIDE]  compose conf/ into params.yaml, as `dvc exp run` does
mnist-pipeline unpack ZIP DIR     turn an imported images.zip into its PNG tree
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from mnist_pipeline.adopt import CODE_FILE, apply, enable_hydra, plan
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import compose_params
from mnist_pipeline.tree import MANIFEST, unpack_zip


def init(repo: Path, stages_dir: str, upgrade: bool) -> str:
    if Path(stages_dir).is_absolute() or ".." in Path(stages_dir).parts:
        raise PipelineError(f"--dir: expected a folder inside this repository, found {stages_dir!r}")
    planned = plan(repo, stages_dir, upgrade)
    apply(planned)
    hydra = enable_hydra(repo)
    params = repo / "params.yaml"
    composed = not params.exists()
    if composed:
        # Only on adoption: after an upgrade params.yaml keeps the team's selection, and the
        # next `dvc exp run` composes the new conf/ with their overrides.
        compose_params(params, [], repo / "conf")
    changed = [str(item.path.relative_to(repo)) for item in planned if item.action != "same"]
    changed += ["params.yaml"] if composed else []
    changed += [".dvc/config (hydra.enabled)"] if hydra else []
    hint = (
        "then `dvc repro` (or `dvc exp run -S dataset=...`) and commit" if not upgrade else "commit, then `dvc repro`"
    )
    return f"wrote {', '.join(changed) or 'nothing new'}; {hint}"


def refuse_foreign_folder(tree: Path) -> None:
    """The tree replaces its folder whole: refuse a folder that is not an earlier tree."""
    if tree.is_dir() and any(tree.iterdir()) and not (tree / MANIFEST).is_file():
        raise PipelineError(f"{tree}: exists and holds no {MANIFEST} of an earlier unpack; refusing to replace it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    adopt = commands.add_parser("init", help="adopt the pipeline in this git + DVC repository")
    adopt.add_argument("--dir", default=".", help="folder for the pipeline's dvc.yaml (default: the root one)")
    adopt.add_argument("--upgrade", action="store_true", help=f"refresh the files {CODE_FILE} records after an upgrade")
    params = commands.add_parser("params", help="compose conf/ into params.yaml")
    params.add_argument("overrides", nargs="*")
    unpacking = commands.add_parser("unpack", help="unpack an images.zip into its tree")
    unpacking.add_argument("archive", type=Path)
    unpacking.add_argument("tree", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            print(init(Path.cwd(), args.dir, args.upgrade))
        elif args.command == "params":
            if not Path("conf").is_dir():
                raise PipelineError("conf/: not found here; adopt the pipeline first with `mnist-pipeline init`")
            compose_params(Path("params.yaml"), args.overrides)
        else:
            refuse_foreign_folder(args.tree)
            print(f"{unpack_zip(args.archive, args.tree):,} files -> {args.tree}")
    except (PipelineError, HydraException, OmegaConfBaseException) as exc:
        print(f"mnist-pipeline: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"mnist-pipeline: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
