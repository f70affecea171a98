"""``mnist_pipeline.load``: the arrays a repository's pipeline built, for people who now want
to train on them.

``load("fashion_mnist", split="train")`` returns the split's images ``(n, rows, cols)`` uint8
and labels ``(n,)`` uint8 (counting from 0), memory-mapped from the decoded ``.npy`` files
(``data/<dataset>/decoded/``: lossless, upright, the data every export is made from, so equal
to the default npz's ``x_<split>``, ``y_<split>``), and the class names. Only numpy (and
PyYAML, for params.yaml) is imported: no framework, nothing of the pipeline's stages.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from mnist_pipeline.errors import DatasetError
from mnist_pipeline.names import (
    CLASS_DISTRIBUTION_CSV,
    CONF_DIR,
    DATA_DIR,
    DECODED_DIR,
    images_path,
    labels_path,
    table_path,
)

#: Where a repository keeps its datasets' facts (conf/dataset/<name>.yaml).
CONF_DATASETS = Path(CONF_DIR, "dataset")


class NotBuiltError(DatasetError):
    """The repository holds no built data for the dataset or split asked for."""


@dataclass(frozen=True)
class LoadedSplit:
    """One split: ``images`` (n, rows, cols) uint8, ``labels`` (n,) uint8, ``classes[label]``
    is a label's name; ``label_table`` (n, columns) int32 for datasets whose labels are a
    table (QMNIST), else None. Arrays are read-only memory maps."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]
    classes: list[str]
    label_table: npt.NDArray[np.int32] | None = None

    def __iter__(self) -> Any:
        """``images, labels = load(...)`` works as Keras' ``load_data`` pairs do."""
        return iter((self.images, self.labels))


def load(dataset: str, split: str = "train", root: str | Path | None = None) -> LoadedSplit:
    """The split ``split`` of ``dataset`` as the pipeline in the repository at ``root`` built it
    (by default the repository the working directory is in: a notebook in a subfolder too).

    Raises NotBuiltError, naming the ``dvc`` command to run, when it has not been built.
    """
    root = repository_root(Path.cwd()) if root is None else Path(root)
    data_dir = root / DATA_DIR / dataset
    decoded = data_dir / DECODED_DIR
    images_file, labels_file = images_path(decoded, split), labels_path(decoded, split)
    if not images_file.is_file() or not labels_file.is_file():
        suffix = images_path(Path(), "").name
        built = sorted(path.name.removesuffix(suffix) for path in decoded.glob(f"*{suffix}"))
        if built:
            raise NotBuiltError(f"{images_file}: not found; the built splits of {dataset!r} are {built}")
        known = sorted(path.stem for path in (root / CONF_DATASETS).glob("*.yaml"))
        if known and dataset not in known:
            # A misspelt name: the command below would fail too, inside Hydra.
            raise NotBuiltError(
                f"{dataset!r}: expected a dataset of {root / CONF_DATASETS}, found none so named; "
                f"known: {', '.join(known)}"
            )
        raise NotBuiltError(
            f"{decoded}: not built; run `dvc exp run -S dataset={dataset}` (or `dvc pull`) in {root.resolve()} "
            "(an export brought in with `dvc import` loads without the pipeline: np.load, pd.read_csv, ...)"
        )
    images = _open(images_file, np.dtype(np.uint8), 3)
    labels = _open(labels_file, np.dtype(np.uint8), 1)
    table_file = table_path(decoded, split)
    table = _open(table_file, np.dtype(np.int32), 2) if table_file.is_file() else None
    for array, path in ((labels, labels_file), (table, table_file)):
        if array is not None and len(array) != len(images):
            raise DatasetError(f"{path}: expected {len(images)} rows (one per image), found {len(array)}")
    return LoadedSplit(images=images, labels=labels, classes=class_names(root, dataset), label_table=table)


def _open(path: Path, dtype: np.dtype[Any], ndim: int) -> Any:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DatasetError(f"{path}: not a .npy file the pipeline wrote: {exc}") from exc
    if array.dtype != dtype or array.ndim != ndim:
        raise DatasetError(f"{path}: expected {ndim}-d {dtype}, found {array.ndim}-d {array.dtype}")
    return array


def repository_root(folder: Path) -> Path:
    """The nearest folder from ``folder`` up that holds DVC's ``.dvc/``; ``folder`` without one."""
    return next((candidate for candidate in (folder, *folder.parents) if (candidate / ".dvc").is_dir()), folder)


def class_names(root: Path, dataset: str) -> list[str]:
    """The dataset's class names: from params.yaml when it selects the dataset, else from the
    report's class table (a dataset built under an earlier selection)."""
    params = root / "params.yaml"
    if params.is_file():
        loaded = yaml.safe_load(params.read_text(encoding="utf-8"))
        classes = loaded.get("datasets", {}).get(dataset, {}).get("classes") if isinstance(loaded, dict) else None
        if isinstance(classes, list) and all(isinstance(name, str) for name in classes):
            return classes
    table = root / DATA_DIR / dataset / "export" / CLASS_DISTRIBUTION_CSV
    if table.is_file():
        with table.open(newline="", encoding="utf-8") as rows:
            return list(dict.fromkeys(row["class"] for row in csv.DictReader(rows)))
    raise NotBuiltError(f"{table}: not found and {params} does not select {dataset!r}; run `dvc repro`")
