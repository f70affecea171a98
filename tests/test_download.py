"""download stage against a real loopback server: fallback, retries, resume, failures."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import download
from tests.conftest import TinyDataset, gzip_bytes, params_for, write_params
from tests.faultserver import Fault, FaultServer, serve
from tests.repos import tool_env

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


def run_download(tmp_path: Path, params: dict[str, object]) -> tuple[int, Path]:
    raw = tmp_path / "data" / "raw"
    code = download.main(["--params", str(write_params(tmp_path, params)), str(raw)])
    return code, raw


def assert_canonical(raw: Path, tiny: TinyDataset) -> None:
    assert sorted(p.name for p in raw.iterdir()) == sorted(tiny.archives)
    for name, data in tiny.archives.items():
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_downloads_every_archive_with_user_agent(tmp_path: Path, tiny: TinyDataset, mirror: FaultServer) -> None:
    code, raw = run_download(tmp_path, params_for(tiny, [mirror.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert {r.user_agent for r in mirror.requests} == {"mnist-pipeline/0.1 (+dvc; python-urllib)"}
    assert not (tmp_path / "data" / ".partial").exists()


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=403),
        Fault("status", status=404),
        Fault("html"),
        Fault("redirect_loop"),
        Fault("wrong_length"),
    ],
    ids=lambda f: f"{f.kind}-{f.status}",
)
def test_bad_first_mirror_falls_back_to_second(
    tmp_path: Path,
    tiny: TinyDataset,
    fault: Fault,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with (
        serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as bad,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        code, raw = run_download(tmp_path, params_for(tiny, [bad.url, good.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert len(good.hits(TRAIN_IMAGES)) == 1
    assert f"skipping mirror {bad.url}{TRAIN_IMAGES}" in capsys.readouterr().err


def test_wrong_bytes_are_rejected_and_next_mirror_used(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = dict(tiny.archives)
    tampered[TRAIN_IMAGES] = gzip_bytes(b"\x00" * 100)[:-1] + b"\x01"  # gzip, wrong size and hash
    with serve(FaultServer(files=tampered)) as bad, serve(FaultServer(files=dict(tiny.archives))) as good:
        code, raw = run_download(tmp_path, params_for(tiny, [bad.url, good.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert "expected" in capsys.readouterr().err


def test_same_size_wrong_hash_is_rejected(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    original = tiny.archives[TRAIN_IMAGES]
    flipped = original[:-5] + bytes([original[-5] ^ 0xFF]) + original[-4:]
    with (
        serve(FaultServer(files={**tiny.archives, TRAIN_IMAGES: flipped})) as bad,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        code, raw = run_download(tmp_path, params_for(tiny, [bad.url, good.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert "expected md5" in capsys.readouterr().err


@pytest.mark.parametrize("retry_after", [0, None], ids=["retry-after", "backoff"])
def test_transient_503_is_retried(tmp_path: Path, tiny: TinyDataset, retry_after: int | None) -> None:
    fault = Fault("status", status=503, retry_after=retry_after, times=1)
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert len(server.hits(TRAIN_IMAGES)) == 2


def test_cut_transfer_resumes_with_range(tmp_path: Path, tiny: TinyDataset) -> None:
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: Fault("truncate", times=1)})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    first, second = server.hits(TRAIN_IMAGES)
    assert first.range_header is None
    assert second.range_header == f"bytes={len(tiny.archives[TRAIN_IMAGES]) // 2}-"


def test_reset_mid_stream_is_retried(tmp_path: Path, tiny: TinyDataset) -> None:
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: Fault("reset", times=1)})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url]))
    assert code == 0
    assert_canonical(raw, tiny)


def test_server_ignoring_range_restarts_from_zero(tmp_path: Path, tiny: TinyDataset) -> None:
    partial = tmp_path / "data" / ".partial" / TRAIN_IMAGES
    partial.parent.mkdir(parents=True)
    partial.write_bytes(tiny.archives[TRAIN_IMAGES][:100])
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: Fault("ignore_range")})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert server.hits(TRAIN_IMAGES)[0].range_header == "bytes=100-"


def test_corrupt_partial_from_earlier_run_is_discarded(tmp_path: Path, tiny: TinyDataset, mirror: FaultServer) -> None:
    partial = tmp_path / "data" / ".partial" / TRAIN_IMAGES
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    code, raw = run_download(tmp_path, params_for(tiny, [mirror.url]))
    assert code == 0
    assert_canonical(raw, tiny)


def test_stall_longer_than_timeout_moves_on(tmp_path: Path, tiny: TinyDataset) -> None:
    params = params_for(tiny, [], download={"timeout": 0.3, "retries": 0})
    stall = Fault("stall", seconds=2.0)
    with (
        serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: stall})) as slow,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        params["dataset"]["mirrors"] = [slow.url, good.url]
        started = time.monotonic()
        code, raw = run_download(tmp_path, params)
    assert code == 0
    assert time.monotonic() - started < 5
    assert_canonical(raw, tiny)


def test_slow_but_correct_mirror_is_accepted(tmp_path: Path, tiny: TinyDataset) -> None:
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: Fault("slow", seconds=0.5)})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url], download={"timeout": 0.3}))
    assert code == 0
    assert_canonical(raw, tiny)


def test_every_mirror_failing_names_each_and_leaves_nothing(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    faults_one = {TRAIN_IMAGES: Fault("status", status=404)}
    faults_two = {TRAIN_IMAGES: Fault("status", status=500)}
    with (
        serve(FaultServer(files=dict(tiny.archives), faults=faults_one)) as one,
        serve(FaultServer(files=dict(tiny.archives), faults=faults_two)) as two,
    ):
        code, raw = run_download(tmp_path, params_for(tiny, [one.url, two.url, "http://127.0.0.1:9/"]))
    assert code == 1
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1
    (line,) = error_lines
    assert f"[1] {one.url}{TRAIN_IMAGES}: HTTP 404" in line
    assert f"[2] {two.url}{TRAIN_IMAGES}: HTTP 500" in line
    assert "[3] http://127.0.0.1:9/" in line and "refused" in line.lower()
    assert not (raw / TRAIN_IMAGES).exists()
    assert not (tmp_path / "data" / ".partial").exists()


def test_file_url_and_plain_directory_mirrors(tmp_path: Path, tiny: TinyDataset) -> None:
    local = tmp_path / "mirror"
    local.mkdir()
    for name, data in tiny.archives.items():
        (local / name).write_bytes(data)
    for index, mirror_text in enumerate((local.as_uri(), str(local))):
        code, raw = run_download(tmp_path / str(index), params_for(tiny, [mirror_text]))
        assert code == 0
        assert_canonical(raw, tiny)


def test_present_valid_file_is_not_downloaded_again(tmp_path: Path, tiny: TinyDataset, mirror: FaultServer) -> None:
    params = params_for(tiny, [mirror.url])
    run_download(tmp_path, params)
    count = len(mirror.requests)
    code, _ = run_download(tmp_path, params)
    assert code == 0
    assert len(mirror.requests) == count


def test_http_proxy_from_environment_is_used(
    tmp_path: Path, tiny: TinyDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(FaultServer(files=dict(tiny.archives))) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.delenv("no_proxy", raising=False)
        code, raw = run_download(tmp_path, params_for(tiny, ["http://mirror.example.invalid/mnist/"]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert all(r.via_proxy for r in proxy.requests)


def test_recompressed_archive_passes_only_in_payload_mode(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = gzip.decompress(tiny.archives[TRAIN_IMAGES])
    recompressed = gzip.compress(payload, compresslevel=1, mtime=12345)
    assert recompressed != tiny.archives[TRAIN_IMAGES]
    with serve(FaultServer(files={**tiny.archives, TRAIN_IMAGES: recompressed})) as server:
        strict_code, _ = run_download(tmp_path / "strict", params_for(tiny, [server.url]))
        payload_code, raw = run_download(
            tmp_path / "payload", params_for(tiny, [server.url], verify={"archive": "payload"})
        )
    assert strict_code == 1
    assert payload_code == 0
    assert (raw / TRAIN_IMAGES).read_bytes() == recompressed
    assert "payload check passed" in capsys.readouterr().err


def test_killed_download_resumes_on_next_run(tmp_path: Path, tiny: TinyDataset) -> None:
    """SIGKILL mid-transfer leaves only a partial file; the next run finishes with the right hash."""
    big = dict(tiny.archives)
    params = params_for(tiny, [])
    with serve(FaultServer(files=big, faults={TRAIN_IMAGES: Fault("stall", seconds=4.0)})) as server:
        params["dataset"]["mirrors"] = [server.url]
        params["download"]["timeout"] = 30.0
        params_path = write_params(tmp_path, params)
        raw = tmp_path / "data" / "raw"
        child = subprocess.Popen(
            [sys.executable, "-m", "pipeline.download", "--params", str(params_path), str(raw)],
            env=tool_env(),
            stderr=subprocess.DEVNULL,
        )
        partial = tmp_path / "data" / ".partial" / TRAIN_IMAGES
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size > 0):
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert partial.exists() and not (raw / TRAIN_IMAGES).exists()
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        params["dataset"]["mirrors"] = [server.url]
        code, raw = run_download(tmp_path, params)
        assert server.hits(TRAIN_IMAGES)[0].range_header == f"bytes={partial_size(tiny)}-"
    assert code == 0
    assert_canonical(raw, tiny)


def partial_size(tiny: TinyDataset) -> int:
    return len(tiny.archives[TRAIN_IMAGES]) // 2


def test_mirror_url_forms() -> None:
    assert download.mirror_url("https://host/mnist", "a b.gz") == "https://host/mnist/a%20b.gz"
    assert download.mirror_url("https://host/mnist/", "a.gz") == "https://host/mnist/a.gz"
    assert download.mirror_url("/srv/mnist", "a.gz") == "file:///srv/mnist/a.gz"
