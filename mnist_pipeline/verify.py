"""verify stage: prove each published file holds the canonical bytes and record the evidence.

Writes ``checksums.json``: for every file its expected and measured size, md5, sha256 and
payload digests, and which check accepted it ("archive", or "payload" for a recompressed copy
when ``verify.archive: payload``). A digest no source publishes is recorded as null and not
checked. Any mismatch fails the stage and writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_pipeline.archive import check_archive
from mnist_pipeline.config import ArchiveCheck, Compression, DatasetSpec, FileSpec
from mnist_pipeline.records import ArchiveRecord, RecordedDigests, write_checksums
from mnist_pipeline.stage import params_file, run_stage, stage_parser


def archive_record(path: Path, spec: FileSpec, mode: ArchiveCheck, compression: Compression) -> ArchiveRecord:
    verdict = check_archive(path, spec, mode, compression, full=True)
    payload = verdict.payload
    return ArchiveRecord(
        file=spec.file,
        member=spec.member,
        passed=verdict.passed,
        expected=RecordedDigests(
            spec.size, spec.md5, spec.sha256, spec.payload_size, spec.payload_md5, spec.payload_sha256
        ),
        actual=RecordedDigests(
            verdict.digests.size,
            verdict.digests.md5,
            verdict.digests.sha256,
            payload.size if payload else None,
            payload.md5 if payload else None,
            payload.sha256 if payload else None,
        ),
    )


def verify(dataset: DatasetSpec, name: str, mode: ArchiveCheck, raw_dir: Path, record_path: Path) -> str:
    records = [archive_record(raw_dir / spec.file, spec, mode, dataset.compression) for spec in dataset.files()]
    write_checksums(record_path, name, mode.value, records)
    passed = ", ".join(f"{record.file} ({record.passed})" for record in records)
    return f"verified {passed} -> {record_path}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("record", type=Path, help="checksums.json to write")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage(
        f"verify@{args.dataset}",
        lambda params: verify(
            params.dataset(args.dataset), args.dataset, params.verify.archive, args.raw_dir, args.record
        ),
        params_file(args),
        writes=[args.record],
    )


if __name__ == "__main__":
    raise SystemExit(main())
