"""export_png@<dataset> stage: every image as an 8-bit grayscale PNG, packed in one reproducible
zip, ``images.zip`` (the unpack stage turns it into the browsable tree; DVC caches and pushes
only the zip: README "PNG tree").

Members, split by split in dataset order: ``<split>/<class folder>/<index>.png`` (layout
imagefolder) or ``<split>/<label>_<index>.png`` (layout flat), where ``<index>`` is the position
in the original split zero-padded to the digits of the largest split, and the class folder is
the label zero-padded to the digits of the largest label, so that torchvision's ImageFolder
(which sorts folder names as strings) gives each folder its label as class index. Last member:
``manifest.csv`` with ``path,split,index,label,class`` (class: the dataset's class name).

Members are stored (PNG is already compressed), dated 1980-01-01, mode 0644, written by
``ziparchive.StoredZipWriter`` (memory stays flat at any member count). PNGs are encoded by
``export.workers`` threads, each handed a file and a row range.
"""

from __future__ import annotations

import csv
import functools
import io
import tempfile
from pathlib import Path
from typing import BinaryIO

from mnist_pipeline.config import DatasetSpec, Params, PngOptions
from mnist_pipeline.decoded import DecodedSplit
from mnist_pipeline.exports import Write, run_export
from mnist_pipeline.names import MANIFEST_COLUMNS, MANIFEST_NAME, TREE_DIR
from mnist_pipeline.pngpool import class_folder_names, encoded_ranges, index_width, member_name, png_workers
from mnist_pipeline.treemark import remove_if_stale
from mnist_pipeline.ziparchive import StoredZipWriter

ZIP_NAME = "images.zip"


def write_png_zip(
    out: BinaryIO, scratch_dir: Path, splits: list[DecodedSplit], options: PngOptions, classes: list[str], workers: int
) -> int:
    """Write every image and then the manifest to ``out``; the number of PNGs. Temporary files
    (directory entries, manifest rows) live unnamed in ``scratch_dir``."""
    folders = class_folder_names(len(classes))
    width = index_width(splits)
    count = 0
    with (
        tempfile.TemporaryFile(dir=scratch_dir) as directory,
        tempfile.TemporaryFile(dir=scratch_dir) as manifest_file,
        png_workers(workers) as pool,
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


def export_png(
    options: PngOptions, dataset: DatasetSpec, splits: list[DecodedSplit], out_dir: Path, *, workers: int = 1
) -> str:
    with (out_dir / ZIP_NAME).open("wb") as out:
        count = write_png_zip(out, out_dir, splits, options, dataset.classes, workers)
    return f"{ZIP_NAME}: {count:,} PNGs and {MANIFEST_NAME}"


def prepare(params: Params, dataset_name: str) -> Write:
    return functools.partial(
        export_png, params.dataset(dataset_name).export.png, params.dataset(dataset_name), workers=params.export.workers
    )


def drop_stale_tree(output: Path) -> str:
    """The PNG tree beside the export (``export/images``) removed when it came from another zip:
    nothing else would refresh it once the trees group no longer selects it."""
    tree_dir = output.parent / TREE_DIR
    if not remove_if_stale(tree_dir, output / ZIP_NAME):
        return ""
    return f"; removed {tree_dir}, unpacked from the previous zip (-S 'trees=[png]' unpacks this one)"


def main(argv: list[str] | None = None) -> int:
    return run_export("png", prepare, argv, __doc__ or "", after=drop_stale_tree)


if __name__ == "__main__":
    raise SystemExit(main())
