"""conf/ is the one source: params.yaml must equal its composition, and bad params are
rejected before any work with the key, what was expected and what was found."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.errors import MissingConfigException

from pipeline import download
from pipeline.config import load_params, params_from_dict
from pipeline.errors import ConfigError
from pipeline.params import compose_params
from tests.conftest import committed_params, write_params
from tests.faultserver import FaultServer, serve
from tests.repos import PROJECT_ROOT


def composed(tmp_path: Path, *overrides: str) -> dict[str, Any]:
    out = tmp_path / "params.yaml"
    compose_params(out, list(overrides), PROJECT_ROOT / "conf")
    loaded: dict[str, Any] = yaml.safe_load(out.read_text())
    return loaded


def test_committed_params_equal_the_composition_of_conf(tmp_path: Path) -> None:
    out = tmp_path / "params.yaml"
    compose_params(out, [], PROJECT_ROOT / "conf")
    assert out.read_text() == (PROJECT_ROOT / "params.yaml").read_text(), "run `make params` and commit params.yaml"


def test_committed_params_are_valid() -> None:
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert list(params.export.formats) == ["npz", "csv", "png"]
    assert params.dataset.mirrors[0].startswith("https://ossci-datasets.s3.amazonaws.com/")
    assert params.dataset.mirrors[-1].startswith("http://yann.lecun.com/")


def test_format_group_selects_exports(tmp_path: Path) -> None:
    params = composed(tmp_path, "formats=[npz,parquet]")
    assert params["export"]["formats"] == {"npz": {"out": "mnist.npz"}, "parquet": {"out": "parquet"}}
    assert params["export"]["trees"] == {}


def test_unknown_dataset_names_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigException, match="mnist"):
        composed(tmp_path, "dataset=nosuch")


def with_change(path: str, value: Any) -> dict[str, Any]:
    params = copy.deepcopy(committed_params())
    *parents, leaf = path.split(".")
    node = params
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return params


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "export.npz.validation_size",
            "abc",
            "export.npz.validation_size: Value 'abc' of type 'str' could not be converted to Integer",
        ),
        ("export.csv.validation_size", -5, "export.csv.validation_size: expected >= 0, found -5"),
        (
            "export.npz.scale",
            "huge",
            "export.npz.scale: Invalid value 'huge', expected one of [none, unit, centered, standardize]",
        ),
        ("export.npz.scale", "unit", "export.npz.scale: 'unit' needs export.npz.dtype float32"),
        ("dataset.mirrors.0", "ftp://example.org/mnist/", "dataset.mirrors.0: unsupported scheme 'ftp'"),
        (
            "dataset.splits.train.images.file",
            "../../x",
            "dataset.splits.train.images.file: expected a plain file name, found '../../x'",
        ),
        (
            "dataset.splits.test.labels.sha256",
            "abc",
            "dataset.splits.test.labels.sha256: expected 64 lower-case hex digits",
        ),
        ("download.timeout", 0, "download.timeout: expected seconds > 0, found 0.0"),
        ("download.retries", "many", "download.retries: Value 'many' of type 'str' could not be converted to Integer"),
        (
            "export.formats",
            {"npz": {"out": "mnist.npz"}, "tiff": {"out": "tiff"}},
            "export.formats: unknown format 'tiff'; allowed: csv, npz, parquet, png",
        ),
        (
            "export.formats",
            {"npz": {"out": "../../escape.npz"}},
            "export.formats.npz.out: expected a path inside the export folder",
        ),
        ("dataset.name", "../etc", "dataset.name: expected a lower-case name usable as a folder"),
    ],
)
def test_bad_value_is_rejected_naming_key(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        params_from_dict(with_change(path, value), source="params.yaml")
    assert message in str(caught.value)


def test_unknown_key_is_rejected() -> None:
    params = with_change("export.csv.heder", False)
    with pytest.raises(ConfigError, match=r"export\.csv\.heder: Key 'heder' not in 'CsvOptions'"):
        params_from_dict(params)


def test_missing_key_is_rejected() -> None:
    params = copy.deepcopy(committed_params())
    del params["download"]["timeout"]
    with pytest.raises(ConfigError, match=r"download\.timeout: .*missing mandatory value: timeout"):
        params_from_dict(params)


def test_stage_rejects_bad_params_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(FaultServer()) as server:
        params = with_change("export.npz.validation_size", "abc")
        params["dataset"]["mirrors"] = [server.url]
        code = download.main(["--params", str(write_params(tmp_path, params)), str(tmp_path / "raw")])
        assert server.requests == []
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("download: error: ") and "export.npz.validation_size" in line
    assert not (tmp_path / "raw").exists()


def test_missing_params_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = download.main(["--params", str(tmp_path / "nope.yaml"), str(tmp_path / "raw")])
    assert code == 1
    assert "nope.yaml: not found" in capsys.readouterr().err
