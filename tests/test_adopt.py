"""Adoption in a team's repository, as the README's "Use it in your repo" section does it: a fresh
git + DVC repository with its own `pipeline/` package and a stage of its own, this project
installed from a wheel built from the working tree, `mnist-pipeline init`, `dvc exp run`; then
a second installed version whose CSV export code changed re-runs exactly that stage (slow).
Fast tests: init writes nothing through a symbolic link, and an upgrade replaces only the
pipeline's block of stages, every byte of the team's dvc.yaml kept."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.utils.serialize import parse_yaml

from mnist_pipeline import adopt, cli
from mnist_pipeline.adopt import BLOCK_BEGIN, BLOCK_END, AdoptError, apply, plan, team_stages
from mnist_pipeline.provenance import CODE_FILE, stale_code, version
from mnist_pipeline.tree import GITIGNORE
from mnist_pipeline.treemark import MARKER
from tests.support.data import TinyDataset, add_tiny_dataset_config, sha256_tree, snapshot
from tests.support.faultserver import FaultServer, serve
from tests.support.repos import PROJECT_ROOT, project_files, restore_committed, run

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
        run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", "trees=[png]", extra_env=installed.env())
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-q", "-m", "built")
        yield repo, installed, server


@pytest.mark.slow
def test_init_adds_the_pipeline_beside_the_teams_own(team_repo: tuple[Path, Installed, FaultServer]) -> None:
    repo, _, _ = team_repo
    text = (repo / "dvc.yaml").read_text()
    assert text.startswith(TEAM_DVC_YAML)  # the team's stage and comment, byte for byte, first
    stages = yaml.safe_load(text)["stages"]
    assert {"check", "download", "unpack", "report"} <= set(stages)
    assert any(name.startswith("export") for name in stages)
    assert (repo / "pipeline" / "train.py").read_text() == TEAM_TRAIN
    ignore = (repo / ".gitignore").read_text().splitlines()
    assert ignore[:2] == ["/model.txt", "*.log"] and "/data/*/export/images/" in ignore
    assert run(repo, "git", "status", "--porcelain").stdout.strip() == ""


@pytest.mark.slow
def test_exports_are_built_and_the_teams_stage_uses_them(team_repo: tuple[Path, Installed, FaultServer]) -> None:
    repo, _, _ = team_repo
    assert (repo / "model.txt").read_text() == "trained on 60 images\n"
    for relative in ("npz/tiny.npz", "csv/train.csv", "png/images.zip", "images/train/0", "README.md"):
        assert (repo / "data/tiny/export" / relative).exists(), relative
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "export_csv@tiny" in lock and "train" in lock
    # The tree carries its marker and ignore file, and DVC still tracks it through the manifest.
    tree = repo / "data/tiny/export/images"
    assert (tree / MARKER).is_file() and (tree / GITIGNORE).read_text().endswith("*\n")
    assert "unpack@tiny-png" not in run(repo, "dvc", "status").stdout


@pytest.mark.slow
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


def without_views(tree: dict[str, str]) -> dict[str, str]:
    return {name: digest for name, digest in tree.items() if not name.startswith("params/")}


@pytest.mark.slow
def test_an_upgrade_reruns_exactly_the_stages_whose_code_changed(
    team_repo: tuple[Path, Installed, FaultServer], tmp_path: Path
) -> None:
    repo, _, _ = team_repo
    before = (repo / "dvc.yaml").read_text()
    up_to_date = "Data and pipelines are up to date."
    assert run(repo, "dvc", "status").stdout.strip() == up_to_date  # nothing always_changed
    outputs = sha256_tree(repo / "data")
    upgraded = install_version(tmp_path, "v2", edit="\n# a change to the CSV export's code\n")
    # Nothing is stale to DVC: the outputs are what the recorded code made.
    assert run(repo, "dvc", "status", extra_env=upgraded.env()).stdout.strip() == up_to_date
    # A stage that would run with code the repository does not record refuses, and costs no output.
    overrides = ["-S", "dataset=tiny", "-S", "trees=[png]", "-S", "export.csv.header=false"]
    stale = run(repo, "dvc", "exp", "run", *overrides, check=False, extra_env=upgraded.env())
    assert stale.returncode != 0
    assert "run `mnist-pipeline init --upgrade`" in stale.stdout + stale.stderr
    # check passed and wrote the views of that composition; every data output is untouched.
    assert without_views(sha256_tree(repo / "data")) == without_views(outputs)
    assert json.loads((repo / "data" / "params" / "tiny.json").read_text())["export"]["csv"]["header"] is False
    restore_committed(repo, "params.yaml", "dvc.lock")  # the refused run recorded check
    run(repo, "mnist-pipeline", "init", "--upgrade", extra_env=upgraded.env())
    result = run(repo, "dvc", "repro", extra_env=upgraded.env())
    ran = [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")]
    # check again (its views are not those dvc.lock records), then the upgraded stage only
    assert ran == ["check", "export_csv@tiny"]
    # The views hold the committed params again, and the upgraded code's digests.
    view = json.loads((repo / "data" / "params" / "tiny.json").read_text())
    record = yaml.safe_load((repo / "mnist-pipeline.yaml").read_text())
    assert view["export"]["csv"]["header"] is True and view["code"]["export_csv"] == record["code"]["export_csv"]
    assert "0.2.1" in (repo / "mnist-pipeline.yaml").read_text()
    assert without_block((repo / "dvc.yaml").read_text()) == without_block(before)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "upgraded")
    assert run(repo, "dvc", "status", extra_env=upgraded.env()).stdout.strip() == up_to_date
    assert run(repo, "git", "status", "--porcelain").stdout.strip() == ""


@pytest.mark.slow
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
    # Inside a repository, the tree never reaches `git add -A`.
    run(repo, "mnist-pipeline", "unpack", "data/tiny/export/png/images.zip", "png-tree", extra_env=installed.env())
    assert run(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout.strip() == ""
    shutil.rmtree(repo / "png-tree")


@pytest.mark.slow
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
    assert "mnist/dvc.yaml:download@mnist" in listed
    assert "export_csv@mnist" in listed


# fast: nothing written through a link; upgrades replace only the pipeline's block ------------

TEAM_CRLF = (
    "# The team's pipeline: CRLF, four-space indentation, anchors; every byte must survive.\r\n"
    "stages:   # a comment on the key\r\n"
    "    prep: &base\r\n"
    "        cmd: python   prep.py    # odd spacing, kept\r\n"
    "        deps:\r\n"
    "          - prep.py\r\n"
    "        outs: [prepared.txt]\r\n"
    "\r\n"
    "    # a comment between the team's stages\r\n"
    "    prep_again:\r\n"
    "        <<: *base\r\n"
    "        outs: [prepared_again.txt]\r\n"
    "plots:\r\n"
    "    - prepared.txt\r\n"
)
TEAM_AFTER_OURS = "    train:\r\n        cmd: python train.py   \r\n        deps: [prepared.txt]\r\n"


def without_block(text: str) -> str:
    """``text`` without the pipeline's block (the marker lines and what lies between them)."""
    lines = text.splitlines(keepends=True)
    begin = next(i for i, line in enumerate(lines) if line.strip() == BLOCK_BEGIN)
    end = next(i for i, line in enumerate(lines) if line.strip() == BLOCK_END)
    return "".join(lines[:begin] + lines[end + 1 :])


def fake_repo(root: Path) -> Path:
    """What plan() checks of a git + DVC repository (no tools run)."""
    (root / ".git").mkdir(parents=True)
    (root / ".dvc").mkdir()
    return root


def adopt_then_upgrade(repo: Path, monkeypatch: pytest.MonkeyPatch, edit_team: Callable[[str], str]) -> tuple[str, str]:
    """Init, let the team edit dvc.yaml, then upgrade to a version whose check stage changed;
    the dvc.yaml text before and after the upgrade."""
    apply(plan(repo, ".", upgrade=False))
    (repo / "dvc.yaml").write_bytes(edit_team((repo / "dvc.yaml").read_bytes().decode()).encode())
    before = (repo / "dvc.yaml").read_bytes().decode()
    original = adopt.source_stages()
    changed: dict[str, Any] = {**original, "check": {**original["check"], "cmd": original["check"]["cmd"] + " --v2"}}
    monkeypatch.setattr(adopt, "source_stages", lambda: changed)
    apply(plan(repo, ".", upgrade=True))
    return before, (repo / "dvc.yaml").read_bytes().decode()


def test_upgrade_keeps_every_byte_of_the_teams_dvc_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = fake_repo(tmp_path)
    (repo / "dvc.yaml").write_bytes(TEAM_CRLF.encode())

    def add_stage_after_ours(text: str) -> str:
        assert without_block(text) == TEAM_CRLF  # adoption only inserted the block
        marker = f"    {BLOCK_END}\r\n"
        return text.replace(marker, marker + TEAM_AFTER_OURS)

    before, after = adopt_then_upgrade(repo, monkeypatch, add_stage_after_ours)
    assert after != before and without_block(after) == without_block(before)
    assert "\n" not in after.replace("\r\n", "")  # the block took the file's line endings
    loaded = parse_yaml(after, "dvc.yaml")  # as DVC reads it
    assert list(loaded["stages"])[:2] == ["prep", "prep_again"] and "train" in loaded["stages"]
    assert loaded["stages"]["prep_again"]["cmd"] == "python   prep.py"
    assert loaded["stages"]["check"]["cmd"].endswith(" --v2")


def test_upgrade_of_a_file_adopted_before_the_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Older versions appended the stages without markers: the upgrade replaces those entries."""
    repo = fake_repo(tmp_path)
    stages = team_stages(adopt.source_stages(), None)
    appended = yaml.safe_dump({"stages": stages}, sort_keys=False, width=120).split("\n", 1)[1]
    team_after = "  evaluate:   # the team's, after ours\n    cmd: python   evaluate.py\n\n# closing comment\n"
    (repo / "dvc.yaml").write_text(TEAM_DVC_YAML + appended + team_after)
    (repo / "mnist-pipeline.yaml").write_text("version: 0.1.0\ncode: {}\n")
    apply(plan(repo, ".", upgrade=True))
    after = (repo / "dvc.yaml").read_text()
    assert without_block(after) == TEAM_DVC_YAML + team_after
    assert set(parse_yaml(after, "dvc.yaml")["stages"]) == {"train", "evaluate", *stages}


def test_init_appends_a_stages_section_and_vars_in_a_folder(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path)
    (repo / "mnist").mkdir()
    (repo / "mnist" / "dvc.yaml").write_text("# theirs\nplots:\n  - x.csv\n")
    apply(plan(repo, "mnist", upgrade=False))
    text = (repo / "mnist" / "dvc.yaml").read_text()
    assert text.startswith("# theirs\nplots:\n  - x.csv\n")
    loaded = parse_yaml(text, "mnist/dvc.yaml")
    assert loaded["vars"] == ["../params.yaml"] and loaded["stages"]["check"]["wdir"] == ".."


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("stages: {train: {cmd: x}}\n", "expected `stages:` in block style"),
        (f"stages:\n  {BLOCK_BEGIN}\n  train:\n    cmd: x\n", "expected one line .* and then one"),
    ],
    ids=["flow-style", "lost-end-marker"],
)
def test_a_dvc_yaml_init_cannot_edit_as_text_is_refused(tmp_path: Path, text: str, match: str) -> None:
    repo = fake_repo(tmp_path)
    (repo / "dvc.yaml").write_text(text)
    with pytest.raises(AdoptError, match=match):
        plan(repo, ".", upgrade=False)


def outside_folder(repo: Path) -> Path:
    outside = repo.parent / "outside"
    outside.mkdir(exist_ok=True)
    return outside


@pytest.mark.parametrize(
    ("plant", "args"),
    [
        (lambda repo: (repo / "conf").symlink_to(outside_folder(repo)), []),
        (lambda repo: ((repo / "conf").mkdir(), (repo / "conf" / "dataset").symlink_to(outside_folder(repo))), []),
        (lambda repo: (repo / "params.yaml").symlink_to(outside_folder(repo) / "params.yaml"), []),
        (lambda repo: (repo / "dvc.yaml").symlink_to(outside_folder(repo) / "dvc.yaml"), []),
        (lambda repo: (repo / ".gitignore").symlink_to(outside_folder(repo) / "ignore"), []),
        (lambda repo: (repo / "mnist-pipeline.yaml").symlink_to(outside_folder(repo) / "code.yaml"), []),
        (lambda repo: (repo / "sub").symlink_to(outside_folder(repo)), ["--dir", "sub"]),
    ],
    ids=["conf", "conf-dataset", "dangling-params", "dvc-yaml", "gitignore", "code-file", "dir"],
)
def test_init_writes_nothing_through_a_link(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    plant: Callable[[Path], object],
    args: list[str],
) -> None:
    repo = fake_repo(tmp_path / "repo")
    plant(repo)
    before = snapshot(tmp_path)
    monkeypatch.chdir(repo)
    assert cli.main(["init", *args]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mnist-pipeline: error: ") and "expected no symbolic link on the way" in line, line
    assert snapshot(tmp_path) == before


def test_init_refuses_a_hard_linked_dvc_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dvc config` rewrites .dvc/config in place: with a second name, the other file would change."""
    repo = fake_repo(tmp_path / "repo")
    shared = outside_folder(repo) / "config"
    shared.write_text("[core]\n    autostage = true\n")
    (repo / ".dvc" / "config").unlink(missing_ok=True)
    (repo / ".dvc" / "config").hardlink_to(shared)
    before = snapshot(tmp_path)
    monkeypatch.chdir(repo)
    assert cli.main(["init"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mnist-pipeline: error: ") and "found a hard link (2 names)" in line, line
    assert snapshot(tmp_path) == before


def test_planted_temporary_file_links_are_not_followed(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path / "repo")
    victim = outside_folder(repo) / "victim"
    victim.write_text("untouched")
    (repo / ".dvc.yaml.init-tmp").symlink_to(victim)
    apply(plan(repo, ".", upgrade=False))
    assert victim.read_text() == "untouched"
    assert not (repo / "dvc.yaml").is_symlink() and BLOCK_BEGIN in (repo / "dvc.yaml").read_text()


@pytest.mark.slow
def test_dvc_reads_the_merged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CRLF, anchors and team-stage-after-ours file, adopted and upgraded, as DVC lists it."""
    repo = tmp_path / "team"
    repo.mkdir()
    run(repo, "git", "init", "-q")
    run(repo, "dvc", "init", "-q")
    (repo / "dvc.yaml").write_bytes(TEAM_CRLF.encode())
    adopt_then_upgrade(
        repo, monkeypatch, lambda text: text.replace(f"    {BLOCK_END}\r\n", f"    {BLOCK_END}\r\n{TEAM_AFTER_OURS}")
    )
    (repo / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    listed = run(repo, "dvc", "stage", "list", "--all", "--fail").stdout
    for stage in ("prep", "prep_again", "train", "check", "download@mnist", "report@mnist"):
        assert f"\n{stage} " in f"\n{listed}" or listed.startswith(f"{stage} "), (stage, listed)


def real_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git + DVC repository to adopt the pipeline in, as the working directory."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(repo, "git", "init", "-q")
    run(repo, "dvc", "init", "-q")
    monkeypatch.chdir(repo)
    return repo


def with_conf_changed(monkeypatch: pytest.MonkeyPatch, name: str, edit: Callable[[bytes], bytes]) -> None:
    """A newer version of the package whose conf/``name`` is ``edit`` of this one's."""
    original = list(adopt.conf_files())
    changed = [(path, edit(content) if path.as_posix() == name else content) for path, content in original]
    monkeypatch.setattr(adopt, "conf_files", lambda: iter(changed))


def test_an_upgrade_keeps_conf_files_the_team_edited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: choices that should persist belong in conf/. An upgrade keeps such a file, silently
    when this version's copy is the one init wrote, named when it changed too, and updates the
    rest; adoption over a file of the team's is still refused."""
    repo = fake_repo(tmp_path)
    apply(plan(repo, None, upgrade=False))
    config = repo / "conf" / "config.yaml"
    edited = config.read_bytes().replace(b"formats: [npz, csv, png]", b"formats: [npz, csv, png, parquet]")
    assert edited != config.read_bytes()
    config.write_bytes(edited)
    actions = {item.path.relative_to(repo).as_posix(): item.action for item in plan(repo, None, upgrade=True)}
    assert actions["conf/config.yaml"] == "kept"
    with_conf_changed(monkeypatch, "config.yaml", lambda text: text + b"# new in this version\n")
    with_conf_changed(monkeypatch, "dataset/mnist.yaml", lambda text: text + b"# a new mirror, say\n")
    planned = plan(repo, None, upgrade=True)
    actions = {item.path.relative_to(repo).as_posix(): item.action for item in planned}
    assert actions["conf/config.yaml"] == "differs" and actions["conf/dataset/mnist.yaml"] == "update"
    apply(planned)
    assert config.read_bytes() == edited
    assert (repo / "conf" / "dataset" / "mnist.yaml").read_bytes().endswith(b"# a new mirror, say\n")
    # Named again by every upgrade until the team merges it (edits it), then kept silently.
    planned = plan(repo, None, upgrade=True)
    assert {item.path.name: item.action for item in planned}["config.yaml"] == "differs"
    apply(planned)
    config.write_bytes(edited + b"# new in this version\n")  # the hand merge
    assert {item.path.name: item.action for item in plan(repo, None, upgrade=True)}["config.yaml"] == "kept"


def test_an_upgrade_with_nothing_new_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = real_repo(tmp_path, monkeypatch)
    cli.init(repo, None, upgrade=False)
    before = snapshot(repo)
    assert cli.init(repo, None, upgrade=True) == "wrote nothing new; commit, then `dvc repro`"
    assert snapshot(repo) == before


def test_an_upgrade_finds_the_folder_init_put_the_stages_in(tmp_path: Path) -> None:
    """Adopted with --dir: `init --upgrade` (what every refusing stage says to run) upgrades that
    folder's dvc.yaml, not the team's root one, and refuses another folder by name."""
    repo = fake_repo(tmp_path)
    (repo / "dvc.yaml").write_text(TEAM_DVC_YAML)
    apply(plan(repo, "mnist", upgrade=False))
    assert yaml.safe_load((repo / "mnist-pipeline.yaml").read_text())["dir"] == "mnist"
    planned = plan(repo, None, upgrade=True)
    assert [item.path for item in planned if item.path.name == "dvc.yaml"] == [repo / "mnist" / "dvc.yaml"]
    apply(planned)
    assert (repo / "dvc.yaml").read_text() == TEAM_DVC_YAML
    with pytest.raises(AdoptError, match=r"--dir \.: expected mnist, where .*mnist-pipeline\.yaml records"):
        plan(repo, ".", upgrade=True)
    # A record from before the folder was recorded: the root dvc.yaml holds none of the stages.
    record = yaml.safe_load((repo / "mnist-pipeline.yaml").read_text())
    del record["dir"]
    (repo / "mnist-pipeline.yaml").write_text(yaml.safe_dump(record))
    with pytest.raises(AdoptError, match=r"dvc\.yaml: holds none of the pipeline's stages to upgrade; .* --dir"):
        plan(repo, None, upgrade=True)
    assert (repo / "dvc.yaml").read_text() == TEAM_DVC_YAML


@pytest.mark.parametrize("params_yaml", ["composed", "experiment", "invalid"])
def test_an_upgrade_recomposes_params_yaml_that_followed_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params_yaml: str
) -> None:
    """The stages read params.yaml: a conf change an upgrade brings (a mirror, a digest) reaches
    it when it was conf/'s composition; one holding an applied experiment's choices, or broken,
    is kept, and the command says which and how to compose it."""
    repo = real_repo(tmp_path, monkeypatch)
    assert "then `dvc repro` (or" in cli.init(repo, None, upgrade=False)
    params = repo / "params.yaml"
    if params_yaml == "experiment":
        params.write_text(params.read_text().replace("header: true", "header: false"))
    if params_yaml == "invalid":
        params.write_text(params.read_text() + "report: [unclosed\n")
    before = params.read_text()
    with_conf_changed(monkeypatch, "dataset/mnist.yaml", lambda text: text.replace(b"title: ", b"title: Upgraded "))
    message = cli.init(repo, None, upgrade=True)
    if params_yaml == "composed":
        assert yaml.safe_load(params.read_text())["datasets"]["mnist"]["title"].startswith("Upgraded ")
        assert "params.yaml (composed from the new conf/)" in message
        return
    assert params.read_text() == before
    why = "is not valid YAML" if params_yaml == "invalid" else "is not conf/'s composition (an applied experiment?)"
    assert f"kept params.yaml, which {why}: `dvc exp run` composes conf/" in message


def test_an_upgrade_that_stopped_before_composing_says_so_when_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Conf written, params.yaml not yet composed (a Ctrl-C, a full disk): run again, the upgrade
    has no conf file left to write, and still says params.yaml is not conf/'s composition."""
    repo = real_repo(tmp_path, monkeypatch)
    cli.init(repo, None, upgrade=False)
    with_conf_changed(monkeypatch, "dataset/mnist.yaml", lambda text: text.replace(b"title: ", b"title: Upgraded "))
    apply(plan(repo, None, upgrade=True))  # what a stopped upgrade wrote
    message = cli.init(repo, None, upgrade=True)
    assert "kept params.yaml, which is not conf/'s composition" in message


def test_a_record_edited_into_another_shape_is_one_line(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path)
    apply(plan(repo, None, upgrade=False))
    record = yaml.safe_load((repo / "mnist-pipeline.yaml").read_text())
    (repo / "mnist-pipeline.yaml").write_text(yaml.safe_dump({**record, "files": ["conf/config.yaml"]}))
    with pytest.raises(AdoptError, match=r"mnist-pipeline\.yaml: files: expected a mapping of conf files to sha256"):
        plan(repo, None, upgrade=True)


def test_init_into_a_folder_says_to_run_every_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DVC without targets runs the dvc.yaml of the folder it is in: the root one is the team's."""
    repo = real_repo(tmp_path, monkeypatch)
    (repo / "dvc.yaml").write_text(TEAM_DVC_YAML)
    assert cli.init(repo, "mnist", upgrade=False).endswith(
        "; then `dvc repro -P` (or `dvc exp run -P -S dataset=...`) and commit"
    )
    # And so does every stage asking for the upgrade (the record names the folder).
    (repo / "mnist-pipeline.yaml").write_text(
        (repo / "mnist-pipeline.yaml").read_text().replace("export_csv: ", "export_csv: 0")
    )
    stale = stale_code("mnist_pipeline.export_csv", repo / "mnist-pipeline.yaml")
    assert stale is not None and stale.endswith("run `mnist-pipeline init --upgrade`, commit, then `dvc repro -P`")


def test_a_repository_recorded_by_a_newer_version_says_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A teammate upgraded and committed; this machine pulled before installing the new version.
    Every stage and `init --upgrade` say to install it: an upgrade would downgrade the repository."""
    repo = fake_repo(tmp_path)
    apply(plan(repo, None, upgrade=False))
    record = yaml.safe_load((repo / CODE_FILE).read_text())
    record["version"] = "99.0"
    record["code"]["export_csv"] = "0" * 64
    (repo / CODE_FILE).write_text(yaml.safe_dump(record))
    before = snapshot(repo)
    newer = f"expected a record of mnist-pipeline {version()} (installed) or older, found 99.0; install"
    with pytest.raises(AdoptError, match=rf"^{re.escape(f'{repo / CODE_FILE}: {newer}')} .*older files\)$"):
        plan(repo, None, upgrade=True)
    assert snapshot(repo) == before
    message = stale_code("mnist_pipeline.export_csv", repo / CODE_FILE)
    assert message is not None and message.startswith(f"{repo / CODE_FILE}: {newer} ")
    assert "init --upgrade" not in message


@pytest.mark.parametrize("folder", ["conf", "./conf/mnist", "data", "data/pipeline", "sub/../conf"])
def test_stages_inside_conf_or_data_are_refused(tmp_path: Path, folder: str) -> None:
    """check depends on conf/ (a dvc.lock there would re-run it on every run); the stages replace data/."""
    repo = fake_repo(tmp_path)
    expected = rf"^--dir {re.escape(folder)}: expected a folder outside conf/ and data/, found one inside$"
    with pytest.raises(AdoptError, match=expected):
        plan(repo, folder, upgrade=False)
    assert sorted(path.name for path in repo.iterdir()) == [".dvc", ".git"]


@pytest.mark.parametrize(
    ("folder", "found"), [(".git", "inside .git/"), (".dvc", "inside .dvc/"), ("a/.hidden", "inside .hidden/")]
)
def test_stages_inside_git_dvc_or_a_hidden_folder_are_refused(tmp_path: Path, folder: str, found: str) -> None:
    repo = fake_repo(tmp_path)
    before = snapshot(repo)
    with pytest.raises(
        AdoptError,
        match=rf"^--dir {re.escape(folder)}: expected a folder of the repository's own, found one {re.escape(found)}$",
    ):
        plan(repo, folder, upgrade=False)
    assert snapshot(repo) == before


@pytest.mark.parametrize("folder", ["vendor/other", "vendor/other/pipeline"])
def test_stages_inside_a_nested_repository_are_refused(tmp_path: Path, folder: str) -> None:
    """A submodule's working tree (or a DVC subdir project) is another repository's: its dvc.yaml
    is not this one's."""
    repo = fake_repo(tmp_path)
    (repo / "vendor" / "other" / (".dvc" if folder.endswith("pipeline") else ".git")).mkdir(parents=True)
    before = snapshot(repo)
    with pytest.raises(AdoptError, match=rf"found {re.escape(str(repo / 'vendor' / 'other'))}, another repository"):
        plan(repo, folder, upgrade=False)
    assert snapshot(repo) == before


def test_an_upgrade_checks_the_recorded_folder_too(tmp_path: Path) -> None:
    """The record is a tracked file anyone can edit: its ``dir`` gets the same rules as --dir."""
    repo = fake_repo(tmp_path)
    (repo / CODE_FILE).write_text(yaml.safe_dump({"version": version(), "dir": ".git"}))
    before = snapshot(repo)
    with pytest.raises(
        AdoptError, match=rf"^{re.escape(str(repo / CODE_FILE))}: dir: \.git: expected a folder of the repository's own"
    ):
        plan(repo, None, upgrade=True)
    assert snapshot(repo) == before
