"""The check stage: conf/ may not ask DVC to resolve values of this machine (a secret in the
environment would reach params.yaml, dvc.lock and the exports); plain interpolations stay."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from mnist_pipeline import check, verify, views
from tests.support.data import default_params, write_params
from tests.support.repos import PROJECT_ROOT

#: The check stage reads the conf/ params.yaml was composed from; these tests use the shipped one.
SHIPPED_CONF = ["--conf", str(PROJECT_ROOT / "conf")]


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    copied = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", copied)
    return copied


@pytest.mark.parametrize("call", ["${oc.env:MIRROR_TOKEN}", "${ oc.decode:${x}}", "${env:HOME}"])
def test_a_resolver_call_in_conf_is_refused_without_its_value(
    tmp_path: Path, conf: Path, call: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = conf / "dataset" / "mnist.yaml"
    dataset.write_text(dataset.read_text() + f"homepage: {call}\n")
    params = write_params(tmp_path / "p", default_params())
    views = tmp_path / "data" / "views"
    assert check.main(["--params", str(params), "--conf", str(conf), str(views)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"check: error: {dataset}:") and "mnist-pipeline.local.yaml" in err
    assert "\n" not in err and "MIRROR_TOKEN" not in err and not views.exists()


def test_plain_interpolations_pass(tmp_path: Path, conf: Path) -> None:
    config = conf / "config.yaml"
    config.write_text(config.read_text() + "note: ${export.workers}\n")
    params = write_params(tmp_path / "p", default_params())
    views = tmp_path / "data" / "views"
    assert check.main(["--params", str(params), "--conf", str(conf), str(views)]) == 0
    assert sorted(view.name for view in views.iterdir()) == ["mnist", "mnist.json"]


def test_a_missing_conf_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = write_params(tmp_path / "p", default_params())
    views = tmp_path / "data" / "views"
    assert check.main(["--params", str(params), "--conf", str(tmp_path / "nowhere"), str(views)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"check: error: {tmp_path / 'nowhere'}: expected the folder params.yaml is composed from, found none"
    assert not views.exists()


@pytest.mark.parametrize("linked", ["data", "data/params", "data/mnist", "data/mnist/export"])
def test_a_linked_output_folder_stops_the_first_stage(
    tmp_path: Path, linked: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Path(linked).parent.mkdir(parents=True, exist_ok=True)
    Path(linked).symlink_to(elsewhere, target_is_directory=True)
    params = write_params(tmp_path / "p", default_params())
    code = check.main(["--params", str(params), "--conf", str(PROJECT_ROOT / "conf"), "data/params"])
    assert code == 1
    # On the way to check's own output, or to a folder a later stage writes: refused by check.
    (err,) = capsys.readouterr().err.strip().splitlines()
    found = f"found {tmp_path / linked} -> {elsewhere}; refusing to write through it"
    assert err.startswith("check: error: data/") and err.endswith(f": expected no symbolic link on the way, {found}")
    assert list(elsewhere.iterdir()) == []


def test_a_stage_without_its_view_names_the_check_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stage started by hand (or by `dvc repro -s` in a fresh clone) before check wrote the
    views: one line naming what to run, nothing created. In a repository that only imports the
    data (no conf/), what to run is the adoption."""
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset", "mnist", "data/mnist/raw", "data/mnist/checksums.json"]
    assert verify.main(argv) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "verify@mnist: error: data/params/mnist.json: not found, nor the conf/ the check stage writes it from: "
        "run from the repository's root, or adopt the pipeline there first with `mnist-pipeline init`"
    )
    (tmp_path / "conf").mkdir()
    assert verify.main(argv) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "verify@mnist: error: data/params/mnist.json: not found; the check stage writes it for each dataset of "
        "params.yaml: run `dvc repro` (or select the dataset with -S dataset=...)"
    )
    assert [path.name for path in tmp_path.iterdir()] == ["conf"]


def test_a_code_key_in_params_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``code`` is one of the keys check writes into the views; a params.yaml setting it would be
    overwritten."""
    raw = default_params()
    raw["code"] = {"export_csv": "0" * 64}
    views = tmp_path / "data" / "views"
    assert check.main([*SHIPPED_CONF, "--params", str(write_params(tmp_path / "p", raw)), str(views)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "check: error: code: expected no such key in params.yaml; check writes it into the views"
    assert not views.exists()


def test_a_hand_edited_view_that_is_not_json_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert check.main([*SHIPPED_CONF, "--params", str(write_params(tmp_path, default_params())), "data/params"]) == 0
    Path("data/params/mnist.json").write_text("{not json")
    capsys.readouterr()
    assert verify.main(["--dataset", "mnist", "data/mnist/raw", "data/mnist/checksums.json"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("verify@mnist: error: data/params/mnist.json: not valid JSON: ")
    assert not Path("data/mnist").exists()


def test_a_view_recording_other_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module edited after check wrote the views, then a targeted `dvc repro -s`: the stage
    would run code its dvc.lock entry does not record, so it refuses and writes nothing."""
    monkeypatch.chdir(tmp_path)
    assert check.main([*SHIPPED_CONF, "--params", str(write_params(tmp_path, default_params())), "data/params"]) == 0
    view = Path("data/params/mnist.json")
    recorded = json.loads(view.read_text())
    recorded["code"]["verify"] = "0" * 64
    view.write_text(json.dumps(recorded))
    capsys.readouterr()
    assert verify.main(["--dataset", "mnist", "data/mnist/raw", "data/mnist/checksums.json"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "verify@mnist: error: data/params/mnist.json: records other code for mnist_pipeline.verify than this "
        "checkout runs (edited since the check stage wrote it); run `dvc repro` (or `dvc repro check` first)"
    )
    assert not Path("data/mnist").exists()


@pytest.mark.parametrize("edit", ["changed", "deleted"])
def test_a_tracked_file_that_disagrees_with_the_view_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], edit: str
) -> None:
    """DVC records the stage's tracked file and the stage reads its view: a hand edit of one of
    them (or a checkout of only one) would make dvc.lock record values the stage did not run with."""
    monkeypatch.chdir(tmp_path)
    assert check.main([*SHIPPED_CONF, "--params", str(write_params(tmp_path, default_params())), "data/params"]) == 0
    tracked = views.tracked_file("mnist", "verify")
    if edit == "changed":
        tracked.write_text(json.dumps({**json.loads(tracked.read_text()), "verify.archive": "payload"}))
    else:
        tracked.unlink()
    capsys.readouterr()
    assert verify.main(["--dataset", "mnist", "data/mnist/raw", "data/mnist/checksums.json"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    found = "other values" if edit == "changed" else "no file"
    assert line == (
        f"verify@mnist: error: data/params/mnist/verify.json: expected the values of data/params/mnist.json the "
        f"verify stage reads, found {found} (edited by hand?); run `dvc repro` (or `dvc checkout data/params`)"
    )
    assert not Path("data/mnist").exists()


def test_a_non_finite_value_under_a_free_form_key_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = default_params()
    raw["export"]["formats"]["npz"] = {"note": math.nan}
    views = tmp_path / "data" / "views"
    assert check.main([*SHIPPED_CONF, "--params", str(write_params(tmp_path / "p", raw)), str(views)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("check: error: ") and "expected finite numbers, found Out of range float values" in line
    assert not views.exists()


def test_reordered_splits_change_their_digest() -> None:
    """stats.json, the card and the report list splits in their configured order."""
    splits = default_params()["datasets"]["mnist"]["splits"]
    reordered = dict(reversed(list(splits.items())))
    assert views.fact_digest(reordered) != views.fact_digest(splits)
    assert views.fact_digest(dict(splits)) == views.fact_digest(splits)
