"""export@png stage: every image as an 8-bit grayscale PNG, packed in one reproducible zip.

Members: ``<split>/<label>/<index>.png`` (layout imagefolder, what torchvision's ImageFolder
loads) or ``<split>/<label>_<index>.png`` (layout flat), ``<index>`` the zero-padded position in
the original split, plus ``manifest.csv`` (path, split, index, label). The unpack stage turns
the zip into the browsable tree; DVC caches and pushes only the zip (README "PNG tree").
Members are stored, not deflated: PNG data is already compressed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.config import Params, PngLayout, PngOptions
from pipeline.decoded import SplitArrays, read_decoded
from pipeline.fsio import atomic_path
from pipeline.images import encode_pngs
from pipeline.stage import run_export

MANIFEST_NAME = "manifest.csv"
#: The earliest time a zip header can hold; a fixed stamp keeps the archive bytes reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def member_name(split: str, label: int, index: int, width: int, layout: PngLayout) -> str:
    if layout is PngLayout.flat:
        return f"{split}/{label}_{index:0{width}d}.png"
    return f"{split}/{label}/{index:0{width}d}.png"


def index_width(splits: dict[str, SplitArrays]) -> int:
    """Digits of the largest index, shared by every split so names sort the same way."""
    return len(str(max(len(split) for split in splits.values()) - 1))


def png_members(splits: dict[str, SplitArrays], options: PngOptions, workers: int) -> Iterator[tuple[str, bytes]]:
    """(name, PNG bytes) of every image, split by split in dataset order, then the manifest."""
    width = index_width(splits)
    manifest = ["path,split,index,label"]
    for split_name, split in splits.items():
        images = np.invert(split.images) if options.invert else split.images
        for index, (label, png) in enumerate(zip(split.labels.tolist(), encode_pngs(images, workers), strict=True)):
            name = member_name(split_name, label, index, width, options.layout)
            manifest.append(f"{name},{split_name},{index},{label}")
            yield name, png
    yield MANIFEST_NAME, ("\n".join(manifest) + "\n").encode("ascii")


def add_member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Add a file whose header carries no time or permission of this machine."""
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_STORED
    archive.writestr(info, data)


def export_png(params: Params, decoded_path: Path, zip_path: Path) -> str:
    splits = read_decoded(decoded_path)
    count = 0
    with atomic_path(zip_path) as temp, zipfile.ZipFile(temp, "w") as archive:
        for name, data in png_members(splits, params.export.png, params.export.workers):
            add_member(archive, name, data)
            count += 1
    return f"{count - 1:,} PNG files and {MANIFEST_NAME} -> {zip_path}"


def main(argv: list[str] | None = None) -> int:
    return run_export("png", export_png, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
