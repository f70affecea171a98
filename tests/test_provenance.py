"""The code guard every stage runs first in a team repository: the installed code of a stage
must be what mnist-pipeline.yaml records (no record: this repository tracks module files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mnist_pipeline import provenance
from mnist_pipeline.provenance import CODE_FILE, code_digest, import_closure, package_root, stale_code

MODULE = "mnist_pipeline.export_csv"


def record(tmp_path: Path, code: object) -> Path:
    path = tmp_path / CODE_FILE
    path.write_text(yaml.safe_dump({"version": "0.2.0", "code": code}))
    return path


def test_the_digest_covers_the_import_closure_and_nothing_else(tmp_path: Path) -> None:
    closure = import_closure(MODULE)
    assert {MODULE, "mnist_pipeline.stage", "mnist_pipeline.provenance"} <= closure
    assert "mnist_pipeline.png" not in closure  # the CSV export does not run the PNG encoder
    root = tmp_path / "mnist_pipeline"
    shutil.copytree(package_root(), root, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_digest(MODULE, root)
    (root / "png.py").write_text((root / "png.py").read_text() + "# outside the closure\n")
    assert code_digest(MODULE, root) == before
    (root / "names.py").write_text((root / "names.py").read_text() + "# inside the closure\n")
    assert code_digest(MODULE, root) != before


def test_matching_or_absent_records_let_the_stage_run(tmp_path: Path) -> None:
    assert stale_code(MODULE, tmp_path / CODE_FILE) is None
    assert stale_code(MODULE, record(tmp_path, {"export_csv": code_digest(MODULE)})) is None


def test_other_or_missing_code_stops_the_stage_naming_the_fix(tmp_path: Path) -> None:
    for code in ({"export_csv": "0" * 64}, {"export_npz": code_digest("mnist_pipeline.export_npz")}):
        message = stale_code(MODULE, record(tmp_path, code))
        assert message is not None and "run `mnist-pipeline init --upgrade`" in message and MODULE in message
    (tmp_path / CODE_FILE).write_text("code: [unclosed")
    assert "not valid YAML" in (stale_code(MODULE, tmp_path / CODE_FILE) or "")


@pytest.mark.parametrize(
    ("recorded", "installed", "newer"),
    [
        ("0.3.0", "0.2.0", True),
        ("0.2.1", "0.2.0+g10", True),
        ("0.2.0+g2", "0.2.0+g10", False),  # local labels of one release: not a downgrade
        ("0.2.0", "0.2.0", False),
        ("0.1.9", "0.2.0", False),
        ("9.9", "0+unknown", False),  # a source checkout without metadata: nothing to compare
        ("not a version", "0.2.0", False),
        (None, "0.2.0", False),
    ],
)
def test_a_newer_record_is_told_apart_by_release(
    monkeypatch: pytest.MonkeyPatch, recorded: str | None, installed: str, newer: bool
) -> None:
    monkeypatch.setattr(provenance, "version", lambda: installed)
    found = provenance.newer_recorded_version({"version": recorded})
    assert (found is not None) == newer, found
