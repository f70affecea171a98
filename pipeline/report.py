"""report stage: what a person looks at first. A labelled grid of sample digits
(``samples.png``), the class distribution (``class_distribution.csv``, a DVC plot) and the
dataset card (``README.md``: source, license, citation, counts, checksums)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.config import Params
from pipeline.decoded import SplitArrays, read_decoded
from pipeline.fsio import write_bytes_atomic
from pipeline.stage import run_stage, stage_parser

ZOOM = 2
LABEL_WIDTH = 24


def sample_grid(split: SplitArrays, classes: list[str], per_class: int) -> Image.Image:
    """One row per class: its label, then the first ``per_class`` images of that class."""
    rows, cols = split.images.shape[1:]
    grid = Image.new("L", (LABEL_WIDTH + per_class * cols * ZOOM, len(classes) * rows * ZOOM), color=255)
    draw = ImageDraw.Draw(grid)
    for label, name in enumerate(classes):
        top = label * rows * ZOOM
        draw.text((4, top + rows * ZOOM // 2 - 6), name[:3], fill=0)
        for column, index in enumerate(np.flatnonzero(split.labels == label)[:per_class]):
            tile = Image.fromarray(np.invert(split.images[index])).resize(
                (cols * ZOOM, rows * ZOOM), Image.Resampling.NEAREST
            )
            grid.paste(tile, (LABEL_WIDTH + column * cols * ZOOM, top))
    return grid


def class_distribution_csv(stats: dict[str, dict[str, object]], classes: list[str]) -> str:
    lines = ["class,split,count"]
    for split, values in stats.items():
        counts = values["class_counts"]
        assert isinstance(counts, dict)
        lines += [f"{name},{split},{counts[str(index)]}" for index, name in enumerate(classes)]
    return "\n".join(lines) + "\n"


def dataset_card(params: Params, stats: dict[str, dict[str, object]], checksums: dict[str, object]) -> str:
    ds = params.dataset
    archives = checksums["archives"]
    assert isinstance(archives, list)
    lines = [
        f"# {ds.title}",
        "",
        f"Source: {ds.homepage}  ",
        f"License: {ds.license}",
        "",
        "## Citation",
        "",
        ds.citation,
        "",
        "## Counts",
        "",
        "| split | images | " + " | ".join(ds.classes) + " |",
        "|---|---|" + "---|" * len(ds.classes),
    ]
    for split, values in stats.items():
        counts = values["class_counts"]
        assert isinstance(counts, dict)
        lines.append(
            f"| {split} | {values['count']:,} | "
            + " | ".join(str(counts[str(i)]) for i in range(len(ds.classes)))
            + " |"
        )
    lines += [
        "",
        "## Source archives (verified)",
        "",
        "| file | bytes | sha256 | check passed |",
        "|---|---|---|---|",
    ]
    for record in archives:
        actual = record["actual"]
        lines.append(f"| {record['file']} | {actual['size']:,} | `{actual['sha256']}` | {record['passed']} |")
    lines += ["", "## Exports", "", "| format | path |", "|---|---|"]
    lines += [f"| {name} | `{output.out}` |" for name, output in params.export.formats.items()]
    lines += [
        "",
        "DVC records the md5 of every export file in `dvc.lock` of the repository that built it.",
        "",
    ]
    return "\n".join(lines)


def report(params: Params, decoded_path: Path, stats_path: Path, checksums_path: Path, export_dir: Path) -> str:
    splits = read_decoded(decoded_path)
    stats = json.loads(stats_path.read_text())
    checksums = json.loads(checksums_path.read_text())
    buffer = io.BytesIO()
    sample_grid(splits["train"], params.dataset.classes, params.report.samples_per_class).save(buffer, format="PNG")
    write_bytes_atomic(export_dir / "samples.png", buffer.getvalue())
    write_bytes_atomic(
        export_dir / "class_distribution.csv",
        class_distribution_csv(stats, params.dataset.classes).encode(),
    )
    write_bytes_atomic(export_dir / "README.md", dataset_card(params, stats, checksums).encode())
    return f"samples.png, class_distribution.csv, README.md -> {export_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("decoded", type=Path)
    parser.add_argument("stats", type=Path)
    parser.add_argument("checksums", type=Path)
    parser.add_argument("export_dir", type=Path)
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        "report",
        lambda params: report(params, args.decoded, args.stats, args.checksums, args.export_dir),
        args.params,
    )


if __name__ == "__main__":
    raise SystemExit(main())
