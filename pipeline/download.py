"""download stage: fetch every archive from the first mirror that delivers the canonical bytes.

Per file, mirrors are tried in order. A mirror is skipped on an HTTP error, a refused or
unknown host, a body that is not gzip, a wrong size or a wrong digest (torchvision only falls
back on network errors). Transient failures (5xx, 429, reset, timeout, cut transfer) are
retried with exponential backoff, resuming with an HTTP Range request. Bytes stream into
``<data>/.partial/`` while being hashed and reach the output folder only once accepted.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from tqdm import tqdm

from pipeline.archive import GZIP_MAGIC, ArchiveDigests, ArchiveVerdict, check_archive
from pipeline.config import ArchiveCheck, ArchiveSpec, Params
from pipeline.errors import ArchiveError, ChecksumError, DownloadError
from pipeline.fsio import CHUNK_SIZE
from pipeline.stage import run_stage, stage_parser

log = logging.getLogger("pipeline")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
#: A recompressed archive (``verify.archive: payload``) may be larger than the canonical one,
#: but gzip never grows incompressible data by more than a few bytes per 32 KiB block.
RECOMPRESSED_SLACK = 1 << 16
PARTIAL_DIR_NAME = ".partial"


class _TransientError(Exception):
    """Worth another attempt at the same mirror."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _RejectedError(Exception):
    """This mirror cannot deliver the file; move on to the next one."""


@dataclass(frozen=True)
class FetchSettings:
    timeout: float
    retries: int
    backoff: float
    user_agent: str
    mode: ArchiveCheck
    progress: bool
    #: Built per run, so HTTP(S)_PROXY / NO_PROXY are read when the stage starts.
    opener: urllib.request.OpenerDirector


def mirror_url(mirror: str, file_name: str) -> str:
    """URL of ``file_name`` on ``mirror`` (an http(s)/file URL or a plain local directory)."""
    if urlsplit(mirror).scheme in ("http", "https", "file"):
        return mirror.rstrip("/") + "/" + quote(file_name)
    return (Path(mirror).resolve() / file_name).as_uri()


def download_archive(
    spec: ArchiveSpec, mirrors: list[str], raw_dir: Path, partial_dir: Path, settings: FetchSettings
) -> str:
    """Put the accepted bytes of ``spec`` at ``raw_dir/spec.file``; return where they came from."""
    final = raw_dir / spec.file
    if final.exists():
        try:
            check_archive(final, spec, settings.mode)
            return "already present"
        except (ChecksumError, ArchiveError) as exc:
            log.warning("%s: present but invalid, downloading again (%s)", spec.file, exc)
            final.unlink()
    partial_dir.mkdir(parents=True, exist_ok=True)
    partial = partial_dir / spec.file
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror_url(mirror, spec.file)
        try:
            verdict = _fetch_from_mirror(url, spec, partial, settings)
        except _RejectedError as exc:
            failures.append(f"[{len(failures) + 1}] {url}: {exc}")
            log.warning("%s: skipping mirror %s: %s", spec.file, url, exc)
            partial.unlink(missing_ok=True)
            continue
        raw_dir.mkdir(parents=True, exist_ok=True)
        partial.replace(final)
        return f"from {url} ({verdict.passed} check passed)"
    raise DownloadError(f"{spec.file}: every mirror failed: " + "; ".join(failures))


def _fetch_from_mirror(url: str, spec: ArchiveSpec, partial: Path, settings: FetchSettings) -> ArchiveVerdict:
    attempt = 0
    may_blame_old_partial = partial.exists()
    while True:
        try:
            digests = _transfer(url, spec, partial, settings)
        except _TransientError as exc:
            if attempt >= settings.retries:
                raise _RejectedError(f"{exc} (gave up after {attempt + 1} attempts)") from exc
            delay = settings.backoff * 2**attempt if exc.retry_after is None else exc.retry_after
            log.warning("%s: %s from %s; retrying in %.1f s", spec.file, exc, url, delay)
            time.sleep(delay)
            attempt += 1
            continue
        try:
            return check_archive(partial, spec, settings.mode, digests=digests)
        except (ChecksumError, ArchiveError) as exc:
            if may_blame_old_partial:
                # The bad bytes may come from a partial file left by an earlier, killed run.
                log.warning("%s: resumed file failed its check; restarting from byte 0", spec.file)
                partial.unlink()
                may_blame_old_partial = False
                continue
            raise _RejectedError(str(exc).removeprefix(f"{partial}: ")) from exc


def _transfer(url: str, spec: ArchiveSpec, partial: Path, settings: FetchSettings) -> ArchiveDigests:
    """Bring ``partial`` to the full file from ``url``, resuming where possible; hash as we go."""
    limit = spec.size if settings.mode is ArchiveCheck.strict else spec.payload_size + RECOMPRESSED_SLACK
    offset = partial.stat().st_size if partial.exists() else 0
    if offset >= limit:
        partial.unlink()
        offset = 0
    resumable = urlsplit(url).scheme in ("http", "https")
    request = urllib.request.Request(url, headers={"User-Agent": settings.user_agent})
    if offset and resumable:
        request.add_header("Range", f"bytes={offset}-")
    response = _open(settings.opener, request, settings.timeout)
    with response:
        offset = _resume_offset(response, offset if resumable else 0, partial)
        announced = _announced_total(response.headers, offset)
        if settings.mode is ArchiveCheck.strict and announced is not None and announced != spec.size:
            raise _RejectedError(f"server announces {announced} bytes, expected {spec.size}")
        hashers = {name: hashlib.new(name) for name in ("md5", "sha256")}
        with partial.open("r+b" if offset else "wb") as out:
            _hash_prefix(out, offset, hashers)
            size = _copy_body(response, out, offset, limit, hashers, spec, settings.progress)
    if settings.mode is ArchiveCheck.strict and size < spec.size:
        raise _TransientError(f"transfer ended at byte {size} of {spec.size}")
    return ArchiveDigests(size=size, md5=hashers["md5"].hexdigest(), sha256=hashers["sha256"].hexdigest())


def _open(
    opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float
) -> http.client.HTTPResponse:
    try:
        response: http.client.HTTPResponse = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        status = f"HTTP {exc.code} {exc.reason}"
        if exc.code in RETRYABLE_STATUS:
            raise _TransientError(status, _retry_after(exc.headers)) from exc
        raise _RejectedError(status) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError | ConnectionResetError):
            raise _TransientError(f"{exc.reason or 'timed out'}") from exc
        raise _RejectedError(f"{exc.reason}") from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
    return response


def _retry_after(headers: Message) -> float | None:
    value = headers.get("Retry-After") if headers else None
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value), MAX_RETRY_AFTER)


def _resume_offset(response: http.client.HTTPResponse, offset: int, partial: Path) -> int:
    """Where the body starts in the file: ``offset`` if the server honoured Range, else 0."""
    if not offset:
        return 0
    content_range = response.headers.get("Content-Range", "")
    if getattr(response, "status", None) == 206 and content_range.startswith(f"bytes {offset}-"):
        return offset
    log.info("%s: server ignored the Range request; restarting from byte 0", partial.name)
    return 0


def _announced_total(headers: Message, offset: int) -> int | None:
    length = headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _hash_prefix(out: BinaryIO, offset: int, hashers: dict[str, hashlib._Hash]) -> None:
    """Feed the bytes already on disk to the hashers and leave ``out`` positioned after them."""
    remaining = offset
    while remaining:
        chunk = out.read(min(CHUNK_SIZE, remaining))
        for hasher in hashers.values():
            hasher.update(chunk)
        remaining -= len(chunk)
    out.truncate(offset)


def _copy_body(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    offset: int,
    limit: int,
    hashers: dict[str, hashlib._Hash],
    spec: ArchiveSpec,
    progress: bool,
) -> int:
    size = offset
    with tqdm(
        total=spec.size,
        initial=offset,
        unit="B",
        unit_scale=True,
        desc=spec.file,
        disable=not progress,
        leave=False,
    ) as bar:
        while True:
            try:
                chunk = response.read(CHUNK_SIZE)
            except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
                out.flush()
                raise _TransientError(f"connection cut after byte {size} ({type(exc).__name__})") from exc
            if not chunk:
                return size
            if size == 0 and not chunk.startswith(GZIP_MAGIC[: len(chunk)]):
                raise _RejectedError(f"body is not gzip (starts with {chunk[:16]!r})")
            size += len(chunk)
            if size > limit:
                raise _RejectedError(f"body exceeds the expected {limit} bytes")
            out.write(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
            bar.update(len(chunk))


def download(params: Params, raw_dir: Path) -> str:
    dataset = params.dataset
    settings = FetchSettings(
        timeout=params.download.timeout,
        retries=params.download.retries,
        backoff=params.download.backoff,
        user_agent=params.download.user_agent,
        mode=params.verify.archive,
        progress=sys.stderr.isatty(),
        opener=urllib.request.build_opener(),
    )
    partial_dir = raw_dir.parent / PARTIAL_DIR_NAME
    try:
        for spec in dataset.archives():
            started = time.monotonic()
            origin = download_archive(spec, dataset.mirrors, raw_dir, partial_dir, settings)
            log.info("%s: %s in %.1f s", spec.file, origin, time.monotonic() - started)
    finally:
        if partial_dir.exists() and not any(partial_dir.iterdir()):
            partial_dir.rmdir()
    return f"{len(dataset.archives())} archives of {dataset.name} in {raw_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("raw_dir", type=Path, help="folder that receives the accepted archives")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage("download", lambda params: download(params, args.raw_dir), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
