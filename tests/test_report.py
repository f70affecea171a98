"""report stage: the card, the charts and the plot data, from inputs it checks before writing
anything; and the mnist-pipeline command's one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mnist_pipeline import cli, report
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


def run_report(tmp_path: Path, tiny: TinyDataset, stats: Any, checksums: Any, classes: list[str] | None = None) -> int:
    params = params_for(tiny, ["unused"])
    if classes:
        params["datasets"]["mnist"]["classes"] = classes
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    (tmp_path / "checksums.json").write_text(checksums if isinstance(checksums, str) else json.dumps(checksums))
    argv = ["--params", str(write_params(tmp_path, params)), "--dataset", "mnist"]
    argv += [str(write_decoded_dir(tmp_path / "decoded", tiny)), str(tmp_path / "stats.json")]
    argv += [str(tmp_path / "checksums.json"), str(tmp_path / "export")]
    return report.main(argv)


def test_card_charts_and_plot_data(tmp_path: Path, tiny: TinyDataset) -> None:
    classes = ["zero", "one, with a comma", 'two "quoted"', "3/three", "4", "5", "6", "7", "8", "9"]
    assert run_report(tmp_path, tiny, stats_of(tiny), checksums_of(tiny), classes) == 0
    export = tmp_path / "export"
    rows = list(csv.DictReader((export / "class_distribution.csv").open()))
    assert rows[2] == {
        "class": "one, with a comma",
        "split": "train",
        "count": rows[2]["count"],
        "bar": "one, with a comma (train)",
    }
    assert [row["split"] for row in rows[:2]] == ["train", "test"]  # train and test side by side
    card = (export / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert list(front["dataset_info"]["features"][1]["dtype"]["class_label"]["names"].values()) == classes
    assert [s["num_examples"] for s in front["dataset_info"]["splits"]] == [60, 20]
    for image in ("samples.png", "class_distribution.png"):
        assert (export / image).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("stats", "checksums", "message"),
    [
        (None, None, "stats.json: expected statistics of the splits ['train', 'test'], found NoneType"),
        ({"train": {"count": 1}}, None, "stats.json: expected statistics of the splits"),
        ("missing-counts", None, "split 'train': expected count and class_counts for 10 classes"),
        ("ok", "not json {", "checksums.json: not valid JSON"),
        ("ok", {"archives": [{"file": "x"}]}, "checksums.json: expected records of"),
        ("ok", "no-actual", "expected actual.size, actual.sha256 and passed"),
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
    elif checksums == "no-actual":
        checksums = {"archives": [{k: v for k, v in r.items() if k != "actual"} for r in good_checksums["archives"]]}
    assert run_report(tmp_path, tiny, stats, checksums) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("report@mnist: error: ") and message in line
    assert not (tmp_path / "export").exists()


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["unpack", str(tmp_path / "absent.zip"), str(tmp_path / "tree")]) == 1
    assert capsys.readouterr().err.strip().startswith("mnist-pipeline: error: ")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    assert cli.main(["unpack", str(tmp_path / "absent.zip"), str(precious)]) == 1
    assert "holds no manifest.csv of an earlier unpack; refusing to replace it" in capsys.readouterr().err
    assert (precious / "keep.txt").read_text() == "mine"
    assert cli.main(["init", "--dir", "../elsewhere"]) == 1
    assert "--dir: expected a folder inside this repository" in capsys.readouterr().err
