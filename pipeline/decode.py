"""decode stage: IDX files -> ``decoded.npz`` (lossless uint8 arrays) and ``stats.json``.

The reader is strict (see ``pipeline.idx``); on top of the format this checks what the dataset
config promises: image shape, matching image and label counts, labels within the class range.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import Params
from pipeline.decoded import Labels, SplitArrays, pixel_moments, write_decoded
from pipeline.errors import DatasetError
from pipeline.extract import idx_name
from pipeline.fsio import write_bytes_atomic
from pipeline.idx import read_idx
from pipeline.stage import run_stage, stage_parser


def decode_split(images_path: Path, labels_path: Path, image_shape: tuple[int, int], num_classes: int) -> SplitArrays:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != image_shape:
        raise DatasetError(
            f"{images_path}: expected uint8 images of shape (n, {image_shape[0]}, {image_shape[1]}), "
            f"found {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected uint8 labels of shape (n,), found {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{labels_path}: expected {len(images)} labels (one per image), found {len(labels)}")
    labels_u8: Labels = labels.astype(np.uint8)
    if len(labels_u8) and int(labels_u8.max()) >= num_classes:
        bad = int(np.argmax(labels_u8 >= num_classes))
        raise DatasetError(
            f"{labels_path}: expected labels 0..{num_classes - 1}, found {int(labels_u8[bad])} at index {bad}"
        )
    return SplitArrays(images=images.astype(np.uint8), labels=labels_u8)


def split_stats(split: SplitArrays, num_classes: int) -> dict[str, Any]:
    mean, std = pixel_moments(split.images)
    return {
        "count": len(split),
        "class_counts": {str(c): int(n) for c, n in enumerate(np.bincount(split.labels, minlength=num_classes))},
        "pixel_mean": round(mean, 4),
        "pixel_std": round(std, 4),
        "pixel_mean_unit": round(mean / 255, 6),
        "pixel_std_unit": round(std / 255, 6),
    }


def decode(params: Params, idx_dir: Path, decoded_path: Path, stats_path: Path) -> str:
    dataset = params.dataset
    rows, cols = dataset.image_shape
    splits = {
        name: decode_split(
            idx_dir / idx_name(spec.images.file),
            idx_dir / idx_name(spec.labels.file),
            (rows, cols),
            len(dataset.classes),
        )
        for name, spec in dataset.splits.items()
    }
    stats = {name: split_stats(split, len(dataset.classes)) for name, split in splits.items()}
    write_decoded(decoded_path, splits)
    write_bytes_atomic(stats_path, (json.dumps(stats, indent=2) + "\n").encode())
    counts = ", ".join(f"{name} {len(split):,}" for name, split in splits.items())
    return f"decoded {counts} -> {decoded_path}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("idx_dir", type=Path)
    parser.add_argument("decoded", type=Path, help="decoded.npz to write")
    parser.add_argument("stats", type=Path, help="stats.json (DVC metrics) to write")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage("decode", lambda params: decode(params, args.idx_dir, args.decoded, args.stats), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
