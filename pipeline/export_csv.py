"""export@csv stage: one CSV per split (train.csv, test.csv, val.csv when split), one row per
image in dataset order. Default: Kaggle header ``label,pixel0,...,pixel783``, integers 0-255.

Rows are formatted with lookup tables: every cell is one of 256 pixel strings or a label
string, so a chunk of rows becomes bytes with two numpy operations instead of 55 million
Python ``str`` calls (see benchmarks/).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from pipeline.config import CsvOptions, CsvScale, LabelPosition, Params
from pipeline.decoded import SplitArrays, read_decoded
from pipeline.fsio import atomic_dir
from pipeline.images import with_validation
from pipeline.stage import run_export

ROWS_PER_CHUNK = 2000
# Offsets into the token table: pixel tokens, label tokens; adding _ROW_END to either selects
# the same token ending in a newline instead of a comma.
_PIXEL, _LABEL, _ROW_END = 0, 256, 512


def pixel_tokens(scale: CsvScale, decimals: int) -> list[str]:
    if scale is CsvScale.unit:
        return [f"{value / 255:.{decimals}f}" for value in range(256)]
    return [str(value) for value in range(256)]


def token_table(pixels: list[str], labels: list[str]) -> npt.NDArray[np.uint8]:
    """Rows of NUL-padded ASCII: pixel+',' | label+',' | pixel+'\\n' | label+'\\n'."""
    cells = [p + "," for p in pixels] + [lab + "," for lab in labels] + [""] * (256 - len(labels))
    cells += [p + "\n" for p in pixels] + [lab + "\n" for lab in labels] + [""] * (256 - len(labels))
    width = max(len(cell) for cell in cells)
    table = np.zeros((len(cells), width), dtype=np.uint8)
    for row, cell in enumerate(cells):
        table[row, : len(cell)] = np.frombuffer(cell.encode("ascii"), dtype=np.uint8)
    return table


def row_codes(split: SplitArrays, label_position: LabelPosition) -> npt.NDArray[np.uint16]:
    """(n, 1 + pixels) codes into the token table, in column order."""
    pixels = split.images.reshape(len(split), -1).astype(np.uint16) + _PIXEL
    labels = split.labels.astype(np.uint16)[:, None] + _LABEL
    codes = np.hstack([labels, pixels] if label_position is LabelPosition.first else [pixels, labels])
    codes[:, -1] += _ROW_END  # the last cell of a row ends with a newline, not a comma
    return codes


def csv_chunks(split: SplitArrays, table: npt.NDArray[np.uint8], label_position: LabelPosition) -> Iterator[bytes]:
    for start in range(0, len(split), ROWS_PER_CHUNK):
        part = SplitArrays(
            images=split.images[start : start + ROWS_PER_CHUNK],
            labels=split.labels[start : start + ROWS_PER_CHUNK],
        )
        cells = table[row_codes(part, label_position)]
        yield cells[cells != 0].tobytes()


def header_line(num_pixels: int, label_position: LabelPosition) -> bytes:
    columns = [f"pixel{i}" for i in range(num_pixels)]
    columns = ["label", *columns] if label_position is LabelPosition.first else [*columns, "label"]
    return (",".join(columns) + "\n").encode("ascii")


def write_csv(out: BinaryIO, split: SplitArrays, options: CsvOptions, classes: list[str]) -> None:
    if options.header:
        out.write(header_line(int(np.prod(split.images.shape[1:])), options.label_position))
    table = token_table(pixel_tokens(options.scale, options.decimals), [str(i) for i in range(len(classes))])
    for chunk in csv_chunks(split, table, options.label_position):
        out.write(chunk)


def export_csv(params: Params, decoded_path: Path, csv_dir: Path) -> str:
    options = params.export.csv
    splits = read_decoded(decoded_path)
    ordered = with_validation(
        splits, options.validation_size, options.validation_split, options.seed, "export.csv.validation_size"
    )
    suffix = ".csv.gz" if options.gzip else ".csv"
    with atomic_dir(csv_dir) as staging:
        for name, split in ordered.items():
            with (staging / f"{name}{suffix}").open("wb") as raw:
                if options.gzip:
                    # filename="" and mtime=0 keep the gzip header free of names and times.
                    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
                        write_csv(zipped, split, options, params.dataset.classes)  # type: ignore[arg-type]
                else:
                    write_csv(raw, split, options, params.dataset.classes)
    rows = ", ".join(f"{name}{suffix} {len(split):,} rows" for name, split in ordered.items())
    return f"{rows} -> {csv_dir}"


def main(argv: list[str] | None = None) -> int:
    return run_export("csv", export_csv, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
