"""Zip archives for tests: well-formed ones as zipfile writes them, and hand-crafted ones
whose every field can lie (for the strict reader and the unpack stage)."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from mnist_pipeline.errors import ArchiveError

WHERE = "test.zip"
UNIX_FILE = (stat.S_IFREG | 0o644) << 16
MADE_BY_UNIX = (3 << 8) | 20


class BytesReadAt:
    """A ReadAt over bytes in memory, counting requests (as a remote source would pay them)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests = 0

    def size(self) -> int:
        return len(self.data)

    def read_at(self, offset: int, length: int) -> bytes:
        self.requests += 1
        if offset < 0 or length < 0 or offset + length > len(self.data):
            raise ArchiveError(f"{WHERE}: expected a range inside {len(self.data)} bytes, found {offset}+{length}")
        return self.data[offset : offset + length]


@dataclass(frozen=True)
class Crafted:
    """A member written by hand, so that any field can lie."""

    name: str | bytes
    content: bytes = b"content"
    method: int = 0
    flags: int = 0
    external_attr: int = UNIX_FILE
    made_by: int = MADE_BY_UNIX
    declared_size: int | None = None
    crc: int | None = None
    zip64: bool = False
    local_name: bytes | None = None
    #: The member's data as written; by default ``content``, deflated when ``method`` is 8.
    data: bytes | None = None


def raw_deflate(content: bytes) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(content) + deflater.flush()


def craft_zip(members: Sequence[Crafted], *, zip64_end: bool = False, comment: bytes = b"") -> bytes:
    """A zip archive as the fields say, true or not. ``zip64`` members saturate their central
    sizes and offset and carry the real ones in a zip64 extra field."""
    body = bytearray()
    central = bytearray()
    for member in members:
        raw_name = member.name.encode() if isinstance(member.name, str) else member.name
        data = member.data
        if data is None:
            data = raw_deflate(member.content) if member.method == zipfile.ZIP_DEFLATED else member.content
        size = len(member.content) if member.declared_size is None else member.declared_size
        crc = zlib.crc32(member.content) if member.crc is None else member.crc
        offset = len(body)
        local_name = raw_name if member.local_name is None else member.local_name
        body += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, member.flags, member.method, 0, 0x21, crc, len(data), size,
            len(local_name), 0,
        )  # fmt: skip
        body += local_name + data
        extra = struct.pack("<HHQQQ", 1, 24, size, len(data), offset) if member.zip64 else b""
        fields = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) if member.zip64 else (len(data), size, offset)
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, member.made_by, 20, member.flags, member.method, 0, 0x21, crc,
            fields[0], fields[1], len(raw_name), len(extra), 0, 0, 0, member.external_attr, fields[2],
        )  # fmt: skip
        central += raw_name + extra
    cd_offset = len(body)
    body += central
    count = len(members)
    if zip64_end:
        record_offset = len(body)
        body += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central), cd_offset)
        body += struct.pack("<IIQI", 0x07064B50, 0, record_offset, 1)
        body += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, len(comment))
    else:
        body += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), cd_offset, len(comment))
    return bytes(body + comment)


def zip_of(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def manifest_for(names: Sequence[str | bytes]) -> bytes:
    """A ``manifest.csv`` as the PNG export writes it (only the ``path`` column matters to unpack)."""
    rows = [name if isinstance(name, str) else name.decode("utf-8", "replace") for name in names]
    return ("path,split,index,label,class\n" + "".join(f"{row},train,0,0,0\n" for row in rows)).encode()


def export_of(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip shaped like a PNG export: ``files`` in order, then the manifest listing them."""
    return zip_of({**files, "manifest.csv": manifest_for(list(files))}, compression)


def crafted_export(members: Sequence[Crafted], *, zip64_end: bool = False) -> bytes:
    """``craft_zip`` of ``members`` followed by a manifest listing each of them."""
    manifest = Crafted("manifest.csv", manifest_for([member.name for member in members]))
    return craft_zip([*members, manifest], zip64_end=zip64_end)


def _local_header(name: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data)
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc, len(data), len(data), len(name), 0) + name


def _central_entry(name: bytes, data_length: int, crc: int, offset: int) -> bytes:
    return struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, MADE_BY_UNIX, 20, 0, 0, 0, 0x21, crc, data_length, data_length,
        len(name), 0, 0, 0, 0, UNIX_FILE, offset,
    ) + name  # fmt: skip


def overlapping_bomb(count: int, kernel: bytes) -> bytes:
    """An overlapping-entry zip bomb (Fifield's "quoted overlap", stored): member ``i``'s data
    is the local headers and data of every later member, down to ``kernel``, so ``count``
    entries declare about ``count * len(kernel)`` bytes held once. A manifest listing them comes
    first on disk and last in the directory, so only the overlap gives the archive away."""
    names = [f"{index:04d}.png".encode() for index in range(count)]
    manifest = manifest_for(names)
    body = _local_header(b"manifest.csv", manifest) + manifest
    chain = kernel
    entries: list[tuple[bytes, int, int]] = []  # (name, data length, crc), last member first
    for name in reversed(names):
        entries.append((name, len(chain), zlib.crc32(chain)))
        chain = _local_header(name, chain) + chain
    central = bytearray()
    offset = len(body)
    for name, data_length, crc in reversed(entries):
        central += _central_entry(name, data_length, crc, offset)
        offset += 30 + len(name)
    central += _central_entry(b"manifest.csv", len(manifest), zlib.crc32(manifest), 0)
    body += chain
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count + 1, count + 1, len(central), len(body), 0)
    return body + bytes(central) + end
