"""The classic single-process MNIST-to-PNG converter's approach, with pypng (pure Python).

Reads the uncompressed IDX files with ``struct`` and ``array``, then for every image builds
its rows as lists and calls ``png.from_array(rows, "L").save(path)``, one file per image, into
``OUT_DIR/<split>/<label>/<index>.png``. Written here from the description of that approach.

Usage: ``python benchmarks/naive_pypng.py OUT_DIR SPLIT IDX_IMAGES IDX_LABELS [...]``.
"""

from __future__ import annotations

import struct
import sys
from array import array
from pathlib import Path

import png  # type: ignore[import-untyped, import-not-found, unused-ignore]


def read_idx(images_path: Path, labels_path: Path) -> tuple[array[int], array[int], int, int]:
    with labels_path.open("rb") as stream:
        _magic, _count = struct.unpack(">II", stream.read(8))
        labels = array("B", stream.read())
    with images_path.open("rb") as stream:
        _magic, _count, rows, cols = struct.unpack(">IIII", stream.read(16))
        pixels = array("B", stream.read())
    return labels, pixels, rows, cols


def main(argv: list[str]) -> int:
    out_dir, rest = Path(argv[0]), argv[1:]
    for start in range(0, len(rest), 3):
        split, images_path, labels_path = rest[start], Path(rest[start + 1]), Path(rest[start + 2])
        labels, pixels, rows, cols = read_idx(images_path, labels_path)
        for label in set(labels):
            (out_dir / split / str(label)).mkdir(parents=True, exist_ok=True)
        size = rows * cols
        for index, label in enumerate(labels):
            offset = index * size
            image_rows = [pixels[offset + row * cols : offset + (row + 1) * cols] for row in range(rows)]
            png.from_array(image_rows, "L").save(str(out_dir / split / str(label) / f"{index}.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
