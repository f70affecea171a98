"""A strict, streaming reader of zip archives over any source that can read at an offset (the
writer of the PNG export's zip is mnist_pipeline.zipwriter; the records both use,
mnist_pipeline.zipformat).

Why not ``zipfile.ZipFile``: it builds a ``ZipInfo`` for every entry of the central directory
before the first read (hundreds of MB for a 700,000-entry zip), and it accepts what a hostile
archive needs (encryption, links, names that leave their folder, members that inflate past
their declared size). Here the central directory is streamed in bounded chunks, one
``ZipMember`` at a time, and every field that could make a reader misbehave is checked.

The source is a ``ReadAt``: a local file (``FileReadAt``) or anything else that can read a byte
range, such as HTTP ``Range`` requests on a remote zip. Every failure is an ``ArchiveError``
with one line naming the archive (``where``), the member, what was expected and what was found.

Format reference: PKWARE APPNOTE.TXT 6.3 (sections 4.3.7 local header, 4.3.12 central header,
4.3.14-4.3.16 zip64 and end records, 4.5.3 zip64 extra field).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import stat
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Protocol

from mnist_pipeline.errors import ArchiveError
from mnist_pipeline.names import is_clean_relative_path
from mnist_pipeline.zipformat import (
    CENTRAL_SIGNATURE,
    DEFLATED,
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

METHOD_NAMES = {STORED: "stored", DEFLATED: "deflated"}

#: Central directory bytes read per request: bounds memory however many entries there are.
DIRECTORY_CHUNK = 1 << 20
#: Bytes read beyond a local header's name in one request, hoping to cover its extra field
#: (zipfile writes none or 20 bytes, Info-ZIP about 28), so a small member is one read.
LOCAL_EXTRA_ALLOWANCE = 64

#: The 46-byte central directory header in two parts (version needed, time, date and internal
#: attributes skipped as padding), so each unpacks into a line of names.
_CENTRAL_HEAD = struct.Struct("<IH2xHH4xIII")
_CENTRAL_TAIL = struct.Struct("<HHHH2xII")
_CENTRAL_SIZE = _CENTRAL_HEAD.size + _CENTRAL_TAIL.size
_EXTRA_HEADER = struct.Struct("<HH")
#: The end record is the last 22 bytes plus a comment of at most 65,535 bytes.
MAX_EOCD_SEARCH = EOCD.size + 0xFFFF

_FLAG_ENCRYPTED = 0x0001
_FLAG_DATA_DESCRIPTOR = 0x0008
_FLAG_PATCHED = 0x0020
_FLAG_STRONG_ENCRYPTION = 0x0040
_FLAG_ENCRYPTED_DIRECTORY = 0x2000
_REFUSED_FLAGS = {
    _FLAG_ENCRYPTED: "encrypted",
    _FLAG_PATCHED: "compressed patched data",
    _FLAG_STRONG_ENCRYPTION: "strongly encrypted",
    _FLAG_ENCRYPTED_DIRECTORY: "encrypted central directory",
}
_REFUSED_FLAG_MASK = sum(_REFUSED_FLAGS)
_DOS_DIRECTORY = 0x10
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
#: Name bounds: a path nested thousands of levels deep or longer than the system's path limit is
#: no export's, and would otherwise fail deep in the file system calls (or in recursion).
MAX_NAME_DEPTH = 32
MAX_NAME_BYTES = 1024
MAX_NAME_PART_BYTES = 255
#: C0 and C1 control characters, NUL included: no legitimate file name holds one, and a
#: terminal or a log line printing one can be made to lie.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class ReadAt(Protocol):
    """A random-access byte source of known size."""

    def size(self) -> int: ...

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes starting at ``offset``, or ``ArchiveError``."""
        ...


def check_range(where: str, size: int, offset: int, length: int) -> None:
    """What every ``ReadAt.read_at`` checks first: the range lies inside the ``size`` bytes."""
    if offset < 0 or length < 0 or offset + length > size:
        raise ArchiveError(
            f"{where}: expected a range inside the file's {size} bytes, found {length} bytes at offset {offset}"
        )


class FileReadAt:
    """``ReadAt`` over a local file, with ``os.pread`` (no shared file position)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        # Non-blocking, so that a FIFO given as the zip is refused instead of waiting for a writer.
        self._descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        status = os.fstat(self._descriptor)
        if not stat.S_ISREG(status.st_mode):
            self.close()
            kind = "a folder" if stat.S_ISDIR(status.st_mode) else "a special file"
            raise ArchiveError(f"{path}: expected a zip file, found {kind}")
        self._size = status.st_size

    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        check_range(str(self._path), self._size, offset, length)
        data = os.pread(self._descriptor, length, offset)
        while len(data) < length:
            # A regular file returns short reads only at its end: it shrank since it was opened.
            more = os.pread(self._descriptor, length - len(data), offset + len(data))
            if not more:
                raise ArchiveError(
                    f"{self._path}: expected {length} bytes at offset {offset}, found {len(data)} (file truncated)"
                )
            data += more
        return data

    def close(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1

    def __enter__(self) -> FileReadAt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class ZipMember(NamedTuple):
    """One checked central directory entry. ``name`` ends with ``/`` for a folder entry.

    A named tuple rather than a frozen dataclass: an unpack makes one per entry in each of its
    two passes (1.6 million for EMNIST), and a frozen dataclass takes 3.3 us to build, a tuple 0.4."""

    name: str
    method: int
    compressed_size: int
    size: int
    crc32: int
    header_offset: int
    flags: int
    external_attr: int
    create_system: int

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass(frozen=True)
class CentralDirectory:
    """Where the central directory lies and how many entries it declares."""

    offset: int
    size: int
    count: int


def find_central_directory(source: ReadAt, where: str) -> CentralDirectory:
    """Locate the end record (and zip64 record if any) and check it against the archive.

    Strict: one disk only, the directory must end exactly where the end records begin
    (no data prepended or slipped in between), and the 16/32-bit fields must agree with the
    zip64 record when there is one.
    """
    total = source.size()
    if total < EOCD.size:
        raise ArchiveError(f"{where}: expected a zip archive of at least {EOCD.size} bytes, found {total}")
    tail_start = max(0, total - MAX_EOCD_SEARCH)
    tail = source.read_at(tail_start, total - tail_start)
    eocd_at = _find_eocd(tail, where)
    _, disk, cd_disk, disk_count, count, cd_size, cd_offset, _ = EOCD.unpack_from(tail, eocd_at)
    if disk != 0 or cd_disk != 0 or disk_count != count:
        raise ArchiveError(
            f"{where}: expected a single-disk archive, found disk {disk}, directory on disk {cd_disk}, "
            f"{disk_count} of {count} entries on this disk"
        )
    eocd_offset = tail_start + eocd_at
    locator_offset = eocd_offset - ZIP64_LOCATOR.size
    if locator_offset >= 0:
        locator = (
            tail[eocd_at - ZIP64_LOCATOR.size : eocd_at]
            if locator_offset >= tail_start
            else source.read_at(locator_offset, ZIP64_LOCATOR.size)
        )
        if ZIP64_LOCATOR.unpack_from(locator)[0] == ZIP64_LOCATOR_SIGNATURE:
            directory = _zip64_directory(source, locator, locator_offset, (count, cd_size, cd_offset), where)
            _check_directory_span(directory, directory_end=_zip64_record_offset(locator), where=where)
            return directory
    directory = CentralDirectory(offset=cd_offset, size=cd_size, count=count)
    _check_directory_span(directory, directory_end=eocd_offset, where=where)
    return directory


def _find_eocd(tail: bytes, where: str) -> int:
    """Offset in ``tail`` of the last end record whose comment reaches exactly the end of the file."""
    signature = EOCD_SIGNATURE.to_bytes(4, "little")
    position = len(tail) - EOCD.size
    while position >= 0:
        position = tail.rfind(signature, 0, position + 4)
        if position < 0:
            break
        comment_length = EOCD.unpack_from(tail, position)[-1]
        if position + EOCD.size + comment_length == len(tail):
            return position
        position -= 1
    raise ArchiveError(
        f"{where}: expected an end of central directory record in the last {MAX_EOCD_SEARCH} bytes, found none "
        "(not a zip archive, or truncated)"
    )


def _zip64_record_offset(locator: bytes) -> int:
    offset: int = ZIP64_LOCATOR.unpack_from(locator)[2]
    return offset


def _zip64_directory(
    source: ReadAt, locator: bytes, locator_offset: int, classic: tuple[int, int, int], where: str
) -> CentralDirectory:
    _, record_disk, record_offset, disks = ZIP64_LOCATOR.unpack_from(locator)
    if record_disk != 0 or disks != 1:
        raise ArchiveError(
            f"{where}: zip64 locator: expected one disk, found record on disk {record_disk} of {disks} disks"
        )
    if record_offset + ZIP64_EOCD.size > locator_offset:
        raise ArchiveError(
            f"{where}: zip64 locator: expected the zip64 end record before offset {locator_offset}, "
            f"found it at {record_offset}"
        )
    record = source.read_at(record_offset, ZIP64_EOCD.size)
    signature, record_size, _, _, disk, cd_disk, disk_count, count, cd_size, cd_offset = ZIP64_EOCD.unpack(record)
    if signature != ZIP64_EOCD_SIGNATURE:
        raise ArchiveError(
            f"{where}: zip64 end record at offset {record_offset}: "
            f"expected signature 0x{ZIP64_EOCD_SIGNATURE:08x}, found 0x{signature:08x}"
        )
    if record_offset + 12 + record_size != locator_offset:
        raise ArchiveError(
            f"{where}: zip64 end record: expected it to end at the locator (offset {locator_offset}), "
            f"found it ending at {record_offset + 12 + record_size}"
        )
    if disk != 0 or cd_disk != 0 or disk_count != count:
        raise ArchiveError(
            f"{where}: zip64 end record: expected a single-disk archive, found disk {disk}, "
            f"directory on disk {cd_disk}, {disk_count} of {count} entries on this disk"
        )
    for field, classic_value, value, sentinel in zip(
        ("entry count", "directory size", "directory offset"),
        classic,
        (count, cd_size, cd_offset),
        (_U16, _U32, _U32),
        strict=True,
    ):
        if classic_value not in (value, sentinel):
            raise ArchiveError(
                f"{where}: end record {field}: expected {value} (as in the zip64 record) or 0x{sentinel:x}, "
                f"found {classic_value}"
            )
    return CentralDirectory(offset=cd_offset, size=cd_size, count=count)


def _check_directory_span(directory: CentralDirectory, directory_end: int, where: str) -> None:
    if directory.offset + directory.size != directory_end:
        raise ArchiveError(
            f"{where}: expected the central directory to end at offset {directory_end}, found "
            f"{directory.size} bytes at offset {directory.offset} (ending at {directory.offset + directory.size})"
        )
    if directory.size < directory.count * _CENTRAL_SIZE:
        raise ArchiveError(
            f"{where}: expected at least {directory.count * _CENTRAL_SIZE} directory bytes for "
            f"{directory.count} entries, found {directory.size}"
        )


class _DirectoryWindow:
    """Bytes of the central directory, read ``DIRECTORY_CHUNK`` at a time and consumed in order."""

    def __init__(self, source: ReadAt, directory: CentralDirectory) -> None:
        self._source = source
        self._next_read = directory.offset
        self._end = directory.offset + directory.size
        self.buffer = b""
        self.position = 0

    def ensure(self, length: int) -> bool:
        """Make ``length`` bytes available at ``position``; False if the directory ends first."""
        while len(self.buffer) - self.position < length:
            if self._next_read >= self._end:
                return False
            chunk = self._source.read_at(self._next_read, min(DIRECTORY_CHUNK, self._end - self._next_read))
            self._next_read += len(chunk)
            self.buffer = self.buffer[self.position :] + chunk
            self.position = 0
        return True

    def consumed(self) -> int:
        return self._next_read - (len(self.buffer) - self.position)


def iter_members(source: ReadAt, directory: CentralDirectory, where: str, *, max_members: int) -> Iterator[ZipMember]:
    """Every entry of the central directory, checked, in directory order.

    Memory stays at one chunk of the directory whatever the entry count. Refuses: more than
    ``max_members`` entries, entries running past the directory or a count that disagrees with
    it, names that are empty, absolute, with ``..``/``.``/empty parts or control characters,
    encryption, methods other than stored and deflated, links and special files, folder
    attributes on a file name (or the reverse), names nested or long past the bounds above, data
    that would overlap the directory, and members whose bytes overlap another's (the
    overlapping-entry zip bomb, where thousands of entries share one stretch of data).
    """
    if directory.count > max_members:
        raise ArchiveError(f"{where}: expected at most {max_members:,} members, found {directory.count:,}")
    if directory.offset + directory.size > source.size():
        raise ArchiveError(
            f"{where}: expected the central directory inside the archive's {source.size()} bytes, found it "
            f"ending at {directory.offset + directory.size}"
        )
    window = _DirectoryWindow(source, directory)
    claimed = _ClaimedSpans()
    for index in range(directory.count):
        if not window.ensure(_CENTRAL_SIZE):
            raise _short_directory(where, directory, index)
        signature, made_by, flags, method, crc, compressed_size, size = _CENTRAL_HEAD.unpack_from(
            window.buffer, window.position
        )
        name_length, extra_length, comment_length, disk, external_attr, header_offset = _CENTRAL_TAIL.unpack_from(
            window.buffer, window.position + _CENTRAL_HEAD.size
        )
        if signature != CENTRAL_SIGNATURE:
            raise ArchiveError(
                f"{where}: central directory entry {index} at offset {window.consumed()}: "
                f"expected signature 0x{CENTRAL_SIGNATURE:08x}, found 0x{signature:08x}"
            )
        variable = name_length + extra_length + comment_length
        if not window.ensure(_CENTRAL_SIZE + variable):
            raise _short_directory(where, directory, index)
        start = window.position + _CENTRAL_SIZE
        raw_name = window.buffer[start : start + name_length]
        extra = window.buffer[start + name_length : start + name_length + extra_length]
        window.position = start + variable
        name = _decode_name(raw_name, flags, where, index)
        if _U32 in (compressed_size, size, header_offset) or disk == _U16:
            size, compressed_size, header_offset, disk = _apply_zip64_extra(
                extra, (size, compressed_size, header_offset, disk), where, name
            )
        member = ZipMember(
            name=name,
            method=method,
            compressed_size=compressed_size,
            size=size,
            crc32=crc,
            header_offset=header_offset,
            flags=flags,
            external_attr=external_attr,
            create_system=made_by >> 8,
        )
        _check_member(member, disk, directory, len(raw_name), where)
        claimed.claim(member, member.header_offset + LOCAL.size + len(raw_name) + member.compressed_size, where)
        yield member
    if window.consumed() != directory.offset + directory.size:
        raise ArchiveError(
            f"{where}: expected {directory.count} entries to fill the {directory.size}-byte central directory, "
            f"found {directory.offset + directory.size - window.consumed()} bytes left after them"
        )


def _short_directory(where: str, directory: CentralDirectory, index: int) -> ArchiveError:
    return ArchiveError(
        f"{where}: expected {directory.count} entries in the {directory.size}-byte central directory, "
        f"found entry {index} running past its end"
    )


def _decode_name(raw_name: bytes, flags: int, where: str, index: int) -> str:
    # Without the UTF-8 flag, the APPNOTE says IBM code page 437, which is what zipfile does too.
    try:
        name = raw_name.decode("utf-8" if flags & FLAG_UTF8 else "cp437")
    except UnicodeDecodeError as exc:
        raise ArchiveError(
            f"{where}: central directory entry {index}: expected a UTF-8 name, found {raw_name!r} ({exc.reason})"
        ) from exc
    if _CONTROL.search(name):
        raise ArchiveError(f"{where}: refusing member {name!r}: expected a name without control characters")
    return name


def _apply_zip64_extra(
    extra: bytes, fields: tuple[int, int, int, int], where: str, name: str
) -> tuple[int, int, int, int]:
    """Replace each saturated field (size, compressed size, header offset, disk) by its zip64
    value: the extra field holds exactly those, in that order (APPNOTE 4.5.3)."""
    data = _find_zip64_extra(extra, where, name)
    needed = [(i, 8 if i < 3 else 4) for i, value in enumerate(fields) if value == (_U32 if i < 3 else _U16)]
    expected_length = sum(width for _, width in needed)
    if data is None or len(data) < expected_length:
        found = "none" if data is None else f"{len(data)} bytes"
        raise ArchiveError(
            f"{where}: member {name!r}: expected a zip64 extra field of {expected_length} bytes for its "
            f"saturated sizes/offset, found {found}"
        )
    values = list(fields)
    position = 0
    for index, width in needed:
        values[index] = int.from_bytes(data[position : position + width], "little")
        position += width
    size, compressed_size, header_offset, disk = values
    return size, compressed_size, header_offset, disk


def _find_zip64_extra(extra: bytes, where: str, name: str) -> bytes | None:
    found: bytes | None = None
    position = 0
    while position < len(extra):
        if position + _EXTRA_HEADER.size > len(extra):
            raise ArchiveError(
                f"{where}: member {name!r}: expected extra field blocks of 4-byte headers, "
                f"found {len(extra) - position} stray bytes"
            )
        block_id, length = _EXTRA_HEADER.unpack_from(extra, position)
        position += _EXTRA_HEADER.size
        if position + length > len(extra):
            raise ArchiveError(
                f"{where}: member {name!r}: extra field block 0x{block_id:04x} declares {length} bytes, "
                f"found {len(extra) - position}"
            )
        if block_id == ZIP64_EXTRA_ID:
            if found is not None:
                raise ArchiveError(f"{where}: member {name!r}: expected one zip64 extra field, found two")
            found = extra[position : position + length]
        position += length
    return found


def _check_member(member: ZipMember, disk: int, directory: CentralDirectory, name_length: int, where: str) -> None:
    name = member.name
    if member.flags & _REFUSED_FLAG_MASK:
        found = ", ".join(what for flag, what in _REFUSED_FLAGS.items() if member.flags & flag)
        raise ArchiveError(f"{where}: refusing member {name!r}: expected no encryption or patch data, found {found}")
    if member.method not in METHOD_NAMES:
        raise ArchiveError(
            f"{where}: refusing member {name!r}: expected compression method 0 (stored) or 8 (deflated), "
            f"found {member.method}"
        )
    _check_name_bounds(name, name_length, where)
    if not _is_clean_path(name):
        raise ArchiveError(f"{where}: refusing member {name!r} (not a relative file path)")
    kind = stat.S_IFMT(member.external_attr >> 16) if member.create_system == UNIX else 0
    if kind == stat.S_IFLNK:
        raise ArchiveError(f"{where}: refusing member {name!r}: expected a file or folder, found a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(f"{where}: refusing member {name!r}: expected a file or folder, found file type 0o{kind:o}")
    says_folder = kind == stat.S_IFDIR or bool(member.external_attr & _DOS_DIRECTORY)
    if says_folder != member.is_dir:
        raise ArchiveError(
            f"{where}: refusing member {name!r}: its attributes say {'folder' if says_folder else 'file'}, "
            f"its name says {'folder' if member.is_dir else 'file'}"
        )
    if member.is_dir and member.size != 0:
        raise ArchiveError(
            f"{where}: refusing member {name!r}: expected a folder entry of 0 bytes, found {member.size}"
        )
    if member.method == STORED and member.compressed_size != member.size:
        raise ArchiveError(
            f"{where}: member {name!r}: expected a stored member's compressed size to equal its size "
            f"{member.size}, found {member.compressed_size}"
        )
    if disk != 0:
        raise ArchiveError(f"{where}: member {name!r}: expected it on disk 0, found disk {disk}")
    data_end = member.header_offset + LOCAL.size + name_length + member.compressed_size
    if data_end > directory.offset:
        raise ArchiveError(
            f"{where}: member {name!r}: expected its header and {member.compressed_size} data bytes before the "
            f"central directory at offset {directory.offset}, found them reaching offset {data_end}"
        )


def _check_name_bounds(name: str, name_length: int, where: str) -> None:
    if name_length > MAX_NAME_BYTES:
        raise ArchiveError(
            f"{where}: refusing member {_shortened(name)!r}: expected a name of at most {MAX_NAME_BYTES} bytes, "
            f"found {name_length}"
        )
    depth = name.rstrip("/").count("/") + 1
    if depth > MAX_NAME_DEPTH:
        raise ArchiveError(
            f"{where}: refusing member {_shortened(name)!r}: expected at most {MAX_NAME_DEPTH} path levels, "
            f"found {depth}"
        )
    if name_length <= MAX_NAME_PART_BYTES and name.isascii():
        return  # no part can be longer than the whole name (a cp437 byte can become 3 in UTF-8)
    longest = max(len(part.encode()) for part in name.split("/"))
    if longest > MAX_NAME_PART_BYTES:
        raise ArchiveError(
            f"{where}: refusing member {_shortened(name)!r}: expected path parts of at most "
            f"{MAX_NAME_PART_BYTES} bytes, found one of {longest}"
        )


def _shortened(name: str) -> str:
    """A name short enough for one error line."""
    return name if len(name) <= 80 else f"{name[:60]}...{name[-12:]}"


class _ClaimedSpans:
    """The byte ranges members occupy, as sorted disjoint spans, to refuse a member whose bytes
    overlap another's (as zipfile does since 3.12, by other means). A member's span runs from its
    local header to the end of its data, counting the local header without its extra field (not
    known before the header is read): the lower bound of its real extent. Two spans whose gap is
    too small for any member (a header and a one-byte name) are merged, so an archive written in
    order (data descriptors and short extra fields in the gaps) is one span however many members
    it holds."""

    _MIN_MEMBER = LOCAL.size + 1

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def claim(self, member: ZipMember, end: int, where: str) -> None:
        start = member.header_offset
        starts, ends = self._starts, self._ends
        index = bisect.bisect_right(starts, start)
        for neighbour in (index - 1, index):
            if 0 <= neighbour < len(starts) and starts[neighbour] < end and start < ends[neighbour]:
                raise ArchiveError(
                    f"{where}: refusing member {member.name!r}: expected its bytes {start}..{end} apart from every "
                    f"other member's, found them overlapping bytes {starts[neighbour]}..{ends[neighbour]} of earlier "
                    "members (overlapping entries, as in a zip bomb)"
                )
        joins_previous = index > 0 and start - ends[index - 1] < self._MIN_MEMBER
        joins_next = index < len(starts) and starts[index] - end < self._MIN_MEMBER
        if joins_previous and joins_next:
            ends[index - 1] = ends[index]
            del starts[index], ends[index]
        elif joins_previous:
            ends[index - 1] = end
        elif joins_next:
            starts[index] = start
        else:
            starts.insert(index, start)
            ends.insert(index, end)


def _is_clean_path(name: str) -> bool:
    """A clean relative path, a folder's trailing ``/`` aside."""
    return is_clean_relative_path(name[:-1] if name.endswith("/") else name)


def member_data_offset(source: ReadAt, member: ZipMember, where: str) -> int:
    """Check the member's local header against its central entry; the offset of its data."""
    raw_name = _encode_name(member)
    header_length = LOCAL.size + len(raw_name)
    header = source.read_at(member.header_offset, max(0, min(header_length, source.size() - member.header_offset)))
    data_offset = member.header_offset + _check_local_header(header, member, raw_name, where)
    _check_data_inside(source, member, data_offset, where)
    return data_offset


def _encode_name(member: ZipMember) -> bytes:
    # cp437 decoding is a bijection on bytes, so this gives back the directory's exact bytes.
    return member.name.encode("utf-8" if member.flags & FLAG_UTF8 else "cp437")


def _check_local_header(header: bytes, member: ZipMember, raw_name: bytes, where: str) -> int:
    """Validate a local header (at least its fixed part and name); its length with the extra field."""
    if len(header) < LOCAL.size + len(raw_name):
        raise ArchiveError(
            f"{where}: member {member.name!r}: expected a local header at offset {member.header_offset}, "
            "found the end of the archive"
        )
    signature, _, flags, method, _, _, crc, compressed_size, size, name_length, extra_length = LOCAL.unpack_from(header)
    if signature != LOCAL_SIGNATURE:
        raise ArchiveError(
            f"{where}: member {member.name!r}: expected a local header signature 0x{LOCAL_SIGNATURE:08x} at offset "
            f"{member.header_offset}, found 0x{signature:08x}"
        )
    local_name = header[LOCAL.size : LOCAL.size + name_length]
    if local_name != raw_name:
        raise ArchiveError(
            f"{where}: member {member.name!r}: expected the same name in its local header, found {local_name!r}"
        )
    if method != member.method or (flags ^ member.flags) & (_FLAG_ENCRYPTED | FLAG_UTF8):
        raise ArchiveError(
            f"{where}: member {member.name!r}: expected method {member.method} and flags 0x{member.flags:04x} "
            f"in its local header, found method {method} and flags 0x{flags:04x}"
        )
    # Sizes in the local header are zero (data descriptor) or saturated (zip64) in valid
    # archives; when they are real, they must agree with the central directory.
    if not flags & _FLAG_DATA_DESCRIPTOR and _U32 not in (compressed_size, size):
        local = (crc, compressed_size, size)
        central = (member.crc32, member.compressed_size, member.size)
        if local != central:
            raise ArchiveError(
                f"{where}: member {member.name!r}: expected crc, compressed size and size {central} in its local "
                f"header (as in the central directory), found {local}"
            )
    header_length: int = LOCAL.size + name_length + extra_length
    return header_length


def _check_data_inside(source: ReadAt, member: ZipMember, data_offset: int, where: str) -> None:
    if data_offset + member.compressed_size > source.size():
        raise ArchiveError(
            f"{where}: member {member.name!r}: expected {member.compressed_size} data bytes at offset "
            f"{data_offset}, found the archive ending at {source.size()}"
        )


def read_member(source: ReadAt, member: ZipMember, where: str, *, max_size: int = 1 << 20) -> bytes:
    """The whole content of a small member, checked like ``iter_member_chunks``.

    One read covers the local header and the data when the header's extra field is short, which
    is what makes tens of thousands of small members cheap. Members whose declared sizes pass
    ``max_size`` are refused (stream them with ``iter_member_chunks``).
    """
    if max(member.size, member.compressed_size) > max_size:
        raise ArchiveError(
            f"{where}: member {member.name!r}: expected at most {max_size} bytes to read whole, "
            f"found {member.size} ({member.compressed_size} compressed)"
        )
    raw_name = _encode_name(member)
    wanted = LOCAL.size + len(raw_name) + LOCAL_EXTRA_ALLOWANCE + member.compressed_size
    block = source.read_at(member.header_offset, max(0, min(wanted, source.size() - member.header_offset)))
    header_length = _check_local_header(block, member, raw_name, where)
    _check_data_inside(source, member, member.header_offset + header_length, where)
    data_end = header_length + member.compressed_size
    if data_end <= len(block):
        compressed = block[header_length:data_end]
    else:
        compressed = source.read_at(member.header_offset + header_length, member.compressed_size)
    if member.method == STORED:
        # The common case (every PNG of an export) without the streaming machinery: 70,000 of them.
        _check_complete(len(compressed), zlib.crc32(compressed), member, where)
        return compressed
    # One output step of size + 1 bytes: enough to see a member inflate past its declared size.
    return b"".join(_checked_content([compressed], member, where, member.size + 1))


def iter_member_chunks(source: ReadAt, member: ZipMember, where: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The member's content in chunks of at most ``chunk_size`` bytes.

    Stops with ``ArchiveError`` as soon as the output passes the declared size (a zip bomb
    never gets further than one chunk beyond it), and at the end unless the size, the CRC-32
    and the end of the compressed stream all match.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected >= 1, found {chunk_size}")
    data_offset = member_data_offset(source, member, where)
    compressed = _read_range(source, data_offset, member.compressed_size, chunk_size)
    yield from _checked_content(compressed, member, where, chunk_size)


def sha256_of_source(source: ReadAt, chunk_size: int = 1 << 16) -> str:
    """sha256 of all of ``source``'s bytes, read through the same handle as its members."""
    digest = hashlib.sha256()
    for chunk in _read_range(source, 0, source.size(), chunk_size):
        digest.update(chunk)
    return digest.hexdigest()


def _read_range(source: ReadAt, offset: int, length: int, chunk_size: int) -> Iterator[bytes]:
    for start in range(offset, offset + length, chunk_size):
        yield source.read_at(start, min(chunk_size, offset + length - start))


def _checked_content(compressed: Iterable[bytes], member: ZipMember, where: str, chunk_size: int) -> Iterator[bytes]:
    size = 0
    crc = 0
    for chunk in _DECODERS[member.method](compressed, member, where, chunk_size):
        size += len(chunk)
        if size > member.size:
            raise ArchiveError(
                f"{where}: member {member.name!r}: expected {member.size} bytes, found more; "
                "refusing to decompress further"
            )
        crc = zlib.crc32(chunk, crc)
        yield chunk
    _check_complete(size, crc, member, where)


def _check_complete(size: int, crc: int, member: ZipMember, where: str) -> None:
    if size != member.size:
        raise ArchiveError(f"{where}: member {member.name!r}: expected {member.size} bytes, found {size}")
    if crc != member.crc32:
        raise ArchiveError(f"{where}: member {member.name!r}: expected CRC-32 {member.crc32:08x}, found {crc:08x}")


def _stored(compressed: Iterable[bytes], _member: ZipMember, _where: str, _chunk_size: int) -> Iterator[bytes]:
    yield from compressed


def _deflated(compressed: Iterable[bytes], member: ZipMember, where: str, chunk_size: int) -> Iterator[bytes]:
    """Raw deflate, never producing more than ``chunk_size`` bytes per step (the bomb bound)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        for piece in compressed:
            if inflater.eof:
                raise _trailing(member, where, len(piece))
            pending = piece
            while True:
                out = inflater.decompress(pending, chunk_size)
                pending = inflater.unconsumed_tail
                if out:
                    yield out
                # A full output step may leave output inside zlib even with no input left.
                if not pending and (len(out) < chunk_size or inflater.eof):
                    break
    except zlib.error as exc:
        raise ArchiveError(f"{where}: member {member.name!r}: expected a valid deflate stream, found: {exc}") from exc
    if inflater.unused_data:
        raise _trailing(member, where, len(inflater.unused_data))
    if not inflater.eof:
        raise ArchiveError(
            f"{where}: member {member.name!r}: expected a complete deflate stream in {member.compressed_size} "
            "bytes, found it cut short"
        )


def _trailing(member: ZipMember, where: str, count: int) -> ArchiveError:
    return ArchiveError(
        f"{where}: member {member.name!r}: expected the deflate stream to fill its {member.compressed_size} "
        f"bytes, found {count} bytes after its end"
    )


_DECODERS: dict[int, Callable[[Iterable[bytes], ZipMember, str, int], Iterator[bytes]]] = {
    STORED: _stored,
    DEFLATED: _deflated,
}
