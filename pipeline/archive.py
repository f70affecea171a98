"""Gzip archives: digests of the archive bytes and of the payload, and bounded decompression.

Nothing here trusts an archive: the first bytes must be gzip's magic, the stream must end with
a valid CRC, and decompression stops as soon as the payload passes its expected size, so a
decompression bomb cannot fill the disk.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.config import ArchiveCheck, ArchiveSpec
from pipeline.errors import ArchiveError, ChecksumError
from pipeline.fsio import CHUNK_SIZE, atomic_path, digests_of_stream

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ArchiveDigests:
    size: int
    md5: str
    sha256: str


def archive_digests(path: Path) -> ArchiveDigests:
    with path.open("rb") as stream:
        size, digests = digests_of_stream(stream, ("md5", "sha256"))
    return ArchiveDigests(size=size, md5=digests["md5"], sha256=digests["sha256"])


def iter_payload(path: Path, max_size: int) -> Iterator[bytes]:
    """Yield the decompressed payload in chunks; ArchiveError if corrupt or beyond ``max_size``."""
    with path.open("rb") as raw:
        head = raw.read(len(GZIP_MAGIC))
    if head != GZIP_MAGIC:
        found = "an empty file" if not head else f"bytes 0x{head.hex()}"
        raise ArchiveError(f"{path}: expected gzip magic 0x1f8b, found {found}")
    produced = 0
    try:
        with gzip.open(path, "rb") as stream:
            # read() of a bounded size: at most one chunk past the limit is ever in memory.
            while chunk := stream.read(CHUNK_SIZE):
                produced += len(chunk)
                if produced > max_size:
                    raise ArchiveError(
                        f"{path}: payload exceeds the expected {max_size} bytes; refusing to decompress further"
                    )
                yield chunk
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ArchiveError(f"{path}: corrupt gzip stream after {produced} payload bytes: {exc}") from exc


def payload_digest(path: Path, expected_size: int) -> tuple[int, str]:
    """Size and sha256 of the decompressed payload (bounded by ``expected_size``)."""
    hasher = hashlib.sha256()
    size = 0
    for chunk in iter_payload(path, expected_size):
        size += len(chunk)
        hasher.update(chunk)
    return size, hasher.hexdigest()


def extract_payload(archive_path: Path, payload_path: Path, spec: ArchiveSpec) -> None:
    """Decompress to ``payload_path`` atomically; the payload must have exactly the expected size."""
    with atomic_path(payload_path) as temp, temp.open("wb") as out:
        size = 0
        for chunk in iter_payload(archive_path, spec.payload_size):
            size += len(chunk)
            out.write(chunk)
        if size != spec.payload_size:
            raise ArchiveError(f"{archive_path}: expected a {spec.payload_size}-byte payload, found {size} bytes")


@dataclass(frozen=True)
class ArchiveVerdict:
    """What was measured of one archive and which check accepted it."""

    digests: ArchiveDigests
    payload_size: int | None
    payload_sha256: str | None
    passed: str  # "archive": size and sha256 match; "payload": recompressed, payload matches


def check_archive(
    path: Path,
    spec: ArchiveSpec,
    mode: ArchiveCheck,
    *,
    full: bool = False,
    digests: ArchiveDigests | None = None,
) -> ArchiveVerdict:
    """Accept ``path`` as ``spec`` or raise ChecksumError/ArchiveError with expected and actual.

    ``full`` computes every digest even when the archive bytes already decide (the verify
    stage records them all); otherwise the payload is read only when ``mode`` needs it.
    ``digests`` are the archive's, when the caller hashed it while writing it.
    """
    digests = digests or archive_digests(path)
    archive_ok = (digests.size, digests.md5, digests.sha256) == (spec.size, spec.md5, spec.sha256)
    payload: tuple[int, str] | None = None
    # A strict mismatch is reported as such, before decompressing bytes already known wrong.
    if (full and archive_ok) or (not archive_ok and mode is ArchiveCheck.payload):
        payload = payload_digest(path, spec.payload_size)
    payload_ok = payload == (spec.payload_size, spec.payload_sha256)
    payload_size, payload_sha = payload if payload else (None, None)
    verdict = ArchiveVerdict(digests, payload_size, payload_sha, passed="archive")
    if archive_ok and (payload is None or payload_ok):
        return verdict
    if mode is ArchiveCheck.payload and payload_ok:
        return replace(verdict, passed="payload")
    raise ChecksumError(f"{path}: " + "; ".join(_differences(spec, digests, payload)))


def _differences(spec: ArchiveSpec, found: ArchiveDigests, payload: tuple[int, str] | None) -> list[str]:
    pairs = [
        ("bytes", spec.size, found.size),
        ("md5", spec.md5, found.md5),
        ("sha256", spec.sha256, found.sha256),
    ]
    if payload is not None:
        pairs.append(("payload sha256", spec.payload_sha256, payload[1]))
    return [f"expected {name} {want}, found {got}" for name, want, got in pairs if want != got]
