"""Published files: their digests, the payload inside them, and bounded decompression.

Compression is a table (``OPENERS``, as torchvision's ``_COMPRESSED_FILE_OPENERS``): a config
value names how a file wraps its IDX payload. Nothing here trusts a file: the first bytes must
carry the compression's magic, the stream must end with a valid check, and decompression stops
as soon as the payload passes its expected size, so a decompression bomb cannot fill the disk.
"""

from __future__ import annotations

import gzip
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, cast

from mnist_pipeline.config import ArchiveCheck, Compression, ContainerSpec, FileSpec
from mnist_pipeline.errors import ArchiveError, ChecksumError
from mnist_pipeline.fsio import CHUNK_SIZE, Digests, Hasher, atomic_path, digests_of


@dataclass(frozen=True)
class Wrapper:
    """How one compression wraps an IDX payload in a published file."""

    #: Bytes the published file must start with.
    magic: bytes
    #: Opens the decompressed stream of a published file (the caller closes it).
    open: Callable[[Path], BinaryIO]


#: Compression (a config value) -> how files are wrapped, as torchvision's _COMPRESSED_FILE_OPENERS.
OPENERS: dict[Compression, Wrapper] = {
    Compression.gzip: Wrapper(b"\x1f\x8b", lambda path: cast(BinaryIO, gzip.open(path, "rb"))),  # noqa: SIM115
    Compression.xz: Wrapper(b"\xfd7zXZ\x00", lambda path: cast(BinaryIO, lzma.open(path, "rb"))),  # noqa: SIM115
    Compression.none: Wrapper(b"", lambda path: path.open("rb")),
}
_DECOMPRESSION_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError)
#: A recompressed file (``verify.archive: payload``) may be larger than its payload, but no
#: compressor grows incompressible data by more than a few bytes per block.
RECOMPRESSED_SLACK = 1 << 16


def magic_of(compression: Compression) -> bytes:
    return OPENERS[compression].magic


def max_archive_size(spec: FileSpec, mode: ArchiveCheck) -> int:
    """The most bytes a download of ``spec`` may bring before it is refused."""
    if mode is ArchiveCheck.strict and spec.size is not None:
        return spec.size
    return spec.payload_size + RECOMPRESSED_SLACK


def iter_payload(path: Path, compression: Compression, max_size: int) -> Iterator[bytes]:
    """Yield the decompressed payload in chunks; ArchiveError if corrupt or beyond ``max_size``."""
    wrapper = OPENERS[compression]
    magic = wrapper.magic
    with path.open("rb") as raw:
        head = raw.read(len(magic))
    if head != magic:
        found = "an empty file" if not head else f"bytes 0x{head.hex()}"
        raise ArchiveError(f"{path}: expected {compression.value} magic 0x{magic.hex()}, found {found}")
    produced = 0
    try:
        with wrapper.open(path) as stream:
            # read() of a bounded size: at most one chunk past the limit is ever in memory.
            while chunk := stream.read(CHUNK_SIZE):
                produced += len(chunk)
                if produced > max_size:
                    raise ArchiveError(
                        f"{path}: payload exceeds the expected {max_size} bytes; refusing to decompress further"
                    )
                yield chunk
    except _DECOMPRESSION_ERRORS as exc:
        raise ArchiveError(f"{path}: corrupt {compression.value} stream after {produced} payload bytes: {exc}") from exc


def payload_digests(path: Path, compression: Compression, expected_size: int) -> Digests:
    """Size, md5 and sha256 of the decompressed payload (bounded by ``expected_size``)."""
    hasher = Hasher()
    for chunk in iter_payload(path, compression, expected_size):
        hasher.update(chunk)
    return hasher.digests()


def extract_payload(archive_path: Path, payload_path: Path, spec: FileSpec, compression: Compression) -> None:
    """Decompress to ``payload_path`` atomically; the payload must have exactly the expected
    size and every published payload digest."""
    hasher = Hasher()
    with atomic_path(payload_path) as temp, temp.open("wb") as out:
        for chunk in iter_payload(archive_path, compression, spec.payload_size):
            out.write(chunk)
            hasher.update(chunk)
        differences = _payload_differences(spec, hasher.digests())
        if differences:
            raise ChecksumError(f"{archive_path}: payload: " + "; ".join(differences))


@dataclass(frozen=True)
class ArchiveVerdict:
    """What was measured of one file and which check accepted it."""

    digests: Digests
    payload: Digests | None
    passed: str  # "archive": size and digests match; "payload": recompressed, payload matches


def check_archive(
    path: Path,
    spec: FileSpec,
    mode: ArchiveCheck,
    compression: Compression,
    *,
    full: bool = False,
    digests: Digests | None = None,
) -> ArchiveVerdict:
    """Accept ``path`` as ``spec`` or raise ChecksumError/ArchiveError with expected and actual.

    Every size and digest the config publishes must match. ``full`` also measures the payload
    when the archive bytes already decide (the verify stage records it); otherwise the payload
    is read only when ``mode`` needs it. ``digests`` are the archive's, when the caller hashed
    it while writing it.
    """
    digests = digests or digests_of(path)
    archive_problems = archive_differences(spec, digests)
    payload: Digests | None = None
    # A strict mismatch is reported as such, before decompressing bytes already known wrong.
    if (full and not archive_problems) or (archive_problems and mode is ArchiveCheck.payload):
        payload = payload_digests(path, compression, spec.payload_size)
    payload_problems = _payload_differences(spec, payload) if payload else []
    verdict = ArchiveVerdict(digests, payload, passed="archive")
    if not archive_problems and not payload_problems:
        return verdict
    if mode is ArchiveCheck.payload and payload and not payload_problems and spec.has_payload_digest:
        return replace(verdict, passed="payload")
    raise ChecksumError(f"{path}: " + "; ".join(archive_problems + payload_problems))


def archive_differences(spec: FileSpec | ContainerSpec, found: Digests) -> list[str]:
    """``expected X, found Y`` for every published size or digest that ``found`` does not match."""
    return _differences(
        [("bytes", spec.size, found.size), ("md5", spec.md5, found.md5), ("sha256", spec.sha256, found.sha256)]
    )


def _payload_differences(spec: FileSpec, found: Digests) -> list[str]:
    return _differences(
        [
            ("payload bytes", spec.payload_size, found.size),
            ("payload md5", spec.payload_md5, found.md5),
            ("payload sha256", spec.payload_sha256, found.sha256),
        ]
    )


def _differences(pairs: list[tuple[str, object, object]]) -> list[str]:
    """``expected <name> <published>, found <actual>`` for each published value not matched."""
    return [f"expected {name} {want}, found {got}" for name, want, got in pairs if want is not None and want != got]
