"""The two JSON records stages hand each other, typed once for writer and reader:

- ``checksums.json`` (verify writes, report reads): per published file, the expected and measured
  sizes and digests, and which check accepted it;
- ``stats.json`` (decode writes, report reads; DVC shows it as metrics): per split, the image
  count, the images per class and the pixel moments.

Readers trust nothing: a record is checked against the dataset's config (its files, splits and
classes) and every field against its type before any value is used, so a hand-edited or forged
record fails in one line naming the file instead of reaching a rendered card.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_pipeline.config import DatasetSpec
from mnist_pipeline.errors import DatasetError
from mnist_pipeline.fsio import write_bytes_atomic

CHECKSUMS_VERSION = 2
ACCEPTED_BY = ("archive", "payload")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RecordedDigests:
    """Sizes and digests of a file and of its decompressed payload, as checksums.json records
    them; None where unknown. (``fsio.Digests``: what hashing one file gives.)"""

    size: int | None
    md5: str | None
    sha256: str | None
    payload_size: int | None
    payload_md5: str | None
    payload_sha256: str | None


@dataclass(frozen=True)
class ArchiveRecord:
    """One published file as verify found it."""

    file: str
    member: str | None
    #: Which check accepted it: "archive" (its own digests) or "payload" (a recompressed copy).
    passed: str
    expected: RecordedDigests
    actual: RecordedDigests


@dataclass(frozen=True)
class SplitStats:
    """One split of ``stats.json``; the pixel moments are over every pixel of the split."""

    count: int
    #: Images per label, in label order.
    class_counts: list[int]
    pixel_mean: float | None = None
    pixel_std: float | None = None
    pixel_mean_unit: float | None = None
    pixel_std_unit: float | None = None


def write_checksums(path: Path, dataset_name: str, mode: str, records: list[ArchiveRecord]) -> None:
    document = {
        "version": CHECKSUMS_VERSION,
        "dataset": dataset_name,
        "mode": mode,
        "archives": [asdict(record) for record in records],
    }
    write_bytes_atomic(path, (json.dumps(document, indent=2) + "\n").encode())


def read_checksums(path: Path, dataset: DatasetSpec) -> list[ArchiveRecord]:
    """The records of ``path``: one per published file of ``dataset``, in config order, each
    with a measured size and a 64-hex-digit sha256 and a known check."""
    document = _read_json(path)
    raw = document.get("archives") if isinstance(document, dict) else None
    files = [spec.file for spec in dataset.files()]
    if not isinstance(raw, list) or [item.get("file") if isinstance(item, dict) else None for item in raw] != files:
        raise DatasetError(f"{path}: expected records of {files}, found {type(raw).__name__}")
    return [_archive_record(path, item) for item in raw]


def _archive_record(path: Path, item: dict[str, Any]) -> ArchiveRecord:
    actual = item.get("actual")
    if (
        not isinstance(actual, dict)
        or not _is_count(actual.get("size"))
        or not isinstance(actual.get("sha256"), str)
        or not _SHA256.fullmatch(actual["sha256"])
        or item.get("passed") not in ACCEPTED_BY
    ):
        raise DatasetError(
            f"{path}: record of {item['file']}: expected actual.size, actual.sha256 (64 hex digits) and passed"
        )
    return ArchiveRecord(
        file=item["file"],
        member=item.get("member") if isinstance(item.get("member"), str) else None,
        passed=item["passed"],
        expected=_digests(item.get("expected")),
        actual=_digests(actual),
    )


def _digests(raw: Any) -> RecordedDigests:
    """The digests of a record, keeping only values of the right type (the rest were checked or
    are shown nowhere)."""
    values = raw if isinstance(raw, dict) else {}

    def number(key: str) -> int | None:
        return values.get(key) if _is_count(values.get(key)) else None

    def text(key: str) -> str | None:
        value = values.get(key)
        return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32,64}", value) else None

    return RecordedDigests(
        size=number("size"),
        md5=text("md5"),
        sha256=text("sha256"),
        payload_size=number("payload_size"),
        payload_md5=text("payload_md5"),
        payload_sha256=text("payload_sha256"),
    )


def stats_document(stats: dict[str, SplitStats]) -> bytes:
    """stats.json's bytes (decode writes them with its arrays, replaced together)."""
    document = {
        split: {**asdict(values), "class_counts": {str(label): n for label, n in enumerate(values.class_counts)}}
        for split, values in stats.items()
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def read_stats(path: Path, dataset: DatasetSpec) -> dict[str, SplitStats]:
    """The statistics of every split of ``dataset``, in config order, checked: one count per
    class, non-negative, summing to the split's count."""
    document = _read_json(path)
    found = list(document)[:5] if isinstance(document, dict) else type(document).__name__
    if not isinstance(document, dict) or list(document) != list(dataset.splits):
        raise DatasetError(f"{path}: expected statistics of the splits {list(dataset.splits)}, found {found}")
    labels = [str(label) for label in range(len(dataset.classes))]
    stats = {}
    for split, values in document.items():
        counts = values.get("class_counts") if isinstance(values, dict) else None
        if (
            not isinstance(counts, dict)
            or list(counts) != labels
            or not all(_is_count(n) for n in counts.values())
            or values.get("count") != sum(counts.values())
        ):
            raise DatasetError(f"{path}: split {split!r}: expected count and class_counts for {len(labels)} classes")
        moments = {key: values.get(key) for key in ("pixel_mean", "pixel_std", "pixel_mean_unit", "pixel_std_unit")}
        typed = {key: float(value) if _is_number(value) else None for key, value in moments.items()}
        stats[split] = SplitStats(count=values["count"], class_counts=list(counts.values()), **typed)
    return stats


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from exc
