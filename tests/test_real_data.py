"""The real archives: MNIST over loopback and Fashion-MNIST from a folder mirror, built side by
side in one real git+DVC workspace, checked against the published facts; QMNIST's real label
tables through the label decoder and the subsets logic."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mnist_pipeline import decode, extract
from mnist_pipeline.formats import load_params
from mnist_pipeline.idx import encode_idx, read_idx
from mnist_pipeline.params import compose_params
from tests.support.data import write_params
from tests.support.faultserver import FaultServer, serve
from tests.support.repos import PROJECT_ROOT, make_repo, run

SHARED = PROJECT_ROOT.parent / "shared" / "mirror"
MNIST_MIRROR, FASHION_MIRROR, QMNIST_MIRROR = SHARED / "mnist", SHARED / "fashion_mnist", SHARED / "qmnist"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
QMNIST_TEST_COUNTS = [5952, 6791, 6026, 6084, 5780, 5454, 5957, 6231, 5890, 5835]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def published_sums(folder: Path) -> dict[str, str]:
    sums = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    return sums


def stage_names(repo: Path) -> list[str]:
    return list(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])


@pytest.fixture(scope="module")
def real_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (MNIST_MIRROR.is_dir() and FASHION_MIRROR.is_dir()):
        pytest.skip(f"the real archives are not in {SHARED} on this machine")
    repo = make_repo(tmp_path_factory.mktemp("real") / "repo")
    files = {path.name: path.read_bytes() for path in MNIST_MIRROR.glob("*.gz")}
    with serve(FaultServer(files=files)) as server:  # kept up: `dvc repro -f` downloads again
        # This machine's mirrors, as a user keeps them: in the git-ignored local settings file.
        local = {"mirrors": {"mnist": [server.url], "fashion_mnist": [str(FASHION_MIRROR)]}}
        (repo / "mnist-pipeline.local.yaml").write_text(yaml.safe_dump(local))
        run(
            repo,
            "dvc", "exp", "run", "-S", "dataset=[mnist,fashion_mnist]", "-S", "trees=[png]",
            timeout=1200,
        )  # fmt: skip
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-q", "-m", "built mnist and fashion_mnist")
        yield repo


@pytest.mark.slow
@pytest.mark.parametrize(("name", "mirror"), [("mnist", MNIST_MIRROR), ("fashion_mnist", FASHION_MIRROR)])
def test_archives_and_payloads_are_canonical(real_repo: Path, name: str, mirror: Path) -> None:
    record = json.loads((real_repo / f"data/{name}/checksums.json").read_text())
    assert {entry["file"]: entry["actual"]["sha256"] for entry in record["archives"]} == published_sums(mirror)
    for entry in record["archives"]:
        assert entry["passed"] == "archive"
        assert entry["actual"]["payload_sha256"] == entry["expected"]["payload_sha256"] is not None


@pytest.mark.slow
def test_each_dataset_has_its_own_stages(real_repo: Path) -> None:
    stages = stage_names(real_repo)
    for name in ("mnist", "fashion_mnist"):
        for stage in ("download", "verify", "extract", "decode", "report"):
            assert f"{stage}@{name}" in stages
        for fmt in ("npz", "csv", "png"):
            assert f"export_{fmt}@{name}" in stages
        assert f"unpack@{name}-png" in stages


@pytest.mark.slow
def test_mnist_matches_the_published_facts(real_repo: Path) -> None:
    stats = json.loads((real_repo / "data/mnist/stats.json").read_text())
    assert list(stats["train"]["class_counts"].values()) == MNIST_TRAIN_COUNTS
    assert list(stats["test"]["class_counts"].values()) == MNIST_TEST_COUNTS
    assert stats["train"]["pixel_mean"] == pytest.approx(33.318, abs=1e-3)
    assert stats["train"]["pixel_std"] == pytest.approx(78.567, abs=1e-3)
    assert (round(stats["train"]["pixel_mean_unit"], 4), round(stats["train"]["pixel_std_unit"], 4)) == (0.1307, 0.3081)
    with np.load(real_repo / "data/mnist/export/npz/mnist.npz") as npz:
        assert npz.files == ["x_train", "y_train", "x_test", "y_test"]
        assert npz["x_train"].shape == (60000, 28, 28) and npz["x_train"].dtype == np.uint8
        assert int(npz["y_train"][0]) == 5 and int(npz["y_test"][0]) == 7
    export = real_repo / "data/mnist/export"
    with (export / "csv/train.csv").open("rb") as handle:
        assert handle.readline().startswith(b"label,pixel0,")
        assert handle.readline().startswith(b"5,0,0,")
        assert sum(1 for _ in handle) == 59999
    assert sum(1 for _ in (export / "images/train").rglob("*.png")) == 60000
    assert len(list((export / "images/test/7").glob("*.png"))) == MNIST_TEST_COUNTS[7]
    assert (export / "images/train/5/00000.png").exists()


@pytest.mark.slow
def test_fashion_mnist_matches_the_published_facts(real_repo: Path) -> None:
    stats = json.loads((real_repo / "data/fashion_mnist/stats.json").read_text())
    assert list(stats["train"]["class_counts"].values()) == [6000] * 10
    assert list(stats["test"]["class_counts"].values()) == [1000] * 10
    assert stats["train"]["pixel_mean"] == pytest.approx(72.940, abs=1e-3)
    assert stats["train"]["pixel_std"] == pytest.approx(90.021, abs=1e-3)
    with np.load(real_repo / "data/fashion_mnist/export/npz/fashion_mnist.npz") as npz:
        assert npz["y_train"][:5].tolist() == [9, 0, 0, 3, 0]
        assert npz["y_test"][:5].tolist() == [9, 2, 1, 1, 6]
    card = (real_repo / "data/fashion_mnist/export/README.md").read_text()
    for label, name in enumerate(FASHION_CLASSES):  # the classes table: label, full name, counts
        assert f"| {label} | {name} | 6,000 | 1,000 |" in card
    assert "License: MIT (Hub id `mit`)" in card
    distribution = (real_repo / "data/fashion_mnist/export/class_distribution.csv").read_text().splitlines()
    assert distribution[1:3] == [
        "T-shirt/top,train,6000,T-shirt/top (train)",
        "T-shirt/top,test,1000,T-shirt/top (test)",
    ]


@pytest.mark.slow
def test_forced_repro_leaves_dvc_lock_unchanged(real_repo: Path) -> None:
    lock = (real_repo / "dvc.lock").read_text()
    # Every stage that makes MNIST's cached outputs, forced (the tree is rebuilt from the same zip;
    # Fashion-MNIST runs the same code): each must write the bytes dvc.lock records.
    stages = [f"{stage}@mnist" for stage in ("download", "verify", "extract", "decode", "report")]
    stages += [f"export_{fmt}@mnist" for fmt in ("npz", "csv", "png")]
    run(real_repo, "dvc", "repro", "-f", "-s", *stages, timeout=1200)
    assert (real_repo / "dvc.lock").read_text() == lock
    assert "Running stage" not in run(real_repo, "dvc", "repro").stdout


# QMNIST: the real label tables (the images could not be brought here: generated ones, same format)


def generated_images(count: int) -> bytes:
    """A gzip'd IDX of ``count`` random 28x28 images."""
    rng = np.random.default_rng(3)
    payload = encode_idx(rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8))
    return gzip.compress(payload, compresslevel=1, mtime=0)


def qmnist_params(tmp_path: Path, dataset: str) -> dict[str, Any]:
    out = tmp_path / "params.yaml"
    compose_params(out, [f"dataset={dataset}"], PROJECT_ROOT / "conf")
    loaded: dict[str, Any] = yaml.safe_load(out.read_text())
    return loaded


@pytest.mark.slow
@pytest.mark.skipif(not QMNIST_MIRROR.is_dir(), reason=f"QMNIST's label files are not in {QMNIST_MIRROR}")
def test_qmnist_label_tables_and_subsets(tmp_path: Path) -> None:
    params = qmnist_params(tmp_path, "qmnist_subsets")
    entry = params["datasets"]["qmnist_subsets"]
    data = tmp_path / "data"
    raw = data / "raw"
    raw.mkdir(parents=True)
    archive = generated_images(60000)
    for split in entry["splits"].values():
        # Real label files with their published digests; generated images described honestly.
        split["images"].update(size=len(archive), md5=None, sha256=hashlib.sha256(archive).hexdigest())
        (raw / split["images"]["file"]).write_bytes(archive)
        (raw / split["labels"]["file"]).write_bytes((QMNIST_MIRROR / split["labels"]["file"]).read_bytes())
    path = write_params(tmp_path, params)
    common = ["--params", str(path), "--dataset", "qmnist_subsets"]
    assert extract.main([*common, str(raw), str(data / "idx")]) == 0
    decoded, stats_path = data / "decoded", data / "stats.json"
    assert decode.main([*common, str(data / "idx"), str(decoded), str(stats_path)]) == 0
    stats = json.loads(stats_path.read_text())
    assert list(stats["train"]["class_counts"].values()) == MNIST_TRAIN_COUNTS
    assert list(stats["test10k"]["class_counts"].values()) == MNIST_TEST_COUNTS
    test50k = [full - first for full, first in zip(QMNIST_TEST_COUNTS, MNIST_TEST_COUNTS, strict=True)]
    assert list(stats["test50k"]["class_counts"].values()) == test50k
    table = np.load(decoded / "test50k_label_table.npy")
    assert table.shape == (50000, 8) and table.dtype == np.int32
    np.testing.assert_array_equal(table[:, 0], np.load(decoded / "test50k_labels.npy"))
    np.testing.assert_array_equal(table[:, 4], table[:, 0] + 30)  # NIST class code = label + 30
    # The idx1 test labels published beside the table equal its column 0.
    idx1 = read_idx_payload(QMNIST_MIRROR / "qmnist-test-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(idx1[10000:], table[:, 0])
    assert load_params(path).dataset("qmnist_subsets").labels.columns[2] == "writer_id"


def read_idx_payload(path: Path) -> np.ndarray:
    """A gzip'd IDX label vector, decoded in memory (a small file)."""
    return np.frombuffer(gzip.decompress(path.read_bytes())[8:], dtype=np.uint8)


@pytest.mark.slow
@pytest.mark.skipif(not QMNIST_MIRROR.is_dir(), reason=f"QMNIST's label files are not in {QMNIST_MIRROR}")
def test_xnist_labels_are_xz_tables(tmp_path: Path) -> None:
    """The nist subset's real .xz label table through the xz opener and the strict reader."""
    params = qmnist_params(tmp_path, "qmnist_nist")
    spec = params["datasets"]["qmnist_nist"]["splits"]["nist"]["labels"]
    data = tmp_path / "data"
    raw = data / "raw"
    raw.mkdir(parents=True)
    (raw / spec["file"]).write_bytes((QMNIST_MIRROR / spec["file"]).read_bytes())
    # Extract only the label file: the 316 MB of images are not here.
    params["datasets"]["qmnist_nist"]["splits"]["nist"]["images"] = dict(spec)
    path = write_params(tmp_path, params)
    assert extract.main(["--params", str(path), "--dataset", "qmnist_nist", str(raw), str(data / "idx")]) == 0
    table = read_idx(data / "idx" / "xnist-labels-idx2-int")
    assert table.shape == (402953, 8) and table.dtype == np.int32
    assert int((table[:, 6] != 0).sum()) == 3  # duplicate-of is set for 3 rows
    assert set(np.unique(table[:, 0]).tolist()) == set(range(10))
