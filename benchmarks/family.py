"""Small generated data in the real layouts of every dataset of ``conf/dataset/``, for measuring
DVC with the whole family selected.

Each archive keeps its real name, container, compression and label layout, at a fraction of its
row count: gzip'd or xz'd IDX files, EMNIST's members stored in one ``gzip.zip``, QMNIST's
int32 label tables, the row ranges two QMNIST test subsets cut from one file. Images are
random, labels cycle through the dataset's classes. A file shared by several datasets (QMNIST's
test set; MNIST's file names) is generated once. The conf files are rewritten with the new
counts, sizes and digests (each spec keeping the digest kinds it had), as a team describing its
own copy of the family would; every other fact stays.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import math
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from benchmarks.copies import CONF, PARAMS, compose
from mnist_pipeline.idx import encode_idx

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
IDX3_HEADER = 16
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda payload: gzip.compress(payload, compresslevel=6, mtime=0),
    "xz": lzma.compress,
    "none": lambda payload: payload,
}
DIGESTS: dict[str, Callable[[bytes], str]] = {
    "md5": lambda data: hashlib.md5(data).hexdigest(),
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
}


@dataclass(frozen=True)
class Family:
    """The generated mirror folder, the conf files to write over the copy's, the dataset names."""

    mirror: Path
    conf_files: dict[str, str]
    names: list[str]
    images: int


def dataset_names(conf_dir: Path) -> list[str]:
    return sorted(path.stem for path in (conf_dir / "dataset").glob("*.yaml"))


def generate_family(repo: Path, mirror: Path, divisor: int) -> Family:
    """Archives for every dataset of ``repo``'s conf/ at 1/``divisor`` of their rows into ``mirror``;
    the conf files describing them."""
    names = dataset_names(repo / CONF)
    with tempfile.TemporaryDirectory() as scratch:
        composed_repo = Path(scratch)
        (composed_repo / CONF).symlink_to((repo / CONF).resolve())
        compose(composed_repo, [f"dataset=[{','.join(names)}]"])
        entries: dict[str, Any] = yaml.safe_load((composed_repo / PARAMS).read_text())["datasets"]
    mirror.mkdir(parents=True, exist_ok=True)
    files = _Files(repo / CONF, mirror, divisor)
    conf_files = {}
    for name in names:
        path = repo / CONF / "dataset" / f"{name}.yaml"
        raw = yaml.safe_load(path.read_text())
        raw["splits"] = files.splits(entries[name])
        conf_files[f"dataset/{name}.yaml"] = _header(path) + yaml.safe_dump(raw, sort_keys=False)
    for source, container in files.write_containers().items():
        path = repo / CONF / "source" / f"{source}.yaml"
        raw = yaml.safe_load(path.read_text())
        raw["container"] = {key: container[key] for key in raw["container"]}
        conf_files[f"source/{source}.yaml"] = _header(path) + yaml.safe_dump(raw, sort_keys=False)
    return Family(mirror, conf_files, names, files.images)


def _header(path: Path) -> str:
    """The leading comment lines (Hydra's ``# @package`` directive among them)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line + "\n")
    return "".join(lines)


class _Files:
    """Generates each archive once; remembers container members until the zips are written."""

    def __init__(self, conf_dir: Path, mirror: Path, divisor: int) -> None:
        self.conf_dir = conf_dir
        self.mirror = mirror
        self.divisor = divisor
        self.rows: dict[str, tuple[int, int]] = {}  # file -> (rows of the original, rows generated)
        self.specs: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, bytes]] = {}  # container file -> member -> bytes
        self.containers: dict[str, str] = {}  # container file -> conf/source name
        self.images = 0

    def splits(self, entry: dict[str, Any]) -> dict[str, Any]:
        classes = len(entry["classes"])
        new: dict[str, Any] = {}
        for split, spec in entry["splits"].items():
            original_rows = _original_rows(spec, entry["image_shape"])
            rows = self.rows.setdefault(
                spec["images"]["file"],
                (original_rows, max(math.ceil(original_rows / self.divisor), 2 * classes)),
            )
            scale = rows[1] / rows[0]
            if "rows" in spec:
                start, stop = (round(bound * scale) for bound in spec["rows"])
            else:
                start, stop = 0, rows[1]
            item = {key: value for key, value in spec.items() if key not in ("images", "labels")}
            item["count"] = stop - start
            if "rows" in spec:
                item["rows"] = [start, stop]
            for kind in ("images", "labels"):
                item[kind] = self.archive(entry, spec[kind], kind, rows[1], classes)
            new[split] = item
            self.images += stop - start
        return new

    def archive(
        self, entry: dict[str, Any], spec: dict[str, Any], kind: str, count: int, classes: int
    ) -> dict[str, Any]:
        key = spec.get("member") or spec["file"]
        if key not in self.specs:
            seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
            payload = encode_idx(_array(entry, kind, count, classes, seed))
            data = COMPRESSORS[entry["compression"]](payload)
            found = dict(spec)
            for field, value in _facts(data, payload).items():
                if field in spec:
                    found[field] = value
            container = entry.get("container")
            if container:
                self.members.setdefault(container["file"], {})[spec["member"]] = data
                self.containers[container["file"]] = self.source_of(container["file"])
            else:
                (self.mirror / spec["file"]).write_bytes(data)
            self.specs[key] = found
        return self.specs[key]

    def source_of(self, container_file: str) -> str:
        """The conf/source file that describes ``container_file``."""
        for path in sorted((self.conf_dir / "source").glob("*.yaml")):
            container = (yaml.safe_load(path.read_text()) or {}).get("container") or {}
            if container.get("file") == container_file:
                return path.stem
        raise LookupError(f"{self.conf_dir / 'source'}: expected a file describing {container_file}, found none")

    def write_containers(self) -> dict[str, dict[str, Any]]:
        """Each container zip (stored members, as NIST's gzip.zip); its facts by conf/source name."""
        facts = {}
        for file, members in self.members.items():
            path = self.mirror / file
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
                for member, data in sorted(members.items()):
                    archive.writestr(zipfile.ZipInfo(member, date_time=ZIP_EPOCH), data)
            data = path.read_bytes()
            facts[self.containers[file]] = {"file": file, **_facts(data, b"")}
        return facts


def _original_rows(spec: dict[str, Any], shape: list[int]) -> int:
    """Rows of the images file a split reads (its payload size over the image size, or the count)."""
    images = spec["images"]
    if "payload_size" in images:
        return (int(images["payload_size"]) - IDX3_HEADER) // (shape[0] * shape[1])
    return int(spec["count"]) if "rows" not in spec else int(spec["rows"][1])


def _array(entry: dict[str, Any], kind: str, count: int, classes: int, seed: int) -> npt.NDArray[Any]:
    rng = np.random.default_rng(seed)
    if kind == "images":
        rows, cols = entry["image_shape"]
        images = rng.integers(0, 256, size=(count, rows, cols), dtype=np.uint8)
        images[:, :3, :] = 0  # a blank border, as real digits have
        return images
    labels = entry["labels"]
    classes_cycle = rng.permutation(np.arange(count) % classes) + int(labels["offset"])
    if labels["layout"] == "idx_table":
        table = rng.integers(0, 1000, size=(count, len(labels["columns"])), dtype=np.int32)
        table[:, int(labels["column"])] = classes_cycle
        return table
    return classes_cycle.astype(np.uint8)


def _facts(data: bytes, payload: bytes) -> dict[str, Any]:
    return {
        "size": len(data),
        **{name: digest(data) for name, digest in DIGESTS.items()},
        "payload_size": len(payload),
        **{f"payload_{name}": digest(payload) for name, digest in DIGESTS.items()},
    }
