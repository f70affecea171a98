"""The way a user converts MNIST to Parquet with Hugging Face ``datasets``: ``Dataset.from_dict``
with an ``Image`` and a ``ClassLabel`` feature (``datasets`` encodes every image as PNG), then
``to_parquet``, one split at a time, one process.

Usage: ``python benchmarks/naive_hf.py DECODED_DIR OUT_DIR CLASSES SPLIT [SPLIT ...]`` (the decode
stage's ``<split>_images.npy`` and ``<split>_labels.npy``; CLASSES comma-separated). Writes
``OUT_DIR/<split>.parquet``. ``HF_HOME`` should point at a scratch folder: ``datasets`` keeps its
cache there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image  # type: ignore[import-untyped, unused-ignore]
from PIL import Image as PILImage


def main(argv: list[str]) -> int:
    decoded, out_dir, classes = Path(argv[0]), Path(argv[1]), argv[2].split(",")
    out_dir.mkdir(parents=True)
    features = Features({"image": Image(), "label": ClassLabel(names=classes)})
    for split in argv[3:]:
        images = np.load(decoded / f"{split}_images.npy")
        labels = np.load(decoded / f"{split}_labels.npy")
        dataset = Dataset.from_dict(
            {"image": [PILImage.fromarray(image) for image in images], "label": labels.tolist()}, features=features
        )
        dataset.to_parquet(str(out_dir / f"{split}.parquet"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
