"""unpack stage: turn an export archive (png.zip) into its browsable tree, safely.

The tree replaces the old one as a whole (built beside it, then renamed). DVC tracks it
through the manifest inside it, which the zip carries as its last member.

The zip is treated as hostile input (it may come from a remote or another repo): every
member name must be a relative path that stays inside the tree, and links, devices and
absolute paths are refused. Files are written directly (no per-file metadata syscalls),
which is what makes 70,000 of them cheap.
"""

from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path

from pipeline.config import Params, is_relative_inside
from pipeline.errors import ArchiveError
from pipeline.fsio import atomic_dir
from pipeline.stage import run_stage, stage_parser


def unpack_zip(zip_path: Path, tree_dir: Path) -> int:
    """Write every member of ``zip_path`` under ``tree_dir`` (atomically as a whole)."""
    try:
        with zipfile.ZipFile(zip_path) as archive, atomic_dir(tree_dir) as staging:
            members = archive.infolist()
            made: set[Path] = set()
            for member in members:
                if not is_relative_inside(member.filename) or member.is_dir():
                    raise ArchiveError(f"{zip_path}: refusing member {member.filename!r} (not a relative file path)")
                target = staging / member.filename
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                _write_new_file(target, archive.read(member))
    except FileExistsError as exc:
        raise ArchiveError(f"{zip_path}: member {exc.filename} appears twice") from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ArchiveError(f"{zip_path}: not a valid zip archive: {exc}") from exc
    return len(members)


def _write_new_file(path: Path, data: bytes) -> None:
    # os.open with O_EXCL: one syscall fewer than Path.write_bytes, and a duplicate member
    # name fails instead of silently overwriting an earlier file.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


def unpack(_params: Params, zip_path: Path, tree_dir: Path) -> str:
    return f"{unpack_zip(zip_path, tree_dir):,} files -> {tree_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("archive", type=Path)
    parser.add_argument("tree", type=Path)
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage("unpack", lambda params: unpack(params, args.archive, args.tree), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
