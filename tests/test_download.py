"""download stage against a real loopback server: fallback, retries, resume, and the hostile
cases of issue 8 (odd headers, slow drips, dead mirrors, redirects, credentials, messages).

Every failure test checks the same contract: the stage falls back to the next mirror or exits 1
with one line naming the file or URL, never a traceback; nothing is written outside the data
folder; no secret reaches a log line or a file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_pipeline import download
from mnist_pipeline.names import redact
from mnist_pipeline.transfer import parse_content_range, parse_count
from tests.support.data import TinyDataset, gzip_bytes, params_for, write_params
from tests.support.downloads import (
    SECRET,
    assert_clean,
    error_line,
    no_user_netrc,  # noqa: F401 - autouse: the developer's ~/.netrc stays out of these tests
    run_download,
    write_netrc,
)
from tests.support.faultserver import Fault, FaultServer, serve
from tests.support.repos import tool_env

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
DATASET = "mnist"


def assert_canonical(raw: Path, tiny: TinyDataset) -> None:
    assert sorted(p.name for p in raw.iterdir()) == sorted(tiny.archives)
    for name, data in tiny.archives.items():
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_downloads_every_archive_with_user_agent(
    tmp_path: Path, tiny: TinyDataset, mirror: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    params = params_for(tiny, [mirror.url])
    code, raw = run_download(tmp_path, params)
    assert code == 0
    assert_canonical(raw, tiny)
    assert {r.user_agent for r in mirror.requests} == {params["download"]["user_agent"]}
    assert not (tmp_path / "data" / DATASET / ".partial").exists()
    assert_clean(tmp_path, capsys.readouterr().err)


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
    tmp_path: Path, tiny: TinyDataset, fault: Fault, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as bad,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        code, raw = run_download(tmp_path, params_for(tiny, [bad.url, good.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert len(good.hits(TRAIN_IMAGES)) == 1
    err = capsys.readouterr().err
    assert f"skipping mirror {bad.url}{TRAIN_IMAGES}" in err
    assert_clean(tmp_path, err)


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
def test_transient_503_is_retried(
    tmp_path: Path, tiny: TinyDataset, retry_after: int | None, capsys: pytest.CaptureFixture[str]
) -> None:
    fault = Fault("status", status=503, retry_after=retry_after, times=1)
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert len(server.hits(TRAIN_IMAGES)) == 2
    # The README's failure table quotes this line: what failed, why, and the wait.
    (retry,) = [line for line in capsys.readouterr().err.splitlines() if "retrying in" in line]
    name = re.escape(TRAIN_IMAGES)
    expected = (
        rf"download@\w+: {name}: http://127\.0\.0\.1:\d+/{name}: HTTP 503 Service Unavailable; retrying in \d+\.\d s"
    )
    assert re.fullmatch(expected, retry), retry


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


def write_partial(tmp_path: Path, data: bytes) -> Path:
    partial = tmp_path / "data" / DATASET / ".partial" / TRAIN_IMAGES
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data)
    return partial


def test_server_ignoring_range_restarts_from_zero(tmp_path: Path, tiny: TinyDataset) -> None:
    write_partial(tmp_path, tiny.archives[TRAIN_IMAGES][:100])
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: Fault("ignore_range")})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert server.hits(TRAIN_IMAGES)[0].range_header == "bytes=100-"


def test_refused_resume_restarts_from_zero(tmp_path: Path, tiny: TinyDataset) -> None:
    write_partial(tmp_path, tiny.archives[TRAIN_IMAGES][:100])
    fault = Fault("status", status=416, times=1)
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert [r.range_header for r in server.hits(TRAIN_IMAGES)] == ["bytes=100-", None]


@pytest.mark.parametrize(
    "content_range",
    [b"bytes 0-99/100", b"bytes \xb9-\xb2/\xb3", b"bytes 100-50/10", b"garbage", b"bytes 101-200/*"],
    ids=["other-start", "superscripts", "inverted", "garbage", "off-by-one"],
)
def test_wrong_content_range_on_resume_restarts_from_zero(
    tmp_path: Path, tiny: TinyDataset, content_range: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny.archives[TRAIN_IMAGES]
    write_partial(tmp_path, data[:100])
    fault = Fault("headers", status=206, headers={"Content-Range": content_range}, times=1)
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    first, second = server.hits(TRAIN_IMAGES)
    assert (first.range_header, second.range_header) == ("bytes=100-", None)
    err = capsys.readouterr().err
    assert "restarting from byte 0" in err
    assert_clean(tmp_path, err)


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (503, {"Retry-After": b"\xb9"}),  # latin-1 superscript one: isdigit() but not int()
        (503, {"Retry-After": "\u0661".encode()}),  # Arabic-Indic one, as UTF-8
        (503, {"Retry-After": b"9" * 5000}),  # past int()'s digit limit
        (503, {"Retry-After": b"-1"}),
        (200, {"Content-Length": b"\xb2"}),
        (200, {"Content-Length": b"-5"}),
        (200, {"Content-Length": b"99999999999999999999999999999999"}),
        (200, {"Content-Length": b"9" * 5000}),
        (200, {"Content-Length": b"abc"}),
        (200, {"Content-Length": b"1_0"}),
    ],
    ids=[
        "retry-after-superscript",
        "retry-after-arabic",
        "retry-after-5000-digits",
        "retry-after-negative",
        "length-superscript",
        "length-negative",
        "length-huge",
        "length-5000-digits",
        "length-garbage",
        "length-underscore",
    ],
)
def test_odd_header_values_never_crash_the_stage(
    tmp_path: Path, tiny: TinyDataset, status: int, headers: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    fault = Fault("headers", status=status, headers=headers, times=1)
    with (
        serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as odd,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        code, raw = run_download(tmp_path, params_for(tiny, [odd.url, good.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert_clean(tmp_path, capsys.readouterr().err)


def test_header_parsers_accept_only_ascii_digits() -> None:
    assert parse_count(" 42\t") == 42
    for value in ("\u00b2", "\u0661", "-1", "+1", "1_0", "1e3", "9" * 19, "", None):
        assert parse_count(value) is None, value
    found = parse_content_range("bytes 0-9/10")
    assert found is not None and (found.start, found.end, found.total) == (0, 9, 10)
    for bad in ("bytes 5-4/10", "bytes 0-10/10", "bytes ¹-²/³", "bytes=0-9/10", "bytes 0-9"):
        assert parse_content_range(bad) is None, bad


def test_corrupt_partial_from_earlier_run_is_discarded(tmp_path: Path, tiny: TinyDataset, mirror: FaultServer) -> None:
    write_partial(tmp_path, b"\x1f\x8b" + b"garbage" * 10)
    code, raw = run_download(tmp_path, params_for(tiny, [mirror.url]))
    assert code == 0
    assert_canonical(raw, tiny)


def test_stall_longer_than_timeout_moves_on(tmp_path: Path, tiny: TinyDataset) -> None:
    stall = Fault("stall", seconds=2.0)
    with (
        serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: stall})) as slow,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        params = params_for(tiny, [slow.url, good.url], download={"timeout": 0.3, "retries": 0})
        started = time.monotonic()
        code, raw = run_download(tmp_path, params)
    assert code == 0
    assert time.monotonic() - started < 5
    assert_canonical(raw, tiny)


@pytest.mark.slow
def test_stalled_mirror_is_given_up_once_per_run_not_per_file(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    """4 files, the first mirror stalls on each, timeout 1 s, one retry: its budget is spent
    on the first file (2 attempts, about 2 s); the other 3 files skip it without a request."""
    stalls = {name: Fault("stall", seconds=3.0) for name in tiny.archives}
    with (
        serve(FaultServer(files=dict(tiny.archives), faults=stalls)) as stalled,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        params = params_for(tiny, [stalled.url, good.url], download={"timeout": 1.0, "retries": 1})
        started = time.monotonic()
        code, raw = run_download(tmp_path, params)
        elapsed = time.monotonic() - started
    assert code == 0
    assert_canonical(raw, tiny)
    assert len(stalled.requests) == 2, [r.path for r in stalled.requests]
    assert elapsed < 4.0  # per file it would be 4 x 2 s
    err = capsys.readouterr().err
    assert err.count("gave up on this mirror earlier in this run") == len(tiny.archives) - 1
    assert_clean(tmp_path, err)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_refused_mirror_is_given_up_for_the_run_at_once(
    tmp_path: Path, tiny: TinyDataset, mirror: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = closed_port_url()
    code, raw = run_download(tmp_path, params_for(tiny, [refused, mirror.url], download={"backoff": 5.0}))
    assert code == 0  # with a 5 s backoff, any retry of the refused mirror would show in the time
    assert_canonical(raw, tiny)
    err = capsys.readouterr().err
    assert f"skipping mirror {refused}{TRAIN_IMAGES}: [Errno 111] Connection refused (not tried again" in err
    assert err.count("gave up on this mirror earlier in this run") == len(tiny.archives) - 1
    assert "retrying" not in err
    assert_clean(tmp_path, err)


@pytest.mark.slow
def test_slow_drip_is_abandoned_after_a_window(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    """One byte every 0.4 s never trips the 1 s read timeout; the rate over the last
    download.timeout seconds, far below min_rate, does: one window per attempt, and the second
    slow attempt gives the mirror up. The next mirror delivers."""
    size = len(tiny.archives[TRAIN_IMAGES])
    with (
        serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: Fault("drip", seconds=0.4)})) as drip,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        params = params_for(tiny, [drip.url, good.url], download={"timeout": 1.0, "min_rate": size})
        started = time.monotonic()
        code, raw = run_download(tmp_path, params)
        elapsed = time.monotonic() - started
    assert code == 0
    assert_canonical(raw, tiny)
    assert 2.0 <= elapsed < 4.5
    err = capsys.readouterr().err
    assert f"skipping mirror {drip.url}{TRAIN_IMAGES}: too slow: " in err
    assert f"below download.min_rate ({size} bytes/s) over download.timeout (1 s)" in err
    assert "(slow 2 times: not tried again in this run)" in err
    assert_clean(tmp_path, err)


@pytest.mark.parametrize(
    ("fault", "requests", "reason"),
    [
        pytest.param(Fault("drip", seconds=0.05), 2, "too slow: ", id="drip", marks=pytest.mark.slow),
        pytest.param(Fault("stall", seconds=3.0), 2, "no byte for 1 s", id="stall", marks=pytest.mark.slow),
        (Fault("status", status=503, retry_after=3600), 1, "HTTP 503 Service Unavailable with Retry-After 3600 s"),
        (Fault("silent", seconds=3.0), 1, "no answer within 1 s (download.timeout; not tried again in this run)"),
    ],
    ids=["drip", "stall", "huge-retry-after", "silent"],
)
def test_dead_mirror_costs_at_most_two_windows_per_run(
    tmp_path: Path, tiny: TinyDataset, fault: Fault, requests: int, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default retries, back-off and min_rate, a 1 s window: whatever the number of files,
    a dripping, stalled or wait-an-hour mirror costs at most two windows in the whole run, one
    that never answers one window, then the next mirror serves every file."""
    timeout = 1.0
    faults = dict.fromkeys(tiny.archives, fault)
    with (
        serve(FaultServer(files=dict(tiny.archives), faults=faults)) as dead,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        params = params_for(
            tiny, [dead.url, good.url], download={"timeout": timeout, "retries": 2, "backoff": 1.0, "min_rate": 20000}
        )
        started = time.monotonic()
        code, raw = run_download(tmp_path, params)
        elapsed = time.monotonic() - started
    assert code == 0
    assert_canonical(raw, tiny)
    assert elapsed < 2 * timeout + 1.0  # 1 s for the stage itself on a loaded machine
    assert len(dead.requests) == requests
    assert len(good.requests) == len(tiny.archives)
    err = capsys.readouterr().err
    assert f"skipping mirror {dead.url}{TRAIN_IMAGES}: {reason}" in err
    assert err.count("gave up on this mirror earlier in this run") == len(tiny.archives) - 1
    assert_clean(tmp_path, err)


def test_slow_but_correct_mirror_is_accepted(tmp_path: Path, tiny: TinyDataset) -> None:
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: Fault("slow", seconds=0.5)})) as server:
        code, raw = run_download(tmp_path, params_for(tiny, [server.url], download={"timeout": 0.3}))
    assert code == 0
    assert_canonical(raw, tiny)


@pytest.mark.parametrize(
    "location",
    ["ftp://127.0.0.1/mnist/train.gz", "file:///etc/passwd", "ftp://user:hunter2@127.0.0.1/x?sig=tok3n"],
    ids=["ftp", "file", "ftp-with-secrets"],
)
def test_redirect_off_http_is_refused(
    tmp_path: Path, tiny: TinyDataset, location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fault = Fault("redirect", location=location)
    with (
        serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as bad,
        serve(FaultServer(files=dict(tiny.archives))) as good,
    ):
        code, raw = run_download(tmp_path, params_for(tiny, [bad.url, good.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    err = capsys.readouterr().err
    assert f"skipping mirror {bad.url}{TRAIN_IMAGES}: redirect to '{redact(location)}' refused" in err
    assert_clean(tmp_path, err, secrets=("hunter2", "tok3n"))


def test_redirect_to_another_http_mirror_is_followed(tmp_path: Path, tiny: TinyDataset) -> None:
    with serve(FaultServer(files=dict(tiny.archives))) as good:
        fault = Fault("redirect", location=f"{good.url}{TRAIN_IMAGES}")
        with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: fault})) as moved:
            code, raw = run_download(tmp_path, params_for(tiny, [moved.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert len(good.hits(TRAIN_IMAGES)) == 1


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
    err = capsys.readouterr().err
    line = error_line(err)
    assert f"[1] {one.url}{TRAIN_IMAGES}: HTTP 404" in line
    assert f"[2] {two.url}{TRAIN_IMAGES}: HTTP 500" in line
    assert "[3] http://127.0.0.1:9/" in line and "refused" in line.lower()
    assert line.endswith(
        f"(offline? point at a local copy: MNIST_PIPELINE_MIRRORS={DATASET}=/path/to/folder, or mirrors.{DATASET} "
        f"in mnist-pipeline.local.yaml; in the project's own checkout, "
        f"make repro DATASET={DATASET} MIRROR=/path/to/folder)"
    )
    assert not (raw / TRAIN_IMAGES).exists()
    assert not (tmp_path / "data" / DATASET / ".partial").exists()
    assert_clean(tmp_path, err)


def test_tokens_in_mirror_query_never_logged(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token in a mirror's query would be written to params.yaml: refused before any request,
    and the line shows the mirror with its query hidden."""
    with serve(FaultServer(files={})) as empty:
        code, _ = run_download(tmp_path, params_for(tiny, [f"{empty.url}mnist/?sig=tok3n-value"]))
    assert code == 1
    err = capsys.readouterr().err
    assert f"{empty.url}mnist/?***" in error_line(err)
    assert empty.requests == []
    assert_clean(tmp_path, err, secrets=("tok3n",))


@pytest.fixture
def locked(tiny: TinyDataset) -> Iterator[FaultServer]:
    with serve(FaultServer(files=dict(tiny.archives), credentials=("reader", SECRET))) as server:
        yield server


def test_netrc_credentials_are_sent_to_their_host(
    tmp_path: Path,
    tiny: TinyDataset,
    locked: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_netrc(tmp_path, monkeypatch, f"machine 127.0.0.1 login reader password {SECRET}\n")
    code, raw = run_download(tmp_path, params_for(tiny, [locked.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert locked.requests and all(r.authorized for r in locked.requests)  # sent up front: no 401 round trip
    assert SECRET not in caplog.text
    assert_clean(tmp_path, capsys.readouterr().err, secrets=(SECRET,))


@pytest.mark.parametrize(
    "netrc_text",
    ["", "machine 127.0.0.1 login reader password wrong-one\n", "machine 127.0.0.2 login reader password x\n"],
    ids=["no-entry", "wrong-password", "other-host"],
)
def test_missing_or_wrong_credentials_fail_in_one_line(
    tmp_path: Path,
    tiny: TinyDataset,
    locked: FaultServer,
    netrc_text: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_netrc(tmp_path, monkeypatch, netrc_text)
    code, _ = run_download(tmp_path, params_for(tiny, [locked.url]))
    assert code == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in error_line(err)
    assert_clean(tmp_path, err, secrets=(SECRET, "wrong-one"))


def test_broken_netrc_is_one_line_without_its_content(
    tmp_path: Path,
    tiny: TinyDataset,
    locked: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Python's netrc module quotes the token it cannot place: here, the password.
    path = write_netrc(tmp_path, monkeypatch, f"machine 127.0.0.1 login reader {SECRET}\n")
    code, _ = run_download(tmp_path, params_for(tiny, [locked.url]))
    assert code == 1
    err = capsys.readouterr().err
    assert f"netrc file {path}: line " in error_line(err)
    assert "not valid netrc syntax" in error_line(err)
    assert not locked.requests
    assert_clean(tmp_path, err, secrets=(SECRET,))


def test_netrc_with_a_byte_that_is_not_utf8_is_one_line(
    tmp_path: Path,
    tiny: TinyDataset,
    locked: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = b"machine 127.0.0.1 login reader password caf\xe9\n"
    path = write_netrc(tmp_path, monkeypatch, text)
    code, _ = run_download(tmp_path, params_for(tiny, [locked.url]))
    assert code == 1
    err = capsys.readouterr().err
    offset = text.index(b"\xe9")
    assert error_line(err).endswith(f"netrc file {path}: expected UTF-8 text, found byte 0xe9 at offset {offset}")
    assert not locked.requests
    assert_clean(tmp_path, err)


def test_default_netrc_readable_by_others_is_not_used_and_says_so_once(
    tmp_path: Path,
    tiny: TinyDataset,
    mirror: FaultServer,
    no_user_netrc: Path,  # noqa: F811 - the autouse fixture, for the HOME it made
    capsys: pytest.CaptureFixture[str],
) -> None:
    """~/.netrc with mode 0644: a mirror that needs no login still serves every file; one
    warning says why the file is not used (Python's netrc module stops with "line None")."""
    netrc_path = no_user_netrc / ".netrc"
    netrc_path.write_text(f"machine 127.0.0.1 login reader password {SECRET}\n")
    netrc_path.chmod(0o644)
    code, raw = run_download(tmp_path, params_for(tiny, [mirror.url]))
    assert code == 0
    assert_canonical(raw, tiny)
    assert not any(r.authorized for r in mirror.requests)
    err = capsys.readouterr().err
    (warning,) = [line for line in err.splitlines() if ".netrc" in line]
    assert warning.endswith(
        f"netrc file {netrc_path}: readable or owned by another user (mode 644); "
        f"not using it (chmod 600 {netrc_path} to use it)"
    )
    assert "line None" not in err
    assert_clean(tmp_path, err, secrets=(SECRET,))


def test_file_url_and_plain_directory_mirrors(tmp_path: Path, tiny: TinyDataset) -> None:
    local = tmp_path.parent / f"{tmp_path.name}-mirror"
    local.mkdir()
    for name, data in tiny.archives.items():
        (local / name).write_bytes(data)
    for index, mirror_text in enumerate((local.as_uri(), str(local))):
        code, raw = run_download(tmp_path / "data" / str(index), params_for(tiny, [mirror_text]))
        assert code == 0
        assert_canonical(raw, tiny)


def test_present_valid_file_is_not_downloaded_again(tmp_path: Path, tiny: TinyDataset, mirror: FaultServer) -> None:
    params = params_for(tiny, [mirror.url])
    run_download(tmp_path, params)
    count = len(mirror.requests)
    code, _ = run_download(tmp_path, params)
    assert code == 0
    assert len(mirror.requests) == count


def test_an_invalid_present_file_is_kept_until_a_valid_one_replaces_it(
    tmp_path: Path, tiny: TinyDataset, mirror: FaultServer
) -> None:
    """A file that no longer passes (here its expected size changed) is what the workspace
    holds: a run whose mirrors all fail keeps it; one that downloads a valid copy replaces it."""
    params = params_for(tiny, [mirror.url])
    assert run_download(tmp_path, params)[0] == 0
    spec = params["datasets"][DATASET]["splits"]["train"]["images"]
    spec["size"] += 1
    params["datasets"][DATASET]["mirrors"] = ["http://127.0.0.1:9/"]
    code, raw = run_download(tmp_path, params)
    assert code == 1
    assert (raw / TRAIN_IMAGES).read_bytes() == tiny.archives[TRAIN_IMAGES]
    assert_canonical(raw, tiny)


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
        strict_code, _ = run_download(tmp_path / "data" / "strict", params_for(tiny, [server.url]))
        payload_code, raw = run_download(
            tmp_path / "data" / "payload", params_for(tiny, [server.url], verify={"archive": "payload"})
        )
    assert strict_code == 1
    assert payload_code == 0
    assert (raw / TRAIN_IMAGES).read_bytes() == recompressed
    assert "payload check passed" in capsys.readouterr().err


def test_killed_download_resumes_on_next_run(tmp_path: Path, tiny: TinyDataset) -> None:
    """SIGKILL mid-transfer leaves only a partial file; the next run finishes with the right hash."""
    with serve(FaultServer(files=dict(tiny.archives), faults={TRAIN_IMAGES: Fault("stall", seconds=4.0)})) as server:
        params = params_for(tiny, [server.url], download={"timeout": 30.0})
        params_path = write_params(tmp_path, params)
        raw = tmp_path / "data" / DATASET / "raw"
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mnist_pipeline.download",
                "--params",
                str(params_path),
                "--dataset",
                DATASET,
                str(raw),
            ],
            env=tool_env(),
            stderr=subprocess.DEVNULL,
        )
        partial = tmp_path / "data" / DATASET / ".partial" / TRAIN_IMAGES
        deadline = time.monotonic() + 30  # generous: a loaded CI machine starts Python slowly
        while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size > 0):
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert partial.exists() and not (raw / TRAIN_IMAGES).exists()
    # What reached the disk before the kill, however the half arrived (in pieces under load,
    # the last of them possibly still in the file's buffer): the next run resumes from there.
    kept = partial.stat().st_size
    assert 0 < kept < len(tiny.archives[TRAIN_IMAGES])
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        params = params_for(tiny, [server.url])
        code, raw = run_download(tmp_path, params)
        assert server.hits(TRAIN_IMAGES)[0].range_header == f"bytes={kept}-"
    assert code == 0
    assert_canonical(raw, tiny)


@pytest.mark.parametrize("plant", ["hard link", "symbolic link"])
def test_a_partial_file_linked_elsewhere_is_never_written_through(
    tmp_path: Path, tiny: TinyDataset, mirror: FaultServer, plant: str
) -> None:
    """A name in .partial/ that is another file's too (a hard link, say from a `cp -al` snapshot)
    or points elsewhere is dropped and the file downloaded anew: the other file keeps its bytes."""
    victim = tmp_path / "someone-else.txt"
    victim.write_bytes(b"someone else's notes\n")
    partial = tmp_path / "data" / DATASET / ".partial" / TRAIN_IMAGES
    partial.parent.mkdir(parents=True)
    if plant == "hard link":
        partial.hardlink_to(victim)
    else:
        partial.symlink_to(victim)
    code, raw = run_download(tmp_path, params_for(tiny, [mirror.url]))
    assert code == 0
    assert victim.read_bytes() == b"someone else's notes\n"
    assert_canonical(raw, tiny)
    assert (raw / TRAIN_IMAGES).stat().st_nlink == 1


def test_mirror_url_forms() -> None:
    assert download.mirror_url("https://host/mnist", "a b.gz") == "https://host/mnist/a%20b.gz"
    assert download.mirror_url("https://host/mnist/", "a.gz") == "https://host/mnist/a.gz"
    assert download.mirror_url("https://host/my data/", "a.gz") == "https://host/my%20data/a.gz"
    assert download.mirror_url("https://host/b/?sig=x", "a.gz") == "https://host/b/a.gz?sig=x"
    assert download.mirror_url("/srv/mnist", "a.gz") == "file:///srv/mnist/a.gz"
    assert redact("https://host/b/a.gz?sig=x#frag") == "https://host/b/a.gz?***"


def test_a_symlinked_dataset_folder_is_not_written_through(
    tmp_path: Path,
    tiny: TinyDataset,
    mirror: FaultServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """data/<dataset> pointing elsewhere: refused in one line, before any request or write."""
    monkeypatch.chdir(tmp_path)  # paths below the working directory are the ones checked
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / DATASET).symlink_to(elsewhere)
    params = write_params(tmp_path, params_for(tiny, [mirror.url]))
    code = download.main(["--params", str(params), "--dataset", DATASET, f"data/{DATASET}/raw"])
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    expected = (
        f"data/{DATASET}/raw: expected no symbolic link on the way, found {tmp_path / 'data' / DATASET} -> "
        f"{elsewhere}; refusing to write through it"
    )
    assert line == f"download@{DATASET}: error: {expected}"
    assert list(elsewhere.iterdir()) == [] and mirror.requests == []
