"""report stage: what a person looks at first, under ``data/<dataset>/export/``.

- ``samples.png``: the first images of every class, one row per class with its full name,
  under a caption saying what is shown (colours inverted for reading on white),
- ``class_distribution.png``: images per class, one bar per split side by side (static, so it
  shows offline), and ``class_distribution.csv`` (``class,split,count,bar``; a DVC plot),
- ``README.md``: where the data came from (source, license, citation, the verified source files),
  how it differs from the published files and from other loaders, the classes with their counts,
  the exports with their checksum files, and the PNG tree when the trees group selects it. Every
  value from config or checksums.json is escaped for Markdown (mnist_pipeline.cardtext). The Hugging
  Face card, with the features of the written Parquet files, is the parquet export's own
  ``parquet/README.md``.

Inputs are validated first and every output is rendered in memory before the first is written,
so a bad input leaves the previous report whole.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnist_pipeline.cardtext import md, source_lines
from mnist_pipeline.config import DatasetSpec
from mnist_pipeline.decoded import DecodedSplit, ExportSplit, open_decoded
from mnist_pipeline.fsio import atomic_outputs
from mnist_pipeline.names import CLASS_DISTRIBUTION_CSV, MANIFEST_NAME
from mnist_pipeline.records import ArchiveRecord, SplitStats, read_checksums, read_stats
from mnist_pipeline.stage import params_file, run_stage, stage_parser

ZOOM = 2
BAR_HEIGHT = 8
CHART_WIDTH = 420
SPLIT_SHADES = (40, 150, 210)
FONT_SIZE = 11
LINE_HEIGHT = 13
MARGIN = 4
#: Class names wider than this wrap onto further lines (never cut): names are at most 64 characters.
MAX_NAME_WIDTH = 150
PARQUET_FORMAT = "parquet"


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def wrapped(name: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """``name`` on as many lines as it needs to fit ``width`` pixels: broken at spaces where it
    can, inside a word where it must; every character is kept."""
    lines = [""]
    for word in name.split(" "):
        candidate = f"{lines[-1]} {word}" if lines[-1] else word
        if font.getlength(candidate) <= width:
            lines[-1] = candidate
            continue
        lines.append("")
        for char in word:
            if lines[-1] and font.getlength(lines[-1] + char) > width:
                lines.append("")
            lines[-1] += char
    return [line for line in lines if line] or [name]


def name_column(classes: list[str], font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> tuple[int, list[list[str]]]:
    """Width of the class-name column and each name's lines."""
    widest = max(font.getlength(name) for name in classes)
    width = int(min(widest, MAX_NAME_WIDTH)) + 2 * MARGIN
    return width, [wrapped(name, font, width - 2 * MARGIN) for name in classes]


def _caption(draw: ImageDraw.ImageDraw, lines: list[str], font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> None:
    for index, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + index * LINE_HEIGHT), line, fill=0, font=font)


def sample_grid(split: DecodedSplit, classes: list[str], per_class: int, title: str) -> Image.Image:
    """One row per class: its full name, then the first ``per_class`` images of that class,
    under a caption saying what is shown."""
    font = _font()
    rows, cols = split.image_shape
    label_width, names = name_column(classes, font)
    row_heights = [max(rows * ZOOM, len(lines) * LINE_HEIGHT + 2) for lines in names]
    caption = [
        f"{title}: the first {per_class} '{split.name}' images of each class, one row per class.",
        "Colours inverted for reading: the data stores ink as 255 on a 0 background.",
    ]
    caption_height = len(caption) * LINE_HEIGHT + 2 * MARGIN
    tops = np.cumsum([caption_height, *row_heights]).tolist()
    width = max(label_width + per_class * cols * ZOOM, max(int(font.getlength(line)) for line in caption) + 2 * MARGIN)
    grid = Image.new("L", (width, tops[-1]), color=255)
    draw = ImageDraw.Draw(grid)
    _caption(draw, caption, font)
    placed = np.zeros(len(classes), dtype=np.int64)
    for batch in ExportSplit(split.name, split).batches():
        for image, label in zip(batch.images, batch.labels.tolist(), strict=True):
            if placed[label] >= per_class:
                continue
            tile = Image.fromarray(np.invert(image)).resize((cols * ZOOM, rows * ZOOM), Image.Resampling.NEAREST)
            grid.paste(tile, (label_width + int(placed[label]) * cols * ZOOM, tops[label]))
            placed[label] += 1
        if placed.min() >= per_class:
            break
    for label, lines in enumerate(names):
        for index, line in enumerate(lines):
            draw.text((MARGIN, tops[label] + 1 + index * LINE_HEIGHT), line, fill=0, font=font)
        draw.line((0, tops[label + 1] - 1, width, tops[label + 1] - 1), fill=225)
    return grid


def distribution_chart(stats: dict[str, SplitStats], classes: list[str], title: str) -> Image.Image:
    """Horizontal bars: for each class (full name), one bar per split, shaded by split, with a
    caption and a legend."""
    font = _font()
    splits = list(stats)
    label_width, names = name_column(classes, font)
    groups = [max(BAR_HEIGHT * len(splits) + 4, len(lines) * LINE_HEIGHT + 2) for lines in names]
    caption = [f"{title}: images per class, one bar per split."]
    legend = LINE_HEIGHT * (len(caption) + len(splits)) + 2 * MARGIN
    tops = np.cumsum([legend, *groups]).tolist()
    image = Image.new("L", (label_width + CHART_WIDTH + 70, tops[-1] + MARGIN), color=255)
    draw = ImageDraw.Draw(image)
    _caption(draw, caption, font)
    largest = max((count for values in stats.values() for count in values.class_counts), default=1)
    for index, split in enumerate(splits):
        shade = SPLIT_SHADES[index % len(SPLIT_SHADES)]
        y = MARGIN + LINE_HEIGHT * (len(caption) + index)
        draw.rectangle((MARGIN, y + 2, MARGIN + 10, y + 12), fill=shade)
        draw.text((MARGIN + 16, y), f"{split} ({stats[split].count:,})", fill=0, font=font)
    for label, lines in enumerate(names):
        top = tops[label]
        for index, line in enumerate(lines):
            draw.text((MARGIN, top + 1 + index * LINE_HEIGHT), line, fill=0, font=font)
        for index, split in enumerate(splits):
            count = stats[split].class_counts[label]
            width = round(CHART_WIDTH * count / max(largest, 1))
            y = top + 2 + index * BAR_HEIGHT
            shade = SPLIT_SHADES[index % len(SPLIT_SHADES)]
            draw.rectangle((label_width, y, label_width + width, y + BAR_HEIGHT - 2), fill=shade)
            draw.text((label_width + width + 4, y - 3), str(count), fill=0, font=ImageFont.load_default(size=8))
    return image


def class_distribution_csv(stats: dict[str, SplitStats], classes: list[str]) -> str:
    """``class,split,count,bar`` rows (``bar`` labels one bar per class and split for DVC's
    plot), quoted by the csv module: class names may hold commas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", "split", "count", "bar"])
    for index, name in enumerate(classes):
        writer.writerows(
            [name, split, values.class_counts[index], f"{name} ({split})"] for split, values in stats.items()
        )
    return buffer.getvalue()


def export_readme(
    dataset: DatasetSpec,
    exports: tuple[list[str], list[str]],
    stats: dict[str, SplitStats],
    checksums: list[ArchiveRecord],
) -> str:
    """What the export folder holds and where it came from. (The Hugging Face card with the
    Parquet files' features is the parquet export's own: ``parquet/README.md``.) ``exports``:
    the selected formats and trees."""
    formats, trees = exports
    lines = [
        *source_lines(dataset),
        "## Classes",
        "",
        "| label | class | " + " | ".join(md(split) for split in stats) + " |",
        "|---|---|" + "---|" * len(stats),
    ]
    for index, class_name in enumerate(dataset.classes):
        counts = " | ".join(f"{values.class_counts[index]:,}" for values in stats.values())
        lines.append(f"| {index} | {md(class_name)} | {counts} |")
    lines.append("| | **all** | " + " | ".join(f"**{values.count:,}**" for values in stats.values()) + " |")
    lines += ["", "## Source files (verified)", "", "| file | bytes | sha256 | check passed |", "|---|---|---|---|"]
    for record in checksums:
        actual = record.actual
        lines.append(f"| {md(record.file)} | {actual.size:,} | `{actual.sha256}` | {record.passed} |")
    lines += ["", "## Exports", "", "| format | folder | checksums |", "|---|---|---|"]
    lines += [f"| {md(fmt)} | `{fmt}/` | `{fmt}.sha256` (`sha256sum -c {fmt}.sha256`) |" for fmt in formats]
    if "png" in trees:
        # Each split named: from folder names alone, the loader merges test10k and test50k into
        # one "test" split and calls nist "train".
        data_files = ", ".join(f'"{split}": "images/{split}/**"' for split in dataset.splits)
        lines += [
            "",
            f"`images/` is the PNG tree, `png/images.zip` unpacked: `images/{MANIFEST_NAME}` lists every PNG's "
            f'path, split, index and label, and `datasets.load_dataset("imagefolder", data_files={{{data_files}}})` '
            "(from this folder) reads the images with their labels.",
        ]
    if PARQUET_FORMAT in formats:
        # "./parquet", not "parquet": a bare name is the library's own Parquet builder, which
        # would read every file below the working directory, the CSVs included.
        lines += ["", '`datasets.load_dataset("./parquet")` (from this folder) reads the Parquet export with its card.']
    else:
        lines += ["", "With the parquet format selected, `parquet/` is a Hugging Face dataset with its own card."]
    lines += ["", "DVC records the md5 of every export file in `dvc.lock` of the repository that built it.", ""]
    return "\n".join(lines)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def report(
    dataset: DatasetSpec,
    exported: tuple[list[str], list[str]],
    per_class: int,
    decoded_dir: Path,
    stats_path: Path,
    checksums_path: Path,
    export_dir: Path,
) -> str:
    """Write the report files into ``export_dir``: ``exported``, the selected formats and trees
    the card names; ``per_class``, the samples per class in the grid."""
    splits = open_decoded(decoded_dir, dataset)
    stats = read_stats(stats_path, dataset)
    checksums = read_checksums(checksums_path, dataset)
    outputs = {
        "samples.png": _png(sample_grid(splits[0], dataset.classes, per_class, dataset.title)),
        "class_distribution.png": _png(distribution_chart(stats, dataset.classes, dataset.title)),
        CLASS_DISTRIBUTION_CSV: class_distribution_csv(stats, dataset.classes).encode(),
        "README.md": export_readme(dataset, exported, stats, checksums).encode(),
    }
    # Replaced together: a card never describes other charts than those beside it.
    with atomic_outputs(*(export_dir / file_name for file_name in outputs)) as staged:
        for path, data in zip(staged, outputs.values(), strict=True):
            path.write_bytes(data)
    return f"{', '.join(outputs)} -> {export_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("decoded", type=Path, help="decoded/ folder written by the decode stage")
    parser.add_argument("stats", type=Path, help="stats.json written by the decode stage")
    parser.add_argument("checksums", type=Path, help="checksums.json written by the verify stage")
    parser.add_argument("export_dir", type=Path, help="the export folder: the report files are written here")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        f"report@{args.dataset}",
        lambda params: report(
            params.dataset(args.dataset),
            (list(params.export.formats), list(params.export.trees)),
            params.report.samples_per_class,
            args.decoded,
            args.stats,
            args.checksums,
            args.export_dir,
        ),
        params_file(args),
        writes=[args.export_dir],
    )


if __name__ == "__main__":
    raise SystemExit(main())
