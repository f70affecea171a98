"""extract stage: bounded, strict decompression of hostile archives."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import zlib
from pathlib import Path

import pytest

from mnist_pipeline import extract
from mnist_pipeline.archive import OPENERS
from mnist_pipeline.names import COMPRESSED_SUFFIXES, payload_name
from tests.support.data import TinyDataset, params_for, write_params

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


def run_extract(tmp_path: Path, tiny: TinyDataset, train_images: bytes | None = None) -> tuple[int, Path]:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    for name, data in tiny.archives.items():
        (raw / name).write_bytes(train_images if name == TRAIN_IMAGES and train_images is not None else data)
    idx_dir = tmp_path / "data" / "idx"
    params = write_params(tmp_path, params_for(tiny, ["unused"]))
    return extract.main(["--params", str(params), "--dataset", "mnist", str(raw), str(idx_dir)]), idx_dir


def test_extracts_each_payload(tmp_path: Path, tiny: TinyDataset) -> None:
    code, idx_dir = run_extract(tmp_path, tiny)
    assert code == 0
    for name, data in tiny.archives.items():
        assert (idx_dir / name.removesuffix(".gz")).read_bytes() == gzip.decompress(data)


def corrupt_crc(archive: bytes) -> bytes:
    return archive[:-8] + bytes([archive[-8] ^ 0xFF]) + archive[-7:]


def bomb(payload_size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\x00" * (1 << 20)
    parts = [compressor.compress(zeros) for _ in range(max(4, 4 * payload_size // len(zeros) + 4))]
    return b"".join(parts) + compressor.flush()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda a: a[: len(a) // 2], "corrupt gzip stream"),
        (corrupt_crc, "CRC check failed"),
        (lambda a: b"", "expected gzip magic 0x1f8b, found an empty file"),
        (lambda a: b"<!DOCTYPE html>", "expected gzip magic 0x1f8b, found bytes 0x3c21"),
        (lambda a: gzip.compress(gzip.decompress(a)[:-10], mtime=0), "expected payload bytes"),
    ],
    ids=["truncated", "crc", "empty", "html", "short-payload"],
)
def test_bad_archive_fails_and_leaves_no_idx(
    tmp_path: Path, tiny: TinyDataset, make: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(make)
    code, idx_dir = run_extract(tmp_path, tiny, make(tiny.archives[TRAIN_IMAGES]))
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("extract@mnist: error: ") and TRAIN_IMAGES in line and message in line
    assert not idx_dir.exists()
    assert [p.name for p in idx_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_gzip_bomb_stops_at_expected_size(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    code, idx_dir = run_extract(tmp_path, tiny, bomb(tiny.splits_spec["train"]["images"]["payload_size"]))
    assert code == 1
    assert "payload exceeds the expected" in capsys.readouterr().err
    assert not idx_dir.exists()


def test_same_size_relabelled_payload_is_caught_by_its_digest(
    tmp_path: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited archive in raw/ with the right payload size: the payload sha256 decides."""
    payload = bytearray(gzip.decompress(tiny.archives[TRAIN_IMAGES]))
    payload[-1] ^= 0xFF
    code, idx_dir = run_extract(tmp_path, tiny, gzip.compress(bytes(payload), mtime=0))
    assert code == 1
    assert "payload: expected payload sha256" in capsys.readouterr().err
    assert not idx_dir.exists()


def test_xz_files_extract_through_the_openers_table(tmp_path: Path, tiny: TinyDataset) -> None:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    params = params_for(tiny, ["unused"])
    entry = params["datasets"]["mnist"]
    entry["compression"] = "xz"
    for split in entry["splits"].values():
        for kind in ("images", "labels"):
            spec = split[kind]
            data = lzma.compress(gzip.decompress(tiny.archives[spec["file"]]))
            spec["file"] = spec["file"].removesuffix(".gz") + ".xz"
            spec.update(size=len(data), md5=None, sha256=hashlib.sha256(data).hexdigest())
            (raw / spec["file"]).write_bytes(data)
    path = write_params(tmp_path, params)
    idx_dir = tmp_path / "data" / "idx"
    assert extract.main(["--params", str(path), "--dataset", "mnist", str(raw), str(idx_dir)]) == 0
    assert (idx_dir / "train-images-idx3-ubyte").read_bytes() == gzip.decompress(tiny.archives[TRAIN_IMAGES])


def test_every_compression_names_its_payload() -> None:
    """names.COMPRESSED_SUFFIXES (the payload's name, for extract and decode) covers every
    compression archive.OPENERS opens."""
    assert set(COMPRESSED_SUFFIXES) == {compression.value for compression in OPENERS}
    assert payload_name("train-images-idx3-ubyte.gz", "gzip") == "train-images-idx3-ubyte"
    assert payload_name("emnist-letters.xz", "gzip") == "emnist-letters.xz.idx"
