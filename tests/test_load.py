"""mnist_pipeline.load: the arrays a repository built, equal to the npz, memory-mapped, with the
class names; one clear line when nothing is built; no framework imported. And the README's
loader blocks, run against a built export so the docs stay true."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mnist_pipeline
from mnist_pipeline import export_csv, export_npz, export_parquet, export_png, report, unpack
from mnist_pipeline.errors import DatasetError
from mnist_pipeline.loader import NotBuiltError
from tests.support.data import TinyDataset, params_for, write_decoded_dir, write_params
from tests.support.repos import PROJECT_ROOT

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def build_repo(root: Path, tiny: TinyDataset, name: str = "mnist", formats: tuple[str, ...] = ("npz",)) -> Path:
    """A repository root with params.yaml and data/<name>/ as the pipeline leaves it: decoded/,
    stats.json, checksums.json, the chosen exports and the report, each written by its stage."""
    params = params_for(tiny, ["unused"], name=name)
    params["datasets"][name]["classes"] = FASHION
    params["export"]["workers"] = 1
    params["export"]["formats"] = {fmt: {} for fmt in formats}
    params["export"]["parquet"]["pixels"] = True
    common = ["--params", str(write_params(root, params)), "--dataset", name]
    data = root / "data" / name
    decoded = write_decoded_dir(data / "decoded", tiny)
    stages = {"npz": export_npz, "csv": export_csv, "png": export_png, "parquet": export_parquet}
    for fmt in formats:
        assert stages[fmt].main([*common, str(decoded), str(data / "export" / fmt)]) == 0
    if "png" in formats:  # and its tree, as -S 'trees=[png]' selects it
        zip_path = data / "export" / "png" / "images.zip"
        assert unpack.main([*common, str(zip_path), str(data / "export" / "images")]) == 0
    stats = {
        split: {"count": len(labels), "class_counts": {str(c): int((labels == c).sum()) for c in range(10)}}
        for split, (_, labels) in tiny.arrays.items()
    }
    records = [
        {"file": spec["file"], "passed": "archive", "actual": {"size": spec["size"], "sha256": spec["sha256"]}}
        for split in tiny.splits_spec.values()
        for spec in (split["images"], split["labels"])
    ]
    (data / "stats.json").write_text(json.dumps(stats))
    (data / "checksums.json").write_text(json.dumps({"archives": records}))
    inputs = [str(decoded), str(data / "stats.json"), str(data / "checksums.json"), str(data / "export")]
    assert report.main([*common, *inputs]) == 0
    return root


def test_load_returns_the_npz_arrays_memory_mapped(tmp_path: Path, tiny: TinyDataset) -> None:
    root = build_repo(tmp_path, tiny, "fashion_mnist")
    with np.load(root / "data" / "fashion_mnist" / "export" / "npz" / "fashion_mnist.npz") as npz:
        for split in ("train", "test"):
            loaded = mnist_pipeline.load("fashion_mnist", split=split, root=root)
            assert isinstance(loaded.images, np.memmap) and isinstance(loaded.labels, np.memmap)
            assert loaded.images.dtype == np.uint8 and loaded.labels.dtype == np.uint8
            np.testing.assert_array_equal(loaded.images, npz[f"x_{split}"])
            np.testing.assert_array_equal(loaded.labels, npz[f"y_{split}"])
            assert loaded.classes == FASHION and loaded.label_table is None
            images, labels = loaded
            assert images is loaded.images and labels is loaded.labels


def test_class_names_come_from_the_report_when_params_select_another_dataset(tmp_path: Path, tiny: TinyDataset) -> None:
    root = build_repo(tmp_path, tiny, "fashion_mnist")
    (root / "params.yaml").write_text("datasets:\n  mnist:\n    classes: ['0']\n")
    assert mnist_pipeline.load("fashion_mnist", root=root).classes == FASHION


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ("train", "data/kmnist/decoded: not built; run `dvc exp run -S dataset=kmnist` (or `dvc pull`) in "),
        ("val", "val_images.npy: not found; the built splits of 'mnist' are ['test', 'train']"),
    ],
)
def test_not_built_is_one_line_naming_the_command(tmp_path: Path, tiny: TinyDataset, split: str, message: str) -> None:
    root = build_repo(tmp_path, tiny)
    with pytest.raises(NotBuiltError) as caught:
        mnist_pipeline.load("kmnist" if "kmnist" in message else "mnist", split=split, root=root)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_misspelt_dataset_is_one_line_naming_the_known_ones(tmp_path: Path, tiny: TinyDataset) -> None:
    root = build_repo(tmp_path, tiny)
    (root / "conf" / "dataset").mkdir(parents=True)
    for name in ("mnist", "kmnist"):
        (root / "conf" / "dataset" / f"{name}.yaml").write_text("# facts\n")
    expected = f"'mnst': expected a dataset of {root}/conf/dataset, found none so named; known: kmnist, mnist"
    with pytest.raises(NotBuiltError, match=f"^{re.escape(expected)}$"):
        mnist_pipeline.load("mnst", root=root)


def test_load_finds_the_repository_from_a_subfolder(
    tmp_path: Path, tiny: TinyDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = build_repo(tmp_path, tiny)
    (root / ".dvc").mkdir()
    (root / "notebooks" / "week1").mkdir(parents=True)
    monkeypatch.chdir(root / "notebooks" / "week1")
    images, labels = mnist_pipeline.load("mnist", split="test")
    np.testing.assert_array_equal(images, tiny.arrays["test"][0])
    np.testing.assert_array_equal(labels, tiny.arrays["test"][1])


def test_a_forged_npy_is_refused(tmp_path: Path, tiny: TinyDataset) -> None:
    root = build_repo(tmp_path, tiny)
    np.save(root / "data" / "mnist" / "decoded" / "test_labels.npy", np.zeros(3, dtype=np.int64))
    with pytest.raises(DatasetError, match=r"test_labels\.npy: expected 1-d uint8, found 1-d int64"):
        mnist_pipeline.load("mnist", split="test", root=root)


def test_importing_the_package_and_load_imports_no_framework() -> None:
    code = (
        "import sys, mnist_pipeline; mnist_pipeline.load; "
        "heavy = {'torch', 'tensorflow', 'jax', 'keras', 'datasets', 'pandas', 'pyarrow', 'hydra', 'dvc'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert result.stdout.strip() == "[]"


def readme_python_blocks() -> list[str]:
    """The python blocks of README's "Loading the outputs" section."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Loading the outputs\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def first_import(block: str) -> str:
    match = re.search(r"^(?:from|import) (\w+)", block, flags=re.MULTILINE)
    assert match, block
    return match.group(1)


def readme_block_params() -> list[Any]:
    """The blocks as test parameters; Spark's is slow (its JVM takes seconds to start)."""
    marks = {"pyspark": [pytest.mark.slow]}
    return [pytest.param(block, marks=marks.get(first_import(block), [])) for block in readme_python_blocks()]


@pytest.mark.parametrize("block", readme_block_params(), ids=first_import)
def test_readme_loader_blocks_run_on_a_built_export(
    tmp_path: Path, tiny: TinyDataset, block: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = first_import(block)
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed here: the README block that uses it is not run")
    root = build_repo(tmp_path, tiny, formats=("npz", "csv", "png", "parquet"))
    if module == "pyspark":
        # In a process of its own, as a user runs it: Spark's JVM resolves relative paths against
        # the folder it started in, and one an earlier test of this process started is elsewhere.
        code = f"import json\n{block}\nprint(json.dumps([row['label'] for row in train.collect()]))\nspark.stop()\n"
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False, timeout=300
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout.splitlines()[-1]) == tiny.arrays["train"][1].tolist()
        return
    monkeypatch.chdir(root)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # the README's own code, on files we built
    images, labels = tiny.arrays["train"]
    if "train" in namespace and module == "pandas":
        frame = namespace["train"]
        assert {str(dtype) for dtype in frame.dtypes} == {"uint8"}
        np.testing.assert_array_equal(frame.iloc[:, 1:].to_numpy().reshape(-1, 28, 28), images)
    if module == "numpy":
        np.testing.assert_array_equal(namespace["x_train"], images)
    if module == "mnist_pipeline":
        np.testing.assert_array_equal(namespace["images"], images)
        assert namespace["classes"] == FASHION
    if module == "datasets":  # the exports in dataset order; the tree in file-name order
        if "mnist_tree" in namespace:
            undecoded = importlib.import_module("datasets").Image(decode=False)  # the block imported it
            train = namespace["mnist_tree"]["train"]
            paths = [image["path"] for image in train.cast_column("image", undecoded)["image"]]
            assert train["label"] == [labels[int(Path(path).stem)] for path in paths]
        elif "mnist_csv" in namespace:
            train = namespace["mnist_csv"]["train"].with_format("numpy")
            np.testing.assert_array_equal(train["label"], labels)
            np.testing.assert_array_equal(train["pixel300"], images.reshape(len(images), -1)[:, 300])
        else:
            assert namespace["mnist"]["train"]["label"] == labels.tolist()
    if module == "torchvision":
        assert [label for _, label in namespace["train"].samples] == [
            labels[int(Path(path).stem)] for path, _ in namespace["train"].samples
        ]
    if module == "polars":
        assert namespace["train"]["label"].to_list() == labels.tolist()
    if module == "duckdb":
        assert sum(count for _, count in namespace["counts"]) == len(labels)
