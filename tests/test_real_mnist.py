"""The real MNIST archives, served over loopback from ../shared/mirror/mnist, through the
whole DVC pipeline: canonical checksums and the published facts about the data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_params
from tests.conftest import SHARED_MIRROR
from tests.faultserver import FaultServer, serve
from tests.repos import make_repo, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SHARED_MIRROR.is_dir(), reason=f"the real MNIST archives are not at {SHARED_MIRROR} on this machine"
    ),
]

TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def real_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    repo = make_repo(tmp_path_factory.mktemp("real") / "repo")
    files = {path.name: path.read_bytes() for path in SHARED_MIRROR.glob("*.gz")}
    with serve(FaultServer(files=files)) as server:
        run(repo, "dvc", "exp", "run", "-S", f"dataset.mirrors=[{server.url}]", timeout=900)
    yield repo


def test_archives_have_the_canonical_checksums(real_repo: Path) -> None:
    published: dict[str, str] = {}
    for line in (SHARED_MIRROR / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            published[name] = digest
    record = json.loads((real_repo / "data/mnist/checksums.json").read_text())
    assert {entry["file"]: entry["actual"]["sha256"] for entry in record["archives"]} == published
    params = load_params(real_repo / "params.yaml")
    for spec in params.dataset.archives():
        entry = next(e for e in record["archives"] if e["file"] == spec.file)
        assert entry["passed"] == "archive"
        assert entry["actual"]["payload_sha256"] == spec.payload_sha256
        assert entry["actual"]["md5"] == spec.md5 and entry["actual"]["size"] == spec.size


def test_decoded_data_matches_the_published_facts(real_repo: Path) -> None:
    stats = json.loads((real_repo / "data/mnist/stats.json").read_text())
    assert stats["train"]["count"] == 60000 and stats["test"]["count"] == 10000
    assert list(stats["train"]["class_counts"].values()) == TRAIN_CLASS_COUNTS
    assert list(stats["test"]["class_counts"].values()) == TEST_CLASS_COUNTS
    assert stats["train"]["pixel_mean"] == pytest.approx(33.318, abs=1e-3)
    assert stats["train"]["pixel_std"] == pytest.approx(78.567, abs=1e-3)
    assert round(stats["train"]["pixel_mean_unit"], 4) == 0.1307
    assert round(stats["train"]["pixel_std_unit"], 4) == 0.3081
    with np.load(real_repo / "data/mnist/export/mnist.npz") as npz:
        assert npz["x_train"].shape == (60000, 28, 28) and npz["x_train"].dtype == np.uint8
        assert npz["x_test"].shape == (10000, 28, 28)
        assert int(npz["y_train"][0]) == 5 and int(npz["y_test"][0]) == 7


def test_default_exports_are_complete(real_repo: Path) -> None:
    export = real_repo / "data/mnist/export"
    with (export / "csv/train.csv").open("rb") as handle:
        assert handle.readline().startswith(b"label,pixel0,")
        assert handle.readline().startswith(b"5,0,0,")
        assert sum(1 for _ in handle) == 59999
    assert sum(1 for _ in (export / "png/train").rglob("*.png")) == 60000
    assert len(list((export / "png/test/7").glob("*.png"))) == TEST_CLASS_COUNTS[7]
    assert (export / "png/train/5/00000.png").exists()


def test_second_repro_is_a_no_op(real_repo: Path) -> None:
    result = run(real_repo, "dvc", "repro")
    assert "Running stage" not in result.stdout
