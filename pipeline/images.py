"""Image transforms shared by the exports: validation carving, scaling, one-hot, PNG encoding."""

from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import numpy.typing as npt
from PIL import Image

from pipeline.config import Scale, SplitMethod
from pipeline.decoded import Images, SplitArrays, pixel_moments
from pipeline.errors import ConfigError

Floats = npt.NDArray[np.float32]
#: Images per task handed to a worker: large enough to amortise pickling, small enough to
#: keep every worker busy and memory flat.
PNG_BATCH = 2000
VALIDATION_SPLIT = "val"


def with_validation(
    splits: dict[str, SplitArrays], size: int, method: SplitMethod, seed: int, key: str
) -> dict[str, SplitArrays]:
    """``splits`` with ``size`` images moved from train into a ``val`` split placed after it.

    ``method`` first takes the first ``size`` images (the classic TensorFlow reader);
    shuffle takes a sample drawn with ``seed``. Both parts keep the original order, so the
    result depends on the parameters only.
    """
    if size == 0:
        return splits
    train = splits["train"]
    if size >= len(train):
        raise ConfigError(f"{key}: expected fewer than the {len(train)} training images, found {size}")
    if method is SplitMethod.first:
        chosen = np.arange(size)
    else:
        chosen = np.sort(np.random.default_rng(seed).permutation(len(train))[:size])
    keep = np.ones(len(train), dtype=bool)
    keep[chosen] = False
    carved = {
        "train": SplitArrays(images=train.images[keep], labels=train.labels[keep]),
        VALIDATION_SPLIT: SplitArrays(images=train.images[chosen], labels=train.labels[chosen]),
    }
    return carved | {name: split for name, split in splits.items() if name != "train"}


def scale_images(images: Images, scale: Scale, mean: float, std: float) -> Floats:
    """uint8 pixels -> float32: unit [0, 1], centered [-0.5, 0.5], or standardized (x/255 - mean) / std."""
    unit = images.astype(np.float32) / np.float32(255)
    if scale is Scale.centered:
        return unit - np.float32(0.5)
    if scale is Scale.standardize:
        return (unit - np.float32(mean)) / np.float32(std)
    return unit


def unit_moments(images: Images) -> tuple[float, float]:
    """Mean and std of ``images`` scaled to [0, 1]."""
    mean, std = pixel_moments(images)
    return mean / 255, std / 255


def one_hot(labels: npt.NDArray[np.uint8], num_classes: int, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
    return np.eye(num_classes, dtype=dtype)[labels]


def encode_png(image: Images) -> bytes:
    """One 8-bit grayscale PNG; Pillow writes only IHDR/IDAT/IEND, so the bytes are stable."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _encode_batch(images: Images) -> list[bytes]:
    return [encode_png(image) for image in images]


def encode_pngs(images: Images, workers: int) -> list[bytes]:
    """PNG bytes of every image, in order; identical whatever ``workers`` is."""
    batches = [images[start : start + PNG_BATCH] for start in range(0, len(images), PNG_BATCH)]
    if workers == 1 or len(batches) < 2:
        return [png for batch in batches for png in _encode_batch(batch)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [png for encoded in pool.map(_encode_batch, batches) for png in encoded]
