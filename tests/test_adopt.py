"""Adoption in a team's repository, as the README's "Use it in your repo" section does it: a fresh
git + DVC repository with its own `pipeline/` package and a stage of its own, this project
installed from a wheel built from the working tree, `mnist-pipeline init`, `dvc exp run`; then
a second installed version whose CSV export code changed re-runs exactly that stage."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.data import TinyDataset, add_tiny_dataset_config
from tests.support.faultserver import FaultServer, serve
from tests.support.repos import PROJECT_ROOT, project_files, run

pytestmark = pytest.mark.slow
TEAM_DVC_YAML = """# The team's own pipeline: this comment must survive adoption.
stages:
  train:
    cmd: python -m pipeline.train data/tiny/export/npz/tiny.npz model.txt
    deps:
      - pipeline/train.py
      - data/tiny/export/npz/tiny.npz
    outs:
      - model.txt
"""
TEAM_TRAIN = '''"""The team's own stage: it only counts the training images it was given."""
import sys

import numpy as np

with np.load(sys.argv[1]) as npz:
    count = len(npz["x_train"])
open(sys.argv[2], "w").write(f"trained on {count} images\\n")
'''


@dataclass(frozen=True)
class Installed:
    site: Path

    def env(self) -> dict[str, str]:
        """The installed version first on the path, before the working tree's editable install."""
        return {
            "PYTHONPATH": str(self.site),
            "PATH": f"{self.site / 'bin'}:{Path(sys.executable).parent}:/usr/bin:/bin",
        }


def install_version(tmp_path: Path, name: str, edit: str | None = None) -> Installed:
    """Build a wheel from a copy of the working tree (optionally with ``edit`` appended to the
    CSV export's code, and a new version number) and install it into its own folder."""
    source = tmp_path / f"{name}-src"
    for relative in project_files():
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / relative, target)
    if edit is not None:
        module = source / "mnist_pipeline" / "export_csv.py"
        module.write_text(module.read_text() + edit)
        pyproject = source / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace('version = "0.2.0"', 'version = "0.2.1"'))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / name), str(source)], check=True
    )
    (wheel,) = (tmp_path / name).glob("*.whl")
    site = tmp_path / f"{name}-site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    return Installed(site)


@pytest.fixture(scope="module")
def team_repo(
    tmp_path_factory: pytest.TempPathFactory, tiny: TinyDataset
) -> Iterator[tuple[Path, Installed, FaultServer]]:
    root = tmp_path_factory.mktemp("adopt")
    installed = install_version(root, "v1")
    repo = root / "team"
    (repo / "pipeline").mkdir(parents=True)
    (repo / "pipeline" / "__init__.py").write_text('"""The team\'s own package, also named pipeline."""\n')
    (repo / "pipeline" / "train.py").write_text(TEAM_TRAIN)
    (repo / "dvc.yaml").write_text(TEAM_DVC_YAML)
    (repo / ".gitignore").write_text("/model.txt\n*.log\n")
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "dvc", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "team repo")
    result = run(repo, "mnist-pipeline", "init", extra_env=installed.env())
    assert "conf/config.yaml" in result.stdout and "dvc.yaml" in result.stdout and "hydra.enabled" in result.stdout
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "adopt mnist-pipeline")
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        add_tiny_dataset_config(repo, tiny, mirrors=[server.url])  # the team's own dataset
        run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", extra_env=installed.env())
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-q", "-m", "built")
        yield repo, installed, server


def test_init_adds_the_pipeline_beside_the_teams_own(team_repo: tuple[Path, Installed, FaultServer]) -> None:
    repo, _, _ = team_repo
    text = (repo / "dvc.yaml").read_text()
    assert text.startswith(TEAM_DVC_YAML)  # the team's stage and comment, byte for byte, first
    stages = yaml.safe_load(text)["stages"]
    assert {"check", "download", "export", "unpack", "report"} <= set(stages)
    assert (repo / "pipeline" / "train.py").read_text() == TEAM_TRAIN
    ignore = (repo / ".gitignore").read_text().splitlines()
    assert ignore[:2] == ["/model.txt", "*.log"] and "/data/*/export/images/" in ignore
    assert run(repo, "git", "status", "--porcelain").stdout.strip() == ""


def test_exports_are_built_and_the_teams_stage_uses_them(team_repo: tuple[Path, Installed, FaultServer]) -> None:
    repo, _, _ = team_repo
    assert (repo / "model.txt").read_text() == "trained on 60 images\n"
    for relative in ("npz/tiny.npz", "csv/train.csv", "png/images.zip", "images/train/0", "README.md"):
        assert (repo / "data/tiny/export" / relative).exists(), relative
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "export@tiny-csv" in lock and "train" in lock


def test_init_refuses_to_overwrite_the_teams_files(
    team_repo: tuple[Path, Installed, FaultServer], tmp_path: Path
) -> None:
    _, installed, _ = team_repo
    other = tmp_path / "other"
    (other / "conf").mkdir(parents=True)
    (other / "conf" / "config.yaml").write_text("their: own\n")
    run(other, "git", "init", "-q")
    run(other, "dvc", "init", "-q")
    result = run(other, "mnist-pipeline", "init", check=False, extra_env=installed.env())
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "conf/config.yaml: exists with content mnist-pipeline did not write; refusing to overwrite it" in line
    assert (other / "conf" / "config.yaml").read_text() == "their: own\n"
    assert not (other / "params.yaml").exists()


def test_an_upgrade_reruns_exactly_the_stages_whose_code_changed(
    team_repo: tuple[Path, Installed, FaultServer], tmp_path: Path
) -> None:
    repo, _, _ = team_repo
    upgraded = install_version(tmp_path, "v2", edit="\n# a change to the CSV export's code\n")
    stale = run(repo, "dvc", "repro", check=False, extra_env=upgraded.env())
    assert stale.returncode != 0
    assert "run `mnist-pipeline init --upgrade`" in stale.stdout + stale.stderr
    run(repo, "mnist-pipeline", "init", "--upgrade", extra_env=upgraded.env())
    result = run(repo, "dvc", "repro", extra_env=upgraded.env())
    ran = [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["check", "export@tiny-csv"]
    assert "0.2.1" in (repo / "mnist-pipeline.yaml").read_text()


def test_imported_png_zip_unpacks_with_one_command(
    team_repo: tuple[Path, Installed, FaultServer], tmp_path: Path
) -> None:
    """What the README says to do with the PNG tree in a consuming repository."""
    repo, installed, _ = team_repo
    tree = tmp_path / "images"
    result = run(
        repo, "mnist-pipeline", "unpack", "data/tiny/export/png/images.zip", str(tree), extra_env=installed.env()
    )
    assert "81 files" in result.stdout
    assert sorted(p.name for p in (tree / "train").iterdir()) == [str(label) for label in range(10)]


def test_init_into_a_folder_keeps_the_root_dvc_yaml_the_teams(
    team_repo: tuple[Path, Installed, FaultServer], tmp_path: Path
) -> None:
    """`--dir mnist`: the stages live in mnist/dvc.yaml, run from the root, and DVC reads them."""
    _, installed, _ = team_repo
    other = tmp_path / "other"
    other.mkdir()
    (other / "dvc.yaml").write_text(TEAM_DVC_YAML)
    run(other, "git", "init", "-q")
    run(other, "dvc", "init", "-q")
    run(other, "mnist-pipeline", "init", "--dir", "mnist", extra_env=installed.env())
    assert (other / "dvc.yaml").read_text() == TEAM_DVC_YAML
    stages = yaml.safe_load((other / "mnist" / "dvc.yaml").read_text())
    assert stages["vars"] == ["../params.yaml"] and stages["stages"]["check"]["wdir"] == ".."
    listed = run(other, "dvc", "stage", "list", "--all", "--fail", extra_env=installed.env()).stdout
    assert "mnist/dvc.yaml:download@mnist" in listed and "export@mnist-csv" in listed
