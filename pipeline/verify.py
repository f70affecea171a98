"""verify stage: prove each archive holds the canonical bytes and record the evidence.

Writes ``checksums.json``: for every archive its expected and measured size, md5, sha256 and
payload sha256, and which check accepted it ("archive", or "payload" for a recompressed copy
when ``verify.archive: payload``). Any mismatch fails the stage and writes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.archive import check_archive
from pipeline.config import ArchiveSpec, Params
from pipeline.fsio import write_bytes_atomic
from pipeline.stage import run_stage, stage_parser


def archive_record(path: Path, spec: ArchiveSpec, params: Params) -> dict[str, Any]:
    verdict = check_archive(path, spec, params.verify.archive, full=True)
    return {
        "file": spec.file,
        "passed": verdict.passed,
        "expected": {
            "size": spec.size,
            "md5": spec.md5,
            "sha256": spec.sha256,
            "payload_sha256": spec.payload_sha256,
        },
        "actual": {
            "size": verdict.digests.size,
            "md5": verdict.digests.md5,
            "sha256": verdict.digests.sha256,
            "payload_sha256": verdict.payload_sha256,
        },
    }


def verify(params: Params, raw_dir: Path, record_path: Path) -> str:
    records = [archive_record(raw_dir / spec.file, spec, params) for spec in params.dataset.archives()]
    document = {
        "dataset": params.dataset.name,
        "mode": params.verify.archive.value,
        "archives": records,
    }
    write_bytes_atomic(record_path, (json.dumps(document, indent=2) + "\n").encode())
    passed = ", ".join(f"{r['file']} ({r['passed']})" for r in records)
    return f"verified {passed} -> {record_path}"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__ or "")
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("record", type=Path, help="checksums.json to write")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_stage("verify", lambda params: verify(params, args.raw_dir, args.record), args.params)


if __name__ == "__main__":
    raise SystemExit(main())
