"""Synthetic datasets of the MNIST layout at any size, for measuring how the pipeline scales.

Images are MNIST's own 70,000 (train then test) drawn again and again: copy 0 is MNIST in
its order (so 1x is MNIST's pixels exactly), each further copy is a seeded permutation of the
70,000 shifted by one pixel in one of eight directions, so no two neighbouring images repeat
and PNG and gzip sizes stay those of real digits. Labels are the source image's, plus ten per
copy modulo the class count (EMNIST byclass's 62 classes all occur).

Each dataset is a folder mirror: four gzip'd IDX files (images and labels of train and test;
transposed for EMNIST-like data) and ``dataset.json``, their splits with every size and digest
computed. A folder whose ``dataset.json`` matches the requested size and generator version is
reused. ``dataset_conf`` writes the ``conf/dataset/<name>.yaml`` that describes it (MNIST's
facts, this dataset's classes and splits), so that a copy of the project selects it with
``-S dataset=<name>`` as a team adds a dataset; the folder reaches the download stage through
``MNIST_PIPELINE_MIRRORS`` (``mirror_env``), as a mirror of this machine does.

Usage: ``python benchmarks/synthetic.py [--scale N | --emnist] [--mirror DIR] OUTPUT_DIR``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MNIST_MIRROR = PROJECT_ROOT.parent / "shared" / "mirror" / "mnist"
MNIST_CONF = PROJECT_ROOT / "conf" / "dataset" / "mnist.yaml"
MIRRORS_ENV = "MNIST_PIPELINE_MIRRORS"
MNIST_TRAIN, MNIST_TEST = 60_000, 10_000
EMNIST_BYCLASS_TRAIN, EMNIST_BYCLASS_TEST = 697_932, 116_323
EMNIST_BYCLASS_CONF = PROJECT_ROOT / "conf" / "dataset" / "emnist_byclass.yaml"
GENERATOR_VERSION = 1
SIDE = 28
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
#: Images generated per write: 10,000 images are 7.8 MB.
CHUNK_IMAGES = 10_000
#: zlib's default level: within 2 % of level 9's size (MNIST's own archives are between the two), 15x faster.
GZIP_LEVEL = 6
#: (rows, cols) shift of each copy after the first.
SHIFTS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))
SOURCE_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

Images = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class SyntheticSize:
    """What to generate: ``name`` becomes the dataset key and the data/<name>/ folder."""

    name: str
    description: str
    train: int
    test: int
    classes: tuple[str, ...]
    transposed: bool
    file_prefix: str

    @property
    def images(self) -> int:
        return self.train + self.test

    def file_names(self, split: str) -> tuple[str, str]:
        prefix = "t10k" if split == "test" and not self.file_prefix else split
        return (
            f"{self.file_prefix}{prefix}-images-idx3-ubyte.gz",
            f"{self.file_prefix}{prefix}-labels-idx1-ubyte.gz",
        )


def mnist_size(scale: float) -> SyntheticSize:
    """``scale`` x MNIST: 60,000 x scale training and 10,000 x scale test images."""
    label = f"{scale:g}".replace(".", "_")
    return SyntheticSize(
        name=f"synth_x{label}",
        description=f"{scale:g}x MNIST",
        train=round(MNIST_TRAIN * scale),
        test=round(MNIST_TEST * scale),
        classes=tuple(str(digit) for digit in range(10)),
        transposed=False,
        file_prefix="",
    )


def emnist_byclass_size(scale: float = 1.0) -> SyntheticSize:
    """EMNIST byclass's size (697,932 + 116,323), 62 classes, images stored transposed."""
    conf = yaml.safe_load(EMNIST_BYCLASS_CONF.read_text())
    return SyntheticSize(
        name="synth_emnist" if scale == 1 else f"synth_emnist_x{f'{scale:g}'.replace('.', '_')}",
        description="EMNIST byclass size" if scale == 1 else f"{scale:g}x EMNIST byclass size",
        train=round(EMNIST_BYCLASS_TRAIN * scale),
        test=round(EMNIST_BYCLASS_TEST * scale),
        classes=tuple(str(name) for name in conf["classes"]),
        transposed=True,
        file_prefix="emnist-byclass-",
    )


@dataclass(frozen=True)
class Pool:
    """MNIST's images and labels, train then test: (70000, 28, 28) and (70000,) uint8."""

    images: Images
    labels: Labels

    def __len__(self) -> int:
        return len(self.labels)


def read_idx_gz(path: Path, magic: int) -> npt.NDArray[np.uint8]:
    with gzip.open(path, "rb") as stream:
        data = stream.read()
    ndim = magic & 0xFF
    found_magic, *dims = struct.unpack(f">{ndim + 1}I", data[: 4 * (ndim + 1)])
    if found_magic != magic:
        raise SystemExit(f"{path}: expected IDX magic {magic:#010x}, found {found_magic:#010x}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 * (ndim + 1)).reshape(dims)


def load_pool(mirror: Path = MNIST_MIRROR) -> Pool:
    images = [read_idx_gz(mirror / SOURCE_FILES[split][0], IMAGES_MAGIC) for split in ("train", "test")]
    labels = [read_idx_gz(mirror / SOURCE_FILES[split][1], LABELS_MAGIC) for split in ("train", "test")]
    return Pool(images=np.concatenate(images), labels=np.concatenate(labels))


def synthetic_rows(pool: Pool, start: int, stop: int, num_classes: int) -> tuple[Images, Labels]:
    """Images and labels of rows [start, stop) of the endless stream of shifted pool copies."""
    rows = np.arange(start, stop)
    copies, positions = np.divmod(rows, len(pool))
    images = np.empty((len(rows), SIDE, SIDE), dtype=np.uint8)
    labels = np.empty(len(rows), dtype=np.uint8)
    for copy_index in np.unique(copies).tolist():
        chosen = copies == copy_index
        sources = positions[chosen]
        if copy_index:
            sources = np.random.default_rng(copy_index).permutation(len(pool))[sources]
        block = pool.images[sources]
        if copy_index:
            block = np.roll(block, SHIFTS[(copy_index - 1) % len(SHIFTS)], axis=(1, 2))
        images[chosen] = block
        labels[chosen] = (pool.labels[sources].astype(np.int64) + 10 * copy_index) % num_classes
    return images, labels


class _HashingWriter:
    """A binary sink that counts and hashes what passes through to ``target``."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.size = 0
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self.md5.update(data)
        self.sha256.update(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def _write_idx_gz(path: Path, header: bytes, chunks: Iterator[bytes]) -> dict[str, Any]:
    """Write a gzip'd IDX file (no name, mtime 0: reproducible); its FileSpec."""
    payload_size = len(header)
    payload_sha256 = hashlib.sha256(header)
    with path.open("wb") as raw:
        sink = _HashingWriter(raw)
        with gzip.GzipFile(filename="", fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as zipped:
            zipped.write(header)
            for chunk in chunks:
                zipped.write(chunk)
                payload_size += len(chunk)
                payload_sha256.update(chunk)
    return {
        "file": path.name,
        "size": sink.size,
        "md5": sink.md5.hexdigest(),
        "sha256": sink.sha256.hexdigest(),
        "payload_size": payload_size,
        "payload_sha256": payload_sha256.hexdigest(),
    }


def write_split(pool: Pool, size: SyntheticSize, split: str, start: int, count: int, folder: Path) -> dict[str, Any]:
    """The IDX files of rows [start, start + count); the split's entry of ``splits``."""
    images_name, labels_name = size.file_names(split)
    num_classes = len(size.classes)

    def chunks(kind: str) -> Iterator[bytes]:
        for offset in range(start, start + count, CHUNK_IMAGES):
            images, labels = synthetic_rows(pool, offset, min(offset + CHUNK_IMAGES, start + count), num_classes)
            if kind == "labels":
                yield labels.tobytes()
            else:
                yield (images.transpose(0, 2, 1) if size.transposed else images).tobytes()

    return {
        "count": count,
        "images": _write_idx_gz(
            folder / images_name, struct.pack(">4I", IMAGES_MAGIC, count, SIDE, SIDE), chunks("images")
        ),
        "labels": _write_idx_gz(folder / labels_name, struct.pack(">2I", LABELS_MAGIC, count), chunks("labels")),
    }


def dataset_conf(size: SyntheticSize, splits: dict[str, Any]) -> str:
    """``conf/dataset/<name>.yaml`` for a generated dataset: MNIST's file with this dataset's
    title, classes, orientation and splits."""
    conf: dict[str, Any] = yaml.safe_load(MNIST_CONF.read_text())
    conf.update(
        title=f"Synthetic {size.description} (MNIST digits, permuted and shifted)",
        classes=list(size.classes),
        transposed=size.transposed,
        splits=splits,
    )
    return f"# @package datasets.{size.name}\n" + yaml.safe_dump(conf, sort_keys=False)


def mirror_env(mirrors: dict[str, Path]) -> dict[str, str]:
    """The environment that points the download stage of each dataset at its folder."""
    return {MIRRORS_ENV: " ".join(f"{name}={folder.resolve()}" for name, folder in mirrors.items())}


def ensure_dataset(size: SyntheticSize, root: Path, mirror: Path = MNIST_MIRROR) -> tuple[dict[str, Any], bool]:
    """The folder mirror ``root/<name>`` for ``size`` (generated from the MNIST archives in
    ``mirror`` unless already there) and its entry (``splits``); the flag says whether it was
    generated now."""
    folder = root / size.name
    manifest = folder / "dataset.json"
    wanted = {"version": GENERATOR_VERSION, "train": size.train, "test": size.test, "transposed": size.transposed}
    if manifest.is_file():
        stored = json.loads(manifest.read_text())
        if stored.get("generator") == wanted and _files_intact(folder, stored["entry"]["splits"]):
            entry: dict[str, Any] = stored["entry"]
            return entry, False
    folder.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)
    pool = load_pool(mirror)
    splits = {
        "train": write_split(pool, size, "train", 0, size.train, folder),
        "test": write_split(pool, size, "test", size.train, size.test, folder),
    }
    entry = {"splits": splits}
    manifest.write_text(json.dumps({"generator": wanted, "entry": entry}, indent=1) + "\n")
    return entry, True


def _files_intact(folder: Path, splits: dict[str, Any]) -> bool:
    specs = [split[kind] for split in splits.values() for kind in ("images", "labels")]
    return all(
        (folder / spec["file"]).is_file() and (folder / spec["file"]).stat().st_size == spec["size"] for spec in specs
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "output", type=Path, help="folder that receives <name>/ (the mirror) and <name>.yaml (its conf)"
    )
    parser.add_argument("--mirror", type=Path, default=MNIST_MIRROR, help="folder holding MNIST's four archives")
    parser.add_argument("--scale", type=float, default=1.0, help="N x MNIST's size (default 1)")
    parser.add_argument("--emnist", action="store_true", help="EMNIST byclass's size, 62 classes, transposed")
    args = parser.parse_args(argv)
    size = emnist_byclass_size() if args.emnist else mnist_size(args.scale)
    entry, generated = ensure_dataset(size, args.output, args.mirror)
    conf_path = args.output / f"{size.name}.yaml"
    conf_path.write_text(dataset_conf(size, entry["splits"]))
    verb = "generated" if generated else "reused"
    print(f"{verb} {size.description} in {args.output / size.name}; conf/dataset file: {conf_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
