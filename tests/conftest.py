"""Shared fixtures: a tiny but valid MNIST-shaped dataset, params built around it, a loopback
mirror, and throwaway git+DVC repositories made from this project's own files."""

from __future__ import annotations

import copy
import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipeline.idx import encode_idx
from tests.faultserver import FaultServer, serve
from tests.repos import PROJECT_ROOT, run

SHARED_MIRROR = PROJECT_ROOT.parent / "shared" / "mirror" / "mnist"
FILE_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class TinyDataset:
    """Real IDX/gzip archives of a few random 28x28 digits: every stage runs on them for real."""

    archives: dict[str, bytes]
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]
    splits_spec: dict[str, Any]


def gzip_bytes(payload: bytes) -> bytes:
    return gzip.compress(payload, mtime=0)


def archive_spec(name: str, archive: bytes, payload: bytes) -> dict[str, Any]:
    return {
        "file": name,
        "size": len(archive),
        "md5": hashlib.md5(archive).hexdigest(),
        "sha256": hashlib.sha256(archive).hexdigest(),
        "payload_size": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }


def make_tiny_dataset(sizes: dict[str, int], seed: int = 7) -> TinyDataset:
    rng = np.random.default_rng(seed)
    archives: dict[str, bytes] = {}
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    spec: dict[str, Any] = {}
    for split, count in sizes.items():
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        images[:, :4, :] = 0  # a blank border, as real digits have
        labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
        arrays[split] = (images, labels)
        spec[split] = {}
        for kind, array in (("images", images), ("labels", labels)):
            payload = encode_idx(array)
            name = FILE_NAMES[(split, kind)]
            archives[name] = gzip_bytes(payload)
            spec[split][kind] = archive_spec(name, archives[name], payload)
    return TinyDataset(archives=archives, arrays=arrays, splits_spec=spec)


@pytest.fixture(scope="session")
def tiny() -> TinyDataset:
    return make_tiny_dataset({"train": 60, "test": 20})


def committed_params() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    return loaded


def params_for(tiny: TinyDataset, mirrors: list[str], **sections: dict[str, Any]) -> dict[str, Any]:
    """The committed params with the tiny dataset, the given mirrors and quick download limits."""
    params = copy.deepcopy(committed_params())
    params["dataset"]["splits"] = copy.deepcopy(tiny.splits_spec)
    params["dataset"]["mirrors"] = mirrors
    params["download"].update(timeout=1.0, retries=1, backoff=0.05)
    for path, values in sections.items():
        node = params
        for part in path.split("."):
            node = node[part]
        node.update(values)
    return params


def write_params(directory: Path, params: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def mirror(tiny: TinyDataset) -> Iterator[FaultServer]:
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        yield server


def add_tiny_dataset_config(repo: Path, tiny: TinyDataset, name: str = "tiny") -> None:
    """conf/dataset/<name>.yaml describing the tiny archives, committed, selectable by -S dataset=<name>."""
    dataset = copy.deepcopy(committed_params()["dataset"])
    dataset.update(name=name, title="Tiny MNIST-shaped fixture", splits=tiny.splits_spec, mirrors=["unused"])
    (repo / "conf" / "dataset" / f"{name}.yaml").write_text(yaml.safe_dump(dataset, sort_keys=False))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", f"dataset {name}")


def sha256_tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``root`` (DVC's own .gitignore files excluded)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".gitignore"
    }
