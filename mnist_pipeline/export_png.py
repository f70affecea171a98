"""export_png@<dataset> stage: every image as an 8-bit grayscale PNG, packed in one reproducible
zip, ``images.zip`` (the unpack stage turns it into the browsable tree; DVC caches and pushes
only the zip: README "PNG tree").

Members, split by split in dataset order: ``<split>/<class folder>/<index>.png`` (layout
imagefolder) or ``<split>/<label>_<index>.png`` (layout flat), where ``<index>`` is the position
in the original split zero-padded to the digits of the largest split, and the class folder is
the label zero-padded to the digits of the largest label, so that torchvision's ImageFolder
(which sorts folder names as strings) gives each folder its label as class index. With layout
flat, each split's PNGs are followed by ``<split>/metadata.csv`` (``file_name,label``), which
Hugging Face's image-folder loader reads the labels from. Last member: ``manifest.csv`` with
``path,split,index,label,class`` for every PNG (class: the dataset's class name).

Members are stored (PNG is already compressed), dated 1980-01-01, mode 0644, written by
``zipwriter.StoredZipWriter`` (memory stays flat at any member count). PNGs are encoded by
``export.workers`` threads, each handed a file and a row range.
"""

from __future__ import annotations

import csv
import functools
import io
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import BinaryIO

from mnist_pipeline.config import DatasetSpec, Params
from mnist_pipeline.decoded import DecodedSplit
from mnist_pipeline.exports import Write, run_export
from mnist_pipeline.names import (
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    SPLIT_METADATA_COLUMNS,
    SPLIT_METADATA_NAME,
    TREE_DIR,
)
from mnist_pipeline.png_options import PNG, PngLayout, PngOptions
from mnist_pipeline.pngpool import class_folder_names, encoded_ranges, index_width, member_name, png_workers
from mnist_pipeline.treemark import remove_if_stale
from mnist_pipeline.zipwriter import StoredZipWriter

ZIP_NAME = "images.zip"


def write_png_zip(
    out: BinaryIO, scratch_dir: Path, splits: list[DecodedSplit], options: PngOptions, classes: list[str], workers: int
) -> int:
    """Write every image, each split's metadata (layout flat) and then the manifest to ``out``;
    the number of PNGs. Temporary files (directory entries, CSV rows) live unnamed in ``scratch_dir``."""
    folders = class_folder_names(len(classes))
    width = index_width(splits)
    count = 0
    with (
        tempfile.TemporaryFile(dir=scratch_dir) as directory,
        csv_member(scratch_dir, MANIFEST_COLUMNS) as manifest,
        png_workers(workers) as pool,
    ):
        archive = StoredZipWriter(out, directory)
        # Only the flat layout has labels no folder gives: with class folders, the loader would
        # take a metadata file's labels instead of the folders' class names.
        flat = options.layout is PngLayout.flat
        for split in splits:
            with csv_member(scratch_dir, SPLIT_METADATA_COLUMNS) if flat else nullcontext() as metadata:
                for start, stop, pngs in encoded_ranges(split.images, pool, options.invert):
                    labels = split.labels.read(start, stop).tolist()
                    for index, label, png in zip(range(start, stop), labels, pngs, strict=True):
                        name = member_name(split.name, label, index, width, folders, flat=flat)
                        archive.add(name, png)
                        manifest.rows.writerow((name, split.name, index, label, classes[label]))
                        if metadata is not None:
                            metadata.rows.writerow((name.rpartition("/")[2], label))
                    count += stop - start
                if metadata is not None:
                    metadata.add_to(archive, f"{split.name}/{SPLIT_METADATA_NAME}")
        manifest.add_to(archive, MANIFEST_NAME)
        archive.close()
    return count


class CsvMember:
    """A zip member of CSV rows (UTF-8, ``\\n`` line ends, the header first), gathered in a
    scratch file and then added whole: memory stays flat at any row count."""

    def __init__(self, file: BinaryIO, header: Sequence[str]) -> None:
        self._file = file
        self._text = io.TextIOWrapper(file, encoding="utf-8", newline="")
        self.rows = csv.writer(self._text, lineterminator="\n")
        self.rows.writerow(header)

    def add_to(self, archive: StoredZipWriter, name: str) -> None:
        self._text.flush()
        archive.add_file(name, self._file)

    def release(self) -> None:
        """Leave the file to whoever opened it (the wrapper would close it when collected)."""
        self._text.detach()


@contextmanager
def csv_member(scratch_dir: Path, header: Sequence[str]) -> Iterator[CsvMember]:
    """A ``CsvMember`` whose rows live in an unnamed file in ``scratch_dir``."""
    with tempfile.TemporaryFile(dir=scratch_dir) as file:
        member = CsvMember(file, header)
        try:
            yield member
        finally:
            member.release()


def export_png(
    options: PngOptions, dataset: DatasetSpec, splits: list[DecodedSplit], out_dir: Path, *, workers: int = 1
) -> str:
    with (out_dir / ZIP_NAME).open("wb") as out:
        count = write_png_zip(out, out_dir, splits, options, dataset.classes, workers)
    metadata = f", each split's {SPLIT_METADATA_NAME}" if options.layout is PngLayout.flat else ""
    return f"{ZIP_NAME}: {count:,} PNGs{metadata} and {MANIFEST_NAME}"


def prepare(options: PngOptions, params: Params, dataset_name: str) -> Write:
    return functools.partial(export_png, options, params.dataset(dataset_name), workers=params.export.workers)


def drop_stale_tree(output: Path) -> str:
    """The PNG tree beside the export (``export/images``) removed when it came from another zip:
    nothing else would refresh it once the trees group no longer selects it."""
    tree_dir = output.parent / TREE_DIR
    if not remove_if_stale(tree_dir, output / ZIP_NAME):
        return ""
    return f"; removed {tree_dir}, unpacked from the previous zip (-S 'trees=[png]' unpacks this one)"


def main(argv: list[str] | None = None) -> int:
    return run_export(PNG, prepare, argv, __doc__ or "", after=drop_stale_tree)


if __name__ == "__main__":
    raise SystemExit(main())
