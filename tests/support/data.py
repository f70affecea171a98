"""Tiny but valid MNIST-shaped datasets and the params built around them: real IDX/gzip
archives of a few random digits, so that every stage runs on them for real."""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mnist_pipeline.idx import encode_idx
from mnist_pipeline.names import CONF_DIR
from mnist_pipeline.params import compose_params
from tests.support.repos import PROJECT_ROOT, run

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
    """The FileSpec of a generated archive, with every digest (as MNIST's config has)."""
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
        spec[split]["count"] = count
    return TinyDataset(archives=archives, arrays=arrays, splits_spec=spec)


@functools.cache
def _composed_defaults() -> str:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "params.yaml"
        compose_params(out, [], PROJECT_ROOT / CONF_DIR)
        return out.read_text()


def default_params() -> dict[str, Any]:
    """params.yaml as conf/ composes it with no override: what the tests build on, whatever this
    checkout's params.yaml holds (`dvc exp run` rewrites it; an applied experiment's may even be
    committed). That the committed file equals it is tests/test_config.py's own test."""
    loaded: dict[str, Any] = yaml.safe_load(_composed_defaults())
    return loaded


def dataset_entry(splits: dict[str, Any], mirrors: list[str], **facts: Any) -> dict[str, Any]:
    """A ``datasets.<name>`` entry: MNIST's facts with the given splits, mirrors and ``facts``."""
    entry: dict[str, Any] = copy.deepcopy(default_params()["datasets"]["mnist"])
    entry.update(title="Tiny MNIST-shaped fixture", splits=copy.deepcopy(splits), mirrors=list(mirrors))
    entry.update(copy.deepcopy(facts))  # nothing shared between entries: YAML would write an alias
    return entry


def tiny_dataset_entry(tiny: TinyDataset, mirrors: list[str], **facts: Any) -> dict[str, Any]:
    """A ``datasets.<name>`` entry for the tiny archives: MNIST's facts, the tiny splits."""
    return dataset_entry(tiny.splits_spec, mirrors, **facts)


def params_for(
    tiny: TinyDataset, mirrors: list[str], name: str = "mnist", **sections: dict[str, Any]
) -> dict[str, Any]:
    """The default params with the tiny dataset (as ``datasets.<name>``), the given mirrors,
    quick download limits, and ``sections`` ("export.csv" -> values) updated."""
    return params_with({name: tiny_dataset_entry(tiny, mirrors)}, **sections)


def params_with(datasets: dict[str, dict[str, Any]], **sections: dict[str, Any]) -> dict[str, Any]:
    """The default params with ``datasets``, quick download limits, and ``sections`` updated."""
    params = default_params()
    params["datasets"] = copy.deepcopy(datasets)
    # As the formats group writes it: every selected format is built for every selected dataset.
    params["export"]["build"] = {
        fmt: list(datasets) if built else [] for fmt, built in params["export"]["build"].items()
    }
    params["download"].update(timeout=1.0, retries=1, backoff=0.05)
    for path, values in sections.items():
        node = params
        for part in path.split("."):
            node = node[part]
        node.update(values)
    return params


def write_decoded_dir(directory: Path, tiny: TinyDataset) -> Path:
    """A decoded/ folder holding the tiny arrays, as the decode stage writes it."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in tiny.arrays.items():
        np.save(directory / f"{split}_images.npy", images)
        np.save(directory / f"{split}_labels.npy", labels)
    return directory


class PlainDumper(yaml.SafeDumper):
    """Writes a value shared by two keys twice, as Hydra does: params.yaml refuses aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_params(directory: Path, params: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "params.yaml"
    path.write_text(yaml.dump(params, Dumper=PlainDumper, sort_keys=False))
    return path


def add_tiny_dataset_config(
    repo: Path, tiny: TinyDataset, name: str = "tiny", mirrors: list[str] | None = None
) -> None:
    """conf/dataset/<name>.yaml describing the tiny archives, committed, selectable by -S dataset=<name>:
    what a team writes to add a dataset of the family, with no code change."""
    entry = tiny_dataset_entry(tiny, mirrors or ["unused"])
    for inherited in ("compression", "container", "transposed", "labels", "export"):
        entry.pop(inherited)  # from /base/dataset, as a new dataset file would
    text = f"# @package datasets.{name}\ndefaults:\n  - /base/dataset@_here_\n  - _self_\n"
    (repo / "conf" / "dataset" / f"{name}.yaml").write_text(text + yaml.safe_dump(entry, sort_keys=False))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", f"dataset {name}")


def sha256_tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``root`` (DVC's own .gitignore files excluded)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".gitignore"
    }


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path below ``root``: a file's bytes, a link's target, "/" for a folder (to prove
    that a refused command changed nothing, links included)."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        found[key] = f"-> {path.readlink()}" if path.is_symlink() else path.read_bytes() if path.is_file() else "/"
    return found
