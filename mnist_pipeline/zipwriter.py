"""The PNG export's zip writer: stored members dated 1980-01-01, mode 0644, byte-identical to what
``zipfile`` writes for them, but with flat memory: zipfile keeps an object per member until the
end (~300 MB for EMNIST's 814,255 images), while here each central-directory entry is spilled to a
temporary file as its member is added.

Format reference: PKWARE APPNOTE.TXT 6.3 (records: mnist_pipeline.zipformat).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import BinaryIO

from mnist_pipeline.errors import ArchiveError
from mnist_pipeline.zipformat import (
    CENTRAL_SIGNATURE,
    EOCD,
    EOCD_SIGNATURE,
    FLAG_UTF8,
    LOCAL,
    LOCAL_SIGNATURE,
    STORED,
    UNIX,
    ZIP64_EOCD,
    ZIP64_EOCD_SIGNATURE,
    ZIP64_EXTRA_ID,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIGNATURE,
)

# The records as zipfile writes them, so that the archive is byte-identical to zipfile's for the
# same members on a POSIX system. The central record is written whole (the reader parses it in two
# parts, skipping what it does not check).
_CENTRAL_RECORD = struct.Struct("<IBBBBHHHHIIIHHHHHII")
_ZIP64_OFFSET_EXTRA = struct.Struct("<HHQ")
#: zipfile's thresholds: beyond them an offset or a count moves to a zip64 record.
ZIP64_LIMIT = (1 << 31) - 1
ZIP_COUNT_LIMIT = (1 << 16) - 1
_VERSION = 20
_ZIP64_VERSION = 45
_DOS_DATE_1980_01_01 = 1 << 5 | 1
_DOS_TIME_MIDNIGHT = 0
FILE_MODE = 0o644
COPY_CHUNK = 1 << 20


class StoredZipWriter:
    """Appends stored members to ``out`` (a binary file at position 0); ``close`` writes the
    central directory. Each member's directory entry is spilled to ``directory`` (a temporary
    file) as it is added, so memory does not grow with the member count."""

    def __init__(self, out: BinaryIO, directory: BinaryIO) -> None:
        self._out = out
        self._directory = directory
        self._offset = 0
        self._count = 0

    def add(self, name: str, data: bytes) -> None:
        self._add(name, len(data), zlib.crc32(data), [data])

    def add_file(self, name: str, source: BinaryIO) -> None:
        """Add the content of ``source`` (a seekable binary file, read from its start)."""
        source.seek(0)
        crc, size = 0, 0
        while chunk := source.read(COPY_CHUNK):
            crc, size = zlib.crc32(chunk, crc), size + len(chunk)
        source.seek(0)
        self._add(name, size, crc, iter(lambda: source.read(COPY_CHUNK), b""))

    def _add(self, name: str, size: int, crc: int, chunks: Iterable[bytes]) -> None:
        # zipfile would give a member this large a zip64 local header; no PNG or manifest gets near it.
        if size * 1.05 > ZIP64_LIMIT:
            raise ArchiveError(f"{name}: {size:,} bytes is beyond this writer's member limit of ~2 GB")
        raw_name, flags = _name_bytes(name)
        self._out.write(
            LOCAL.pack(
                LOCAL_SIGNATURE, _VERSION, flags, STORED, _DOS_TIME_MIDNIGHT, _DOS_DATE_1980_01_01,
                crc, size, size, len(raw_name), 0,
            )
        )  # fmt: skip
        self._out.write(raw_name)
        for chunk in chunks:
            self._out.write(chunk)
        extra, version, offset = b"", _VERSION, self._offset
        if offset > ZIP64_LIMIT:
            extra, version, offset = _ZIP64_OFFSET_EXTRA.pack(ZIP64_EXTRA_ID, 8, offset), _ZIP64_VERSION, 0xFFFFFFFF
        self._directory.write(
            _CENTRAL_RECORD.pack(
                CENTRAL_SIGNATURE, version, UNIX, version, 0, flags, STORED, _DOS_TIME_MIDNIGHT, _DOS_DATE_1980_01_01,
                crc, size, size, len(raw_name), len(extra), 0, 0, 0, FILE_MODE << 16, offset,
            )
        )  # fmt: skip
        self._directory.write(raw_name + extra)
        self._offset += LOCAL.size + len(raw_name) + size
        self._count += 1

    def close(self) -> None:
        """Copy the central directory after the members, then the end records."""
        start = self._offset
        self._directory.seek(0)
        while chunk := self._directory.read(COPY_CHUNK):
            self._out.write(chunk)
        size = self._directory.tell()
        count = self._count
        if count > ZIP_COUNT_LIMIT or start > ZIP64_LIMIT or size > ZIP64_LIMIT:
            end64 = start + size
            self._out.write(ZIP64_EOCD.pack(ZIP64_EOCD_SIGNATURE, 44, 45, 45, 0, 0, count, count, size, start))
            self._out.write(ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIGNATURE, 0, end64, 1))
            count, size, start = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF)
        self._out.write(EOCD.pack(EOCD_SIGNATURE, 0, 0, count, count, size, start, 0))


def _name_bytes(name: str) -> tuple[bytes, int]:
    """The name as zipfile stores it: ASCII, else UTF-8 with the UTF-8 flag."""
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), FLAG_UTF8
