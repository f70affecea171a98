"""The strict streaming zip reader: good archives read like zipfile reads them; every hostile
or broken one is refused with an ArchiveError naming the archive and the member."""

from __future__ import annotations

import io
import re
import stat
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from mnist_pipeline import ziparchive
from mnist_pipeline.errors import ArchiveError
from mnist_pipeline.ziparchive import (
    CentralDirectory,
    FileReadAt,
    ReadAt,
    ZipMember,
    find_central_directory,
    iter_member_chunks,
    iter_members,
    member_data_offset,
    read_member,
)
from tests.support.zips import (
    UNIX_FILE,
    WHERE,
    BytesReadAt,
    Crafted,
    craft_zip,
    overlapping_bomb,
    raw_deflate,
    zip_of,
)


def read_all(data: bytes, *, max_members: int = 1000, chunk_size: int = 1 << 20) -> dict[str, bytes]:
    """Every member's content, streamed and read whole (the two must agree)."""
    source = BytesReadAt(data)
    directory = find_central_directory(source, WHERE)
    contents: dict[str, bytes] = {}
    for member in iter_members(source, directory, WHERE, max_members=max_members):
        streamed = b"".join(iter_member_chunks(source, member, WHERE, chunk_size=chunk_size))
        if member.size <= 1 << 20:
            assert read_member(source, member, WHERE) == streamed
        contents[member.name] = streamed
    return contents


def members_of(data: bytes, max_members: int = 1000) -> list[ZipMember]:
    source = BytesReadAt(data)
    return list(iter_members(source, find_central_directory(source, WHERE), WHERE, max_members=max_members))


# good archives -----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_reads_what_zipfile_writes(compression: int) -> None:
    files = {
        "a.txt": b"hello",
        "sub/dir/b.bin": bytes(range(256)) * 50,
        "empty": b"",
        "caf\u00e9/\u00fc.png": b"utf-8 name",
        "zeros": bytes(300_000),
    }
    data = zip_of(files, compression)
    assert read_all(data) == files
    assert read_all(data, chunk_size=7) == files


class Unseekable(io.BytesIO):
    def seek(self, offset: int, whence: int = 0, /) -> int:
        raise OSError("not seekable")


def test_reads_members_with_data_descriptors() -> None:
    # Written to a stream it cannot seek back into, zipfile sets flag bit 3 and puts the
    # sizes and CRC after the data.
    buffer = Unseekable()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in (("a.txt", b"a" * 5000), ("b.txt", b"b")):
            with archive.open(name, "w") as member:
                member.write(content)
    assert all(member.flags & 0x8 for member in members_of(buffer.getvalue()))
    assert read_all(buffer.getvalue()) == {"a.txt": b"a" * 5000, "b.txt": b"b"}


def test_members_carry_the_central_fields() -> None:
    data = zip_of({"x/y.txt": b"abc"}, zipfile.ZIP_DEFLATED)
    (member,) = members_of(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("x/y.txt")
    assert (member.name, member.method, member.size, member.compressed_size) == (
        "x/y.txt",
        zipfile.ZIP_DEFLATED,
        3,
        info.compress_size,
    )
    assert (member.crc32, member.header_offset, member.external_attr) == (info.CRC, 0, info.external_attr)
    assert member.create_system == info.create_system and not member.is_dir
    assert member_data_offset(BytesReadAt(data), member, WHERE) == 30 + len("x/y.txt")


def test_zip_of_no_members_is_a_valid_empty_archive() -> None:
    data = zip_of({})
    assert find_central_directory(BytesReadAt(data), WHERE) == CentralDirectory(offset=0, size=0, count=0)
    assert read_all(data) == {}


def test_archive_comment_is_skipped() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a", b"1")
        archive.comment = b"PK\x05\x06 looks like an end record" + bytes(200)
    assert read_all(buffer.getvalue()) == {"a": b"1"}


def test_force_zip64_members_read_back() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ("a.bin", "b.bin"):
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(name.encode() * 1000)
    assert read_all(buffer.getvalue()) == {"a.bin": b"a.bin" * 1000, "b.bin": b"b.bin" * 1000}


def test_zip64_extra_fields_and_end_record_are_parsed() -> None:
    members = [Crafted("one", b"1" * 10, zip64=True), Crafted("two", b"22", method=8, zip64=True)]
    data = craft_zip(members, zip64_end=True)
    parsed = members_of(data)
    assert [(m.name, m.size, m.header_offset) for m in parsed] == [("one", 10, 0), ("two", 2, 30 + 3 + 10)]
    assert read_all(data) == {"one": b"1" * 10, "two": b"22"}


@pytest.mark.slow  # large generated input: in make test, not in the quick loop
def test_more_than_65535_members_use_zipfile_zip64_end_record(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(70_000):
            archive.writestr(f"{index % 7}/{index}", b"")
    with FileReadAt(path) as source:
        directory = find_central_directory(source, WHERE)
        assert directory.count == 70_000
        assert sum(1 for _ in iter_members(source, directory, WHERE, max_members=70_000)) == 70_000


def test_entries_straddling_directory_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ziparchive, "DIRECTORY_CHUNK", 37)
    files = {f"{'n' * (index * 7 % 90 + 1)}{index}": bytes([index]) * index for index in range(60)}
    assert read_all(zip_of(files)) == files


def test_small_member_is_one_read() -> None:
    data = zip_of({"a": b"x" * 100, "b": b"y" * 200})
    source = BytesReadAt(data)
    members = list(iter_members(source, find_central_directory(source, WHERE), WHERE, max_members=10))
    source.requests = 0
    assert [read_member(source, member, WHERE) for member in members] == [b"x" * 100, b"y" * 200]
    assert source.requests == 2


def test_file_read_at_reads_ranges_and_refuses_past_the_end(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    with FileReadAt(path) as source:
        assert source.size() == 10
        assert source.read_at(3, 4) == b"3456"
        with pytest.raises(ArchiveError, match=r"f: .*found 4 bytes at offset 8"):
            source.read_at(8, 4)


def test_memory_stays_bounded_with_large_deflated_member() -> None:
    data = zip_of({"big": bytes(50_000_000)}, zipfile.ZIP_DEFLATED)
    source = BytesReadAt(data)
    (member,) = list(iter_members(source, find_central_directory(source, WHERE), WHERE, max_members=1))
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in iter_member_chunks(source, member, WHERE, chunk_size=1 << 16))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 50_000_000
    assert peak < 2 << 20


# hostile archives ---------------------------------------------------------------------------


def refused(data: bytes, match: str, *, max_members: int = 1000) -> None:
    with pytest.raises(ArchiveError, match=match) as caught:
        read_all(data, max_members=max_members)
    message = str(caught.value)
    assert message.startswith(f"{WHERE}: ") and "\n" not in message


@pytest.mark.parametrize(
    ("flags", "what"),
    [(0x1, "encrypted"), (0x41, "strongly encrypted"), (0x20, "compressed patched data")],
)
def test_encryption_and_patch_flags_refused(flags: int, what: str) -> None:
    refused(
        craft_zip([Crafted("secret.png", flags=flags)]),
        f"refusing member 'secret.png': expected no encryption or patch data, found .*{what}",
    )


@pytest.mark.parametrize("method", [1, 12, 14, 93, 99])
def test_methods_other_than_stored_and_deflated_refused(method: int) -> None:
    refused(
        craft_zip([Crafted("a.bin", method=method)]),
        f"refusing member 'a.bin': expected compression method 0 \\(stored\\) or 8 \\(deflated\\), found {method}",
    )


def test_symlink_refused() -> None:
    info = zipfile.ZipInfo("link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, "/etc/passwd")
    refused(buffer.getvalue(), "refusing member 'link.png': expected a file or folder, found a symbolic link")


@pytest.mark.parametrize("kind", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_special_files_refused(kind: int) -> None:
    refused(
        craft_zip([Crafted("dev", external_attr=(kind | 0o600) << 16)]),
        "refusing member 'dev': expected a file or folder, found file type",
    )


@pytest.mark.parametrize(
    ("name", "attr"),
    [("file-with-folder-bit", 0x10), ("unix-folder-mode", (stat.S_IFDIR | 0o755) << 16), ("dir/", UNIX_FILE)],
)
def test_folder_attributes_must_match_the_name(name: str, attr: int) -> None:
    refused(craft_zip([Crafted(name, b"", external_attr=attr)]), f"refusing member '{name}': its attributes say")


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../x.png", "a/../../x.png", "a/./b.png", "a//b.png", "./a.png", "a\\..\\b.png", ""],
)
def test_names_leaving_the_tree_or_not_canonical_refused(name: str) -> None:
    refused(craft_zip([Crafted(name)]), re.escape(f"refusing member {name!r} (not a relative file path)"))


@pytest.mark.parametrize("name", [b"a\x00b.png", b"a\nb.png", b"a\x1b[2Jb.png", b"a\x7fb"])
def test_control_characters_in_names_refused(name: bytes) -> None:
    refused(craft_zip([Crafted(name)]), "refusing member '.*': expected a name without control characters")


def test_invalid_utf8_name_refused() -> None:
    refused(craft_zip([Crafted(b"\xff\xfe.png", flags=0x800)]), "entry 0: expected a UTF-8 name")


def test_deflate_bomb_stops_at_the_declared_size() -> None:
    content = bytes(20_000_000)
    bomb = craft_zip([Crafted("bomb.png", content, method=8, declared_size=1000, crc=zlib.crc32(content[:1000]))])
    assert len(bomb) < 30_000
    tracemalloc.start()
    try:
        refused(bomb, "member 'bomb.png': expected 1000 bytes, found more; refusing to decompress further")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_deflate_bomb_refused_when_read_whole() -> None:
    content = bytes(5_000_000)
    bomb = craft_zip([Crafted("bomb.png", content, method=8, declared_size=10)])
    source = BytesReadAt(bomb)
    (member,) = list(iter_members(source, find_central_directory(source, WHERE), WHERE, max_members=1))
    with pytest.raises(ArchiveError, match=re.escape("member 'bomb.png': expected 10 bytes, found more")):
        read_member(source, member, WHERE)


@pytest.mark.parametrize("method", [0, 8])
def test_declared_size_larger_than_content_refused(method: int) -> None:
    content = b"0123456789" * 10
    if method == 8:
        refused(
            craft_zip([Crafted("a.txt", content, method=8, declared_size=120)]),
            "'a.txt': expected 120 bytes, found 100",
        )
    else:
        data = craft_zip([Crafted("a.txt", content), Crafted("b.txt", content)])
        patched = patch_central(data, 0, size=90)
        refused(patched, "member 'a.txt': expected a stored member's compressed size to equal its size 90, found 100")


def test_crc_mismatch_refused() -> None:
    refused(craft_zip([Crafted("a.txt", b"abc", crc=0x12345678)]), "member 'a.txt': expected CRC-32 12345678, found")
    refused(
        craft_zip([Crafted("d.txt", b"abc" * 100, method=8, crc=1)]), "member 'd.txt': expected CRC-32 00000001, found"
    )


def test_corrupt_and_cut_deflate_streams_refused() -> None:
    content = b"hello world" * 100
    good = raw_deflate(content)
    refused(
        craft_zip([Crafted("cut", content, method=8, data=good[:-5])]),
        "member 'cut': expected a complete deflate stream in",
    )
    refused(
        craft_zip([Crafted("trail", content, method=8, data=good + b"junk")]),
        "member 'trail': expected the deflate stream to fill its .* found 4 bytes after its end",
    )
    refused(
        craft_zip([Crafted("garbage", content, method=8, data=b"\xff" * 50)]),
        "member 'garbage': expected a valid deflate stream",
    )


def test_truncated_archives_refused() -> None:
    data = zip_of({"a.png": b"a" * 1000, "b.png": b"b" * 1000})
    for length in (0, 10, 21, 500, len(data) - 40, len(data) - 1):
        with pytest.raises(ArchiveError, match=f"{WHERE}: "):
            read_all(data[:length])


def test_member_data_past_the_end_refused() -> None:
    # A member whose local header defers its sizes to a data descriptor (flag bit 3), with
    # central sizes pointing past the end of the archive.
    data = craft_zip([Crafted("a.png", b"a" * 1000, flags=0x8)])
    member = ZipMember("a.png", 0, 5000, 5000, zlib.crc32(b"a" * 1000), 0, 0x8, UNIX_FILE, 3)
    with pytest.raises(
        ArchiveError, match=re.escape("member 'a.png': expected 5000 data bytes at offset 35, found the archive")
    ):
        list(iter_member_chunks(BytesReadAt(data), member, WHERE))


def test_file_shrinking_after_open_refused(tmp_path: Path) -> None:
    path = tmp_path / "shrinks.zip"
    path.write_bytes(zip_of({"a.png": b"a" * 1000}))
    with FileReadAt(path) as source:
        directory = find_central_directory(source, WHERE)
        (member,) = list(iter_members(source, directory, WHERE, max_members=1))
        with path.open("r+b") as stream:
            stream.truncate(500)
        with pytest.raises(
            ArchiveError, match=re.escape("shrinks.zip: expected 1000 bytes at offset 35, found 465 (file truncated)")
        ):
            list(iter_member_chunks(source, member, WHERE))


def test_member_count_over_the_limit_refused() -> None:
    data = zip_of({f"{index}.png": b"" for index in range(5)})
    refused(data, "expected at most 4 members, found 5", max_members=4)
    assert len(read_all(data, max_members=5)) == 5


def test_end_record_count_disagreeing_with_the_directory_refused() -> None:
    data = zip_of({"a": b"1", "b": b"2"})
    refused(patch_eocd_count(data, 1), "expected 1 entries to fill the .* bytes left after them")
    refused(patch_eocd_count(data, 3), "expected at least 138 directory bytes for 3 entries")


def test_data_before_the_archive_or_after_the_end_record_refused() -> None:
    data = zip_of({"a": b"1"})
    refused(b"MZ prepended stub" + data, "expected the central directory to end at offset")
    refused(data + b"junk", "expected an end of central directory record in the last")


def test_multi_disk_archive_refused() -> None:
    data = bytearray(zip_of({"a": b"1"}))
    struct.pack_into("<H", data, len(data) - 22 + 4, 1)
    refused(bytes(data), "expected a single-disk archive, found disk 1")


def test_local_header_name_must_equal_the_central_one() -> None:
    refused(craft_zip([Crafted("a.png", local_name=b"../evil")]), "member 'a.png': expected the same name in its local")


def test_local_header_must_agree_with_the_central_sizes() -> None:
    data = bytearray(craft_zip([Crafted("a.png", b"abc")]))
    struct.pack_into("<I", data, 22, 2)  # local size field: 2 instead of 3
    refused(bytes(data), "member 'a.png': expected crc, compressed size and size")


def test_missing_zip64_extra_refused() -> None:
    data = patch_central(craft_zip([Crafted("a", b"x")]), 0, size=0xFFFFFFFF)
    refused(data, "member 'a': expected a zip64 extra field of 8 bytes .* found none")


def test_zip64_end_record_must_agree_with_the_classic_one() -> None:
    data = bytearray(craft_zip([Crafted("a", b"x")], zip64_end=True))
    struct.pack_into("<HH", data, len(data) - 22 + 8, 7, 7)  # entries: 7 instead of 0xFFFF or 1
    refused(bytes(data), "end record entry count: expected 1 .* found 7")


def test_member_data_overlapping_the_directory_refused() -> None:
    data = patch_central(craft_zip([Crafted("a", b"x" * 10)]), 0, size=50, compressed_size=50)
    refused(data, "member 'a': expected its header and 50 data bytes before the central directory")


def test_every_error_names_the_source_given() -> None:
    source: ReadAt = BytesReadAt(b"not a zip at all, just some bytes")
    with pytest.raises(
        ArchiveError, match=f"^{re.escape('https://example.org/x.zip: expected an end of central directory')}"
    ):
        find_central_directory(source, "https://example.org/x.zip")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("/".join(["d"] * 2000) + ".png", "expected a name of at most 1024 bytes, found 4003"),
        ("a/" * 40 + "x.png", "expected at most 32 path levels, found 41"),
        ("x" * 300 + ".png", "expected path parts of at most 255 bytes, found one of 304"),
    ],
    ids=["2000-levels", "41-levels", "long-part"],
)
def test_deep_and_long_names_refused_in_one_line(name: str, match: str) -> None:
    refused(craft_zip([Crafted("ok.png"), Crafted(name)]), match)


def test_a_cp437_name_is_bounded_by_the_bytes_written_to_disk() -> None:
    """200 bytes 0xC4 without the UTF-8 flag read as 200 "─", 600 bytes in the file name."""
    refused(
        craft_zip([Crafted(b"t/" + b"\xc4" * 200 + b".png")]),
        "expected path parts of at most 255 bytes, found one of 604",
    )


def test_names_at_the_bounds_read() -> None:
    names = ["a/" * 31 + "x.png", "y" * 255, ("z" * 200 + "/") * 5 + "end"]
    assert list(read_all(craft_zip([Crafted(name) for name in names]))) == names


def test_overlapping_entry_bomb_refused_at_its_second_entry() -> None:
    data = overlapping_bomb(100, bytes(10_000))
    refused(
        data, r"refusing member '0001.png': expected its bytes .* apart from every other member's, found them overlap"
    )


def test_two_entries_of_one_local_header_refused() -> None:
    data = bytearray(craft_zip([Crafted("a.png", b"x" * 10), Crafted("b.png", b"y" * 10)]))
    struct.pack_into("<I", data, central_offset(bytes(data), 1) + 42, 0)  # b's header offset -> a's
    refused(bytes(data), "refusing member 'b.png': expected its bytes 0..45 apart .*overlapping bytes 0..45")


def test_directory_order_differing_from_file_order_reads() -> None:
    """Overlap is judged on sorted spans, not on the directory's order."""
    data = zip_of({f"{index}.png": bytes([index]) * (index * 40) for index in range(1, 6)})
    directory = find_central_directory(BytesReadAt(data), WHERE)
    entries = []
    position = directory.offset
    for _ in range(directory.count):
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        length = 46 + name_length + extra_length + comment_length
        entries.append(data[position : position + length])
        position += length
    shuffled = b"".join(entries[index] for index in (3, 0, 4, 2, 1))
    reordered = data[: directory.offset] + shuffled + data[position:]
    assert read_all(reordered) == read_all(data)


# byte patching helpers ------------------------------------------------------------------------


def central_offset(data: bytes, index: int) -> int:
    position = find_central_directory(BytesReadAt(data), WHERE).offset
    for _ in range(index):
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        position += 46 + name_length + extra_length + comment_length
    return position


def patch_central(data: bytes, index: int, *, size: int | None = None, compressed_size: int | None = None) -> bytes:
    patched = bytearray(data)
    position = central_offset(data, index)
    if compressed_size is not None:
        struct.pack_into("<I", patched, position + 20, compressed_size)
    if size is not None:
        struct.pack_into("<I", patched, position + 24, size)
    return bytes(patched)


def patch_eocd_count(data: bytes, count: int) -> bytes:
    patched = bytearray(data)
    struct.pack_into("<HH", patched, len(data) - 22 + 8, count, count)
    return bytes(patched)
