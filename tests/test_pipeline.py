"""The whole pipeline through real DVC in a real git repository, on tiny archives served
over loopback: composition of overrides, caching, no-op re-runs and byte-reproducibility."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import TinyDataset, add_tiny_dataset_config, archive_spec, sha256_tree
from tests.faultserver import FaultServer, serve
from tests.repos import make_repo, run

pytestmark = pytest.mark.slow
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny: TinyDataset) -> Iterator[tuple[Path, FaultServer]]:
    """A repository whose pipeline ran once with `dvc exp run` against a loopback mirror."""
    repo = make_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    add_tiny_dataset_config(repo, tiny)
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        result = run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", f"dataset.mirrors=[{server.url}]")
        assert stages_run(result.stdout + result.stderr)[:4] == ["download", "verify", "extract", "decode"]
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-q", "-m", "pipeline ran")
        yield repo, server


def test_exp_run_builds_every_default_output(built: tuple[Path, FaultServer], tiny: TinyDataset) -> None:
    repo, _ = built
    data = repo / "data" / "tiny"
    for relative in (
        "raw/" + TRAIN_IMAGES,
        "checksums.json",
        "idx/train-images-idx3-ubyte",
        "decoded.npz",
        "stats.json",
        "export/tiny.npz",
        "export/csv/train.csv",
        "export/csv.sha256",
        "export/png.zip",
        "export/png/manifest.csv",
        "export/png/train/0",
        "export/samples.png",
        "export/README.md",
        "export/class_distribution.csv",
    ):
        assert (data / relative).exists(), relative
    record = json.loads((data / "checksums.json").read_text())
    assert {entry["file"]: entry["actual"]["sha256"] for entry in record["archives"]} == {
        spec["file"]: spec["sha256"] for split in tiny.splits_spec.values() for spec in split.values()
    }
    assert "tiny" in (repo / "params.yaml").read_text()


def test_second_repro_does_nothing(built: tuple[Path, FaultServer]) -> None:
    repo, _ = built
    result = run(repo, "dvc", "repro")
    assert stages_run(result.stdout) == []
    assert "up to date" in result.stdout
    assert run(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


def test_forced_repro_changes_no_hash(built: tuple[Path, FaultServer]) -> None:
    repo, _ = built
    lock_before = (repo / "dvc.lock").read_text()
    files_before = sha256_tree(repo / "data")
    result = run(repo, "dvc", "repro", "-f")
    assert len(stages_run(result.stdout)) == 9
    assert (repo / "dvc.lock").read_text() == lock_before
    assert sha256_tree(repo / "data") == files_before


def test_csv_override_reruns_only_the_csv_stage(built: tuple[Path, FaultServer]) -> None:
    repo, server = built
    mirror = f"dataset.mirrors=[{server.url}]"
    result = run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", mirror, "-S", "export.csv.header=false")
    assert stages_run(result.stdout) == ["export@csv"]
    assert (repo / "data/tiny/export/csv/train.csv").read_bytes()[:1].isdigit()
    result = run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", mirror)
    # Back to the committed params: nothing is recomputed, DVC restores the earlier CSV.
    assert stages_run(result.stdout) == []
    assert (repo / "data/tiny/export/csv/train.csv").read_bytes().startswith(b"label,pixel0,")


def test_format_group_adds_parquet_stage(built: tuple[Path, FaultServer]) -> None:
    repo, server = built
    overrides = ["-S", "dataset=tiny", "-S", f"dataset.mirrors=[{server.url}]", "-S", "formats=[npz,parquet]"]
    result = run(repo, "dvc", "exp", "run", *overrides)
    assert stages_run(result.stdout) == ["export@parquet", "report"]
    assert (repo / "data/tiny/export/parquet/train.parquet").exists()
    stages = run(repo, "dvc", "stage", "list").stdout
    assert "export@parquet" in stages and "export@csv" not in stages and "unpack@png" not in stages
    run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", f"dataset.mirrors=[{server.url}]")


def test_corrupt_archive_fails_repro_and_checkout_restores(built: tuple[Path, FaultServer], tiny: TinyDataset) -> None:
    """A mirror serves a broken gzip whose checksums the config trusts: verify stops the run
    with one line, no later output is written, and `dvc checkout` brings back the last good state."""
    repo, _ = built
    before = sha256_tree(repo / "data")
    broken = tiny.archives[TRAIN_IMAGES][:-40]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["dataset"]["splits"]["train"]["images"] |= archive_spec(TRAIN_IMAGES, broken, b"")
    params["dataset"]["splits"]["train"]["images"]["payload_size"] = tiny.splits_spec["train"]["images"]["payload_size"]
    params["dataset"]["splits"]["train"]["images"]["payload_sha256"] = tiny.splits_spec["train"]["images"][
        "payload_sha256"
    ]
    with serve(FaultServer(files={**tiny.archives, TRAIN_IMAGES: broken})) as server:
        params["dataset"]["mirrors"] = [server.url]
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        result = run(repo, "dvc", "repro", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("verify: error:")]
    assert len(errors) == 1, output
    assert TRAIN_IMAGES in errors[0] and "corrupt gzip stream" in errors[0]
    assert "Traceback" not in output
    assert not (repo / "data/tiny/checksums.json").exists()
    run(repo, "git", "checkout", "--", "params.yaml", "dvc.lock")
    run(repo, "dvc", "checkout", "--force")
    assert run(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    assert sha256_tree(repo / "data") == before
