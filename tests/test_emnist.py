"""One EMNIST split built end to end from a loopback gzip.zip laid out as NIST publishes it:
stored members under gzip/, images stored transposed, letters labelled 1..26. Only the split's
members travel; every export comes out upright and labelled from 0."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from mnist_pipeline import decode, download, export_csv, export_png, extract, verify
from mnist_pipeline.idx import encode_idx
from mnist_pipeline.params import compose_params
from tests.support.data import write_params
from tests.support.faultserver import FaultServer, serve
from tests.support.repos import PROJECT_ROOT

DATASET = "emnist_letters"
COUNTS = {"train": 52, "test": 26}
#: An asymmetric glyph: a bar down the left side and one along the bottom ("L"). Stored
#: transposed it is a bar along the top and one down the left: only a correct turn gives "L".
GLYPH = np.zeros((28, 28), dtype=np.uint8)
GLYPH[4:24, 6:9] = 255
GLYPH[21:24, 6:20] = 255


def gzip_member(array: np.ndarray) -> tuple[bytes, bytes]:
    payload = encode_idx(array)
    return gzip.compress(payload, mtime=0), payload


def build_zip() -> tuple[bytes, dict[str, Any]]:
    """gzip.zip with the letters split and a large member of another split; the splits config."""
    rng = np.random.default_rng(5)
    members: dict[str, bytes] = {}
    splits: dict[str, Any] = {}
    for role, count in COUNTS.items():
        labels = (np.arange(count) % 26 + 1).astype(np.uint8)  # stored 1..26, as NIST does
        images = np.repeat(GLYPH.T[None], count, axis=0)  # stored transposed, as NIST does
        splits[role] = {"count": count}
        for kind, array, part in (("images", images, "images-idx3"), ("labels", labels, "labels-idx1")):
            name = f"emnist-letters-{role}-{part}-ubyte.gz"
            data, payload = gzip_member(array)
            members[f"gzip/{name}"] = data
            splits[role][kind] = {
                "file": name,
                "member": f"gzip/{name}",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "payload_size": len(payload),
            }
    # Another split's images: what a whole-zip download would cost on top.
    members["gzip/emnist-byclass-train-images-idx3-ubyte.gz"] = gzip_member(
        rng.integers(0, 256, size=(400, 28, 28), dtype=np.uint8)
    )[0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return buffer.getvalue(), splits


@pytest.mark.parametrize("ranges", [True, False], ids=["range", "whole-zip"])
def test_emnist_letters_split_is_built_upright_from_its_members(tmp_path: Path, ranges: bool) -> None:
    data, splits = build_zip()
    composed = tmp_path / "composed.yaml"
    compose_params(composed, [f"dataset={DATASET}", "formats=[csv,png]"], PROJECT_ROOT / "conf")
    params: dict[str, Any] = yaml.safe_load(composed.read_text())
    entry = params["datasets"][DATASET]
    entry["splits"] = splits
    entry["container"] = {
        "file": "gzip.zip",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": None,
    }
    data_dir = tmp_path / "data" / DATASET
    with serve(FaultServer(files={"gzip.zip": data}, ranges=ranges)) as server:
        entry["mirrors"] = [server.url]
        path = str(write_params(tmp_path, params))
        common = ["--params", path, "--dataset", DATASET]
        assert download.main([*common, str(data_dir / "raw")]) == 0
    needed = sum(spec["size"] for split in splits.values() for spec in (split["images"], split["labels"]))
    if ranges:
        # the 64 KiB tail (with the central directory), then only the split's members and headers
        assert server.sent <= 65_633 + needed + 4 * 100
        assert server.sent < len(data)
    else:
        assert server.sent == len(data)
    assert verify.main([*common, str(data_dir / "raw"), str(data_dir / "checksums.json")]) == 0
    assert extract.main([*common, str(data_dir / "raw"), str(data_dir / "idx")]) == 0
    decoded = data_dir / "decoded"
    assert decode.main([*common, str(data_dir / "idx"), str(decoded), str(data_dir / "stats.json")]) == 0
    np.testing.assert_array_equal(np.load(decoded / "train_images.npy")[0], GLYPH)
    assert np.load(decoded / "train_labels.npy").tolist() == [i % 26 for i in range(52)]
    export = data_dir / "export"
    assert export_csv.main([*common, str(decoded), str(export / "csv")]) == 0
    rows = list(csv.reader((export / "csv" / "test.csv").open()))
    assert [int(row[0]) for row in rows[1:4]] == [0, 1, 2]  # letters 1..26 exported as 0..25
    assert export_png.main([*common, str(decoded), str(export / "png")]) == 0
    with zipfile.ZipFile(export / "png" / "images.zip") as archive:
        names = archive.namelist()
        assert "train/00/00.png" in names and "train/25/25.png" in names  # 26 classes: 00..25
        image = np.asarray(Image.open(io.BytesIO(archive.read("train/00/00.png"))))
        manifest = archive.read("manifest.csv").decode().splitlines()
    np.testing.assert_array_equal(image, GLYPH)  # upright: the "L", not its mirror
    assert manifest[1].endswith(",0,A/a")
