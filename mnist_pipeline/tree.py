"""Writing a zip's members as a tree of files, safely: the library behind the unpack stage and
``mnist-pipeline unpack``.

Where a tree may go (one rule for the stage and the command, ``refuse_foreign_target``): a path
that does not exist yet, an empty folder, or a folder this module wrote before, which it proves
by the marker file ``MARKER`` it puts in every tree (never by a ``manifest.csv``, which anyone's
folder may hold). Never onto a file (the zip itself included), a symbolic link, the working
directory, a folder holding the zip, or through a link below the working directory; a ``..``
only right after an existing folder that is no link, so that the path goes where it reads.

What it unpacks: only a PNG export of this pipeline, a zip whose last member is ``manifest.csv``
listing every other member, in order, in its ``path`` column, but for the
``<split>/metadata.csv`` of the flat layout (Hugging Face's image-folder labels), each right
after its split's PNGs. The zip is hostile input (it may come from a remote or another
repository): it is read with the strict streaming reader (``mnist_pipeline.ziparchive``: stored
or deflated members only, no encryption, no links, names that stay inside the tree, bounded name
depth and length, no overlapping members, sizes and CRCs checked), member by member, so memory
does not grow with the member count. A first pass over the central directory checks every entry
and the bounds before anything is written: at most ``MAX_MEMBERS`` files and a total declared
size of at most ``MAX_TOTAL_BYTES`` and ``MAX_EXPANSION`` times the zip's own size. The second
pass writes the tree beside its final place, compares each name with the manifest's next row,
and the tree replaces the old one as a whole. Files are written directly (one open/write/close
each, no per-file metadata syscalls), which is what makes 70,000 of them cheap; with a second
core, a forked helper process creates every other folder's files meanwhile (``_FileMaker``).

Every tree also gets a ``.gitignore`` of ``*``: a consumer's ``git add -A`` never adds the
unpacked PNGs (the zip they came from is what is versioned), while DVC, which reads
``.dvcignore`` and not ``.gitignore``, still tracks the unpack stage's output, the marker.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import fcntl
import gc
import os
import signal
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from mnist_pipeline.errors import ArchiveError, PipelineError
from mnist_pipeline.fsio import atomic_dir, safe_target
from mnist_pipeline.names import MANIFEST_COLUMNS, MANIFEST_NAME, SPLIT_METADATA_NAME
from mnist_pipeline.treemark import MARKER, MARKER_HEADER, ZIP_SHA256_LABEL, is_our_tree
from mnist_pipeline.ziparchive import (
    CentralDirectory,
    FileReadAt,
    ReadAt,
    ZipMember,
    find_central_directory,
    iter_member_chunks,
    iter_members,
    read_member,
    sha256_of_source,
)

#: The file names Hugging Face's image-folder loader reads labels from (datasets'
#: ``FolderBasedBuilder.METADATA_FILENAMES``): only a flat split's own metadata.csv may have one.
_LABEL_METADATA_NAMES = {SPLIT_METADATA_NAME, "metadata.jsonl", "metadata.parquet"}
#: The manifest's first column (the zip's last member): every other member but the split metadata.
MANIFEST_PATH_COLUMN = MANIFEST_COLUMNS[0]
GITIGNORE = ".gitignore"
GITIGNORE_CONTENT = b"# mnist-pipeline unpack: this tree is rebuilt from its zip; git ignores all of it.\n*\n"
MAX_MEMBERS = 2_000_000
MAX_TOTAL_BYTES = 8 << 30
#: Declared bytes per byte of zip: PNGs are stored, so a real export is about 1x; deflated
#: text rarely passes 10x; a bomb is 1,000x and more.
MAX_EXPANSION = 1000
#: Members up to this size are read whole, header and data in one read; larger ones stream.
WHOLE_MEMBER_SIZE = 1 << 20
#: The manifest is streamed in chunks of this size while the members are written.
MANIFEST_CHUNK = 1 << 16


class TreeError(PipelineError):
    """The destination of a tree is not one this module may create or replace."""


@dataclass(frozen=True)
class Survey:
    """What the first pass learnt: the member count and the manifest entry (the last one)."""

    count: int
    manifest: ZipMember


def unpack_zip(zip_path: Path, tree_dir: Path) -> int:
    """Write every member of ``zip_path`` under ``tree_dir`` (atomically as a whole), with the
    marker and the ignore file; the member count. Refuses, before writing anything, a
    destination ``refuse_foreign_target`` refuses and a zip that is not a PNG export."""
    tree_dir = refuse_foreign_target(zip_path, tree_dir)
    where = str(zip_path)
    with FileReadAt(zip_path) as source:
        directory = find_central_directory(source, where)
        survey = survey_export(source, directory, where, min(MAX_TOTAL_BYTES, MAX_EXPANSION * source.size()))
        made = _missing_parents(tree_dir)
        try:
            with atomic_dir(tree_dir) as staging:
                count = _write_members(source, directory, survey, staging, where)
                _write_marks(staging, sha256_of_source(source))
        except BaseException:
            _remove_empty(made)
            raise
    return count


def refuse_foreign_target(zip_path: Path, tree_dir: Path) -> Path:
    """The one rule for where a tree may be written. Returns the destination to write:
    ``tree_dir`` read lexically (``_without_dot_dots``); raises ``TreeError`` or
    ``UnsafePathError`` naming ``tree_dir`` otherwise (or, for a path that comes back below the
    working directory through ``..``, the path it reaches)."""
    target = _without_dot_dots(tree_dir)
    cwd = Path.cwd()
    absolute = Path(os.path.abspath(target))  # noqa: PTH100 - lexical: resolve() would follow the links checked
    if cwd.is_relative_to(absolute):
        raise TreeError(
            f"{tree_dir}: expected a folder of its own for the tree, found the working directory or a folder "
            "holding it; refusing to replace it"
        )
    # Below the working directory no part may be a link (as git), however the path reaches it
    # (`../<this folder>/tree` too); elsewhere the path is the user's own choice, and only the
    # folder itself is checked.
    if absolute.is_relative_to(cwd):
        safe_target(target if ".." not in tree_dir.parts else absolute.relative_to(cwd), cwd)
    else:
        safe_target(absolute, absolute.parent)
    if not absolute.exists():
        # The nearest part that exists must be a folder. A dangling link counts as there; "." or
        # "/" at the latest.
        holder = _nearest_existing(target)
        if not holder.is_dir():
            raise _in_the_way(tree_dir, _no_folder(holder))
        return target
    if not absolute.is_dir():
        raise TreeError(
            f"{tree_dir}: expected a folder (or nothing) to unpack into, found a file; refusing to replace it"
        )
    if Path(os.path.realpath(zip_path)).is_relative_to(absolute.resolve()):
        raise TreeError(f"{tree_dir}: expected a folder apart from the zip, found it holding {zip_path}")
    if any(absolute.iterdir()) and not is_our_tree(absolute):
        raise TreeError(
            f"{tree_dir}: expected an empty folder or a tree mnist-pipeline unpacked (it holds {MARKER}), "
            f"found other files; refusing to replace it"
        )
    return target


def _without_dot_dots(tree_dir: Path) -> Path:
    """``tree_dir`` read lexically (``a/../b`` is ``b``), once every ``..`` is proven to step out
    of an existing folder that is no link, where the system reads it the same way: it reads
    ``link/..`` (and ``link/sub/../..``) as the parent of wherever the link points, and
    ``missing/..`` would make ``missing`` when the folders on the way are made."""
    for index, part in enumerate(tree_dir.parts):
        if part != ".." or index == 0:
            continue
        # Read lexically: the `..` parts before this one are proven, so this is the folder the
        # system steps out of (`linkdir/sub/..` is `linkdir`).
        before = Path(os.path.normpath(Path(*tree_dir.parts[:index])))
        if before.is_symlink():
            raise TreeError(
                f"{tree_dir}: expected no symbolic link before '..', found {before} -> {before.readlink()}; "
                "refusing to unpack there"
            )
        if not before.is_dir():
            holder = _nearest_existing(before)
            raise _in_the_way(tree_dir, f"nothing at {before}" if holder.is_dir() else _no_folder(holder))
    return Path(os.path.normpath(tree_dir))


def _nearest_existing(path: Path) -> Path:
    """``path`` or the nearest path above it that exists (a dangling link counts); "." or "/"
    at the latest."""
    return next(part for part in (path, *path.parents) if part.exists() or part.is_symlink())


def _no_folder(holder: Path) -> str:
    return f"the file {holder}" if holder.exists() else f"the dangling link {holder}"


def _in_the_way(tree_dir: Path, found: str) -> TreeError:
    return TreeError(f"{tree_dir}: expected folders to unpack into, found {found} on the way; refusing to unpack there")


def survey_export(source: ReadAt, directory: CentralDirectory, where: str, budget: int) -> Survey:
    """First pass, nothing written: every entry checked, the bounds, and the export's shape
    (files only, ``manifest.csv`` last and only there)."""
    if directory.count == 0:
        raise ArchiveError(f"{where}: expected at least one member, found an empty archive")
    declared = 0
    last: ZipMember | None = None
    for index, member in enumerate(iter_members(source, directory, where, max_members=MAX_MEMBERS)):
        if member.is_dir:
            raise ArchiveError(f"{where}: refusing member {member.name!r}: expected files only, found a folder entry")
        if (top := member.name.partition("/")[0]) in (MARKER, GITIGNORE):
            raise _not_an_export(where, f"a member named {member.name!r}, where unpack writes {top} itself")
        if any(part.startswith(".") for part in member.name.split("/")):
            # No export member's name has a part starting with a dot; in a tree, .git/ would be
            # a repository whose config git obeys (core.fsmonitor runs a command), .dvcignore
            # would change what DVC sees.
            raise _not_an_export(where, f"a member named {member.name!r}, a name part starting with a dot")
        if member.name == MANIFEST_NAME and index != directory.count - 1:
            raise _not_an_export(where, f"{MANIFEST_NAME} at entry {index + 1} of {directory.count}")
        declared += member.size
        if declared > budget:
            raise ArchiveError(
                f"{where}: refusing member {member.name!r}: expected at most {budget:,} bytes in all "
                f"(min of {MAX_TOTAL_BYTES:,} and {MAX_EXPANSION}x the zip), found {declared:,} declared up to it"
            )
        last = member
    assert last is not None  # the count is at least one and iter_members yields exactly count entries
    if last.name != MANIFEST_NAME:
        raise _not_an_export(where, f"no {MANIFEST_NAME} (last member {last.name!r})")
    return Survey(count=directory.count, manifest=last)


def _not_an_export(where: str, found: str) -> ArchiveError:
    return ArchiveError(
        f"{where}: expected a PNG export of mnist-pipeline (last member {MANIFEST_NAME}, listing the others), "
        f"found {found}; refusing to unpack it"
    )


def _write_members(source: ReadAt, directory: CentralDirectory, survey: Survey, staging: Path, where: str) -> int:
    root = str(staging)
    made_dirs = {""}
    shape = _ExportShape(_manifest_paths(source, survey.manifest, where), where)
    count = 0
    with _FileMaker(root, where, helper=_helper_possible()) as maker:
        try:
            for member in iter_members(source, directory, where, max_members=MAX_MEMBERS):
                shape.admit(member.name, last=count == survey.count - 1)
                parent = member.name.rpartition("/")[0]
                try:
                    if parent not in made_dirs:
                        Path(root, parent).mkdir(parents=True, exist_ok=True)
                        made_dirs.add(parent)
                    maker.write(source, member, parent)
                except (FileExistsError, NotADirectoryError) as exc:
                    raise _clash(where, member.name) from exc
                count += 1
            maker.finish()
        except _HelperError as failed:
            if isinstance(failed.error, FileExistsError | NotADirectoryError):
                raise _clash(where, os.path.relpath(failed.error.filename, root)) from failed.error
            raise failed.error from None
    return count


def _clash(where: str, name: str) -> ArchiveError:
    return ArchiveError(
        f"{where}: refusing member {name!r}: expected a new path, found one an earlier member "
        "already made (a duplicate name, or a file and a folder of the same name)"
    )


class _ExportShape:
    """The members, in order, held to the manifest's rows and to the export's shape as Hugging
    Face's loader reads labels: from the class folders, or from a flat split's own metadata right
    after its PNGs. A metadata file anywhere else (one in a class-folder tree drops every
    folder's labels) is refused, listed or not. This keeps the shape only: a hostile zip can
    still put a PNG in another class's folder."""

    def __init__(self, listed: Iterator[str], where: str) -> None:
        self._listed = listed
        self._where = where
        self._rows = 0
        self._flat_split: str | None = None  # the split the member before sits directly in
        self._nested: set[str] = set()  # splits with a member below a folder of theirs (class folders)
        self._closed: set[str] = set()  # splits whose metadata came: nothing of theirs may follow

    def admit(self, name: str, *, last: bool) -> None:
        """Accept the next member's ``name`` or raise the ``ArchiveError`` saying why not;
        ``last``: the manifest itself, after which no row may be left."""
        split, _, rest = name.partition("/")
        if last:
            if (extra := next(self._listed, None)) is not None:
                raise self._refused(
                    f"{MANIFEST_NAME} row {self._rows + 1} listing {extra!r}, which the zip does not hold"
                )
        elif rest == SPLIT_METADATA_NAME and split == self._flat_split and split not in self._nested:
            self._closed.add(split)
            self._flat_split = None
        else:
            self._admit_listed(name, split, rest)

    def _admit_listed(self, name: str, split: str, rest: str) -> None:
        row = next(self._listed, None)
        self._rows += 1
        if row != name:
            expected = "the end of the list" if row is None else repr(row)
            raise self._refused(f"member {name!r} where {MANIFEST_NAME} row {self._rows} lists {expected}")
        if split in self._closed:
            raise self._refused(f"member {name!r} after {split}/{SPLIT_METADATA_NAME}")
        if name.rpartition("/")[2] in _LABEL_METADATA_NAMES:
            raise self._refused(f"member {name!r}, a name Hugging Face reads labels from, not a flat split's own")
        if "/" in rest:
            self._nested.add(split)
        self._flat_split = split if rest and "/" not in rest else None

    def _refused(self, found: str) -> ArchiveError:
        return _not_an_export(self._where, found)


def _manifest_paths(source: ReadAt, manifest: ZipMember, where: str) -> Iterator[str]:
    """The ``path`` column of the manifest, streamed (a manifest of 800,000 rows is never held)."""
    rows = csv.reader(_text_lines(iter_member_chunks(source, manifest, where, chunk_size=MANIFEST_CHUNK), where))
    try:
        header = next(rows, [])
        if header[:1] != [MANIFEST_PATH_COLUMN]:
            raise _not_an_export(where, f"{MANIFEST_NAME} with header {header[:5]!r}")
        for row in rows:
            yield row[0] if row else ""
    except csv.Error as exc:
        raise _not_an_export(where, f"{MANIFEST_NAME} that is not CSV ({exc})") from exc


def _text_lines(chunks: Iterable[bytes], where: str) -> Iterator[str]:
    """UTF-8 lines (``\\n`` kept) from byte chunks; only ``\\n`` ends a line, as the writer writes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    try:
        for chunk in chunks:
            *lines, pending = (pending + decoder.decode(chunk)).split("\n")
            for line in lines:
                yield line + "\n"
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise _not_an_export(where, f"{MANIFEST_NAME} that is not UTF-8 ({exc.reason})") from exc
    if pending:
        yield pending


def _helper_possible() -> bool:
    """Whether unpack may fork its helper: a second core to run it on, and children this process
    can wait for (an ancestor may have set SIGCHLD to be ignored, which reaps them unseen)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores > 1 and signal.getsignal(signal.SIGCHLD) is not signal.SIG_IGN


class _HelperError(Exception):
    """The helper process could not create a file: ``error`` says which and why."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _FileMaker:
    """Creates the tree's files: every other folder's in a helper, a forked child process that
    this process feeds over a pipe (path and bytes of each file), while this one reads and
    checks the next members and creates the other folders' files itself.

    Creating a file is system time in the kernel, as much as the rest of unpack, and two
    processes creating files in different folders do not wait for each other. Measured on
    MNIST's 70,000 files on this project's 2-core VM, five interleaved pairs: 2.8-3.2 s instead
    of 4.3-4.7 s wall, the same CPU within 0.2 s. Threads were measured in an earlier round and
    were no faster (the checks hold the GIL between the system calls). The flat layout has one
    folder per split, so there the helper gets every other split. Large members (more than
    ``WHOLE_MEMBER_SIZE``) are streamed here, never sent. The helper only creates files, each
    with ``O_EXCL`` as this process does, and says how many it created; it is killed and
    waited for before this process returns or raises, so the staging folder is never removed
    under it. Which member an error names can differ with the helper (two clashing members
    reach the disk in another order); what is refused does not.
    """

    def __init__(self, root: str, where: str, *, helper: bool) -> None:
        self._root = root
        self._where = where
        self._pid = 0
        self._records = -1
        self._status = -1
        self._batch = bytearray()
        self._sent = 0
        self._folders: dict[str, bool] = {}  # folder -> the helper creates its files
        self._helper = helper

    def __enter__(self) -> _FileMaker:
        if self._helper:
            try:
                self._start()
            except BaseException:  # Ctrl-C held back across the fork lands here: stop the helper
                self.__exit__()
                raise
        return self

    def __exit__(self, *_exc: object) -> None:
        pid, self._pid = self._pid, 0
        if pid:  # finish() not reached: stop the helper before the staging folder goes
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        for descriptor in (self._records, self._status):
            if descriptor >= 0:
                os.close(descriptor)
        self._records = self._status = -1

    def write(self, source: ReadAt, member: ZipMember, folder: str) -> None:
        """Create ``member``'s file (its folder exists), here or in the helper."""
        path = f"{self._root}/{member.name}"
        small = member.size <= WHOLE_MEMBER_SIZE and member.compressed_size <= WHOLE_MEMBER_SIZE
        if not small:  # streamed into its file, never held
            _create_file(path, iter_member_chunks(source, member, self._where))
            return
        # Read (and checked) before its file exists.
        data = read_member(source, member, self._where, max_size=WHOLE_MEMBER_SIZE)
        if not (self._pid and self._folders.setdefault(folder, len(self._folders) % 2 == 1)):
            _create_file(path, [data])
            return
        encoded = os.fsencode(path)
        self._batch += _RECORD.pack(len(encoded), len(data))
        self._batch += encoded
        self._batch += data
        self._sent += 1
        if len(self._batch) >= _BATCH_BYTES:
            self._send()

    def finish(self) -> None:
        """Wait until the helper has created every file sent; raise ``_HelperError`` if it could not."""
        if not self._pid:
            return
        self._send()
        os.close(self._records)
        self._records = -1
        self._wait()

    def _start(self) -> None:
        opened: list[int] = []
        try:
            opened += os.pipe()
            opened += os.pipe()
        except OSError:  # no descriptors to be had (EMFILE): this process creates every file
            for descriptor in opened:
                os.close(descriptor)
            return
        records_out, self._records, self._status, status_in = opened
        try:
            if hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux: a larger pipe means fewer switches
                with contextlib.suppress(OSError):
                    fcntl.fcntl(self._records, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            # Ctrl-C is held back across the fork: the helper must never run this process's
            # code (its error handling, the staging folder's clean-up). It is delivered once
            # the helper is recorded, and __enter__ stops it. (The mask is this thread's, the
            # only one in a stage's or the command's process. Where other threads take the
            # signal, Python may raise it before the pid is recorded: the helper then gets no
            # file, exits, and stays unreaped until this process ends.)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                pid = os.fork()
                if pid == 0:
                    _serve(records_out, status_in)
                self._pid = pid
            except OSError:  # no process to be had (EAGAIN, ENOMEM): this one creates every file
                self._pid = 0
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        finally:
            os.close(records_out)
            os.close(status_in)

    def _send(self) -> None:
        try:
            _write_all(self._records, self._batch)
        except BrokenPipeError:  # the helper stopped: say why
            self._wait()
            raise PipelineError(
                f"{self._where}: expected the process creating the tree's files to take them all, found it gone"
            ) from None
        self._batch.clear()

    def _wait(self) -> None:
        pid, self._pid = self._pid, 0
        _, status = os.waitpid(pid, 0)
        report = b""
        while chunk := os.read(self._status, 1 << 16):
            report += chunk
        if os.WIFSIGNALED(status):
            if os.WTERMSIG(status) == signal.SIGINT:  # Ctrl-C reached the helper first
                raise KeyboardInterrupt
            raise PipelineError(
                f"{self._where}: expected the process creating the tree's files to finish, found it killed by "
                f"{signal.Signals(os.WTERMSIG(status)).name}"
            )
        # The helper's report: the count of files it created, or errno<TAB>message<TAB>path.
        fields = os.fsdecode(report).split("\t")
        if status == 0 and fields == [str(self._sent)]:
            return
        if len(fields) == _ERROR_FIELDS and fields[0].isdigit():
            raise _HelperError(OSError(int(fields[0]), fields[1], fields[2]))
        raise PipelineError(
            f"{self._where}: expected the process creating the tree's files to create {self._sent:,}, found it "
            f"stopped (exit status {os.waitstatus_to_exitcode(status)}, report {report[:80]!r})"
        )


#: A record the helper reads: the path's length, the data's length, then both.
_RECORD = struct.Struct("<II")
#: Records are sent this many bytes at a time, into a pipe of ``_PIPE_BYTES`` (Linux's default
#: ceiling for an unprivileged process): a few hundred files per write, memory bounded.
_BATCH_BYTES = 1 << 18
_PIPE_BYTES = 1 << 20
_ERROR_FIELDS = 3


def _serve(records: int, status: int) -> NoReturn:
    """The helper's whole life, in the forked child: create the files it reads from
    ``records`` until the pipe closes, then write their count to ``status``; on an error,
    write ``errno<TAB>message<TAB>path`` instead. It always ends in ``os._exit``, never
    returning into the code it was forked from."""
    code = 1
    try:
        gc.disable()  # the parent's garbage is the parent's: no finalizer of its runs here
        # Ctrl-C (held back by the parent until now) ends it at once, without a traceback,
        # unless the parent ignores it (a background job), as the helper then does.
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        # Only its two pipes: the pipe's write end among the others (its end of input), and
        # whatever else the parent had open.
        low, high = sorted((records, status))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, os.sysconf("SC_OPEN_MAX"))
        created = _create_sent_files(records)
        os.write(status, str(created).encode())
        code = 0
    except OSError as exc:
        path = exc.filename if isinstance(exc.filename, str) else os.fsdecode(exc.filename or b"")
        with contextlib.suppress(OSError):
            os.write(status, os.fsencode(f"{exc.errno}\t{exc.strerror}\t{path}"))
    finally:
        os._exit(code)


def _create_sent_files(records: int) -> int:
    """Create each file the pipe ``records`` brings; their count."""
    created = 0
    pending = b""
    while chunk := os.read(records, _PIPE_BYTES):
        data = pending + chunk if pending else chunk
        at, end = 0, len(data)
        while at + _RECORD.size <= end:
            path_length, data_length = _RECORD.unpack_from(data, at)
            path_end = at + _RECORD.size + path_length
            if path_end + data_length > end:
                break
            _create_file(os.fsdecode(data[at + _RECORD.size : path_end]), [data[path_end : path_end + data_length]])
            created += 1
            at = path_end + data_length
        pending = data[at:]
    if pending:
        raise OSError(errno.EPIPE, "the last file's bytes were cut short", "")
    return created


def _create_file(path: str, chunks: Iterable[bytes]) -> None:
    # O_EXCL: a duplicate member name fails instead of silently overwriting an earlier file.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for chunk in chunks:
            _write_all(descriptor, chunk)
    finally:
        os.close(descriptor)


def _write_marks(staging: Path, zip_sha256: str) -> None:
    """The ownership marker and the ignore file. Both names start with a dot and no export
    member does, so neither clashes. The marker names the zip the tree came from by its
    sha256: the unpack stage's tracked output, it differs whenever the zip does, even when
    only PNG bytes changed (``invert``, an encoder change) and the manifest did not."""
    marker = f"{MARKER_HEADER}{ZIP_SHA256_LABEL}{zip_sha256}\n".encode()
    for name, content in ((MARKER, marker), (GITIGNORE, GITIGNORE_CONTENT)):
        descriptor = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(descriptor, content)
        finally:
            os.close(descriptor)


def _write_all(descriptor: int, data: bytes | bytearray) -> None:
    written = os.write(descriptor, data)
    # A regular file takes everything in one write unless the disk fills; finish the rest.
    while written < len(data):
        written += os.write(descriptor, memoryview(data)[written:])


def _missing_parents(tree_dir: Path) -> list[Path]:
    """The folders above ``tree_dir`` that do not exist yet, deepest first."""
    missing = []
    parent = Path(os.path.abspath(tree_dir)).parent  # noqa: PTH100 - the folders as named, links not followed
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a refused unpack created on the way (deepest first, only if empty)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
