"""The grayscale PNG encoder: Pillow decodes every image pixel-identical, the chunk layout and
CRCs follow the PNG specification, and equal pixels always give equal bytes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from mnist_pipeline.png import PNG_SIGNATURE, encode_gray_png, encode_gray_pngs

Gray = npt.NDArray[np.uint8]


def decode(png: bytes) -> Gray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.mode == "L"
        return np.asarray(image)


def chunks_of(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, each CRC checked against zlib.crc32."""
    assert png.startswith(PNG_SIGNATURE)
    position = len(PNG_SIGNATURE)
    found = []
    while position < len(png):
        (length,) = struct.unpack_from(">I", png, position)
        kind = png[position + 4 : position + 8]
        data = png[position + 8 : position + 8 + length]
        (crc,) = struct.unpack_from(">I", png, position + 8 + length)
        assert crc == zlib.crc32(kind + data), kind
        found.append((kind, data))
        position += 12 + length
    assert position == len(png)
    return found


def random_images(count: int, rows: int, cols: int, seed: int = 0) -> Gray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, rows, cols), dtype=np.uint8)


def digit_like(count: int, seed: int = 1) -> Gray:
    """Mostly black with a bright blob, as MNIST digits are: the case the deflate settings target."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for image in images:
        top, left = rng.integers(2, 12, size=2)
        image[top : top + 14, left : left + 10] = rng.integers(0, 256, size=(14, 10), dtype=np.uint8)
    return images


EDGE_CASES = {
    "zeros": np.zeros((28, 28), dtype=np.uint8),
    "full": np.full((28, 28), 255, dtype=np.uint8),
    "one pixel": np.array([[137]], dtype=np.uint8),
    "28 rows x 20 cols": random_images(1, 28, 20)[0],
    "20 rows x 28 cols": random_images(1, 20, 28)[0],
    "one row": random_images(1, 1, 300)[0],
    "one column": random_images(1, 300, 1)[0],
    "gradient": np.arange(256, dtype=np.uint8).reshape(16, 16),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_cases_decode_pixel_identical(name: str) -> None:
    image = EDGE_CASES[name]
    np.testing.assert_array_equal(decode(encode_gray_png(image)), image)


@pytest.mark.parametrize("images", [random_images(50, 28, 28), digit_like(200), random_images(7, 5, 9, seed=3)])
def test_batches_decode_pixel_identical(images: Gray) -> None:
    pngs = encode_gray_pngs(images)
    assert len(pngs) == len(images)
    for png, image in zip(pngs, images, strict=True):
        np.testing.assert_array_equal(decode(png), image)


def test_chunk_layout_header_fields_and_crcs() -> None:
    image = random_images(1, 28, 20)[0]
    chunks = chunks_of(encode_gray_png(image))
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height) == (20, 28)
    assert (depth, colour, compression, filtering, interlace) == (8, 0, 0, 0, 0)
    assert chunks[2][1] == b""


def test_every_row_has_filter_type_none() -> None:
    image = digit_like(1)[0]
    idat = dict(chunks_of(encode_gray_png(image)))[b"IDAT"]
    scanlines = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(28, 29)
    assert (scanlines[:, 0] == 0).all()
    np.testing.assert_array_equal(scanlines[:, 1:], image)


def test_bytes_are_deterministic_and_independent_of_the_batch() -> None:
    images = digit_like(30)
    first = encode_gray_pngs(images)
    assert encode_gray_pngs(images) == first
    assert [encode_gray_png(image) for image in images] == first
    assert encode_gray_pngs(images[10:20]) == first[10:20]
    assert encode_gray_pngs(np.ascontiguousarray(images[::-1])) == first[::-1]


def test_non_contiguous_input_gives_the_same_bytes() -> None:
    images = random_images(4, 28, 56)
    strided = images[:, :, ::2]
    assert encode_gray_pngs(strided) == encode_gray_pngs(np.ascontiguousarray(strided))


def test_compresses_digits_well() -> None:
    # Digit-like images are mostly zeros: the PNG must be far smaller than the raw pixels.
    sizes = [len(png) for png in encode_gray_pngs(digit_like(100))]
    assert max(sizes) < 28 * 28 * 0.6


def test_empty_batch_gives_no_pngs() -> None:
    assert encode_gray_pngs(np.zeros((0, 28, 28), dtype=np.uint8)) == []


@pytest.mark.parametrize(
    "images",
    [np.zeros((2, 28, 28), dtype=np.uint16), np.zeros((28, 28), dtype=np.uint8), np.zeros((2, 0, 28), dtype=np.uint8)],
)
def test_wrong_shape_or_dtype_refused(images: Gray) -> None:
    with pytest.raises(ValueError, match="images: expected"):
        encode_gray_pngs(images)


def test_single_image_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError, match=r"image: expected shape \(rows, cols\), found \(1, 28, 28\)"):
        encode_gray_png(np.zeros((1, 28, 28), dtype=np.uint8))
