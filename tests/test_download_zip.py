"""download stage for a dataset published inside a zip (EMNIST's gzip.zip): only the needed
members cross the network (Range requests), a server that ignores Range costs one whole
download shared by every dataset of the zip, local copies of the zip or of its members are
read in place, and a wrong Content-Range, a cut member or a wrong member moves on to the next
mirror.

The zip is generated with EMNIST's layout: members stored (not deflated) under ``gzip/``, no
folder entry, for each split four IDX .gz files (gzip without name or time) and a mapping .txt.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnist_pipeline.download import ZIP_TAIL_LENGTH
from mnist_pipeline.idx import encode_idx
from tests.support.data import dataset_entry, params_with, write_params
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

ZIP_NAME = "gzip.zip"
#: Per split: training and test images. Random pixels do not compress, so each images member
#: is 78-470 kB: larger than the tail read first, and worth not downloading.
SPLIT_COUNTS = {"letters": (200, 100), "digits": (600, 300)}
#: Requests for a member's data only (the images members); spares the tail and the headers.
MEMBER_DATA_ONLY = 70_000
_LOCAL_HEADER = 30


@dataclass(frozen=True)
class FakeZip:
    data: bytes
    members: dict[str, bytes]  # member name -> content
    datasets: dict[str, dict[str, Any]]  # dataset name -> splits of params.yaml

    def container(self) -> dict[str, Any]:
        return {
            "file": ZIP_NAME,
            "size": len(self.data),
            "md5": hashlib.md5(self.data).hexdigest(),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }

    def files(self, dataset: str) -> dict[str, bytes]:
        """Base name -> content of every member the dataset needs."""
        return {
            spec["file"]: self.members[spec["member"]]
            for split in self.datasets[dataset].values()
            for spec in (split["images"], split["labels"])
        }


def member_name(split: str, part: str) -> str:
    return f"gzip/emnist-{split}-{part}"


def make_zip(
    method: int = zipfile.ZIP_STORED, seed: int = 3, tamper: str | None = None, specs_from: FakeZip | None = None
) -> FakeZip:
    """The fake gzip.zip; ``tamper`` names a member whose bytes change after the specs are
    taken (from ``specs_from`` when given), keeping the zip itself valid."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes] = {}
    datasets: dict[str, dict[str, Any]] = {}
    for split, (train, test) in SPLIT_COUNTS.items():
        splits: dict[str, Any] = {}
        for role, count in (("train", train), ("test", test)):
            images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
            labels = (np.arange(count) % 10).astype(np.uint8)
            splits[role] = {"count": count}
            for kind, array, part in (
                ("images", images, f"{role}-images-idx3-ubyte.gz"),
                ("labels", labels, f"{role}-labels-idx1-ubyte.gz"),
            ):
                payload = encode_idx(array)
                name = member_name(split, part)
                members[name] = gzip.compress(payload, mtime=0)
                splits[role][kind] = {
                    "file": name.removeprefix("gzip/"),
                    "member": name,
                    "size": len(members[name]),
                    "md5": hashlib.md5(members[name]).hexdigest(),
                    "sha256": hashlib.sha256(members[name]).hexdigest(),
                    "payload_size": len(payload),
                }
        members[member_name(split, "mapping.txt")] = "".join(f"{i} {48 + i}\n" for i in range(10)).encode()
        datasets[f"emnist_{split}"] = splits
    if specs_from is not None:
        datasets = specs_from.datasets
    if tamper is not None:
        original = members[tamper]
        members[tamper] = original[:-8] + bytes(8)  # same size, other bytes
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, content in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content, compress_type=method)
    return FakeZip(data=buffer.getvalue(), members=members, datasets=datasets)


@pytest.fixture(scope="module")
def fake() -> FakeZip:
    return make_zip()


def zip_params(fake: FakeZip, mirrors: list[str], **sections: dict[str, Any]) -> dict[str, Any]:
    datasets = {
        name: dataset_entry(splits, mirrors, container=fake.container(), transposed=True)
        for name, splits in fake.datasets.items()
    }
    return params_with(datasets, **sections)


def assert_members(raw: Path, fake: FakeZip, dataset: str) -> None:
    expected = fake.files(dataset)
    assert sorted(p.name for p in raw.iterdir()) == sorted(expected)
    for name, content in expected.items():
        assert (raw / name).read_bytes() == content, name


def member_bytes(fake: FakeZip, dataset: str) -> int:
    """Bytes of the members one dataset needs, with their local headers."""
    needed = [
        spec["member"] for split in fake.datasets[dataset].values() for spec in (split["images"], split["labels"])
    ]
    return sum(len(fake.members[name]) + _LOCAL_HEADER + len(name) for name in needed)


def test_range_requests_fetch_only_the_needed_members(
    tmp_path: Path, fake: FakeZip, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(FaultServer(files={ZIP_NAME: fake.data})) as server:
        code, raw = run_download(tmp_path, zip_params(fake, [server.url]), "emnist_letters")
    assert code == 0
    assert_members(raw, fake, "emnist_letters")
    # The tail holds the end record and the whole central directory: then one request for
    # each member's local header and one for its data.
    assert len(server.requests) == 1 + 2 * 4
    assert server.requests[0].range_header == f"bytes=-{ZIP_TAIL_LENGTH}"
    assert server.sent == ZIP_TAIL_LENGTH + member_bytes(fake, "emnist_letters")
    assert server.sent < len(fake.data) * 0.4
    assert not (tmp_path / "data" / ".downloads").exists()
    err = capsys.readouterr().err
    assert f"{ZIP_NAME}: 9 requests, {server.sent} bytes from {server.url}{ZIP_NAME}" in err
    assert_clean(tmp_path, err)


def test_server_ignoring_range_costs_one_download_for_every_dataset_of_the_zip(
    tmp_path: Path, fake: FakeZip, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(FaultServer(files={ZIP_NAME: fake.data}, ranges=False)) as server:
        params = zip_params(fake, [server.url])
        code, raw = run_download(tmp_path, params, "emnist_letters")
        assert code == 0
        assert_members(raw, fake, "emnist_letters")
        assert len(server.requests) == 1  # the 200 to the suffix request is the whole zip, kept
        assert server.sent == len(fake.data)
        cached = tmp_path / "data" / ".downloads" / ZIP_NAME
        assert cached.read_bytes() == fake.data
        code, raw = run_download(tmp_path, params, "emnist_digits")
        assert code == 0
        assert_members(raw, fake, "emnist_digits")
        assert len(server.requests) == 1
    err = capsys.readouterr().err
    assert "ignores Range requests; downloading the whole zip once" in err
    assert not (tmp_path / "data" / "emnist_letters" / ".partial").exists()
    assert_clean(tmp_path, err)


def test_cached_zip_that_fails_a_member_is_replaced_from_the_mirror(
    tmp_path: Path, fake: FakeZip, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = make_zip(tamper=member_name("letters", "train-images-idx3-ubyte.gz"), specs_from=fake)
    assert len(tampered.data) == len(fake.data)
    cached = tmp_path / "data" / ".downloads" / ZIP_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(tampered.data)
    with serve(FaultServer(files={ZIP_NAME: fake.data})) as server:
        code, raw = run_download(tmp_path, zip_params(fake, [server.url]), "emnist_letters")
    assert code == 0
    assert_members(raw, fake, "emnist_letters")
    assert not cached.exists()
    err = capsys.readouterr().err
    assert f"{cached}: expected" in err and "removing it" in err
    assert_clean(tmp_path, err)


def test_whole_zip_with_wrong_digest_is_refused_and_next_mirror_used(
    tmp_path: Path, fake: FakeZip, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = make_zip(tamper=member_name("digits", "train-images-idx3-ubyte.gz"), specs_from=fake)
    with (
        serve(FaultServer(files={ZIP_NAME: tampered.data}, ranges=False)) as bad,
        serve(FaultServer(files={ZIP_NAME: fake.data})) as good,
    ):
        code, raw = run_download(tmp_path, zip_params(fake, [bad.url, good.url]), "emnist_letters")
    assert code == 0
    assert_members(raw, fake, "emnist_letters")
    assert not (tmp_path / "data" / ".downloads").exists()
    err = capsys.readouterr().err
    assert f"skipping mirror {bad.url}{ZIP_NAME}: expected md5 {fake.container()['md5']}" in err
    assert_clean(tmp_path, err)


@pytest.mark.parametrize("as_uri", [False, True], ids=["folder", "file-url"])
def test_local_mirror_holding_the_zip(
    tmp_path: Path, fake: FakeZip, as_uri: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path.parent / f"{tmp_path.name}-mirror"
    folder.mkdir()
    (folder / ZIP_NAME).write_bytes(fake.data)
    mirror = folder.as_uri() if as_uri else str(folder)
    code, raw = run_download(tmp_path, zip_params(fake, [mirror]), "emnist_digits")
    assert code == 0
    assert_members(raw, fake, "emnist_digits")
    assert not (tmp_path / "data" / ".downloads").exists()
    assert_clean(tmp_path, capsys.readouterr().err)


def test_local_mirror_holding_the_member_files(
    tmp_path: Path, fake: FakeZip, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path.parent / f"{tmp_path.name}-mirror"
    folder.mkdir()
    for name, content in fake.files("emnist_letters").items():
        (folder / name).write_bytes(content)
    code, raw = run_download(tmp_path, zip_params(fake, [str(folder)]), "emnist_letters")
    assert code == 0
    assert_members(raw, fake, "emnist_letters")
    assert_clean(tmp_path, capsys.readouterr().err)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault("wrong_range"), "asked for the last"),
        (Fault("wrong_range", min_length=MEMBER_DATA_ONLY), "asked for bytes"),
        (Fault("cut_range", min_length=MEMBER_DATA_ONLY), "range cut after"),
    ],
    ids=["wrong-content-range-on-tail", "wrong-content-range-on-member", "cut-member"],
)
def test_range_faults_move_on_to_the_next_mirror(
    tmp_path: Path, fake: FakeZip, fault: Fault, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        serve(FaultServer(files={ZIP_NAME: fake.data}, faults={ZIP_NAME: fault})) as bad,
        serve(FaultServer(files={ZIP_NAME: fake.data})) as good,
    ):
        code, raw = run_download(tmp_path, zip_params(fake, [bad.url, good.url]), "emnist_letters")
    assert code == 0
    assert_members(raw, fake, "emnist_letters")
    err = capsys.readouterr().err
    assert f"skipping mirror {bad.url}{ZIP_NAME}: {reason}" in err
    assert not (tmp_path / "data" / ".downloads").exists()
    assert not (tmp_path / "data" / "emnist_letters" / ".partial").exists()
    assert_clean(tmp_path, err)


def test_member_with_wrong_digest_moves_on_to_the_next_mirror(
    tmp_path: Path, fake: FakeZip, capsys: pytest.CaptureFixture[str]
) -> None:
    name = member_name("letters", "test-images-idx3-ubyte.gz")
    tampered = make_zip(tamper=name, specs_from=fake)
    with (
        serve(FaultServer(files={ZIP_NAME: tampered.data})) as bad,
        serve(FaultServer(files={ZIP_NAME: fake.data})) as good,
    ):
        code, raw = run_download(tmp_path, zip_params(fake, [bad.url, good.url]), "emnist_letters")
    assert code == 0
    assert_members(raw, fake, "emnist_letters")
    err = capsys.readouterr().err
    assert f"{name.removeprefix('gzip/')}: skipping mirror {bad.url}{ZIP_NAME}: expected md5" in err
    # Only the tampered member came from the second mirror: its tail, header and data.
    assert len(good.requests) == 3
    assert_clean(tmp_path, err)


def test_deflated_members_are_read_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deflated = make_zip(method=zipfile.ZIP_DEFLATED)
    with serve(FaultServer(files={ZIP_NAME: deflated.data})) as server:
        code, raw = run_download(tmp_path, zip_params(deflated, [server.url]), "emnist_digits")
    assert code == 0
    assert_members(raw, deflated, "emnist_digits")
    assert_clean(tmp_path, capsys.readouterr().err)


def test_every_mirror_failing_is_one_line_with_the_hint(
    tmp_path: Path, fake: FakeZip, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path.parent / f"{tmp_path.name}-empty"
    empty.mkdir()
    with serve(FaultServer(files={})) as missing:
        code, raw = run_download(tmp_path, zip_params(fake, [missing.url, str(empty)]), "emnist_letters")
    assert code == 1
    err = capsys.readouterr().err
    line = error_line(err)
    first = fake.datasets["emnist_letters"]["train"]["images"]["file"]
    assert f"error: {first}: every mirror failed: [1] {missing.url}{ZIP_NAME}: HTTP 404" in line
    assert f"[2] {(empty / first).as_uri()}: not found" in line
    assert "3 more files failed as well" in line
    assert "or mirrors.emnist_letters in mnist-pipeline.local.yaml;" in line and line.endswith(")")
    assert not raw.exists()
    assert not (tmp_path / "data" / "emnist_letters" / ".partial").exists()
    assert_clean(tmp_path, err)


def test_range_requests_carry_netrc_credentials(
    tmp_path: Path, fake: FakeZip, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_netrc(tmp_path, monkeypatch, f"machine 127.0.0.1 login reader password {SECRET}\n")
    with serve(FaultServer(files={ZIP_NAME: fake.data}, credentials=("reader", SECRET))) as server:
        code, raw = run_download(tmp_path, zip_params(fake, [server.url]), "emnist_digits")
    assert code == 0
    assert_members(raw, fake, "emnist_digits")
    assert 1 <= len(server.requests) <= 1 + 2 * 4 and all(r.authorized for r in server.requests)
    assert_clean(tmp_path, capsys.readouterr().err, secrets=(SECRET,))


def test_zip64_end_records_are_found_in_the_same_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # zipfile writes the zip64 end record and locator once the entry count passes this limit.
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    zip64 = make_zip()
    assert b"PK\x06\x06" in zip64.data[-200:] and b"PK\x06\x07" in zip64.data[-200:]
    with serve(FaultServer(files={ZIP_NAME: zip64.data})) as server:
        code, raw = run_download(tmp_path, zip_params(zip64, [server.url]), "emnist_letters")
    assert code == 0
    assert_members(raw, zip64, "emnist_letters")
    assert len(server.requests) == 1 + 2 * 4
    assert_clean(tmp_path, capsys.readouterr().err)


@pytest.mark.parametrize("where", ["http", "http-no-range", "folder"])
def test_zip_of_another_size_is_refused_before_its_directory_is_read(
    tmp_path: Path, fake: FakeZip, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zip larger than its published container.size is another zip: its central directory
    (which could claim any number of members) is never read, and the next mirror serves."""
    grown = fake.data + bytes(50_000)
    folder = tmp_path.parent / f"{tmp_path.name}-mirror"
    folder.mkdir()
    (folder / ZIP_NAME).write_bytes(grown)
    with (
        serve(FaultServer(files={ZIP_NAME: grown}, ranges=where != "http-no-range")) as bad,
        serve(FaultServer(files={ZIP_NAME: fake.data})) as good,
    ):
        first = str(folder) if where == "folder" else bad.url
        code, raw = run_download(tmp_path, zip_params(fake, [first, good.url]), "emnist_letters")
    assert code == 0
    assert_members(raw, fake, "emnist_letters")
    err = capsys.readouterr().err
    if where == "http-no-range":
        announced = f"server announces {len(grown)} bytes, expected {len(fake.data)}"
        assert f"skipping mirror {bad.url}{ZIP_NAME}: {announced}" in err
    else:
        shown = f"{bad.url}{ZIP_NAME}" if where == "http" else (folder / ZIP_NAME).as_uri()
        refused = f"expected {len(fake.data)} bytes (container.size), found {len(grown)}; the zip is not read"
        assert f"skipping mirror {shown}: {refused}" in err
        assert len(bad.requests) == (1 if where == "http" else 0)  # the tail only
    assert not (tmp_path / "data" / ".downloads").exists()
    assert_clean(tmp_path, err)


def test_whole_zip_left_half_written_by_a_kill_is_never_trusted(tmp_path: Path, fake: FakeZip) -> None:
    """SIGKILL while the whole zip streams in (a server ignoring Range) leaves its partial file in
    data/.downloads/; the next run removes it and starts again from byte 0 (a server that ignores
    Range cannot resume it), so it never grows across runs."""
    params = zip_params(fake, [], download={"timeout": 30.0})
    partial = tmp_path / "data" / ".downloads" / f"{ZIP_NAME}.partial"
    with serve(FaultServer(files={ZIP_NAME: fake.data}, ranges=False, faults={ZIP_NAME: Fault("stall")})) as server:
        for entry in params["datasets"].values():
            entry["mirrors"] = [server.url]
        raw = tmp_path / "data" / "emnist_letters" / "raw"
        command = ["--params", str(write_params(tmp_path, params)), "--dataset", "emnist_letters", str(raw)]
        child = subprocess.Popen(
            [sys.executable, "-m", "mnist_pipeline.download", *command], env=tool_env(), stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30  # generous: a loaded CI machine starts Python slowly
        while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size > 0):
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert 0 < partial.stat().st_size < len(fake.data)
    with serve(FaultServer(files={ZIP_NAME: fake.data}, ranges=False)) as server:
        for entry in params["datasets"].values():
            entry["mirrors"] = [server.url]
        code, raw = run_download(tmp_path, params, "emnist_letters")
    assert code == 0
    assert_members(raw, fake, "emnist_letters")
    assert [r.range_header for r in server.requests] == [f"bytes=-{ZIP_TAIL_LENGTH}"]
    assert server.sent == len(fake.data)
    assert not partial.exists()
    assert (tmp_path / "data" / ".downloads" / ZIP_NAME).read_bytes() == fake.data
