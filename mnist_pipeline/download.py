"""download stage: put every published file of one dataset into its raw folder, taken from the
first mirror that delivers the canonical bytes.

Per file, mirrors are tried in order. A mirror is skipped on an HTTP error, a refused redirect,
a body without the compression's magic (an HTML page with status 200), a wrong size or a wrong
digest; 5xx, 429, resets, timeouts and cut bodies are retried with exponential backoff, resuming
with a Range request. A mirror that keeps failing at the network level is given up for the rest
of the run, not once per file. Bytes stream into ``data/<dataset>/.partial/`` while being hashed
and reach the raw folder only once accepted.

A dataset published inside a zip (``container``) is read member by member: over HTTP with Range
requests (the end of the zip, its central directory, then each needed member), from a local
copy of the zip, or from a folder holding the member files. When a server ignores Range, the
whole zip is downloaded once into ``data/.downloads/``, where later runs and the other datasets
of the same zip find it.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn
from urllib.parse import quote, urlsplit
from urllib.request import url2pathname

from tqdm import tqdm

from mnist_pipeline.archive import ArchiveVerdict, archive_differences, check_archive, magic_of, max_archive_size
from mnist_pipeline.config import ArchiveCheck, Compression, ContainerSpec, DatasetSpec, FileSpec, Params
from mnist_pipeline.errors import ArchiveError, ChecksumError, DownloadError
from mnist_pipeline.fsio import CHUNK_SIZE, Digests, Hasher, symlinked_part
from mnist_pipeline.http import (
    FOLLOWED_SCHEMES,
    Deadline,
    HttpClient,
    HttpReadAt,
    HttpSettings,
    MirrorError,
    MirrorHealth,
    RetryableError,
    build_opener,
    header,
    loggable_url,
    netrc_passwords,
    open_ranged,
    parse_content_range,
    parse_count,
    read_chunk,
    shown,
)
from mnist_pipeline.machine import Sources, sources_for
from mnist_pipeline.stage import run_stage, stage_parser
from mnist_pipeline.ziparchive import (
    MAX_EOCD_SEARCH,
    STORED,
    CentralDirectory,
    FileReadAt,
    ReadAt,
    ZipMember,
    find_central_directory,
    iter_member_chunks,
    iter_members,
    member_data_offset,
)

log = logging.getLogger("mnist_pipeline")

PARTIAL_DIR_NAME = ".partial"
#: Beside the datasets' folders (``data/.downloads/``): whole containers, shared by every
#: dataset cut from the same zip. Not a stage output, so neither git nor DVC tracks it.
DOWNLOADS_DIR_NAME = ".downloads"
ZIP_MAGIC = b"PK\x03\x04"
#: The suffix read first: the end record with the longest comment, plus the zip64 locator
#: (20 bytes) and zip64 end record (56 bytes) that precede it, so one request finds them all.
ZIP_TAIL_LENGTH = MAX_EOCD_SEARCH + 20 + 56
#: A central directory up to this size is fetched in one request and kept in memory.
MAX_KEPT_DIRECTORY = 16 << 20
#: Dataset containers hold tens of members; anything near this bound is something else.
MAX_CONTAINER_MEMBERS = 100_000
HTTP_RANGE_NOT_SATISFIABLE = 416
OFFLINE_HINT = (
    "(offline? point at a local copy: make repro MIRROR=/path/to/folder, "
    "or MNIST_PIPELINE_MIRRORS={name}=/path/to/folder, or mirrors.{name} in mnist-pipeline.local.yaml)"
)
_URL_PATH_SAFE = "/%:@!$&'()*+,;=~"


@dataclass(frozen=True)
class Target:
    """What one transfer must deliver."""

    name: str
    kind: str  # what the bytes are, for messages: gzip, xz, zip
    magic: bytes
    limit: int  # most bytes accepted
    size: int | None  # exact size required (strict check, size published)
    expected: int  # bytes the deadline is computed for


@dataclass(frozen=True)
class Run:
    """Everything one run of the stage shares."""

    dataset_name: str
    client: HttpClient
    mode: ArchiveCheck
    compression: Compression
    progress: bool
    raw_dir: Path
    partial_dir: Path
    downloads_dir: Path


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
            raise MirrorError(f"file URL on host {parts.netloc!r}: only local paths can be read")
        return Path(url2pathname(parts.path))
    return Path(mirror)


def download(params: Params, dataset_name: str, raw_dir: Path, sources: Sources) -> str:
    """Fetch every file of ``dataset_name`` from ``sources`` (this machine's mirrors, then the
    published ones) into ``raw_dir``."""
    dataset = params.dataset(dataset_name)
    settings = sources.download
    for folder in (raw_dir, raw_dir.parent / PARTIAL_DIR_NAME, raw_dir.parent.parent / DOWNLOADS_DIR_NAME):
        linked = symlinked_part(folder)
        if linked is not None:
            # Writing through a link would put bytes wherever it points, perhaps outside data/.
            raise DownloadError(f"{linked}: is a symbolic link; refusing to write {folder} through it")
    http_settings = HttpSettings(
        timeout=settings.timeout,
        retries=settings.retries,
        backoff=settings.backoff,
        min_rate=settings.min_rate,
        user_agent=settings.user_agent,
    )
    run = Run(
        dataset_name=dataset_name,
        # Built per run, so HTTP(S)_PROXY / NO_PROXY and netrc are read when the stage starts.
        client=HttpClient(
            http_settings, build_opener(netrc_passwords(sources.mirrors)), MirrorHealth(settings.retries)
        ),
        mode=params.verify.archive,
        compression=dataset.compression,
        progress=sys.stderr.isatty(),
        raw_dir=raw_dir,
        partial_dir=raw_dir.parent / PARTIAL_DIR_NAME,
        downloads_dir=raw_dir.parent.parent / DOWNLOADS_DIR_NAME,
    )
    try:
        if dataset.container is None:
            for spec in dataset.files():
                started = time.monotonic()
                origin = download_file(spec, sources.mirrors, run)
                log.info("%s: %s in %.1f s", spec.file, origin, time.monotonic() - started)
        else:
            download_members(dataset, dataset.container, sources.mirrors, run)
    finally:
        for folder in (run.partial_dir, run.downloads_dir):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return f"{len(dataset.files())} files of {dataset_name} in {raw_dir}"


def download_file(spec: FileSpec, mirrors: list[str], run: Run) -> str:
    """Put the accepted bytes of ``spec`` at ``raw_dir/spec.file``; return where they came from."""
    if _present_and_valid(spec, run):
        return "already present"
    failures: list[str] = []
    for mirror in mirrors:
        where = _where(mirror, spec.file)
        try:
            verdict = fetch_from_mirror(mirror, spec, run)
        except MirrorError as exc:
            _note_failure(run, mirror, spec.file, where, exc, failures)
            continue
        _publish(spec, run)
        return f"from {where} ({verdict.passed} check passed)"
    raise DownloadError(_every_mirror_failed(spec.file, failures, run.dataset_name))


def _where(mirror: str, file_name: str) -> str:
    try:
        return loggable_url(mirror_url(mirror, file_name))
    except ValueError:
        return loggable_url(mirror)


def _present_and_valid(spec: FileSpec, run: Run) -> bool:
    final = run.raw_dir / spec.file
    if not final.exists():
        return False
    try:
        check_archive(final, spec, run.mode, run.compression)
    except (ChecksumError, ArchiveError) as exc:
        log.warning("%s: present but invalid, downloading again (%s)", spec.file, exc)
        final.unlink()
        return False
    return True


def _publish(spec: FileSpec, run: Run) -> None:
    run.raw_dir.mkdir(parents=True, exist_ok=True)
    (run.partial_dir / spec.file).replace(run.raw_dir / spec.file)


def _note_failure(run: Run, mirror: str, file_name: str, where: str, exc: MirrorError, failures: list[str]) -> None:
    if exc.down:
        run.client.health.give_up(mirror, str(exc))
    failures.append(f"{where}: {exc}")
    log.warning("%s: skipping mirror %s: %s", file_name, where, exc)
    (run.partial_dir / file_name).unlink(missing_ok=True)


def _every_mirror_failed(file_name: str, failures: list[str], dataset_name: str, others: int = 0) -> str:
    listed = "; ".join(f"[{index}] {failure}" for index, failure in enumerate(failures, 1)) or "no mirror tried"
    more = f"; {others} more files failed as well" if others else ""
    return f"{file_name}: every mirror failed: {listed}{more} {OFFLINE_HINT.format(name=dataset_name)}"


def fetch_from_mirror(mirror: str, spec: FileSpec, run: Run) -> ArchiveVerdict:
    """Bring ``spec`` from ``mirror`` into ``.partial/`` and check it; MirrorError if it cannot."""
    down = run.client.health.down_reason(mirror)
    if down is not None:
        raise MirrorError(f"gave up on this mirror earlier in this run ({down})")
    run.partial_dir.mkdir(parents=True, exist_ok=True)
    partial = run.partial_dir / spec.file
    target = file_target(spec, run)
    folder = local_folder(mirror)
    if folder is not None:
        digests = copy_local(folder / spec.file, partial, target, run.progress)
        return _checked(partial, spec, run, digests)
    url = mirror_url(mirror, spec.file)
    may_blame_old_partial = partial.exists()
    while True:
        digests = fetch_http(url, mirror, target, partial, run)
        try:
            return check_archive(partial, spec, run.mode, run.compression, digests=digests)
        except (ChecksumError, ArchiveError) as exc:
            if not may_blame_old_partial:
                raise MirrorError(str(exc).removeprefix(f"{partial}: ")) from exc
            # The bad bytes may come from a partial file left by an earlier, killed run.
            log.warning("%s: resumed file failed its check; restarting from byte 0", spec.file)
            partial.unlink()
            may_blame_old_partial = False


def file_target(spec: FileSpec, run: Run) -> Target:
    limit = max_archive_size(spec, run.mode)
    return Target(
        name=spec.file,
        kind=run.compression.value,
        magic=magic_of(run.compression),
        limit=limit,
        size=spec.size if run.mode is ArchiveCheck.strict else None,
        expected=spec.size if spec.size is not None else limit,
    )


def _checked(partial: Path, spec: FileSpec, run: Run, digests: Digests) -> ArchiveVerdict:
    try:
        return check_archive(partial, spec, run.mode, run.compression, digests=digests)
    except (ChecksumError, ArchiveError) as exc:
        raise MirrorError(str(exc).removeprefix(f"{partial}: ")) from exc


class HashingWriter:
    """Writes a body to ``out`` while hashing it; refuses bytes past ``target.limit`` and a body
    whose first bytes are not ``target.magic``. Bytes already in ``out`` (a resumed partial
    file) are hashed first."""

    def __init__(self, out: BinaryIO, target: Target, offset: int, bar: tqdm[NoReturn]) -> None:
        self._out = out
        self._target = target
        self._bar = bar
        self._hasher = Hasher()
        remaining = offset
        while remaining:
            chunk = out.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            self._hasher.update(chunk)
            remaining -= len(chunk)
        out.truncate(self.size)

    @property
    def size(self) -> int:
        return self._hasher.size

    def write(self, chunk: bytes) -> None:
        magic = self._target.magic
        if self.size < len(magic) and not chunk.startswith(magic[self.size : self.size + len(chunk)]):
            raise MirrorError(f"body is not {self._target.kind} (starts with {chunk[:16]!r})")
        if self.size + len(chunk) > self._target.limit:
            raise MirrorError(f"body exceeds the expected {self._target.limit} bytes")
        self._out.write(chunk)
        self._hasher.update(chunk)
        self._bar.update(len(chunk))

    def digests(self) -> Digests:
        return self._hasher.digests()


def _progress(target: Target, initial: int, enabled: bool) -> tqdm[NoReturn]:
    return tqdm(
        total=target.size or target.expected,
        initial=initial,
        unit="B",
        unit_scale=True,
        desc=target.name,
        disable=not enabled,
        leave=False,
    )


def copy_local(source: Path, partial: Path, target: Target, progress: bool) -> Digests:
    """Copy a file of a local mirror into ``partial``, hashing it."""
    if not source.is_file():  # also keeps a FIFO from blocking the read
        raise MirrorError("not found" if not source.exists() else "not a regular file")
    try:
        stream = source.open("rb")
    except OSError as exc:
        raise MirrorError(exc.strerror or str(exc)) from exc
    with stream, partial.open("wb") as out, _progress(target, 0, progress) as bar:
        writer = HashingWriter(out, target, 0, bar)
        while chunk := stream.read(CHUNK_SIZE):
            writer.write(chunk)
    return writer.digests()


def fetch_http(
    url: str,
    mirror: str,
    target: Target,
    partial: Path,
    run: Run,
    response: http.client.HTTPResponse | None = None,
) -> Digests:
    """Bring ``partial`` to the whole body of ``url``, resuming and retrying; ``response``: an
    already open answer to use first. The deadline covers every attempt at this mirror."""
    deadline = Deadline.for_size(run.client.settings, target.expected)
    attempt = 0
    while True:
        try:
            return _transfer(url, target, partial, run, deadline, response)
        except RetryableError as exc:
            response = None
            run.client.after_failure(mirror, exc, attempt, f"{target.name}: {loggable_url(url)}", deadline)
            attempt += 1


def _transfer(
    url: str,
    target: Target,
    partial: Path,
    run: Run,
    deadline: Deadline,
    response: http.client.HTTPResponse | None,
) -> Digests:
    asked = 0 if response is not None else _resumable_size(partial, target)
    if response is None:
        response = _open_resuming(url, asked, partial, run, deadline)
    with response:
        offset, total = _body_start(response, asked, partial)
        _check_announced(total, target)
        with partial.open("r+b" if offset else "wb") as out, _progress(target, offset, run.progress) as bar:
            writer = HashingWriter(out, target, offset, bar)
            while chunk := read_chunk(response, deadline, writer.size):
                writer.write(chunk)
    end = total if total is not None else target.size
    if end is not None and writer.size < end:
        raise RetryableError(f"transfer ended at byte {writer.size} of {end}")
    return writer.digests()


def _open_resuming(url: str, asked: int, partial: Path, run: Run, deadline: Deadline) -> http.client.HTTPResponse:
    try:
        return run.client.open(url, byte_range=f"bytes={asked}-" if asked else None, deadline=deadline)
    except MirrorError as exc:
        if not asked or exc.status != HTTP_RANGE_NOT_SATISFIABLE:
            raise
        # The partial file is as long as the whole file (a recompressed one can be shorter
        # than the limit), or the file changed on the server.
        partial.unlink(missing_ok=True)
        raise RetryableError(f"server refused to resume at byte {asked} ({exc}); restarting from byte 0") from exc


def _resumable_size(partial: Path, target: Target) -> int:
    size = partial.stat().st_size if partial.exists() else 0
    if size >= target.limit:
        partial.unlink()
        return 0
    return size


def _body_start(response: http.client.HTTPResponse, asked: int, partial: Path) -> tuple[int, int | None]:
    """Where the body starts in the file and the file's announced total size, if any."""
    length = parse_count(header(response.headers, "Content-Length"))
    if response.status == 200:
        if asked:
            log.info("%s: server ignored the Range request; restarting from byte 0", partial.name)
        return 0, length
    value = header(response.headers, "Content-Range")
    found = parse_content_range(value)
    if response.status == 206 and found is not None and found.start == asked:
        if found.total is not None and found.end == found.total - 1:
            return asked, found.total
        if found.total is None and (length is None or length == found.end - found.start + 1):
            return asked, None
    partial.unlink(missing_ok=True)
    raise RetryableError(
        f"asked for bytes {asked}-, got HTTP {response.status} with Content-Range {shown(value)}; "
        "restarting from byte 0"
    )


def _check_announced(total: int | None, target: Target) -> None:
    if total is None:
        return
    if target.size is not None and total != target.size:
        raise MirrorError(f"server announces {total} bytes, expected {target.size}")
    if total > target.limit:
        raise MirrorError(f"server announces {total} bytes, more than the expected {target.limit}")


def download_members(dataset: DatasetSpec, container: ContainerSpec, mirrors: list[str], run: Run) -> None:
    """Put every file of a container dataset into the raw folder, reading only its members."""
    pending = [spec for spec in dataset.files() if not _present_and_valid(spec, run)]
    failures: dict[str, list[str]] = {spec.file: [] for spec in pending}
    cached = run.downloads_dir / container.file
    if pending and cached.is_file():
        pending = _members_from_cached_zip(cached, container, pending, run)
    for mirror in mirrors:
        if not pending:
            break
        pending = members_from_mirror(mirror, container, pending, run, failures)
    if pending:
        first = pending[0].file
        raise DownloadError(_every_mirror_failed(first, failures[first], run.dataset_name, len(pending) - 1))


def _members_from_cached_zip(
    cached: Path, container: ContainerSpec, pending: list[FileSpec], run: Run
) -> list[FileSpec]:
    """Members from a zip an earlier run downloaded whole. Its digests were checked when it was
    downloaded; here only its size is, since every member is checked against its own digests:
    re-hashing the whole zip on every run would add nothing to what reaches ``raw/``."""
    found = cached.stat().st_size
    if found != container.size:
        log.warning("%s: expected %d bytes, found %d; removing it", cached, container.size, found)
        cached.unlink()
        return pending
    failures: dict[str, list[str]] = {spec.file: [] for spec in pending}
    try:
        with FileReadAt(cached) as source:
            still = members_from_zip(source, str(cached), "", pending, run, failures)
    except (ArchiveError, MirrorError) as exc:
        log.warning("%s: %s; removing it", cached, str(exc).removeprefix(f"{cached}: "))
        cached.unlink()
        return pending
    if still:
        log.warning("%s: %s; removing it", cached, failures[still[0].file][0])
        cached.unlink()
    return still


def members_from_mirror(
    mirror: str, container: ContainerSpec, pending: list[FileSpec], run: Run, failures: dict[str, list[str]]
) -> list[FileSpec]:
    """Fetch what ``mirror`` can deliver of ``pending``; return the files still missing."""
    where = _where(mirror, container.file)
    try:
        down = run.client.health.down_reason(mirror)
        if down is not None:
            raise MirrorError(f"gave up on this mirror earlier in this run ({down})")
        folder = local_folder(mirror)
        if folder is None:
            return _members_over_http(mirror, mirror_url(mirror, container.file), container, pending, run, failures)
        if (folder / container.file).is_file():
            with FileReadAt(folder / container.file) as source:
                return members_from_zip(source, where, mirror, pending, run, failures)
    except (MirrorError, ArchiveError) as exc:
        reason = str(exc).removeprefix(f"{where}: ")
        if isinstance(exc, MirrorError) and exc.down:
            run.client.health.give_up(mirror, reason)
        log.warning("%s: skipping mirror %s: %s", container.file, where, reason)
        for spec in pending:
            failures[spec.file].append(f"{where}: {reason}")
        return pending
    return _member_files_from_folder(mirror, pending, run, failures)


def _member_files_from_folder(
    mirror: str, pending: list[FileSpec], run: Run, failures: dict[str, list[str]]
) -> list[FileSpec]:
    still: list[FileSpec] = []
    for spec in pending:
        where = _where(mirror, spec.file)
        try:
            verdict = fetch_from_mirror(mirror, spec, run)
        except MirrorError as exc:
            _note_failure(run, mirror, spec.file, where, exc, failures[spec.file])
            still.append(spec)
            continue
        _publish(spec, run)
        log.info("%s: from %s (%s check passed)", spec.file, where, verdict.passed)
    return still


def _members_over_http(
    mirror: str, url: str, container: ContainerSpec, pending: list[FileSpec], run: Run, failures: dict[str, list[str]]
) -> list[FileSpec]:
    opened = open_ranged(run.client, mirror, url, ZIP_TAIL_LENGTH)
    if isinstance(opened, HttpReadAt):
        try:
            return members_from_zip(opened, opened.where, mirror, pending, run, failures)
        finally:
            log.info(
                "%s: %d requests, %d bytes from %s", container.file, opened.requests, opened.received, opened.where
            )
    log.info(
        "%s: %s ignores Range requests; downloading the whole zip once into %s",
        container.file,
        loggable_url(url),
        run.downloads_dir,
    )
    cached = download_container(url, mirror, container, opened, run)
    with FileReadAt(cached) as source:
        return members_from_zip(source, str(cached), "", pending, run, failures)


def download_container(
    url: str, mirror: str, container: ContainerSpec, response: http.client.HTTPResponse, run: Run
) -> Path:
    """The whole zip into ``data/.downloads/``, accepted only with its published size and digests."""
    target = Target(
        name=container.file,
        kind="a zip archive",
        magic=ZIP_MAGIC,
        limit=container.size,
        size=container.size,
        expected=container.size,
    )
    run.partial_dir.mkdir(parents=True, exist_ok=True)
    partial = run.partial_dir / container.file
    try:
        problems = archive_differences(container, fetch_http(url, mirror, target, partial, run, response))
        if problems:
            raise MirrorError("; ".join(problems))
    except MirrorError:
        partial.unlink(missing_ok=True)
        raise
    run.downloads_dir.mkdir(parents=True, exist_ok=True)
    final = run.downloads_dir / container.file
    partial.replace(final)
    return final


def members_from_zip(
    source: ReadAt, where: str, mirror: str, pending: list[FileSpec], run: Run, failures: dict[str, list[str]]
) -> list[FileSpec]:
    """Extract and check each pending file's member of the zip ``source``; return those that
    failed. ``mirror`` is empty for a zip already on disk."""
    directory = find_central_directory(source, where)
    if isinstance(source, HttpReadAt) and directory.size <= MAX_KEPT_DIRECTORY:
        source.keep(directory.offset, directory.size)
    members = find_members(source, directory, where, {spec.member for spec in pending if spec.member})
    still: list[FileSpec] = []
    for spec in pending:
        down = run.client.health.down_reason(mirror) if mirror else None
        try:
            if down is not None:
                raise MirrorError(f"gave up on this mirror earlier in this run ({down})")
            member = members.get(spec.member or "")
            if member is None:
                raise MirrorError(f"no member {spec.member!r} in the zip")
            verdict = extract_member(source, member, spec, where, run)
        except (MirrorError, ArchiveError) as exc:
            if isinstance(exc, MirrorError) and exc.down and mirror:
                run.client.health.give_up(mirror, str(exc))
            reason = str(exc).removeprefix(f"{where}: ")
            failures[spec.file].append(f"{where}: {reason}")
            log.warning("%s: skipping mirror %s: %s", spec.file, where, reason)
            (run.partial_dir / spec.file).unlink(missing_ok=True)
            still.append(spec)
            continue
        _publish(spec, run)
        log.info("%s: member %s of %s (%s check passed)", spec.file, spec.member, where, verdict.passed)
    return still


def find_members(source: ReadAt, directory: CentralDirectory, where: str, names: set[str]) -> dict[str, ZipMember]:
    """The central directory entries named in ``names`` (a name listed twice is refused)."""
    found: dict[str, ZipMember] = {}
    for member in iter_members(source, directory, where, max_members=MAX_CONTAINER_MEMBERS):
        if member.name not in names:
            continue
        if member.name in found:
            raise ArchiveError(f"{where}: member {member.name!r} appears twice in the central directory")
        found[member.name] = member
    return found


def extract_member(source: ReadAt, member: ZipMember, spec: FileSpec, where: str, run: Run) -> ArchiveVerdict:
    """Stream one member into ``.partial/<spec.file>`` while hashing it; check it as ``spec``."""
    target = file_target(spec, run)
    if target.size is not None and member.size != target.size:
        raise MirrorError(f"member {member.name!r} has {member.size} bytes, expected {target.size}")
    if member.size > target.limit:
        raise MirrorError(f"member {member.name!r} has {member.size} bytes, more than the expected {target.limit}")
    run.partial_dir.mkdir(parents=True, exist_ok=True)
    partial = run.partial_dir / spec.file
    with partial.open("wb") as out, _progress(target, 0, run.progress) as bar:
        writer = HashingWriter(out, target, 0, bar)
        for chunk in member_chunks(source, member, where):
            writer.write(chunk)
    return _checked(partial, spec, run, writer.digests())


def member_chunks(source: ReadAt, member: ZipMember, where: str) -> Iterator[bytes]:
    """A member's content. A stored member over HTTP is one Range request for its data,
    CRC-checked here; anything else goes through ``iter_member_chunks`` (one read per MiB)."""
    if member.method == STORED and isinstance(source, HttpReadAt):
        offset = member_data_offset(source, member, where)
        return _crc_checked(source.iter_range(offset, member.compressed_size, member.name), member, where)
    return iter_member_chunks(source, member, where, chunk_size=CHUNK_SIZE)


def _crc_checked(chunks: Iterable[bytes], member: ZipMember, where: str) -> Iterator[bytes]:
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
        yield chunk
    if crc != member.crc32:
        raise ArchiveError(f"{where}: member {member.name!r}: expected CRC-32 {member.crc32:08x}, found {crc:08x}")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("raw_dir", type=Path, help="folder that receives the accepted files")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        f"download@{args.dataset}",
        lambda params: download(
            params, args.dataset, args.raw_dir, sources_for(params, args.dataset, args.params.parent)
        ),
        args.params,
    )


if __name__ == "__main__":
    raise SystemExit(main())
