"""The mnist-pipeline command describes the product: datasets, formats, version, plain-text help
with every argument described; expected failures are one line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_pipeline import cli, export_csv, export_npz, export_parquet, export_png
from mnist_pipeline.provenance import version
from tests.support.data import TinyDataset, params_for, write_decoded_dir, write_params
from tests.support.repos import PROJECT_ROOT


def run_cli(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mnist_pipeline.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)


def test_datasets_lists_every_dataset_with_its_facts() -> None:
    result = run_cli("datasets")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line and not line.startswith(" ")}
    names = {path.stem for path in (PROJECT_ROOT / "conf" / "dataset").glob("*.yaml")}
    assert names <= set(rows)
    assert re.search(r"^mnist\s+train 60,000 / test 10,000\s+10\s+11\.6 MB\s+CC BY-SA 3\.0$", rows["mnist"], re.M)
    assert (
        re.search(r"train 124,800 / test 20,800\s+26\s", rows["emnist_letters"])
        and "35.9 MB of the zip" in rows["emnist_letters"]
    )
    assert "test10k 10,000 / test50k 50,000" in rows["qmnist_subsets"]
    assert "unpublished size" in rows["qmnist"] and "MIT" in rows["fashion_mnist"]
    # qmnist_nist's labels file is 958,144 bytes: not "1.0 MB", and one file is not "file(s)".
    assert "0.96 MB + 1 file of unpublished size" in rows["qmnist_nist"]
    assert "data/<name>/" in result.stdout


def test_datasets_reads_the_packaged_conf_outside_a_repository(tmp_path: Path) -> None:
    result = run_cli("datasets", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fashion_mnist" in result.stdout


def test_formats_lists_every_export_option_with_its_default() -> None:
    result = run_cli("formats")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((PROJECT_ROOT / "conf" / "config.yaml").read_text())
    for name in ("npz", "csv", "png", "parquet"):
        assert re.search(
            rf"^{name} \((selected by default|opt-in)\): data/<dataset>/export/{name}/", result.stdout, re.M
        )
        for key, value in config["export"][name].items():
            shown = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            assert f"    {name}.{key} = {shown}" in result.stdout
    assert "parquet (opt-in)" in result.stdout and "npz (selected by default)" in result.stdout
    assert "csv.decimals = 4    digits after the point when scale is unit" in result.stdout


def test_format_file_names_are_what_the_exports_write(tmp_path: Path, tiny: TinyDataset) -> None:
    params = params_for(tiny, ["unused"], name="fashion_mnist")
    params["export"]["workers"] = 1
    common = ["--params", str(write_params(tmp_path, params)), "--dataset", "fashion_mnist"]
    decoded = write_decoded_dir(tmp_path / "data" / "decoded", tiny)
    export = tmp_path / "data" / "export"
    for fmt, module in (("npz", export_npz), ("csv", export_csv), ("png", export_png), ("parquet", export_parquet)):
        assert module.main([*common, str(decoded), str(export / fmt)]) == 0
        written = sorted(str(path.relative_to(export)) for path in (export / fmt).iterdir())
        patterns = cli.FORMAT_FILES[fmt].split(":")[0].split(" (")[0].split(" + ")
        expected = sorted(
            {
                pattern.replace("<dataset>", "fashion_mnist").replace("<split>", s)
                for s in tiny.arrays
                for pattern in patterns
            }
        )
        assert written == expected


def test_version_and_plain_text_help_with_every_argument_described() -> None:
    result = run_cli("--version")
    assert result.stdout.strip() == f"mnist-pipeline {version()}"
    help_text = run_cli("--help").stdout
    assert "``" not in help_text
    for command in ("datasets", "formats", "init", "params", "unpack"):
        assert re.search(rf"^\s+{command}\s+\S", help_text, re.M), command
    for command in ("init", "params", "unpack"):
        sub = run_cli(command, "--help").stdout
        assert "``" not in sub
        arguments = re.findall(r"^  (\S+(?: \S+)?)(?:  +(.*))?$", sub.split("\n\n", 2)[-1], re.M)
        assert arguments and all(description for _, description in arguments), sub


def test_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["unpack", str(tmp_path / "absent.zip"), str(tmp_path / "tree")]) == 1
    assert capsys.readouterr().err.strip().startswith("mnist-pipeline: error: ")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    assert cli.main(["unpack", str(tmp_path / "absent.zip"), str(precious)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mnist-pipeline: error: ") and "refusing to replace it" in line
    assert (precious / "keep.txt").read_text() == "mine"
    assert cli.main(["init", "--dir", "../elsewhere"]) == 1
    assert "--dir: expected a folder inside this repository" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert cli.main(["params"]) == 1
    assert "conf/: not found here; adopt the pipeline first" in capsys.readouterr().err


def test_params_replaces_a_hard_linked_params_yaml_by_a_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README "Failure modes": `mnist-pipeline params` never writes through a second name of
    params.yaml (`dvc exp run`, which writes it in place, does: tests/test_loop.py)."""
    linked, plain = tmp_path / "linked", tmp_path / "plain"
    for repo in (linked, plain):
        shutil.copytree(PROJECT_ROOT / "conf", repo / "conf")
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("not params\n")
    (linked / "params.yaml").hardlink_to(elsewhere)
    for repo in (linked, plain):
        monkeypatch.chdir(repo)
        assert cli.main(["params"]) == 0, capsys.readouterr().err
    assert elsewhere.read_text() == "not params\n"
    assert (linked / "params.yaml").stat().st_nlink == 1
    # conf/'s composition, as written where no link was: not the workspace's params.yaml,
    # which holds an applied experiment in a team's loop (test_config checks that one).
    assert (linked / "params.yaml").read_bytes() == (plain / "params.yaml").read_bytes()


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        (("splits:", "split:"), "datasets.kmnist.split: Key 'split' not in 'DatasetSpec'"),
        (("count: 60000", 'count: "many"'), "datasets.kmnist.splits.train.count"),
    ],
)
def test_datasets_names_the_bad_key_of_a_dataset_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    edit: tuple[str, str],
    found: str,
) -> None:
    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf")
    kmnist = tmp_path / "conf" / "dataset" / "kmnist.yaml"
    kmnist.write_text(kmnist.read_text().replace(*edit, 1))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["datasets"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mnist-pipeline: error: conf/dataset/*.yaml composed: ") and found in line


def test_ctrl_c_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(conf: Path) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "describe_formats", interrupted)
    assert cli.main(["formats"]) == 130
    assert capsys.readouterr().err == "mnist-pipeline: interrupted\n"
