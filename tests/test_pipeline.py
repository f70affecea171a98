"""The whole pipeline through real DVC in a real git repository, on tiny archives served over
loopback: a dataset added as one YAML file with no code change, several datasets side by side,
overrides that re-run only what they affect, no-op and forced re-runs, and the promise that a
rejected or dangerous override never costs an output."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.data import TinyDataset, add_tiny_dataset_config, make_tiny_dataset, sha256_tree
from tests.support.faultserver import FaultServer, serve
from tests.support.repos import make_repo, run

pytestmark = pytest.mark.slow
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def restore(repo: Path, *names: str) -> None:
    """Put HEAD's bytes back. (Not `git checkout`: DVC may have rewritten a file with the same
    size within the same second, which git's stat cache then takes for unchanged.)"""
    for name in names:
        (repo / name).write_text(run(repo, "git", "show", f"HEAD:{name}").stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny: TinyDataset) -> Iterator[tuple[Path, FaultServer]]:
    """A repository with a new dataset `tiny` (one YAML file) built once by `dvc exp run`."""
    repo = make_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        add_tiny_dataset_config(repo, tiny, mirrors=[server.url])
        result = run(repo, "dvc", "exp", "run", "-S", "dataset=tiny")
        ran = stages_run(result.stdout + result.stderr)
        assert ran[:5] == ["check", "download@tiny", "verify@tiny", "extract@tiny", "decode@tiny"]
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-q", "-m", "pipeline ran")
        yield repo, server


def test_a_dataset_added_as_yaml_builds_every_default_output(
    built: tuple[Path, FaultServer], tiny: TinyDataset
) -> None:
    repo, _ = built
    data = repo / "data" / "tiny"
    for relative in (
        "raw/" + TRAIN_IMAGES,
        "checksums.json",
        "idx/train-images-idx3-ubyte",
        "decoded/train_images.npy",
        "stats.json",
        "export/npz/tiny.npz",
        "export/csv/train.csv",
        "export/csv.sha256",
        "export/png/images.zip",
        "export/samples.png",
        "export/class_distribution.png",
        "export/README.md",
        "export/class_distribution.csv",
    ):
        assert (data / relative).exists(), relative
    record = json.loads((data / "checksums.json").read_text())
    assert {entry["file"]: entry["actual"]["sha256"] for entry in record["archives"]} == {
        spec["file"]: spec["sha256"]
        for split in tiny.splits_spec.values()
        for spec in (split["images"], split["labels"])
    }
    assert run(repo, "git", "status", "--porcelain").stdout.strip() == ""  # nothing left for git to see


def test_second_repro_does_nothing(built: tuple[Path, FaultServer]) -> None:
    repo, _ = built
    result = run(repo, "dvc", "repro")
    assert stages_run(result.stdout) == []
    assert run(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


def test_forced_repro_changes_no_hash(built: tuple[Path, FaultServer]) -> None:
    repo, _ = built
    lock_before = (repo / "dvc.lock").read_text()
    files_before = sha256_tree(repo / "data")
    result = run(repo, "dvc", "repro", "-f")
    assert len(stages_run(result.stdout)) == 9  # the PNG tree is opt-in (test_loop.py)
    assert (repo / "dvc.lock").read_text() == lock_before
    assert sha256_tree(repo / "data") == files_before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("export.npz.validation_size=-5", "export.npz.validation_size: expected >= 0, found -5"),
        ("export.npz.validation_size=100000", "expected fewer than the 60 training images"),
        ("export.workers=300", "export.workers: expected 1 to"),
        ("download.timeout=nan", "download.timeout: expected seconds"),
        ("++datasets.tiny.splits.test.count=0", "datasets.tiny.splits.test.count: expected images > 0"),
        ("++export.csv.heder=false", "export.csv.heder"),
    ],
)
def test_a_rejected_override_costs_no_output(built: tuple[Path, FaultServer], override: str, message: str) -> None:
    repo, _ = built
    before = sha256_tree(repo / "data")
    result = run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", override, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output and "Traceback" not in output
    assert any(line.startswith("check: error:") and message in line for line in output.splitlines())
    # Every output is in place and unchanged, the params views too (outputs are persisted), and
    # the refused run recorded nothing: with params.yaml back, nothing runs.
    assert sha256_tree(repo / "data") == before
    restore(repo, "params.yaml")
    assert stages_run(run(repo, "dvc", "repro").stdout) == []


@pytest.mark.parametrize(
    "override",
    ["export.trees.png.out=.", "export.csv.heder=false"],
    ids=["path-override", "typo"],
)
def test_unknown_keys_stop_before_any_stage(built: tuple[Path, FaultServer], override: str) -> None:
    """A key conf/ does not have is refused by Hydra while DVC composes params.yaml, in the words
    the README quotes: a typo, and the path override that once replaced export/ (output paths
    follow from names)."""
    repo, _ = built
    before = sha256_tree(repo / "data")
    result = run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", override, check=False)
    key = override.partition("=")[0]
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    assert (
        f"ERROR: unexpected error - Could not override '{key}'.\nTo append to your config use +{override}"
        in result.stderr
    )
    assert not stages_run(result.stdout)
    assert sha256_tree(repo / "data") == before
    restore(repo, "params.yaml")


def test_csv_override_reruns_only_that_export(built: tuple[Path, FaultServer]) -> None:
    repo, _ = built
    stale = repo / "data/tiny/export/.csv.mnist-pipeline-killed1.tmp"
    stale.mkdir()
    (stale / "train.csv").write_text("left by a killed run")
    result = run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", "export.csv.header=false")
    assert [s for s in stages_run(result.stdout) if s != "check"] == ["export_csv@tiny"]
    assert not stale.exists()  # a killed run's scratch is removed when the stage next runs
    assert not (repo / "data/tiny/export/csv/train.csv").read_bytes().startswith(b"label")
    restore(repo, "params.yaml", "dvc.lock")  # back to the committed experiment
    run(repo, "dvc", "checkout", "-f")


def test_second_dataset_reruns_nothing_of_the_first(built: tuple[Path, FaultServer], tmp_path: Path) -> None:
    repo, _ = built
    other = make_tiny_dataset({"train": 30, "test": 10}, seed=11)
    with serve(FaultServer(files=dict(other.archives))) as other_server:
        add_tiny_dataset_config(repo, other, name="other", mirrors=[other_server.url])
        result = run(repo, "dvc", "exp", "run", "-n", "with-other", "-S", "dataset=[tiny,other]")
    ran = stages_run(result.stdout)
    assert ran and all(stage == "check" or "@other" in stage for stage in ran), ran
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "export_csv@other" in lock and "export_csv@tiny" in lock
    # One dataset's own export options: only that dataset's stages re-run.
    result = run(
        repo, "dvc", "exp", "run", "-S", "dataset=[tiny,other]", "-S", "++datasets.other.export.csv.header=false"
    )
    ran = [stage for stage in stages_run(result.stdout) if stage != "check"]
    assert ran and all("@other" in stage for stage in ran), ran
    assert not (repo / "data/other/export/csv/train.csv").read_bytes().startswith(b"label")
    assert (repo / "data/tiny/export/csv/train.csv").read_bytes().startswith(b"label")
    restore(repo, "params.yaml", "dvc.lock")
    # Applied from a workspace without the dataset (a colleague's clone), the experiment brings
    # its outputs but not DVC's ignore files of the new folders: the root .gitignore keeps every
    # cached output out of `git add -A`; only what git keeps (cache: false) is new to git.
    shutil.rmtree(repo / "data/other")
    run(repo, "dvc", "exp", "apply", "with-other")
    assert (repo / "data/other/export/csv/train.csv").is_file()
    status = run(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    new_to_git = {line[3:] for line in status if line[3:].startswith("data/other/")}
    assert {name for name in new_to_git if not name.endswith(".gitignore")} == {
        "data/other/stats.json",
        "data/other/export/class_distribution.csv",
    }
    restore(repo, "params.yaml", "dvc.lock")
    shutil.rmtree(repo / "data/other")
    run(repo, "git", "rm", "-q", "conf/dataset/other.yaml")
    run(repo, "git", "commit", "-q", "-m", "drop other")


def test_a_symlinked_export_folder_is_not_written_through(built: tuple[Path, FaultServer], tmp_path: Path) -> None:
    repo, _ = built
    export = repo / "data/tiny/export"
    moved = tmp_path / "elsewhere"
    export.rename(moved)
    export.symlink_to(moved)
    try:
        result = run(repo, "python", "-m", "mnist_pipeline.export_csv", "--dataset", "tiny", "data/tiny/decoded",
                     "data/tiny/export/csv", check=False)  # fmt: skip
        assert result.returncode == 1
        assert "data/tiny/export/csv: expected no symbolic link on the way, found " in result.stderr
        assert f"/data/tiny/export -> {moved}; refusing to write through it" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        export.unlink()
        moved.rename(export)
