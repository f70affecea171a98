"""This machine's mirrors and download settings: read from mnist-pipeline.local.yaml and
MNIST_PIPELINE_MIRRORS, tried before the published mirrors, checked like them, never params."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mnist_pipeline.config import Params, params_from_dict
from mnist_pipeline.errors import ConfigError
from mnist_pipeline.machine import LOCAL_FILE, MIRRORS_ENV, sources_for
from tests.support.data import TinyDataset, params_for

PUBLISHED = ["https://published.example/mnist/"]


@pytest.fixture
def params(tiny: TinyDataset) -> Params:
    return params_from_dict(params_for(tiny, PUBLISHED))


def test_without_local_settings_the_published_mirrors_and_params_apply(params: Params, tmp_path: Path) -> None:
    sources = sources_for(params, "mnist", tmp_path, environ={})
    assert sources.mirrors == PUBLISHED
    assert sources.download == params.download


def test_environment_then_file_then_published(params: Params, tmp_path: Path) -> None:
    (tmp_path / LOCAL_FILE).write_text(
        "mirrors:\n  mnist: [/srv/mnist, 'https://published.example/mnist/']\n  other: [/srv/other]\n"
        "download:\n  timeout: 7\n  retries: 0\n"
    )
    environ = {MIRRORS_ENV: "mnist=http://127.0.0.1:8000/m/  /every/dataset"}
    sources = sources_for(params, "mnist", tmp_path, environ=environ)
    # Each mirror once, at its first place; the published ones always remain the fallback.
    assert sources.mirrors == ["http://127.0.0.1:8000/m/", "/every/dataset", "/srv/mnist", *PUBLISHED]
    assert (sources.download.timeout, sources.download.retries) == (7, 0)
    assert sources.download.user_agent == params.download.user_agent


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("mirrors: [a]\n", {}, "mirrors: expected a mapping of dataset name"),
        ("token: x\n", {}, "expected a mapping with `mirrors` and/or `download`, found ['token']"),
        ("mirrors:\n  mnist: [ftp://host/]\n", {}, "mirrors.mnist.0: unsupported scheme 'ftp'"),
        ("mirrors:\n  mnist: ['http://u:pw@host/']\n", {}, "put credentials in ~/.netrc"),
        ("download:\n  timeout: -1\n", {}, "download.timeout: expected seconds"),
        ("download:\n  timeout: fast\n", {}, "download.timeout: expected a float, found 'fast'"),
        ("download:\n  proxy: x\n", {}, "download: expected keys among"),
        ("mirrors: {mnist: [", {}, "not valid YAML"),
        ("", {MIRRORS_ENV: "mnist="}, "expected [<dataset>=]<folder or URL> entries, found 'mnist='"),
        ("", {MIRRORS_ENV: "http://u:pw@host/"}, "put credentials in ~/.netrc"),
    ],
)
def test_bad_local_settings_are_one_line_naming_the_key(
    params: Params, tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    (tmp_path / LOCAL_FILE).write_text(text)
    with pytest.raises(ConfigError) as raised:
        sources_for(params, "mnist", tmp_path, environ=environ)
    line = str(raised.value)
    assert message in line and "\n" not in line
    assert "pw" not in line.replace("pw@", "")  # a password never appears


def test_the_local_file_is_ignored_by_git() -> None:
    ignored = Path(__file__).resolve().parents[1] / ".gitignore"
    assert f"/{LOCAL_FILE}" in ignored.read_text().splitlines()


@pytest.mark.parametrize("copy", [".dvc/tmp/exps/tmpa1b2", ".dvc/tmp/exps/standalone/tmpa1b2"])
def test_a_queued_experiment_reads_the_file_of_the_repository_that_queued_it(
    params: Params, tmp_path: Path, copy: str
) -> None:
    """DVC runs it in <repo>/.dvc/tmp/exps/[standalone/]<tmp>/, a copy without git-ignored
    files; a relative folder in the file stays relative to the repository."""
    repo = tmp_path / "repo"
    workspace = repo / copy
    workspace.mkdir(parents=True)
    (repo / LOCAL_FILE).write_text(
        "mirrors:\n  mnist: [../mirror, /srv/mnist, 'file:/srv/m2', 'http://h/m/']\ndownload:\n  timeout: 7\n"
    )
    sources = sources_for(params, "mnist", workspace, environ={})
    assert sources.mirrors == [str(repo / "../mirror"), "/srv/mnist", "file:/srv/m2", "http://h/m/", *PUBLISHED]
    assert sources.download.timeout == 7
    # Its own file, when it has one; and no file of a folder that only looks like such a copy.
    (workspace / LOCAL_FILE).write_text("mirrors:\n  mnist: [/own]\n")
    assert sources_for(params, "mnist", workspace, environ={}).mirrors[0] == "/own"
    lookalike = repo / "notdvc" / "tmp" / "exps" / "tmpa1b2"
    lookalike.mkdir(parents=True)
    assert sources_for(params, "mnist", lookalike, environ={}).mirrors == PUBLISHED
    # A bad entry names the file it is in: the queuing repository's.
    (workspace / LOCAL_FILE).unlink()
    (repo / LOCAL_FILE).write_text("mirrors:\n  mnist: ['ftp://host/']\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(repo / LOCAL_FILE))}: mirrors.mnist.0: unsupported"):
        sources_for(params, "mnist", workspace, environ={})
