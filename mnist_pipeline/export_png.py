"""export@<dataset>-png stage: every image as an 8-bit grayscale PNG, packed in one reproducible
zip, ``images.zip`` (the unpack stage turns it into the browsable tree; DVC caches and pushes
only the zip: README "PNG tree").

Members, split by split in dataset order: ``<split>/<class folder>/<index>.png`` (layout
imagefolder) or ``<split>/<label>_<index>.png`` (layout flat), where ``<index>`` is the position
in the original split zero-padded to the digits of the largest split, and the class folder is
the label zero-padded to the digits of the largest label, so that torchvision's ImageFolder
(which sorts folder names as strings) gives each folder its label as class index. Last member:
``manifest.csv`` with ``path,split,index,label,class`` (class: the dataset's class name).

Members are stored (PNG is already compressed), dated 1980-01-01, mode 0644. The zip is written
by ``StoredZipWriter`` rather than ``zipfile``: zipfile keeps an object per member until the end
(~300 MB for EMNIST's 814,255 images); here the central directory goes to a temporary file as
members are added, so memory stays flat. PNGs are encoded by ``export.workers`` processes, each
handed a file and a row range.
"""

from __future__ import annotations

import csv
import io
import struct
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from mnist_pipeline.config import Params
from mnist_pipeline.decoded import DecodedSplit
from mnist_pipeline.errors import ArchiveError
from mnist_pipeline.exports import class_folder_names, encoded_ranges, index_width, member_name, png_workers, run_export

ZIP_NAME = "images.zip"
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("path", "split", "index", "label", "class")

# The zip records, as zipfile writes them (APPNOTE 4.3.7, 4.3.12, 4.3.14-4.3.16), so that the
# archive is byte-identical to zipfile's for the same members on a POSIX system.
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_OFFSET_EXTRA = struct.Struct("<HHQ")
#: zipfile's thresholds: beyond them an offset or a count moves to a zip64 record.
ZIP64_LIMIT = (1 << 31) - 1
ZIP_COUNT_LIMIT = (1 << 16) - 1
_VERSION = 20
_ZIP64_VERSION = 45
_UNIX = 3
_UTF8_FLAG = 0x800
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
        raw_name, flags = _encode_name(name)
        self._out.write(
            _LOCAL.pack(
                b"PK\x03\x04", _VERSION, 0, flags, 0, _DOS_TIME_MIDNIGHT, _DOS_DATE_1980_01_01,
                crc, size, size, len(raw_name), 0,
            )
        )  # fmt: skip
        self._out.write(raw_name)
        for chunk in chunks:
            self._out.write(chunk)
        extra, version, offset = b"", _VERSION, self._offset
        if offset > ZIP64_LIMIT:
            extra, version, offset = _ZIP64_OFFSET_EXTRA.pack(1, 8, offset), _ZIP64_VERSION, 0xFFFFFFFF
        self._directory.write(
            _CENTRAL.pack(
                b"PK\x01\x02", version, _UNIX, version, 0, flags, 0, _DOS_TIME_MIDNIGHT, _DOS_DATE_1980_01_01,
                crc, size, size, len(raw_name), len(extra), 0, 0, 0, FILE_MODE << 16, offset,
            )
        )  # fmt: skip
        self._directory.write(raw_name + extra)
        self._offset += _LOCAL.size + len(raw_name) + size
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
            self._out.write(_END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, start))
            self._out.write(_END64_LOCATOR.pack(b"PK\x06\x07", 0, end64, 1))
            count, size, start = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF)
        self._out.write(_END.pack(b"PK\x05\x06", 0, 0, count, count, size, start, 0))


def _encode_name(name: str) -> tuple[bytes, int]:
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), _UTF8_FLAG


def write_png_zip(
    out: BinaryIO, scratch_dir: Path, splits: list[DecodedSplit], params: Params, dataset_name: str
) -> int:
    """Write every image and then the manifest to ``out``; the number of PNGs. Temporary files
    (directory entries, manifest rows) live unnamed in ``scratch_dir``."""
    export = params.export_for(dataset_name)
    options = export.png
    classes = params.dataset(dataset_name).classes
    folders = class_folder_names(len(classes))
    width = index_width(splits)
    count = 0
    with (
        tempfile.TemporaryFile(dir=scratch_dir) as directory,
        tempfile.TemporaryFile(dir=scratch_dir) as manifest_file,
        png_workers(export.workers) as pool,
    ):
        manifest = io.TextIOWrapper(manifest_file, encoding="utf-8", newline="")
        rows = csv.writer(manifest, lineterminator="\n")
        rows.writerow(MANIFEST_COLUMNS)
        archive = StoredZipWriter(out, directory)
        for split in splits:
            for start, stop, pngs in encoded_ranges(split.images, pool, options.invert):
                labels = split.labels.read(start, stop).tolist()
                for index, label, png in zip(range(start, stop), labels, pngs, strict=True):
                    name = member_name(split.name, label, index, width, options.layout, folders)
                    archive.add(name, png)
                    rows.writerow((name, split.name, index, label, classes[label]))
                count += stop - start
        manifest.flush()
        archive.add_file(MANIFEST_NAME, manifest_file)
        archive.close()
        manifest.detach()
    return count


def export_png(params: Params, dataset_name: str, splits: list[DecodedSplit], out_dir: Path) -> str:
    with (out_dir / ZIP_NAME).open("wb") as out:
        count = write_png_zip(out, out_dir, splits, params, dataset_name)
    return f"{ZIP_NAME}: {count:,} PNGs and {MANIFEST_NAME}"


def main(argv: list[str] | None = None) -> int:
    return run_export("png", export_png, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
