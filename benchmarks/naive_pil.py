"""The naive way to a PNG tree: one process, a Pillow ``save`` per image.

Usage: ``python benchmarks/naive_pil.py OUT_DIR SPLIT IDX_IMAGES IDX_LABELS [SPLIT IDX_IMAGES IDX_LABELS ...]``
(uncompressed IDX files). Writes ``OUT_DIR/<split>/<label>/<index>.png``, index zero-padded to
the width of the largest split's last index, as the PNG export names its members.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES_HEADER, LABELS_HEADER = 16, 8


def main(argv: list[str]) -> int:
    out_dir, rest = Path(argv[0]), argv[1:]
    splits = [(rest[i], Path(rest[i + 1]), Path(rest[i + 2])) for i in range(0, len(rest), 3)]
    loaded = []
    for split, images_path, labels_path in splits:
        labels = np.fromfile(labels_path, dtype=np.uint8, offset=LABELS_HEADER)
        images = np.fromfile(images_path, dtype=np.uint8, offset=IMAGES_HEADER).reshape(len(labels), 28, 28)
        loaded.append((split, images, labels))
    width = len(str(max(len(labels) for _, _, labels in loaded) - 1))
    for split, images, labels in loaded:
        for index, (image, label) in enumerate(zip(images, labels.tolist(), strict=True)):
            folder = out_dir / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index:0{width}d}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
