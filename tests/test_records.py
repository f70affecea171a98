"""checksums.json and stats.json: one typed record for writer and reader, the same bytes as the
records the stages wrote before (DVC shows stats.json as metrics; teams diff them)."""

from __future__ import annotations

import json
from pathlib import Path

from mnist_pipeline.config import params_from_dict
from mnist_pipeline.records import (
    ArchiveRecord,
    RecordedDigests,
    SplitStats,
    read_checksums,
    read_stats,
    stats_document,
    write_checksums,
)
from tests.support.data import TinyDataset, params_for


def test_stats_round_trip_in_the_published_layout(tmp_path: Path, tiny: TinyDataset) -> None:
    dataset = params_from_dict(params_for(tiny, ["unused"])).dataset("mnist")
    stats = {
        "train": SplitStats(60, [6] * 10, 33.3184, 78.5675, 0.130661, 0.308108),
        "test": SplitStats(20, [2] * 10, 33.7912, 79.1725, 0.132515, 0.310480),
    }
    path = tmp_path / "stats.json"
    path.write_bytes(stats_document(stats))
    document = json.loads(path.read_text())
    assert list(document["train"]) == [
        "count", "class_counts", "pixel_mean", "pixel_std", "pixel_mean_unit", "pixel_std_unit"
    ]  # fmt: skip
    assert document["train"]["class_counts"] == {str(label): 6 for label in range(10)}
    assert read_stats(path, dataset) == stats


def test_checksums_round_trip(tmp_path: Path, tiny: TinyDataset) -> None:
    dataset = params_from_dict(params_for(tiny, ["unused"])).dataset("mnist")
    records = [
        ArchiveRecord(
            file=spec.file,
            member=None,
            passed="archive",
            expected=RecordedDigests(spec.size, spec.md5, spec.sha256, spec.payload_size, None, spec.payload_sha256),
            actual=RecordedDigests(spec.size, spec.md5, spec.sha256, spec.payload_size, "0" * 32, spec.payload_sha256),
        )
        for spec in dataset.files()
    ]
    path = tmp_path / "checksums.json"
    write_checksums(path, "mnist", "strict", records)
    document = json.loads(path.read_text())
    assert [document[key] for key in ("version", "dataset", "mode")] == [2, "mnist", "strict"]
    assert list(document["archives"][0]) == ["file", "member", "passed", "expected", "actual"]
    assert read_checksums(path, dataset) == records
