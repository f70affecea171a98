"""The mark of a PNG tree ``mnist_pipeline.tree`` unpacked: the contract between the unpack
stage, which writes it, and the PNG export, which removes a tree left from an earlier zip.

Kept apart from tree.py so that the export imports only this contract: an edit of how trees
are unpacked re-runs the unpack stages, not every PNG export (each stage tracks the digest of
its module's imports).
"""

from __future__ import annotations

from pathlib import Path

from mnist_pipeline.fsio import remove_dir, sha256_of

#: Written into every tree: the proof that a folder is one unpack may replace.
MARKER = ".mnist-pipeline-tree"
MARKER_HEADER = "# mnist-pipeline unpack wrote this folder from a zip and replaces it whole on the next unpack.\n"
#: The marker's second line: this label, then the sha256 of the zip the tree came from.
ZIP_SHA256_LABEL = "zip sha256 "


def is_our_tree(folder: Path) -> bool:
    """True when ``folder`` holds the marker unpack writes (a regular file, not a link)."""
    marker = folder / MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    with marker.open("rb") as stream:
        return stream.read(len(MARKER_HEADER)) == MARKER_HEADER.encode()


def remove_if_stale(tree_dir: Path, zip_path: Path) -> bool:
    """Remove the tree at ``tree_dir`` when unpack wrote it from another zip than ``zip_path``;
    whether it did. The PNG export calls it on writing a new zip: DVC tracks a tree only while
    the trees group selects it, and a reader of a tree no longer selected would otherwise get
    images the exports no longer hold (after ``-S export.png.invert=true``). A selected tree is
    unpacked again by the same ``dvc repro``; after ``dvc repro -s export_png@<d>`` alone,
    ``dvc status`` names the unpack stage. The zip is hashed only when a tree of ours is there."""
    if tree_dir.is_symlink() or not is_our_tree(tree_dir):
        return False
    marked = (tree_dir / MARKER).read_text(encoding="utf-8", errors="replace").splitlines()[1:2]
    if marked == [f"{ZIP_SHA256_LABEL}{sha256_of(zip_path)}"]:
        return False
    remove_dir(tree_dir)
    return True
