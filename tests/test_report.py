"""report stage: the card, the charts and the plot data, from inputs it checks before writing
anything (the card against the Hugging Face libraries: tests/test_hf.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mnist_pipeline import report
from tests.support.data import TinyDataset, params_for, write_decoded_dir, write_params


def stats_of(tiny: TinyDataset) -> dict[str, Any]:
    result = {}
    for split, (_, labels) in tiny.arrays.items():
        counts = {str(c): int((labels == c).sum()) for c in range(10)}
        result[split] = {"count": len(labels), "class_counts": counts}
    return result


def checksums_of(tiny: TinyDataset) -> dict[str, Any]:
    records = [
        {"file": spec["file"], "passed": "archive", "actual": {"size": spec["size"], "sha256": spec["sha256"]}}
        for split in tiny.splits_spec.values()
        for spec in (split["images"], split["labels"])
    ]
    return {"archives": records}


def run_report(
    tmp_path: Path,
    tiny: TinyDataset,
    stats: Any,
    checksums: Any,
    classes: list[str] | None = None,
    trees: dict[str, Any] | None = None,
) -> int:
    params = params_for(tiny, ["unused"])
    if trees is not None:
        params["export"]["trees"] = trees
    if classes:
        params["datasets"]["mnist"]["classes"] = classes
    data = tmp_path / "data"
    data.mkdir()
    (data / "stats.json").write_text(json.dumps(stats))
    (data / "checksums.json").write_text(checksums if isinstance(checksums, str) else json.dumps(checksums))
    argv = ["--params", str(write_params(tmp_path, params)), "--dataset", "mnist"]
    argv += [str(write_decoded_dir(data / "decoded", tiny)), str(data / "stats.json")]
    argv += [str(data / "checksums.json"), str(data / "export")]
    return report.main(argv)


def test_card_charts_and_plot_data(tmp_path: Path, tiny: TinyDataset) -> None:
    classes = ["zero", "one, with a comma", 'two "quoted"', "3/three", "4", "5", "6", "7", "8", "9"]
    assert run_report(tmp_path, tiny, stats_of(tiny), checksums_of(tiny), classes) == 0
    export = tmp_path / "data" / "export"
    rows = list(csv.DictReader((export / "class_distribution.csv").open()))
    assert rows[2] == {
        "class": "one, with a comma",
        "split": "train",
        "count": rows[2]["count"],
        "bar": "one, with a comma (train)",
    }
    assert [row["split"] for row in rows[:2]] == ["train", "test"]  # train and test side by side
    card = (export / "README.md").read_text()
    # Hugging Face metadata is the Parquet export's own card (parquet/README.md, tests/test_hf.py):
    # this page claims no features.
    assert not card.startswith("---") and "License: CC BY-SA 3.0 (Hub id `cc-by-sa-3.0`)" in card
    assert "one, with a comma" in card and "## How this differs from the published files" in card
    for image in ("samples.png", "class_distribution.png"):
        assert (export / image).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("trees", [{}, {"png": {}}])
def test_the_card_names_the_png_tree_when_it_is_selected(tmp_path: Path, tiny: TinyDataset, trees: Any) -> None:
    assert run_report(tmp_path, tiny, stats_of(tiny), checksums_of(tiny), trees=trees) == 0
    card = (tmp_path / "data" / "export" / "README.md").read_text()
    assert ("`images/` is the PNG tree, `png/images.zip` unpacked: `images/manifest.csv`" in card) == bool(trees)


FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.mark.parametrize(
    "name",
    ["T-shirt/top", "Ankle boot", "a very long class name that needs more than one line to show in full", "W" * 64],
)
def test_class_names_wrap_and_are_never_cut(name: str) -> None:
    font = report._font()
    lines = report.wrapped(name, font, report.MAX_NAME_WIDTH)
    assert "".join(lines).replace(" ", "") == name.replace(" ", "")
    assert all(font.getlength(line) <= report.MAX_NAME_WIDTH for line in lines)
    if font.getlength(name) <= report.MAX_NAME_WIDTH:
        assert lines == [name]


def dark_rows(image: Image.Image, left: int, right: int) -> list[int]:
    pixels = np.asarray(image)[:, left:right]
    return [int(y) for y in np.flatnonzero((pixels < 128).any(axis=1))]


def test_pictures_show_full_names_one_row_per_class_and_a_caption(tmp_path: Path, tiny: TinyDataset) -> None:
    classes = [*FASHION[:9], "a class name long enough to wrap onto a second line"]
    assert run_report(tmp_path, tiny, stats_of(tiny), checksums_of(tiny), classes) == 0
    font = report._font()
    width, names = report.name_column(classes, font)
    assert width >= font.getlength("T-shirt/top") + 2 * report.MARGIN
    assert names[0] == ["T-shirt/top"] and names[9][0].startswith("a class name") and len(names[9]) > 1
    samples = Image.open(tmp_path / "data" / "export" / "samples.png")
    per_class = 10
    caption = 2 * report.LINE_HEIGHT + 2 * report.MARGIN
    assert samples.height == caption + 9 * 28 * report.ZOOM + max(
        28 * report.ZOOM, len(names[9]) * report.LINE_HEIGHT + 2
    )
    assert samples.width >= width + per_class * 28 * report.ZOOM
    assert dark_rows(samples, 0, samples.width)[0] < caption  # the caption is drawn
    chart = Image.open(tmp_path / "data" / "export" / "class_distribution.png")
    assert chart.width >= width + report.CHART_WIDTH


@pytest.mark.parametrize(
    ("stats", "checksums", "message"),
    [
        (None, None, "stats.json: expected statistics of the splits ['train', 'test'], found NoneType"),
        ({"train": {"count": 1}}, None, "stats.json: expected statistics of the splits"),
        ("missing-counts", None, "split 'train': expected count and class_counts for 10 classes"),
        ("ok", "not json {", "checksums.json: not valid JSON"),
        ("ok", {"archives": [{"file": "x"}]}, "checksums.json: expected records of"),
        ("ok", "no-actual", "expected actual.size, actual.sha256 (64 hex digits) and passed"),
        ("ok", "forged-sha256", "record of train-images-idx3-ubyte.gz: expected actual.size, actual.sha256 (64 hex"),
    ],
)
def test_bad_inputs_fail_in_one_line_before_any_output(
    tmp_path: Path, tiny: TinyDataset, stats: Any, checksums: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good_stats, good_checksums = stats_of(tiny), checksums_of(tiny)
    if stats == "ok":
        stats = good_stats
    elif stats == "missing-counts":
        stats = {split: {"count": values["count"]} for split, values in good_stats.items()}
    if checksums is None:
        checksums = good_checksums
    elif checksums == "forged-sha256":  # a markdown table row smuggled into a digest
        checksums = json.loads(json.dumps(good_checksums))
        checksums["archives"][0]["actual"]["sha256"] = "0` | x |\n| forged | row | `0"
    elif checksums == "no-actual":
        checksums = {"archives": [{k: v for k, v in r.items() if k != "actual"} for r in good_checksums["archives"]]}
    assert run_report(tmp_path, tiny, stats, checksums) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("report@mnist: error: ") and message in line
    assert not (tmp_path / "data" / "export").exists()
