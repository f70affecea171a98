"""verify stage: the record it writes, and mismatches that stop it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mnist_pipeline import verify
from tests.support.data import TinyDataset, params_for, write_params

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


def stage_raw(tmp_path: Path, archives: dict[str, bytes]) -> Path:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    for name, data in archives.items():
        (raw / name).write_bytes(data)
    return raw


def run_verify(tmp_path: Path, params: dict[str, object], raw: Path) -> tuple[int, Path]:
    record = tmp_path / "data" / "checksums.json"
    return verify.main(
        ["--params", str(write_params(tmp_path, params)), "--dataset", "mnist", str(raw), str(record)]
    ), record


def test_records_expected_actual_and_verdict(tmp_path: Path, tiny: TinyDataset) -> None:
    code, record = run_verify(tmp_path, params_for(tiny, ["unused"]), stage_raw(tmp_path, tiny.archives))
    assert code == 0
    document = json.loads(record.read_text())
    assert document["mode"] == "strict"
    for entry in document["archives"]:
        assert entry["passed"] == "archive"
        published = {key: value for key, value in entry["expected"].items() if value is not None}
        assert published == {key: entry["actual"][key] for key in published}
        # Digests no source publishes are recorded as measured, and not checked.
        assert entry["expected"]["payload_md5"] is None and len(entry["actual"]["payload_md5"]) == 32


def test_mismatch_fails_naming_file_expected_and_found(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    archives = dict(tiny.archives)
    archives[TRAIN_IMAGES] = archives[TRAIN_IMAGES][:-1] + bytes([archives[TRAIN_IMAGES][-1] ^ 1])
    code, record = run_verify(tmp_path, params_for(tiny, ["unused"]), stage_raw(tmp_path, archives))
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    expected = tiny.splits_spec["train"]["images"]["sha256"]
    assert TRAIN_IMAGES in line and f"expected sha256 {expected}, found " in line
    assert not record.exists()


def test_payload_mode_records_which_check_passed(tmp_path: Path, tiny: TinyDataset) -> None:
    archives = dict(tiny.archives)
    archives[TRAIN_IMAGES] = gzip.compress(gzip.decompress(archives[TRAIN_IMAGES]), compresslevel=1, mtime=1)
    raw = stage_raw(tmp_path, archives)
    assert run_verify(tmp_path / "data" / "strict", params_for(tiny, ["unused"]), raw)[0] == 1
    code, record = run_verify(tmp_path, params_for(tiny, ["unused"], verify={"archive": "payload"}), raw)
    assert code == 0
    verdicts = {entry["file"]: entry["passed"] for entry in json.loads(record.read_text())["archives"]}
    assert verdicts[TRAIN_IMAGES] == "payload"
    assert {v for k, v in verdicts.items() if k != TRAIN_IMAGES} == {"archive"}


def test_missing_archive_is_one_line(tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]) -> None:
    archives = {k: v for k, v in tiny.archives.items() if k != TRAIN_IMAGES}
    code, _ = run_verify(tmp_path, params_for(tiny, ["unused"]), stage_raw(tmp_path, archives))
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("verify@mnist: error: ") and TRAIN_IMAGES in line and "No such file" in line
