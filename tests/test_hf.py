"""The exports in Hugging Face ``datasets``, offline, built by the stage functions: the Parquet
export with its card (default, ``pixels``, ``extended_labels``, several splits, EMNIST letters'
layout) compared with the npz, the card's front matter through ``huggingface_hub``'s parser,
nothing forged in config or checksums.json reaching it as Markdown or YAML; the CSV export with
each option; the PNG tree in both layouts through the line export/README.md gives."""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mnist_pipeline import export_csv, export_npz, export_parquet, export_png, report, unpack
from mnist_pipeline.params import compose_params
from tests.support.data import TinyDataset, params_for, write_decoded_dir, write_params
from tests.support.repos import PROJECT_ROOT

datasets = pytest.importorskip("datasets", reason="datasets is not installed (make test installs the dev lock)")
huggingface_hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed")

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TABLE_COLUMNS = ["label", "writer_id", "duplicate_of"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
    datasets.utils.logging.enable_propagation()
    datasets.disable_progress_bars()
    yield


def split_arrays(tiny: TinyDataset, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The tiny arrays under ``names``: train, then the test rows cut into the other splits."""
    train, test = tiny.arrays["train"], tiny.arrays["test"]
    if names == ["train", "test"]:
        return {"train": train, "test": test}
    cuts = np.array_split(np.arange(len(test[1])), len(names) - 1)
    return {"train": train} | {name: (test[0][rows], test[1][rows]) for name, rows in zip(names[1:], cuts, strict=True)}


def label_table(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack(
        [labels.astype(np.int32), rng.integers(0, 400_000, len(labels)), rng.integers(-5, 6, len(labels))], axis=1
    ).astype(np.int32)


def build_export(
    root: Path,
    params: dict[str, Any],
    name: str,
    arrays: dict[str, tuple[np.ndarray, np.ndarray]],
    tables: bool = False,
    formats: tuple[str, ...] = ("npz", "parquet"),
) -> Path:
    """decoded/, stats.json, checksums.json, then the ``formats`` (the png one with its tree)
    and the report, each by its stage's main(), as DVC would run them: the export folder."""
    entry = params["datasets"][name]
    decoded = root / "decoded"
    decoded.mkdir(parents=True)
    stats = {}
    for index, (split, (images, labels)) in enumerate(arrays.items()):
        np.save(decoded / f"{split}_images.npy", images)
        np.save(decoded / f"{split}_labels.npy", labels)
        if tables:
            np.save(decoded / f"{split}_label_table.npy", label_table(labels, index))
        counts = {str(c): int((labels == c).sum()) for c in range(len(entry["classes"]))}
        stats[split] = {"count": len(labels), "class_counts": counts}
    files = {spec["file"]: spec for split in entry["splits"].values() for spec in (split["images"], split["labels"])}
    records = [
        {"file": file, "passed": "archive", "actual": {"size": spec["size"], "sha256": spec["sha256"]}}
        for file, spec in files.items()
    ]
    (root / "stats.json").write_text(json.dumps(stats))
    (root / "checksums.json").write_text(json.dumps({"archives": records}))
    params["export"]["workers"] = 1
    params["export"]["formats"] = {fmt: {} for fmt in formats}
    params["export"]["trees"] = {"png": {}} if "png" in formats else {}
    common = ["--params", str(write_params(root, params)), "--dataset", name]
    export = root / "export"
    stages = {"npz": export_npz, "png": export_png, "parquet": export_parquet}
    for fmt in formats:
        assert stages[fmt].main([*common, str(decoded), str(export / fmt)]) == 0
    if "png" in formats:
        assert unpack.main([*common, str(export / "png" / "images.zip"), str(export / "images")]) == 0
    inputs = [str(decoded), str(root / "stats.json"), str(root / "checksums.json"), str(export)]
    assert report.main([*common, *inputs]) == 0
    return export


def load_quietly(export: Path, caplog: pytest.LogCaptureFixture, cache: Path) -> Any:
    """load_dataset(export) offline; any warning of datasets or huggingface_hub fails the test."""
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = datasets.load_dataset(str(export), cache_dir=str(cache))
    noisy = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("datasets", "huggingface_hub")]
    assert not noisy
    return loaded


def card_front_matter(export: Path) -> dict[str, Any]:
    front: dict[str, Any] = yaml.safe_load((export / "parquet" / "README.md").read_text().split("---\n")[1])
    return front


def assert_matches_npz(loaded: Any, export: Path, name: str, classes: list[str]) -> None:
    with np.load(export / "npz" / f"{name}.npz") as npz:
        for split, dataset in loaded.items():
            images, labels = npz[f"x_{split}"], npz[f"y_{split}"]
            assert dataset.num_rows == len(labels)
            assert dataset.features["label"].names == classes
            assert dataset["label"] == labels.tolist()
            decoded = np.stack([np.asarray(image) for image in dataset["image"]])
            np.testing.assert_array_equal(decoded, images)
            if "pixels" in dataset.features:
                np.testing.assert_array_equal(
                    np.array(dataset["pixels"], dtype=np.uint8), images.reshape(len(images), -1)
                )


def assert_card_is_hub_metadata(export: Path, loaded: Any) -> None:
    """The card parses with huggingface_hub, without a warning; its features and splits are the files'."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        card = huggingface_hub.DatasetCard.load(export / "parquet" / "README.md")
    data = card.data.to_dict()
    assert data["license"] in {"cc-by-sa-3.0", "cc-by-sa-4.0", "mit", "cc0-1.0", "bsd"}
    info = data["dataset_info"]
    features = datasets.Features._from_yaml_list(info["features"])
    for split in loaded.values():
        assert features == split.features
    assert [(s["name"], s["num_examples"]) for s in info["splits"]] == [(k, v.num_rows) for k, v in loaded.items()]
    assert all(isinstance(s["num_bytes"], int) and s["num_bytes"] > 0 for s in info["splits"])


@pytest.mark.parametrize(
    "variant",
    [{}, {"pixels": True}, {"compression": "zstd", "row_group_size": 7}],
    ids=["default", "pixels", "zstd-row-groups"],
)
def test_load_dataset_reads_every_parquet_variant(
    tmp_path: Path, tiny: TinyDataset, caplog: pytest.LogCaptureFixture, variant: dict[str, Any]
) -> None:
    params = params_for(tiny, ["unused"])
    params["datasets"]["mnist"]["classes"] = FASHION
    params["export"]["parquet"].update(variant)
    export = build_export(tmp_path / "data", params, "mnist", split_arrays(tiny, ["train", "test"]))
    loaded = load_quietly(export / "parquet", caplog, tmp_path / "cache")
    assert_matches_npz(loaded, export, "mnist", FASHION)
    assert_card_is_hub_metadata(export, loaded)
    assert ("pixels" in loaded["train"].features) == bool(variant.get("pixels"))


def test_extended_labels_and_several_splits(
    tmp_path: Path, tiny: TinyDataset, caplog: pytest.LogCaptureFixture
) -> None:
    """A QMNIST-like label table, three splits (test cut in two by rows, as test10k / test50k)."""
    params = params_for(tiny, ["unused"])
    entry = params["datasets"]["mnist"]
    entry["labels"] = {"layout": "idx_table", "columns": TABLE_COLUMNS, "column": 0, "offset": 0}
    test = entry["splits"].pop("test")
    entry["splits"]["test_a"] = {**copy.deepcopy(test), "count": 10, "rows": [0, 10]}
    entry["splits"]["test_b"] = {**copy.deepcopy(test), "count": 10, "rows": [10, 20]}
    params["export"]["parquet"].update(pixels=True, extended_labels=True)
    params["export"]["npz"].update(extended_labels=True)
    arrays = split_arrays(tiny, ["train", "test_a", "test_b"])
    export = build_export(tmp_path / "data", params, "mnist", arrays, tables=True)
    loaded = load_quietly(export / "parquet", caplog, tmp_path / "cache")
    assert list(loaded) == ["train", "test_a", "test_b"]
    assert list(loaded["train"].features) == ["image", "label", "writer_id", "duplicate_of", "pixels"]
    assert loaded["train"].features["writer_id"] == datasets.Value("int32")
    assert_matches_npz(loaded, export, "mnist", [str(c) for c in range(10)])
    assert_card_is_hub_metadata(export, loaded)
    with np.load(export / "npz" / "mnist.npz") as npz:
        for split, dataset in loaded.items():
            table = npz[f"y_{split}_table"]
            assert dataset["writer_id"] == table[:, 1].tolist()
            assert dataset["duplicate_of"] == table[:, 2].tolist()
    body = (export / "README.md").read_text()
    assert "rows 0 to 9; `test_b` = rows 10 to 19" in body
    assert "`writer_id`" in body


# datasets leaves the metadata file it read open (its own ResourceWarning, raised at collection).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("split_names", [["train", "test"], ["train", "test_a", "test_b"]], ids=["two", "three"])
@pytest.mark.parametrize("layout", ["imagefolder", "flat"])
def test_the_export_readme_line_loads_the_png_tree_with_its_labels(
    tmp_path: Path,
    tiny: TinyDataset,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    layout: str,
    split_names: list[str],
) -> None:
    """The line export/README.md gives for the tree, run from that folder: every split under its
    own name (from folder names alone, test_a and test_b would merge into one "test"), labels
    from the class folders or, with layout flat, from each split's metadata.csv, every image the
    decoded one by the index in its file name."""
    params = params_for(tiny, ["unused"])
    entry = params["datasets"]["mnist"]
    entry["classes"] = FASHION
    if len(split_names) == 3:
        test = entry["splits"].pop("test")
        entry["splits"]["test_a"] = {**copy.deepcopy(test), "count": 10, "rows": [0, 10]}
        entry["splits"]["test_b"] = {**copy.deepcopy(test), "count": 10, "rows": [10, 20]}
    params["export"]["png"]["layout"] = layout
    arrays = split_arrays(tiny, split_names)
    export = build_export(tmp_path / "data", params, "mnist", arrays, formats=("png",))
    line = re.search(r"`(datasets\.load_dataset\(\"imagefolder\".*?\))`", (export / "README.md").read_text())
    assert line, "export/README.md gives no imagefolder line"
    monkeypatch.chdir(export)
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = eval(line.group(1), {"datasets": datasets})  # the card's own line, on files we built
    assert not [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("datasets", "huggingface_hub")]
    assert list(loaded) == split_names
    if split_names == ["train", "test"]:  # the README's shorter line, which names train and test by their folders
        by_folder = datasets.load_dataset("imagefolder", data_dir="images", cache_dir=str(tmp_path / "cache-dir"))
        assert {split: by_folder[split]["label"] for split in split_names} == {
            split: loaded[split]["label"] for split in split_names
        }
    for split, dataset in loaded.items():
        images, labels = arrays[split]
        assert dataset.num_rows == len(labels)
        if layout == "imagefolder":  # the folder names, which sort into label order
            assert dataset.features["label"] == datasets.ClassLabel(names=[str(c) for c in range(10)])
        else:  # metadata.csv's integers, as the README says
            assert dataset.features["label"] == datasets.Value("int64")
        paths = [image["path"] for image in dataset.cast_column("image", datasets.Image(decode=False))["image"]]
        indices = [int(Path(path).stem.rpartition("_")[2]) for path in paths]
        assert sorted(indices) == list(range(len(labels)))
        assert dataset["label"] == labels[indices].tolist()
        np.testing.assert_array_equal(np.stack([np.asarray(image) for image in dataset["image"]]), images[indices])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"header": False, "label_position": "last", "gzip": True},
        {"scale": "unit", "decimals": 3},
        {"validation_size": 10},
    ],
    ids=["default", "no-header-label-last-gzip", "unit-3-decimals", "val"],
)
def test_load_dataset_reads_the_csv_export_with_each_option(
    tmp_path: Path, tiny: TinyDataset, caplog: pytest.LogCaptureFixture, options: dict[str, Any]
) -> None:
    """The CSV export in Hugging Face's csv loader, as the README says to call it with each
    option (header=None where header=false): every split (val as Hugging Face's "validation"),
    every row in order, labels and pixels."""
    params = params_for(tiny, ["unused"])
    params["export"].update(workers=1, formats={"csv": {}})
    params["export"]["csv"].update(options)
    root = tmp_path / "data" / "mnist"
    common = ["--params", str(write_params(tmp_path, params)), "--dataset", "mnist"]
    decoded = write_decoded_dir(root / "decoded", tiny)
    assert export_csv.main([*common, str(decoded), str(root / "export" / "csv")]) == 0
    header = {} if options.get("header", True) else {"header": None}
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = datasets.load_dataset(
            "csv", data_dir=str(root / "export" / "csv"), cache_dir=str(tmp_path / "cache"), **header
        )
    assert not [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("datasets", "huggingface_hub")]
    expected = dict(tiny.arrays)
    if cut := options.get("validation_size"):  # the first rows of train, as validation_split=first carves them
        images, labels = expected["train"]
        expected = {"train": (images[cut:], labels[cut:]), "validation": (images[:cut], labels[:cut])} | {
            "test": expected["test"]
        }
    assert sorted(loaded) == sorted(expected)
    scale = 255.0 if options.get("scale") == "unit" else 1.0
    for split, (images, labels) in expected.items():
        rows = np.array([list(row.values()) for row in loaded[split]], dtype=np.float64)
        label_column = 0 if options.get("label_position", "first") == "first" else rows.shape[1] - 1
        assert rows[:, label_column].astype(np.int64).tolist() == labels.tolist()
        pixels = np.delete(rows, label_column, axis=1)
        tolerance = 0.5 * 10 ** -options.get("decimals", 4) if scale != 1.0 else 0.0
        np.testing.assert_allclose(pixels, images.reshape(len(images), -1) / scale, atol=tolerance, rtol=0)


def test_emnist_letters_layout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """26 classes named A/a..Z/z, labels 0..25 (stored 1..26), upright images: the card says how
    that differs from torchvision and TFDS."""
    composed = tmp_path / "composed.yaml"
    compose_params(composed, ["dataset=emnist_letters"], PROJECT_ROOT / "conf")
    params: dict[str, Any] = yaml.safe_load(composed.read_text())
    entry = params["datasets"]["emnist_letters"]
    rng = np.random.default_rng(3)
    arrays = {}
    for split, count in (("train", 52), ("test", 26)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 26).astype(np.uint8)
        arrays[split] = (images, labels)
        entry["splits"][split]["count"] = count
        entry["splits"][split]["images"]["payload_size"] = 16 + count * 28 * 28  # IDX header + pixels
    export = build_export(tmp_path / "data", params, "emnist_letters", arrays)
    loaded = load_quietly(export / "parquet", caplog, tmp_path / "cache")
    classes = [f"{chr(65 + i)}/{chr(97 + i)}" for i in range(26)]
    assert_matches_npz(loaded, export, "emnist_letters", classes)
    assert_card_is_hub_metadata(export, loaded)
    assert card_front_matter(export)["license"] == "cc0-1.0"
    body = (export / "README.md").read_text()
    assert "`image = stored.T`" in body and "torchvision" in body
    assert "the files number the classes 1..26" in body and '"N/A"' in body
    assert "every image of the published files is exported" in body


HOW_IT_DIFFERS = "## How this differs from the published files and from other loaders"


def headings(markdown: str) -> list[str]:
    """The headings of ``markdown`` outside code blocks (a fence closes with its own length)."""
    found, fence = [], ""
    for line in markdown.splitlines():
        if line.startswith("```") and (not fence or line == fence):
            fence = "" if fence else line
        elif not fence and line.startswith("#"):
            found.append(line)
    return found


def test_forged_values_stay_text(tmp_path: Path, tiny: TinyDataset, caplog: pytest.LogCaptureFixture) -> None:
    """A title, class name, file name and citation crafted to forge a heading, a table row, front
    matter or a code fence stay literal text (issue 17, class 5)."""
    params = params_for(tiny, ["unused"])
    entry = params["datasets"]["mnist"]
    entry["title"] = "Evil\n---\nlicense: mit\n# Injected heading"
    entry["classes"] = ["a | 9 | 9 |", "<script>x</script>", "`code`", "**bold**", "[link](http://x)", *"56789"]
    entry["citation"] = "```\n# not a heading\n```"
    forged = "x | 1 | `0000` | archive |.gz"
    entry["splits"]["train"]["labels"]["file"] = forged
    export = build_export(tmp_path / "data", params, "mnist", split_arrays(tiny, ["train", "test"]))
    card = (export / "parquet" / "README.md").read_text()
    front = card_front_matter(export)
    assert front["pretty_name"] == " ".join(entry["title"].split()) and front["license"] == "cc-by-sa-3.0"
    assert card.count("\n---\n") == 1 and card.startswith("---\n")
    common = ["# Evil --- license: mit # Injected heading", "## Citation", HOW_IT_DIFFERS]
    assert headings(card.split("---\n", 2)[2]) == [*common, "## Loading", "## Classes"]
    body = (export / "README.md").read_text()
    assert headings(body) == [*common, "## Classes", "## Source files (verified)", "## Exports"]
    for text in (card.split("---\n", 2)[2], body):  # the Markdown (the front matter is YAML data)
        rows = [line for line in text.splitlines() if line.startswith("|")]
        for row in rows:  # every row has its own columns only: escaped pipes are not separators
            assert row.replace("\\|", "").count("|") in (3, 4, 5)
        assert "<script>" not in text and "\\<script\\>" in text
        assert "````\n```\n# not a heading\n```\n````" in text
    loaded = load_quietly(export / "parquet", caplog, tmp_path / "cache")
    assert loaded["train"].features["label"].names[0] == "a | 9 | 9 |"


def test_the_export_readme_line_loads_the_parquet_export(
    tmp_path: Path, tiny: TinyDataset, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """export/README.md's own line, run from that folder, beside the other exports."""
    params = params_for(tiny, ["unused"])
    export = build_export(tmp_path / "data", params, "mnist", split_arrays(tiny, ["train", "test"]))
    (export / "csv").mkdir()  # what a bare "parquet" would also have read
    (export / "csv" / "train.csv").write_text("label,pixel0\n1,0\n")
    (line,) = re.findall(
        r"`(datasets\.load_dataset\([^`]*\))` \(from this folder\)", (export / "README.md").read_text()
    )
    monkeypatch.chdir(export)
    caplog.set_level(logging.WARNING)
    loaded = eval(line, {"datasets": datasets}, {})  # the card's own code
    assert loaded["train"]["label"] == tiny.arrays["train"][1].tolist()
