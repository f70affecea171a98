"""report stage: what a person looks at first, under ``data/<dataset>/export/``.

- ``samples.png``: a labelled grid of the first images of every class,
- ``class_distribution.png``: images per class, one bar per split side by side (static, so it
  shows offline), and ``class_distribution.csv`` (``class,split,count``; a DVC plot),
- ``README.md``: the dataset card, with the YAML front matter Hugging Face reads (features
  with ClassLabel names, splits with sizes, license, citation, parquet data files).

Inputs are validated first and every output is rendered in memory before the first is written,
so a bad input leaves the previous report whole.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw

from mnist_pipeline.config import DatasetSpec, Params
from mnist_pipeline.decoded import DecodedSplit, ExportSplit, open_decoded
from mnist_pipeline.errors import DatasetError
from mnist_pipeline.fsio import write_bytes_atomic
from mnist_pipeline.stage import run_stage, stage_parser

ZOOM = 2
LABEL_WIDTH = 40
BAR_HEIGHT = 8
CHART_WIDTH = 420
SPLIT_SHADES = (40, 150, 210)


def sample_grid(split: DecodedSplit, classes: list[str], per_class: int) -> Image.Image:
    """One row per class: its name, then the first ``per_class`` images of that class."""
    rows, cols = split.image_shape
    grid = Image.new("L", (LABEL_WIDTH + per_class * cols * ZOOM, len(classes) * rows * ZOOM), color=255)
    draw = ImageDraw.Draw(grid)
    placed = np.zeros(len(classes), dtype=np.int64)
    for batch in ExportSplit(split.name, split).batches():
        for image, label in zip(batch.images, batch.labels.tolist(), strict=True):
            if placed[label] >= per_class:
                continue
            tile = Image.fromarray(np.invert(image)).resize((cols * ZOOM, rows * ZOOM), Image.Resampling.NEAREST)
            grid.paste(tile, (LABEL_WIDTH + int(placed[label]) * cols * ZOOM, label * rows * ZOOM))
            placed[label] += 1
        if placed.min() >= per_class:
            break
    for label, name in enumerate(classes):
        draw.text((4, label * rows * ZOOM + rows * ZOOM // 2 - 6), name[:6], fill=0)
    return grid


def distribution_chart(stats: dict[str, dict[str, Any]], classes: list[str]) -> Image.Image:
    """Horizontal bars: for each class, one bar per split, shaded by split, with a legend."""
    splits = list(stats)
    group = BAR_HEIGHT * len(splits) + 4
    legend = 14 * len(splits) + 6
    image = Image.new("L", (LABEL_WIDTH + CHART_WIDTH + 60, legend + group * len(classes)), color=255)
    draw = ImageDraw.Draw(image)
    largest = max((count for values in stats.values() for count in values["class_counts"].values()), default=1)
    for index, split in enumerate(splits):
        shade = SPLIT_SHADES[index % len(SPLIT_SHADES)]
        draw.rectangle((4, 4 + 14 * index, 14, 14 + 14 * index), fill=shade)
        draw.text((20, 3 + 14 * index), f"{split} ({stats[split]['count']:,})", fill=0)
    for label, name in enumerate(classes):
        top = legend + label * group
        draw.text((4, top + group // 2 - 6), name[:6], fill=0)
        for index, split in enumerate(splits):
            count = stats[split]["class_counts"][str(label)]
            width = round(CHART_WIDTH * count / max(largest, 1))
            y = top + index * BAR_HEIGHT
            draw.rectangle((LABEL_WIDTH, y, LABEL_WIDTH + width, y + BAR_HEIGHT - 2), fill=SPLIT_SHADES[index % 3])
            draw.text((LABEL_WIDTH + width + 4, y - 2), str(count), fill=0)
    return image


def class_distribution_csv(stats: dict[str, dict[str, Any]], classes: list[str]) -> str:
    """``class,split,count,bar`` rows (``bar`` labels one bar per class and split for DVC's
    plot), quoted by the csv module: class names may hold commas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", "split", "count", "bar"])
    for index, name in enumerate(classes):
        writer.writerows(
            [name, split, values["class_counts"][str(index)], f"{name} ({split})"] for split, values in stats.items()
        )
    return buffer.getvalue()


def card_front_matter(name: str, dataset: DatasetSpec, stats: dict[str, dict[str, Any]], formats: list[str]) -> str:
    """The YAML header of a Hugging Face dataset card (``datasets.load_dataset`` reads it)."""
    features = [
        {"name": "image", "dtype": "image"},
        {"name": "label", "dtype": {"class_label": {"names": {str(i): c for i, c in enumerate(dataset.classes)}}}},
    ]
    info: dict[str, Any] = {
        "pretty_name": dataset.title,
        "license": dataset.license,
        "dataset_info": {
            "features": features,
            "splits": [{"name": split, "num_examples": values["count"]} for split, values in stats.items()],
        },
    }
    if "parquet" in formats:
        info["configs"] = [
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"parquet/{split}.parquet"} for split in stats],
            }
        ]
    return "---\n" + yaml.safe_dump(info, sort_keys=False, allow_unicode=True) + "---\n"


def dataset_card(name: str, params: Params, stats: dict[str, dict[str, Any]], checksums: list[dict[str, Any]]) -> str:
    ds = params.dataset(name)
    formats = list(params.export_for(name).formats)
    lines = [
        card_front_matter(name, ds, stats, formats),
        f"# {ds.title}",
        "",
        f"Source: {ds.homepage}  ",
        f"License: {ds.license}",
        "",
        "## Citation",
        "",
        ds.citation,
        "",
        "## Classes",
        "",
        "| label | class | " + " | ".join(stats) + " |",
        "|---|---|" + "---|" * len(stats),
    ]
    for index, class_name in enumerate(ds.classes):
        counts = " | ".join(f"{values['class_counts'][str(index)]:,}" for values in stats.values())
        lines.append(f"| {index} | {_cell(class_name)} | {counts} |")
    lines.append("| | **all** | " + " | ".join(f"**{values['count']:,}**" for values in stats.values()) + " |")
    if ds.labels.offset:
        lines += ["", f"Labels are the stored labels minus {ds.labels.offset}, so that they count from 0."]
    lines += ["", "## Source files (verified)", "", "| file | bytes | sha256 | check passed |", "|---|---|---|---|"]
    for record in checksums:
        actual = record["actual"]
        lines.append(f"| {record['file']} | {actual['size']:,} | `{actual['sha256']}` | {record['passed']} |")
    lines += ["", "## Exports", "", "| format | folder | checksums |", "|---|---|---|"]
    lines += [f"| {fmt} | `{fmt}/` | `{fmt}.sha256` (`sha256sum -c {fmt}.sha256`) |" for fmt in formats]
    lines += ["", "DVC records the md5 of every export file in `dvc.lock` of the repository that built it.", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def read_stats(path: Path, dataset: DatasetSpec) -> dict[str, dict[str, Any]]:
    """stats.json as the decode stage writes it, checked against the dataset config."""
    stats = _read_json(path)
    found = list(stats)[:5] if isinstance(stats, dict) else type(stats).__name__
    if not isinstance(stats, dict) or list(stats) != list(dataset.splits):
        raise DatasetError(f"{path}: expected statistics of the splits {list(dataset.splits)}, found {found}")
    for split, values in stats.items():
        counts = values.get("class_counts") if isinstance(values, dict) else None
        keys = [str(i) for i in range(len(dataset.classes))]
        if (
            not isinstance(counts, dict)
            or list(counts) != keys
            or not all(isinstance(v, int) and v >= 0 for v in counts.values())
            or values.get("count") != sum(counts.values())
        ):
            raise DatasetError(f"{path}: split {split!r}: expected count and class_counts for {len(keys)} classes")
    return stats


def read_checksums(path: Path, name: str, dataset: DatasetSpec) -> list[dict[str, Any]]:
    """The records of checksums.json, checked: one per published file, every field present."""
    document = _read_json(path)
    records = document.get("archives") if isinstance(document, dict) else None
    files = [spec.file for spec in dataset.files()]
    if not isinstance(records, list) or [r.get("file") if isinstance(r, dict) else None for r in records] != files:
        raise DatasetError(f"{path}: expected records of {files}, found {type(records).__name__}")
    for record in records:
        actual = record.get("actual")
        if (
            not isinstance(actual, dict)
            or not isinstance(actual.get("size"), int)
            or not isinstance(actual.get("sha256"), str)
            or record.get("passed") not in ("archive", "payload")
        ):
            raise DatasetError(f"{path}: record of {record['file']}: expected actual.size, actual.sha256 and passed")
    return records


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from exc


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def report(
    params: Params, name: str, decoded_dir: Path, stats_path: Path, checksums_path: Path, export_dir: Path
) -> str:
    dataset = params.dataset(name)
    splits = open_decoded(decoded_dir, dataset)
    stats = read_stats(stats_path, dataset)
    checksums = read_checksums(checksums_path, name, dataset)
    outputs = {
        "samples.png": _png(sample_grid(splits[0], dataset.classes, params.report.samples_per_class)),
        "class_distribution.png": _png(distribution_chart(stats, dataset.classes)),
        "class_distribution.csv": class_distribution_csv(stats, dataset.classes).encode(),
        "README.md": dataset_card(name, params, stats, checksums).encode(),
    }
    for file_name, data in outputs.items():
        write_bytes_atomic(export_dir / file_name, data)
    return f"{', '.join(outputs)} -> {export_dir}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("decoded", type=Path)
    parser.add_argument("stats", type=Path)
    parser.add_argument("checksums", type=Path)
    parser.add_argument("export_dir", type=Path)
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        f"report@{args.dataset}",
        lambda params: report(params, args.dataset, args.decoded, args.stats, args.checksums, args.export_dir),
        args.params,
    )


if __name__ == "__main__":
    raise SystemExit(main())
