"""download stage: put every published file of one dataset into its raw folder, taken from the
first mirror that delivers the canonical bytes.

This module is the mirror policy; ``transfer.py`` moves the bytes. Mirrors are tried in order
(this machine's own first, ``machine.py``, then the published ones), each for every file still
missing. A mirror is skipped for a file on an HTTP error, a refused
redirect, a body without the compression's magic (an HTML page with status 200), a wrong size
or a wrong digest, and for the rest of the run once it is down (refused, unreachable, too slow,
or asking to wait too long). Bytes stream into ``data/<dataset>/.partial/`` while being hashed
and reach the raw folder only once accepted. Each failure is a ``Failure``; when no mirror
delivers a file, they make the stage's one error line.

A dataset published inside a zip (``container``) is read member by member: over HTTP with Range
requests (the end of the zip, its central directory, then each needed member), from a local
copy of the zip, or from a folder holding the member files. A zip whose size is not its
published ``container.size`` is refused before its central directory is read. When a server
ignores Range, the whole zip is downloaded once into ``data/.downloads/``, where later runs and
the other datasets of the same zip find it.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import shutil
import sys
import time
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit
from urllib.request import url2pathname

from mnist_pipeline.archive import ArchiveVerdict, archive_differences, check_archive, magic_of, max_archive_size
from mnist_pipeline.config import ArchiveCheck, Compression, ContainerSpec, DatasetSpec, FileSpec
from mnist_pipeline.errors import ArchiveError, ChecksumError, DownloadError
from mnist_pipeline.fsio import CHUNK_SIZE
from mnist_pipeline.machine import Sources, sources_for
from mnist_pipeline.names import redact
from mnist_pipeline.stage import params_file, run_stage, stage_parser
from mnist_pipeline.transfer import (
    FOLLOWED_SCHEMES,
    Budget,
    Client,
    PartialFile,
    RangedFile,
    Severity,
    Target,
    TransferError,
    copy_file,
    fetch,
    open_ranged,
)
from mnist_pipeline.ziparchive import (
    MAX_EOCD_SEARCH,
    FileReadAt,
    ReadAt,
    ZipMember,
    find_central_directory,
    iter_member_chunks,
    iter_members,
    member_data_offset,
)
from mnist_pipeline.zipformat import STORED

log = logging.getLogger("mnist_pipeline")

PARTIAL_DIR_NAME = ".partial"
#: Beside the datasets' folders (``data/.downloads/``): whole containers, shared by every
#: dataset cut from the same zip. Not a stage output, so neither git nor DVC tracks it.
DOWNLOADS_DIR_NAME = ".downloads"
#: A whole container grows here (``data/.downloads/gzip.zip.partial``) until it is accepted.
PARTIAL_SUFFIX = ".partial"
ZIP_MAGIC = b"PK\x03\x04"
#: The suffix read first: the end record with the longest comment, plus the zip64 locator
#: (20 bytes) and zip64 end record (56 bytes) that precede it, so one request finds them all.
ZIP_TAIL_LENGTH = MAX_EOCD_SEARCH + 20 + 56
#: A central directory up to this size is fetched in one request and kept in memory.
MAX_KEPT_DIRECTORY = 16 << 20
#: Dataset containers hold tens of members; anything near this bound is something else.
MAX_CONTAINER_MEMBERS = 100_000
OFFLINE_HINT = (
    "(offline? point at a local copy: MNIST_PIPELINE_MIRRORS={name}=/path/to/folder, or mirrors.{name} in "
    "mnist-pipeline.local.yaml; in the project's own checkout, make repro DATASET={name} MIRROR=/path/to/folder)"
)
_URL_PATH_SAFE = "/%:@!$&'()*+,;=~"
#: What makes a mirror fail a file: the transfer, the archive check, the zip reader.
FAILURES = (TransferError, ChecksumError, ArchiveError)


@dataclass(frozen=True)
class Failure:
    """Why one mirror did not deliver one file."""

    file: str
    where: str  # the URL or path read, fit for a log line
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Run:
    """Everything one run of the stage shares."""

    dataset: DatasetSpec
    dataset_name: str
    client: Client
    mode: ArchiveCheck
    progress: bool
    raw_dir: Path
    partial_dir: Path
    downloads_dir: Path

    @property
    def compression(self) -> Compression:
        return self.dataset.compression


class Source(Protocol):
    """One mirror, opened for this run."""

    def where(self, spec: FileSpec) -> str:
        """What is read for ``spec``, fit for a log line."""

    def deliver(self, spec: FileSpec, partial: Path) -> ArchiveVerdict:
        """Bring ``spec``'s bytes into ``partial`` and check them; a FAILURES error if not."""


def mirror_url(mirror: str, file_name: str) -> str:
    """URL of ``file_name`` on ``mirror`` (an http(s)/file URL or a plain local directory);
    a query on the mirror stays a query."""
    parts = urlsplit(mirror)
    if parts.scheme in (*FOLLOWED_SCHEMES, "file"):
        path = quote(parts.path, safe=_URL_PATH_SAFE).rstrip("/") + "/" + quote(file_name)
        return parts._replace(path=path, fragment="").geturl()
    return (Path(mirror).resolve() / file_name).as_uri()


def local_folder(mirror: str) -> Path | None:
    """The folder of a ``file://`` or plain-folder mirror; None for http(s)."""
    parts = urlsplit(mirror)
    if parts.scheme in FOLLOWED_SCHEMES:
        return None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise TransferError(f"file URL on host {parts.netloc!r}: only local paths can be read", Severity.SKIP)
        return Path(url2pathname(parts.path))
    return Path(mirror)


def scratch_folders(raw_dir: Path) -> tuple[Path, Path]:
    """Where the stage writes besides ``raw_dir``: the dataset's partial files
    (``data/<dataset>/.partial``) and the whole containers (``data/.downloads``)."""
    return raw_dir.parent / PARTIAL_DIR_NAME, raw_dir.parent.parent / DOWNLOADS_DIR_NAME


def download(dataset: DatasetSpec, dataset_name: str, mode: ArchiveCheck, raw_dir: Path, sources: Sources) -> str:
    """Fetch every file of ``dataset_name`` from ``sources`` (this machine's mirrors, then the
    published ones) into ``raw_dir``, each accepted as ``verify.archive`` (``mode``) says. The
    stage shell has proven ``raw_dir`` and the ``scratch_folders`` inside data/ with no link on
    their way (``main``'s ``writes``)."""
    partial_dir, downloads_dir = scratch_folders(raw_dir)
    run = Run(
        dataset=dataset,
        dataset_name=dataset_name,
        client=Client.for_mirrors(sources.download, sources.mirrors),
        mode=mode,
        progress=sys.stderr.isatty(),
        raw_dir=raw_dir,
        partial_dir=partial_dir,
        downloads_dir=downloads_dir,
    )
    try:
        pending = [spec for spec in dataset.files() if not _present_and_valid(spec, run)]
        if dataset.container is not None:
            pending = _from_cached_zip(dataset.container, pending, run)
        failures: list[Failure] = []
        for mirror in sources.mirrors:
            if not pending:
                break
            pending = _from_mirror(mirror, pending, run, failures)
        if pending:
            raise DownloadError(_every_mirror_failed(pending, failures, dataset_name))
        # Every file is in raw/: what is left in .partial/ (a killed run's) can never be used.
        shutil.rmtree(run.partial_dir, ignore_errors=True)
    finally:
        for folder in (run.partial_dir, run.downloads_dir):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return f"{len(dataset.files())} files of {dataset_name} in {raw_dir}"


def _present_and_valid(spec: FileSpec, run: Run) -> bool:
    final = run.raw_dir / spec.file
    if not final.exists():
        return False
    try:
        check_archive(final, spec, run.mode, run.compression)
    except (ChecksumError, ArchiveError) as exc:
        # Kept until a valid copy replaces it: a run whose every mirror fails (offline, or a
        # digest corrected in conf/ that no mirror serves yet) leaves raw/ as it was.
        log.warning("%s: present but invalid, downloading again (%s)", spec.file, exc)
        return False
    return True


def _from_mirror(mirror: str, pending: list[FileSpec], run: Run, failures: list[Failure]) -> list[FileSpec]:
    """Deliver what ``mirror`` can of ``pending``; return the files still missing."""
    with ExitStack() as stack:
        try:
            source = _open_source(mirror, pending, run, stack)
        except FAILURES as exc:
            # The mirror as a whole failed (its zip is unreadable, or it is down): every file did.
            what = run.dataset.container.file if run.dataset.container else pending[0].file
            where = _where(mirror, what)
            reason = _reason(exc, where)
            log.warning("%s: skipping mirror %s: %s", what, where, reason)
            failures.extend(Failure(spec.file, where, reason) for spec in pending)
            return pending
        return _deliver_each(source, pending, run, failures)


def _deliver_each(source: Source, pending: list[FileSpec], run: Run, failures: list[Failure]) -> list[FileSpec]:
    """Each file of ``pending`` from ``source`` into the raw folder; return those it failed.
    Once the mirror is down, the rest are not asked for."""
    still: list[FileSpec] = []
    down: Failure | None = None
    for spec in pending:
        where = source.where(spec)
        partial = run.partial_dir / spec.file
        started = time.monotonic()
        try:
            if down is not None:
                raise TransferError(f"gave up on this mirror earlier in this run ({down.reason})", Severity.DOWN)
            verdict = source.deliver(spec, partial)
        except FAILURES as exc:
            failure = Failure(spec.file, where, _reason(exc, where, partial))
            failures.append(failure)
            log.warning("%s: skipping mirror %s: %s", spec.file, where, failure.reason)
            partial.unlink(missing_ok=True)
            if isinstance(exc, TransferError) and exc.severity is Severity.DOWN and down is None:
                down = failure
            still.append(spec)
            continue
        run.raw_dir.mkdir(parents=True, exist_ok=True)
        partial.replace(run.raw_dir / spec.file)
        log.info(
            "%s: from %s (%s check passed) in %.1f s", spec.file, where, verdict.passed, time.monotonic() - started
        )
    return still


def _reason(exc: Exception, *named: object) -> str:
    """A failure's reason for a line that already names where it happened. A TransferError
    carries it; archive.py and ziparchive.py begin their one-line errors with the path or URL
    they checked (here a scratch file, or ``where``), which the line names already."""
    if isinstance(exc, TransferError):
        return exc.reason
    text = str(exc)
    for prefix in (f"{name}: " for name in named):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _every_mirror_failed(pending: list[FileSpec], failures: list[Failure], dataset_name: str) -> str:
    first = pending[0].file
    tried = [failure for failure in failures if failure.file == first]
    listed = "; ".join(f"[{index}] {failure}" for index, failure in enumerate(tried, 1)) or "no mirror tried"
    more = f"; {len(pending) - 1} more files failed as well" if len(pending) > 1 else ""
    return f"{first}: every mirror failed: {listed}{more} {OFFLINE_HINT.format(name=dataset_name)}"


def _where(mirror: str, file_name: str) -> str:
    try:
        return redact(mirror_url(mirror, file_name))
    except ValueError:
        return redact(mirror)


def file_target(spec: FileSpec, run: Run) -> Target:
    return Target(
        name=spec.file,
        kind=run.compression.value,
        magic=magic_of(run.compression),
        limit=max_archive_size(spec, run.mode),
        size=spec.size if run.mode is ArchiveCheck.strict else None,
    )


def _checked(partial: Path, spec: FileSpec, run: Run, writer: PartialFile) -> ArchiveVerdict:
    return check_archive(partial, spec, run.mode, run.compression, digests=writer.digests())


def _open_source(mirror: str, pending: list[FileSpec], run: Run, stack: ExitStack) -> Source:
    folder = local_folder(mirror)
    container = run.dataset.container
    if container is None or (folder is not None and not (folder / container.file).is_file()):
        if folder is None:
            return HttpFiles(mirror, run, Budget())
        return FolderFiles(mirror, folder, run)
    if folder is None:
        return _remote_zip(mirror, container, pending, run, stack)
    where = _where(mirror, container.file)
    return _zip_members(stack.enter_context(FileReadAt(folder / container.file)), where, container, pending, run)


@dataclass
class FolderFiles:
    """A local folder (or ``file://`` URL) holding the files themselves."""

    mirror: str
    folder: Path
    run: Run

    def where(self, spec: FileSpec) -> str:
        return _where(self.mirror, spec.file)

    def deliver(self, spec: FileSpec, partial: Path) -> ArchiveVerdict:
        with PartialFile(partial, file_target(spec, self.run), resume=False, progress=self.run.progress) as writer:
            copy_file(self.folder / spec.file, writer)
        return _checked(partial, spec, self.run, writer)


@dataclass
class HttpFiles:
    """An http(s) mirror holding the files themselves."""

    mirror: str
    run: Run
    budget: Budget

    def where(self, spec: FileSpec) -> str:
        return _where(self.mirror, spec.file)

    def deliver(self, spec: FileSpec, partial: Path) -> ArchiveVerdict:
        target = file_target(spec, self.run)
        url = mirror_url(self.mirror, spec.file)
        resumed = partial.exists()
        while True:
            with PartialFile(partial, target, resume=True, progress=self.run.progress) as writer:
                fetch(self.run.client, self.budget, url, writer)
            try:
                return _checked(partial, spec, self.run, writer)
            except (ChecksumError, ArchiveError):
                if not resumed:
                    raise
                # A partial file left by a killed run is never trusted: its bytes may be another file's.
                log.warning("%s: resumed file failed its check; restarting from byte 0", spec.file)
                partial.unlink()
                resumed = False


@dataclass
class ZipMembers:
    """The members of a zip: over HTTP Range requests, or a zip file on this machine."""

    source: ReadAt
    location: str
    members: dict[str, ZipMember]
    run: Run

    def where(self, spec: FileSpec) -> str:
        return self.location

    def deliver(self, spec: FileSpec, partial: Path) -> ArchiveVerdict:
        member = self.members.get(spec.member or "")
        if member is None:
            raise TransferError(f"no member {spec.member!r} in the zip", Severity.SKIP)
        target = file_target(spec, self.run)
        target.check_size(member.size, f"member {member.name!r} has")
        with PartialFile(partial, target, resume=False, progress=self.run.progress) as writer:
            _copy_member(self.source, member, self.location, writer.write)
        return _checked(partial, spec, self.run, writer)


def _copy_member(source: ReadAt, member: ZipMember, where: str, write: Callable[[bytes], None]) -> None:
    """A member's content into ``write``. A stored member over HTTP is one Range request for
    its data, CRC-checked here; anything else goes through ``iter_member_chunks`` (one read per MiB)."""
    if member.method != STORED or not isinstance(source, RangedFile):
        for chunk in iter_member_chunks(source, member, where, chunk_size=CHUNK_SIZE):
            write(chunk)
        return
    crc = 0

    def checked(chunk: bytes) -> None:
        nonlocal crc
        crc = zlib.crc32(chunk, crc)
        write(chunk)

    source.stream(member_data_offset(source, member, where), member.compressed_size, checked)
    if crc != member.crc32:
        raise ArchiveError(f"{where}: member {member.name!r}: expected CRC-32 {member.crc32:08x}, found {crc:08x}")


def _zip_members(source: ReadAt, where: str, container: ContainerSpec, pending: list[FileSpec], run: Run) -> ZipMembers:
    """The pending files' entries of the zip ``source``, once its size is the published one:
    a zip of another size is another zip, and its central directory is not read."""
    if source.size() != container.size:
        raise TransferError(
            f"expected {container.size} bytes (container.size), found {source.size()}; the zip is not read",
            Severity.SKIP,
        )
    directory = find_central_directory(source, where)
    if isinstance(source, RangedFile) and directory.size <= MAX_KEPT_DIRECTORY:
        source.keep(directory.offset, directory.size)
    names = {spec.member for spec in pending if spec.member}
    found: dict[str, ZipMember] = {}
    for member in iter_members(source, directory, where, max_members=MAX_CONTAINER_MEMBERS):
        if member.name not in names:
            continue
        if member.name in found:
            raise ArchiveError(f"{where}: member {member.name!r} appears twice in the central directory")
        found[member.name] = member
    return ZipMembers(source, where, found, run)


def _remote_zip(
    mirror: str, container: ContainerSpec, pending: list[FileSpec], run: Run, stack: ExitStack
) -> ZipMembers:
    url = mirror_url(mirror, container.file)
    budget = Budget()
    opened = open_ranged(run.client, budget, url, ZIP_TAIL_LENGTH)
    if isinstance(opened, RangedFile):
        stack.callback(
            lambda: log.info(
                "%s: %d requests, %d bytes from %s", container.file, opened.requests, opened.received, opened.where
            )
        )
        return _zip_members(opened, opened.where, container, pending, run)
    log.info(
        "%s: %s ignores Range requests; downloading the whole zip once into %s",
        container.file,
        redact(url),
        run.downloads_dir,
    )
    with opened:
        cached = _download_zip(url, container, opened, budget, run)
    return _zip_members(stack.enter_context(FileReadAt(cached)), str(cached), container, pending, run)


def _download_zip(
    url: str, container: ContainerSpec, response: http.client.HTTPResponse, budget: Budget, run: Run
) -> Path:
    """The whole zip into ``data/.downloads/``, accepted only with its published size and digests.
    It grows in a partial file that starts empty: a server that ignores Range cannot resume it."""
    target = Target(container.file, "a zip archive", ZIP_MAGIC, limit=container.size, size=container.size)
    partial = run.downloads_dir / f"{container.file}{PARTIAL_SUFFIX}"
    try:
        with PartialFile(partial, target, resume=False, progress=run.progress) as writer:
            fetch(run.client, budget, url, writer, response)
        problems = archive_differences(container, writer.digests())
        if problems:
            raise TransferError("; ".join(problems), Severity.SKIP)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    final = run.downloads_dir / container.file
    partial.replace(final)
    return final


def _from_cached_zip(container: ContainerSpec, pending: list[FileSpec], run: Run) -> list[FileSpec]:
    """Members from a zip an earlier run downloaded whole. Its digests were checked when it was
    downloaded; here only its size is, since every member is checked against its own digests:
    re-hashing the whole zip on every run would add nothing to what reaches ``raw/``. A zip that
    fails is removed. A partial zip a killed run left is removed too: it can never be resumed."""
    leftover = run.downloads_dir / f"{container.file}{PARTIAL_SUFFIX}"
    if leftover.is_file() and not leftover.is_symlink():
        log.warning("%s: left by an interrupted download; removing it", leftover)
        leftover.unlink()
    cached = run.downloads_dir / container.file
    if not pending or not cached.is_file():
        return pending
    failures: list[Failure] = []
    with ExitStack() as stack:
        try:
            source = _zip_members(stack.enter_context(FileReadAt(cached)), str(cached), container, pending, run)
            still = _deliver_each(source, pending, run, failures)
        except FAILURES as exc:
            failures.append(Failure(container.file, str(cached), _reason(exc, cached)))
            still = pending
    if failures:
        log.warning("%s: %s; removing it", cached, failures[0].reason)
        cached.unlink()
    return still


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("raw_dir", type=Path, help="folder that receives the accepted files")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        f"download@{args.dataset}",
        lambda params: download(
            params.dataset(args.dataset),
            args.dataset,
            params.verify.archive,
            args.raw_dir,
            sources_for(params, args.dataset, args.params.parent if args.params else Path()),
        ),
        params_file(args),
        writes=[args.raw_dir, *scratch_folders(args.raw_dir)],
    )


if __name__ == "__main__":
    raise SystemExit(main())
