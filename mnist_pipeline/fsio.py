"""Atomic writes, the rule for where a stage may write (below data/, through no link), and
streaming digests. (Downloads stream into their partial file: mnist_pipeline.transfer.)"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.names import DATA_DIR, SCRATCH_SUFFIXES, SCRATCH_TAG

CHUNK_SIZE = 1 << 20


class UnsafePathError(PipelineError):
    """A write would go through a symbolic link, outside its root, or onto a path the project did not create."""


def _linked_part(path: Path, root: Path | None = None) -> Path | None:
    """The first existing part of ``path`` below ``root`` (default: the working directory) that
    is a symbolic link, a dangling one too; None when there is none, or ``path`` is not below
    ``root`` (the user's own choice there). The one walk every write check makes."""
    # absolute(), not resolve(): resolving would follow the very links this looks for.
    base = (Path.cwd() if root is None else root).absolute()
    absolute = path.absolute()
    if not absolute.is_relative_to(base):
        return None
    current = base
    for part in absolute.relative_to(base).parts:
        current /= part
        if current.is_symlink():
            return current
        if not current.exists():
            return None  # nothing below a missing folder exists yet
    return None


def refuse_links(path: Path, root: Path | None = None) -> Path:
    """``path``, once ``_linked_part`` finds no link on its way; ``UnsafePathError`` naming the
    link and its target otherwise (writing through it would put bytes wherever it points)."""
    link = _linked_part(path, root)
    if link is not None:
        raise UnsafePathError(
            f"{path}: expected no symbolic link on the way, found {link} -> {link.readlink()}; "
            "refusing to write through it"
        )
    return path


def _scratch_beside(final: Path, suffix: str, *, clean: bool = False) -> Path:
    """A new, empty scratch folder beside ``final``; its parent folders made if missing and,
    with ``clean``, what a killed run left beside it removed. Every existing part of ``final``
    below the working directory is checked for links first, so neither the folders made or
    removed nor the scratch can be where a link points."""
    refuse_links(final)
    if clean:
        _remove_stale_scratch(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.{SCRATCH_TAG}", suffix=suffix, dir=final.parent))
    scratch.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; a published folder gets the usual mode
    return scratch


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _remove_stale_scratch(final: Path) -> None:
    """Remove the scratch folders a killed run left beside ``final``. Only the writer of
    ``final`` makes names of that shape, so none can belong to a live run."""
    if not final.parent.is_dir():
        return
    for leftover in final.parent.glob(f".{glob.escape(final.name)}.{SCRATCH_TAG}*"):
        if leftover.suffix in SCRATCH_SUFFIXES and leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    A crash or an exception leaves ``final`` as it was (absent or the previous good file),
    never half-written.
    """
    scratch = _scratch_beside(final, ".tmp", clean=True)
    temp = scratch / final.name
    try:
        yield temp
        temp.replace(final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``final`` only on success."""
    with atomic_outputs(final) as (staged,):
        staged.mkdir()
        yield staged


@dataclass
class _Swap:
    """One output of ``atomic_outputs`` on its way in: where its new version is staged, where
    its previous one is kept until all are in place, and whether the new one is in place."""

    final: Path
    scratch: Path
    retired: Path | None = None
    placed: bool = False


@contextmanager
def atomic_outputs(*finals: Path) -> Iterator[tuple[Path, ...]]:
    """Yield where to write each of ``finals`` (a file or a folder, nothing there yet); replace
    them all only on success. If one cannot be replaced (or the run is interrupted meanwhile),
    every one already replaced is put back: outputs that describe each other (an export and its
    sha256 file, the decoded arrays and their stats) change together or not at all. A previous
    version that could not be put back stays in its ``.old`` scratch folder. (Only a kill
    between two renames can leave some replaced; DVC then records nothing and runs the stage
    again.)"""
    _refuse_overlapping(finals)
    swaps: list[_Swap] = []
    try:
        for final in finals:
            swaps.append(_Swap(final, _scratch_beside(final, ".tmp", clean=True)))
        staged = tuple(swap.scratch / swap.final.name for swap in swaps)
        yield staged
        for swap, new in zip(swaps, staged, strict=True):
            _swap_in(swap, new)
    except BaseException:
        for swap in reversed(swaps):
            _put_back(swap)
        raise
    finally:
        for swap in swaps:
            shutil.rmtree(swap.scratch, ignore_errors=True)
            if swap.retired is not None and not (swap.retired.exists() or swap.retired.is_symlink()):
                shutil.rmtree(swap.retired.parent, ignore_errors=True)
    for swap in swaps:  # all in place: the previous versions go
        if swap.retired is not None:
            shutil.rmtree(swap.retired.parent, ignore_errors=True)


def _refuse_overlapping(finals: tuple[Path, ...]) -> None:
    absolute = [final.absolute() for final in finals]
    for index, final in enumerate(absolute):
        for other in absolute[:index]:
            if final == other or final.is_relative_to(other) or other.is_relative_to(final):
                raise UnsafePathError(
                    f"{finals[index]}: expected an output apart from {other}, found the same path or one inside it"
                )


def _swap_in(swap: _Swap, new: Path) -> None:
    """``new`` onto ``swap.final``, its previous version kept aside first. A file's stays in
    place too (a hard link), so the swap is one atomic rename; a folder cannot be renamed over."""
    final = swap.final
    if final.exists():
        swap.retired = _scratch_beside(final, ".old") / final.name
        if final.is_dir():
            final.replace(swap.retired)
        else:
            try:
                os.link(final, swap.retired)
            except OSError:  # a file system without hard links
                final.replace(swap.retired)
    new.replace(final)
    swap.placed = True


def _put_back(swap: _Swap) -> None:
    """Undo what ``_swap_in`` did of ``swap``, each step on its own: one that fails (or is
    interrupted) does not keep the others from putting their previous versions back."""
    final, retired = swap.final, swap.retired
    with contextlib.suppress(BaseException):
        if swap.placed and (retired is None or retired.is_dir()):
            final.replace(swap.scratch / final.name)  # the new version back where it was staged
    with contextlib.suppress(BaseException):
        if retired is not None and (retired.exists() or retired.is_symlink()):
            if final.exists() and retired.samefile(final):
                retired.unlink()  # the hard link of a file never replaced (rename would keep both)
            else:
                retired.replace(final)  # over a new file atomically; into a folder's emptied place


def remove_dir(final: Path) -> None:
    """Remove the folder ``final`` at once: renamed into a scratch folder beside it first, so no
    reader ever sees it half-removed (``final`` itself must not be a link)."""
    retired = _scratch_beside(final, ".old")
    final.replace(retired / final.name)
    shutil.rmtree(retired)


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as temp:
        temp.write_bytes(data)


@dataclass(frozen=True)
class Digests:
    """Size, md5 and sha256 of some bytes: what the dataset configs publish for every file."""

    size: int
    md5: str
    sha256: str


class Hasher:
    """Counts and hashes bytes fed in chunks: the one place digests are computed."""

    def __init__(self) -> None:
        self.size = 0
        self._md5 = hashlib.md5()
        self._sha256 = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._md5.update(chunk)
        self._sha256.update(chunk)

    def digests(self) -> Digests:
        return Digests(size=self.size, md5=self._md5.hexdigest(), sha256=self._sha256.hexdigest())


def digests_of(path: Path) -> Digests:
    hasher = Hasher()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.digests()


def sha256_of(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def sha256sum_lines(content: Path, output: Path, sums_path: Path) -> bytes:
    """``sha256sum -c``-compatible lines for ``output`` (a file, or every file below a folder),
    with paths relative to the folder of ``sums_path``, read from ``content`` (``output`` itself,
    or where it is staged before it replaces ``output``)."""
    base = sums_path.parent
    if not output.absolute().is_relative_to(base.absolute()):
        raise PipelineError(f"{sums_path}: expected a file in a folder that holds {output}, found it elsewhere")
    named = output.absolute().relative_to(base.absolute())
    files = sorted(p for p in content.rglob("*") if p.is_file()) if content.is_dir() else [content]
    lines = [f"{sha256_of(path)}  {(named / path.relative_to(content)).as_posix()}\n" for path in files]
    return "".join(lines).encode()


def safe_target(path: Path, root: Path) -> Path:
    """``path``, once it is proven that writing it stays inside ``root`` as git's writes do: no
    ``..`` part, inside ``root``, and no existing part below ``root`` a symbolic link (``path``
    itself included, a dangling link too). ``UnsafePathError`` otherwise."""
    if ".." in path.parts:
        raise UnsafePathError(f"{path}: expected a path without '..' parts, found one; refusing to write it")
    absolute_root = root.absolute()
    absolute = path.absolute()
    if not absolute.is_relative_to(absolute_root):
        raise UnsafePathError(f"{path}: expected a path inside {root}, found it outside; refusing to write it")
    refuse_links(path, root)
    if not absolute.resolve().is_relative_to(absolute_root.resolve()):
        raise UnsafePathError(f"{path}: expected a path inside {root}, found it resolving to {absolute.resolve()}")
    return path


def stage_output(path: Path) -> Path:
    """``path``, once it is proven a place a stage may write: below ``data/`` of the working
    directory (beside dvc.yaml, where DVC runs every stage; in a folder of a repository without
    one, none is; ``data/`` itself is not one: a
    stage replaces what it writes), with no ``..`` part and no symbolic link on the way,
    ``data/`` included. ``UnsafePathError`` otherwise: run by hand with other arguments, a
    stage must not replace ``conf/``, ``params.yaml``, ``data/`` or a folder outside the
    repository with its output."""
    cwd = Path.cwd()
    enclosing = _enclosing_repository(cwd)
    if enclosing is not None and not (is_repository_root(cwd) or (cwd / PIPELINE_FILE).exists()):
        # Run by hand from conf/ or another subfolder, data/ would be a new folder there.
        raise UnsafePathError(
            f"{path}: expected to run at a repository's root or beside its {PIPELINE_FILE}, as DVC runs "
            f"every stage, found the working directory {cwd} inside the repository {enclosing}; "
            "refusing to write there"
        )
    data = cwd / DATA_DIR
    absolute = path.absolute()
    if ".." in path.parts or absolute == data or not absolute.is_relative_to(data):
        found = f"{DATA_DIR}/ itself" if absolute == data else "one outside it"
        raise UnsafePathError(
            f"{path}: expected a path inside {DATA_DIR}/ of the working directory (the repository), "
            f"found {found}; refusing to write it"
        )
    return safe_target(path, Path.cwd())


#: The file DVC runs a pipeline's stages beside: its folder is their working directory.
PIPELINE_FILE = "dvc.yaml"


def _enclosing_repository(folder: Path) -> Path | None:
    """The nearest folder above ``folder`` (not itself) holding ``.git`` or ``.dvc``, or None."""
    return next((parent for parent in folder.parents if is_repository_root(parent)), None)


def is_repository_root(folder: Path) -> bool:
    """``folder`` holds a git or DVC repository (a clone, a submodule, ``dvc init --subdir``)."""
    return (folder / ".git").exists() or (folder / ".dvc").exists()


def write_bytes_under(path: Path, data: bytes, root: Path) -> None:
    """``write_bytes_atomic`` after ``safe_target(path, root)``, for a file of someone else's
    (a team's dvc.yaml, .gitignore): an existing file keeps its mode."""
    safe_target(path, root)
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    with atomic_path(path) as temp:
        temp.write_bytes(data)
        if mode is not None:
            temp.chmod(mode)
