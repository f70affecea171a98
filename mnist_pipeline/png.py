"""A lean, deterministic PNG encoder for 8-bit grayscale images.

Why not Pillow: on tiny images its per-image overhead (an ``Image``, an encoder object, a
``BytesIO``, a dozen Python calls) costs more than the compression. Here the chunks that do
not depend on the pixels are built once per image shape, every scanline of a batch gets its
filter byte in one numpy assignment, and each image costs one ``zlib.compress`` call, a CRC
and a join. Measured on the 70,000 MNIST digits in one process on this project's 2-core VM:
Pillow 3.7 s and 275 bytes per file, this encoder 1.6 s and 250 bytes per file (Pillow's
adaptive row filters do not pay on digits; filter 0 on every row does).

Output: signature, IHDR (8-bit, colour type 0 grayscale, no interlace), one IDAT, IEND; filter
type 0 (None) on every row. Equal pixels give equal bytes (for a given zlib build, as with
any deflate-based encoder), whatever the batch an image is encoded in.

Deflate settings measured on the same digits (microseconds per image, mean zlib stream bytes):

- ``zlib.compress`` level 1 / 6 / 9: 14 / 22 / 41 us, 205 / 193 / 190 B.
- level 6 with wbits 9 or 10: 35 / 22 us, 193.6 / 193.0 B (no gain: zlib already sizes its
  window to the input).
- ``compressobj`` level 6, wbits 9-10, memLevel 1-8, fresh or ``.copy()`` of a template:
  23-38 us, 193-195 B. Stream set-up is not the cost (``compress(b"")`` takes 2.7 us).
- strategy Z_RLE: 14 us, 200 B; Z_FIXED: 22 us, 194 B; Z_HUFFMAN_ONLY: 15 us, 254 B.
- Faster deflate libraries: zlib-ng level 6 31 us (vs 44 for zlib in the same
  run), 197 B; ISA-L level 1 18 us, 218 B. Not taken: zlib-ng's output differs between CPU
  architectures (zlib-ng/zlib-ng#795; x86 against aarch64: trifectatechfoundation/zlib-rs#91),
  so the bytes of a PNG, and of every export holding PNGs, would depend on the machine; the
  saving, about 0.45 s of CPU per MNIST export, is smaller than the run-to-run spread.

Chosen: ``zlib.compress`` at level 6, zlib's default and Pillow's. Level 1 and Z_RLE are a
third faster but 4-6 % larger on MNIST, and RLE only finds runs of one value, which would cost
far more on the textured datasets of the family; level 9 halves the speed for 1.3 %.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

import numpy as np
import numpy.typing as npt

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BIT_DEPTH = 8
COLOUR_TYPE_GRAY = 0
FILTER_NONE = 0
COMPRESSION_LEVEL = 6
#: PNG dimensions are 31-bit unsigned integers, and zero is not allowed.
MAX_DIMENSION = 2**31 - 1

_IHDR = struct.Struct(">IIBBBBB")
_IDAT_CRC = zlib.crc32(b"IDAT")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


_IEND = _chunk(b"IEND", b"")


@lru_cache(maxsize=16)
def _head(height: int, width: int) -> bytes:
    """Signature and IHDR: the same bytes for every image of one shape."""
    # Compression method 0 (deflate), filter method 0, interlace 0 (none): the only methods
    # PNG defines, bar Adam7 interlacing, which only grows small files.
    header = _IHDR.pack(width, height, BIT_DEPTH, COLOUR_TYPE_GRAY, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header)


def encode_gray_png(image: npt.NDArray[np.uint8]) -> bytes:
    """One PNG of a ``(rows, cols) uint8`` image."""
    if image.ndim != 2:
        raise ValueError(f"image: expected shape (rows, cols), found {image.shape}")
    return encode_gray_pngs(image[np.newaxis])[0]


def encode_gray_pngs(images: npt.NDArray[np.uint8]) -> list[bytes]:
    """PNGs of ``(n, rows, cols) uint8`` images, in order; each as ``encode_gray_png`` would make it."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected (n, rows, cols) uint8, found {images.shape} {images.dtype}")
    count, height, width = images.shape
    if not (0 < height <= MAX_DIMENSION and 0 < width <= MAX_DIMENSION):
        raise ValueError(f"images: expected rows and cols from 1 to {MAX_DIMENSION}, found {height}x{width}")
    # Every scanline is its filter type byte followed by its pixels.
    scanlines = np.empty((count, height, width + 1), dtype=np.uint8)
    scanlines[:, :, 0] = FILTER_NONE
    scanlines[:, :, 1:] = images
    stride = height * (width + 1)
    flat = scanlines.reshape(-1).data
    head = _head(height, width)
    return [
        _png(head, zlib.compress(flat[start : start + stride], COMPRESSION_LEVEL))
        for start in range(0, count * stride, stride)
    ]


def _png(head: bytes, stream: bytes) -> bytes:
    crc = zlib.crc32(stream, _IDAT_CRC)
    return b"".join((head, len(stream).to_bytes(4, "big"), b"IDAT", stream, crc.to_bytes(4, "big"), _IEND))
