"""Python stand-ins for the C floors, used only where they cannot be compiled (no gcc or no
zlib headers): the same work, with Python's overhead, so a weaker floor.

Usage: ``python benchmarks/floor_fallback.py encode PACK IDX_IMAGES [...]`` (one
``zlib.compressobj`` per image: Python has no deflateReset) or
``python benchmarks/floor_fallback.py tree ZIP OUT_DIR`` (``os.open``/``write``/``close`` per member).
"""

from __future__ import annotations

import os
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode(pack: Path, idx_paths: list[Path]) -> int:
    count = 0
    with pack.open("wb") as out:
        for path in idx_paths:
            _magic, images, rows, cols = struct.unpack(">4I", path.read_bytes()[:16])
            pixels = np.fromfile(path, dtype=np.uint8, offset=16).reshape(images, rows, cols)
            scanlines = np.zeros((images, rows, cols + 1), dtype=np.uint8)
            scanlines[:, :, 1:] = pixels
            header = chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0))
            for image in scanlines:
                png = PNG_SIGNATURE + header + chunk(b"IDAT", zlib.compress(image.tobytes())) + chunk(b"IEND", b"")
                zlib.crc32(png)
                out.write(struct.pack("<I", len(png)) + png)
                count += 1
    print(f"{count} images (Python zlib {zlib.ZLIB_RUNTIME_VERSION})")
    return 0


def tree(zip_path: Path, out_dir: Path) -> int:
    made = set()
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            target = os.path.join(out_dir, info.filename)  # noqa: PTH118 - plain strings keep the floor low
            parent = os.path.dirname(target)  # noqa: PTH120
            if parent not in made:
                os.makedirs(parent, exist_ok=True)  # noqa: PTH103
                made.add(parent)
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(descriptor, archive.read(info))
            os.close(descriptor)
    print(f"{len(archive.infolist())} files")
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "encode":
        return encode(Path(argv[1]), [Path(arg) for arg in argv[2:]])
    return tree(Path(argv[1]), Path(argv[2]))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
