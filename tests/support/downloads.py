"""What the download tests share: running the stage, and the contract every failure keeps
(one line, no traceback, nothing outside data/, no secret anywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mnist_pipeline import download
from tests.support.data import write_params

SECRET = "s3cr3t-pa55w0rd"


def run_download(tmp_path: Path, params: dict[str, Any], name: str = "mnist") -> tuple[int, Path]:
    """The download stage for dataset ``name`` under ``tmp_path``: its exit code and raw folder."""
    raw = tmp_path / "data" / name / "raw"
    code = download.main(["--params", str(write_params(tmp_path, params)), "--dataset", name, str(raw)])
    return code, raw


def assert_clean(tmp_path: Path, err: str, secrets: tuple[str, ...] = ()) -> None:
    """No traceback, no empty message, nothing outside data/, no secret in a log line or a file."""
    assert "Traceback" not in err
    for line in err.splitlines():
        stage, _, message = line.partition(": ")
        assert stage.startswith("download@") and message.strip(), line
    assert {p.name for p in tmp_path.iterdir()} <= {"params.yaml", "data"}
    for secret in secrets:
        assert secret not in err
        for path in (tmp_path / "data").rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes(), path


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def write_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | bytes) -> Path:
    """A netrc file (mode 0600) named by $NETRC, outside ``tmp_path``."""
    path = tmp_path.parent / f"{tmp_path.name}-netrc"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))
    return path


@pytest.fixture(autouse=True)
def no_user_netrc(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The developer's ~/.netrc must not change what the tests see: HOME is an empty folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NETRC", raising=False)
    return home
