"""The naive way to the CSV export: pandas ``to_csv`` of every split, one process.

Usage: ``python benchmarks/naive_csv.py DECODED_DIR OUT_DIR SPLIT [SPLIT ...]`` (the decode
stage's ``<split>_images.npy`` and ``<split>_labels.npy``). Writes ``OUT_DIR/<split>.csv`` with
the Kaggle header ``label,pixel0,...``, as the CSV export does by default.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def main(argv: list[str]) -> int:
    decoded, out_dir = Path(argv[0]), Path(argv[1])
    out_dir.mkdir(parents=True)
    for split in argv[2:]:
        images = np.load(decoded / f"{split}_images.npy")
        labels = np.load(decoded / f"{split}_labels.npy")
        pixels = images.reshape(len(images), -1)
        frame = pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(pixels.shape[1])])
        frame.insert(0, "label", labels)
        frame.to_csv(out_dir / f"{split}.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
