"""The loop a team runs every day, in a real git + DVC repository: the quickstart with a local
mirror, experiments that keep every output (also when refused, also when one stage is targeted),
`dvc exp apply`, a queued sweep that does only its own work, and a clean `dvc status` and
`git status` after a full run."""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.params import compose_params
from tests.support.data import TinyDataset, add_tiny_dataset_config, sha256_tree
from tests.support.faultserver import FaultServer, serve
from tests.support.repos import VENV_BIN, make_repo, restore_committed, run

pytestmark = pytest.mark.slow
EXPORT = "data/tiny/export"


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def git_status(repo: Path) -> str:
    return run(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout.rstrip()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, tiny: TinyDataset) -> Iterator[tuple[Path, FaultServer]]:
    """A clone whose committed selection is the tiny dataset; its only mirror is this machine's."""
    repo = make_repo(tmp_path_factory.mktemp("loop") / "repo")
    add_tiny_dataset_config(repo, tiny)  # published mirrors: a folder that does not exist here
    config = repo / "conf/config.yaml"
    config.write_text(config.read_text().replace("  - dataset: [mnist]\n", "  - dataset: [tiny]\n"))
    run(repo, "mnist-pipeline", "params")
    run(repo, "git", "commit", "-q", "-am", "select tiny")
    # The Makefile's venv is this project's (already installed): `make repro` installs nothing.
    (repo / ".venv").symlink_to(VENV_BIN.parent, target_is_directory=True)
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        yield repo, server


def test_quickstart_with_a_mirror_leaves_tracked_files_alone(team: tuple[Path, FaultServer], tmp_path: Path) -> None:
    repo, server = team
    params_before = (repo / "params.yaml").read_bytes()
    # `-o`: the venv is this project's, installed already (its stamp may be older than the locks).
    result = run(repo, "make", "-o", ".venv/.installed", "repro", f"MIRROR={server.url}")
    assert "download@tiny" in stages_run(result.stdout)
    assert (repo / "params.yaml").read_bytes() == params_before
    # The mirror reached the download stage only: no file git or DVC keeps names it.
    for name in run(repo, "git", "ls-files", "--others", "--exclude-standard", "--cached").stdout.split():
        path = repo / name
        if path.is_file() and path.stat().st_size < 1 << 20:
            assert server.url.encode() not in path.read_bytes(), name
    # Only what a user commits after a first run is new: the lock, DVC's ignore entries and the
    # small metrics and plot data DVC keeps in git (cache: false).
    new = {line[3:] for line in git_status(repo).splitlines()}
    assert {name for name in new if not name.endswith(".gitignore")} == {
        "dvc.lock",
        "data/tiny/stats.json",
        "data/tiny/export/class_distribution.csv",
    }
    # What make test checks about params.yaml still holds: it is conf/'s composition.
    composed = tmp_path / "params.yaml"
    compose_params(composed, [], repo / "conf")
    assert composed.read_bytes() == params_before
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "first run")
    assert run(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    assert git_status(repo) == ""


def test_refused_runs_cost_no_output_whichever_stage_starts(team: tuple[Path, FaultServer]) -> None:
    repo, _ = team
    formats = "formats=[npz,csv,png,parquet]"
    run(repo, "dvc", "exp", "run", "-n", "with-parquet", "-S", formats)
    before = sha256_tree(repo / "data")
    assert "export/parquet/train.parquet" in {name.removeprefix("tiny/") for name in before}
    refused = run(repo, "dvc", "exp", "run", "-S", formats, "-S", "export.workers=300", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stdout + refused.stderr
    assert "export.workers: expected 1 to" in refused.stdout + refused.stderr
    assert sha256_tree(repo / "data") == before
    # A targeted run skips the check stage, so the stage reads its view, which only a passing
    # check writes: the bad value never reaches it. Check itself refuses it; nothing changes.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["export"]["workers"] = 2
    params["export"]["npz"]["validation_size"] = 10_000
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    targeted = run(repo, "dvc", "repro", "-s", _stage(repo, "npz"), check=False)
    assert targeted.returncode == 0 and f"Stage '{_stage(repo, 'npz')}' didn't change" in targeted.stdout
    checked = run(repo, "dvc", "repro", "-s", "check", check=False)
    assert checked.returncode != 0 and "expected fewer than the 60 training images" in checked.stderr
    assert sha256_tree(repo / "data") == before
    # README: the last committed state back from the cache, without running anything.
    restore_committed(repo, "params.yaml", "dvc.lock")
    run(repo, "dvc", "checkout", "-q")
    assert (repo / "dvc.lock").read_bytes() == run(repo, "git", "show", "HEAD:dvc.lock").stdout.encode()
    assert run(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


def _stage(repo: Path, export_format: str) -> str:
    """The export stage of ``export_format`` for the tiny dataset, as dvc.yaml names it."""
    names = run(repo, "dvc", "stage", "list", "--name-only").stdout.split()
    matches = [name for name in names if "tiny" in name and export_format in name and "export" in name]
    assert len(matches) == 1, names
    return matches[0]


def test_exp_apply_leaves_a_complete_workspace(team: tuple[Path, FaultServer]) -> None:
    repo, _ = team
    run(repo, "git", "checkout", "-q", "--", ".")
    run(repo, "dvc", "checkout", "-q", "--force")
    run(repo, "dvc", "exp", "apply", "with-parquet")
    assert (repo / EXPORT / "parquet/train.parquet").is_file()
    assert run(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    # The one command that keeps an experiment: commit what exp apply put in the workspace.
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "keep parquet")
    assert git_status(repo) == ""


def test_queued_sweep_runs_only_the_stages_it_changes(team: tuple[Path, FaultServer]) -> None:
    repo, _ = team
    run(repo, "dvc", "exp", "run", "--queue", "-S", "export.npz.scale=unit,standardize", "-S",
        "export.npz.dtype=float32", "-S", "formats=[npz,csv,png,parquet]")  # fmt: skip
    run(repo, "dvc", "queue", "start", "-j", "1")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = run(repo, "dvc", "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        if "Queued" in status and "Running" not in status and "Worker status: 0 active" in status:
            # DVC's worker sometimes exits with an experiment still queued (seen here); a user
            # starts it again, and so does this test (README "The daily loop").
            run(repo, "dvc", "queue", "start", "-j", "1")
        time.sleep(2)
    assert status.count("Success") == 2, status
    for name in re.findall(r"^(\S+)\s+\S+\s+Success", status, re.MULTILINE):
        ran = stages_run(run(repo, "dvc", "queue", "logs", name).stdout)
        assert [stage for stage in ran if stage != "check"] == [_stage(repo, "npz")], (name, ran)
    assert git_status(repo) == ""


def test_the_png_tree_is_opt_in_and_ignored_by_git(team: tuple[Path, FaultServer]) -> None:
    repo, _ = team
    result = run(repo, "dvc", "exp", "run", "-S", "formats=[npz,csv,png,parquet]", "-S", "trees=[png]")
    # The tree, and the report: its card names the tree.
    assert {stage for stage in stages_run(result.stdout) if stage != "check"} == {"unpack@tiny-png", "report@tiny"}
    assert (repo / EXPORT / "images/train").is_dir()
    assert {line[3:] for line in git_status(repo).splitlines()} <= {"params.yaml", "dvc.lock"}


def test_a_tree_left_from_another_zip_shows_in_status(team: tuple[Path, FaultServer]) -> None:
    """Going back to an earlier dvc.lock after an experiment that changed only PNG bytes (same
    names, same manifest): DVC names the unpack stage, and one `dvc repro` makes the tree the
    zip's again."""
    repo, _ = team
    trees = ("-S", "formats=[npz,csv,png,parquet]", "-S", "trees=[png]")
    run(repo, "dvc", "exp", "run", *trees)
    earlier = {name: (repo / name).read_bytes() for name in ("params.yaml", "dvc.lock")}
    run(repo, "dvc", "exp", "run", *trees, "-S", "export.png.invert=true")
    for name, data in earlier.items():
        (repo / name).write_bytes(data)
    run(repo, "dvc", "checkout")
    assert "unpack@tiny-png" in run(repo, "dvc", "status").stdout
    assert stages_run(run(repo, "dvc", "repro").stdout) == ["unpack@tiny-png"]
    with zipfile.ZipFile(repo / EXPORT / "png/images.zip") as archive:
        for member in archive.namelist():
            assert (repo / EXPORT / "images" / member).read_bytes() == archive.read(member), member
    assert "up to date" in run(repo, "dvc", "status").stdout


def test_dvc_s_own_writes_follow_links_as_the_readme_warns(team: tuple[Path, FaultServer], tmp_path: Path) -> None:
    """README "Failure modes": what DVC writes itself is outside what the stages guard. `dvc exp
    apply` restores a cached output through a linked folder before any stage could refuse, and
    `dvc exp run` rewrites a hard-linked params.yaml in place. Should DVC stop doing either,
    this fails, and the README's warning can go."""
    repo, _ = team
    run(repo, "git", "checkout", "-q", "--", ".")
    run(repo, "dvc", "checkout", "-q", "--force")
    decoded = repo / "data/tiny/decoded"
    outside = tmp_path / "outside"
    decoded.rename(outside)
    for path in outside.iterdir():
        path.write_bytes(b"mine")
    decoded.symlink_to(outside, target_is_directory=True)
    run(repo, "dvc", "exp", "apply", "with-parquet")
    assert [path.name for path in outside.iterdir() if path.read_bytes() == b"mine"] == []
    decoded.unlink()
    run(repo, "dvc", "checkout", "-q", "--force")

    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.hardlink_to(repo / "params.yaml")
    before = elsewhere.read_bytes()
    run(repo, "dvc", "exp", "run", "-S", "export.csv.header=false")
    assert elsewhere.read_bytes() != before
    assert elsewhere.read_bytes() == (repo / "params.yaml").read_bytes()
    (repo / "params.yaml").unlink()
    restore_committed(repo, "params.yaml", "dvc.lock")
    run(repo, "dvc", "checkout", "-q", "--force")
    assert run(repo, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
