"""Writing a zip's members as a tree of files, safely: the library behind the unpack stage and
``mnist-pipeline unpack``.

The zip is hostile input (it may come from a remote or another repository): it is read with the
strict streaming reader (``mnist_pipeline.ziparchive``: stored or deflated members only, no
encryption, no links, names that stay inside the tree, sizes and CRCs checked), member by member,
so memory does not grow with the member count. What it may unpack is bounded before each member
is written: at most ``MAX_MEMBERS`` files and a total declared size of at most ``MAX_TOTAL_BYTES``
and ``MAX_EXPANSION`` times the zip's own size. The tree is built beside its final place and
replaces the old one as a whole. Files are written directly (one open/write/close each, no
per-file metadata syscalls), which is what makes 70,000 of them cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mnist_pipeline.errors import ArchiveError
from mnist_pipeline.fsio import atomic_dir
from mnist_pipeline.ziparchive import (
    CentralDirectory,
    FileReadAt,
    ReadAt,
    ZipMember,
    find_central_directory,
    iter_member_chunks,
    iter_members,
    read_member,
)

#: The tree's last file: DVC tracks the tree through it.
MANIFEST = "manifest.csv"
MAX_MEMBERS = 2_000_000
MAX_TOTAL_BYTES = 8 << 30
#: Declared bytes per byte of zip: PNGs are stored, so a real export is about 1x; deflated
#: text rarely passes 10x; a bomb is 1,000x and more.
MAX_EXPANSION = 1000
#: Members up to this size are read whole, header and data in one read; larger ones stream.
WHOLE_MEMBER_SIZE = 1 << 20


def unpack_zip(zip_path: Path, tree_dir: Path) -> int:
    """Write every member of ``zip_path`` under ``tree_dir`` (atomically as a whole); the file count."""
    where = str(zip_path)
    with FileReadAt(zip_path) as source:
        directory = find_central_directory(source, where)
        if directory.count == 0:
            raise ArchiveError(f"{where}: expected at least one member, found an empty archive")
        budget = min(MAX_TOTAL_BYTES, MAX_EXPANSION * source.size())
        with atomic_dir(tree_dir) as staging:
            return _write_members(source, directory, staging, where, budget)


def _write_members(source: ReadAt, directory: CentralDirectory, staging: Path, where: str, budget: int) -> int:
    root = str(staging)
    made_dirs = {""}
    declared = 0
    count = 0
    for member in iter_members(source, directory, where, max_members=MAX_MEMBERS):
        if member.is_dir:
            raise ArchiveError(f"{where}: refusing member {member.name!r}: expected files only, found a folder entry")
        declared += member.size
        if declared > budget:
            raise ArchiveError(
                f"{where}: refusing member {member.name!r}: expected at most {budget:,} bytes in all "
                f"(min of {MAX_TOTAL_BYTES:,} and {MAX_EXPANSION}x the zip), found {declared:,} declared up to it"
            )
        parent = member.name.rpartition("/")[0]
        try:
            if parent not in made_dirs:
                Path(root, parent).mkdir(parents=True, exist_ok=True)
                made_dirs.add(parent)
            _write_member(source, member, f"{root}/{member.name}", where)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ArchiveError(
                f"{where}: refusing member {member.name!r}: expected a new path, found one an earlier member "
                "already made (a duplicate name, or a file and a folder of the same name)"
            ) from exc
        count += 1
    return count


def _write_member(source: ReadAt, member: ZipMember, path: str, where: str) -> None:
    small = member.size <= WHOLE_MEMBER_SIZE and member.compressed_size <= WHOLE_MEMBER_SIZE
    # A small member is read (and checked) before its file exists; a large one streams into it.
    chunks: Iterable[bytes] = (
        [read_member(source, member, where, max_size=WHOLE_MEMBER_SIZE)]
        if small
        else iter_member_chunks(source, member, where)
    )
    # O_EXCL: a duplicate member name fails instead of silently overwriting an earlier file.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for chunk in chunks:
            _write_all(descriptor, chunk)
    finally:
        os.close(descriptor)


def _write_all(descriptor: int, data: bytes) -> None:
    written = os.write(descriptor, data)
    # A regular file takes everything in one write unless the disk fills; finish the rest.
    while written < len(data):
        written += os.write(descriptor, memoryview(data)[written:])
