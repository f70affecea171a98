"""The IDX file format (LeCun et al.), read strictly and written canonically.

Layout: two zero bytes, a dtype code byte, a dimension-count byte, one big-endian uint32 per
dimension, then exactly prod(dims) items big-endian, and nothing after them.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mnist_pipeline.errors import IdxFormatError
from mnist_pipeline.rows import RowFile

MAGIC_PREFIX = b"\x00\x00"
HEADER_SIZE = 4
DIM_SIZE = 4
MAX_DIMS = 8
MAX_NOMINAL_BYTES = 1 << 48

#: dtype code -> big-endian numpy dtype, as the format defines them.
DTYPES: dict[int, np.dtype[np.generic]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}


def _parse_header(data: bytes, source: str, payload_length: int) -> tuple[tuple[int, ...], np.dtype[np.generic]]:
    """Check an IDX header (``data`` holds at least the header) against the payload length
    that follows it; return the dimensions and the big-endian dtype."""
    if len(data) < HEADER_SIZE:
        raise IdxFormatError(f"{source}: expected a {HEADER_SIZE}-byte IDX header, found {len(data)} bytes")
    if data[:2] != MAGIC_PREFIX:
        raise IdxFormatError(f"{source}: expected magic 0x0000 in bytes 0-1, found 0x{data[:2].hex()}")
    code, ndim = data[2], data[3]
    if code not in DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in DTYPES)
        raise IdxFormatError(f"{source}: unknown dtype code 0x{code:02X}; allowed: {allowed}")
    if not 1 <= ndim <= MAX_DIMS:
        raise IdxFormatError(f"{source}: expected 1 to {MAX_DIMS} dimensions, found {ndim}")
    payload_start = HEADER_SIZE + DIM_SIZE * ndim
    if len(data) < payload_start:
        raise IdxFormatError(f"{source}: header declares {ndim} dimensions but the file ends at byte {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[HEADER_SIZE:payload_start])
    dtype = DTYPES[code]
    if math.prod(max(dim, 1) for dim in dims) * dtype.itemsize > MAX_NOMINAL_BYTES:
        # numpy cannot even describe such a shape, empty or not (found by the fuzz test).
        raise IdxFormatError(f"{source}: dimensions {'x'.join(map(str, dims))} describe more than 2**48 bytes")
    expected = math.prod(dims) * dtype.itemsize
    if payload_length != expected:
        shape = "x".join(map(str, dims))
        problem = "trailing bytes" if payload_length > expected else "truncated payload"
        raise IdxFormatError(
            f"{source}: {problem}: header {shape} of {dtype.name} needs {expected} payload bytes, "
            f"found {payload_length}"
        )
    return dims, dtype


def parse_idx(data: bytes, source: str) -> npt.NDArray[np.generic]:
    """Decode an IDX byte string; raise IdxFormatError naming ``source`` on any deviation."""
    ndim = data[3] if len(data) >= HEADER_SIZE else 0
    payload_start = HEADER_SIZE + DIM_SIZE * ndim
    dims, dtype = _parse_header(data, source, len(data) - payload_start)
    array = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=payload_start)
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: Path) -> npt.NDArray[np.generic]:
    return parse_idx(path.read_bytes(), str(path))


def open_idx(path: Path) -> RowFile:
    """The IDX file at ``path``, its header parsed and checked against its size, reading only
    the header: the payload is then read a slice at a time (:meth:`RowFile.read`)."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(HEADER_SIZE + DIM_SIZE * MAX_DIMS)
    ndim = head[3] if len(head) >= HEADER_SIZE else 0
    header_size = HEADER_SIZE + DIM_SIZE * ndim
    # The header's checks, told how long the payload is: the same as parse_idx applies.
    dims, dtype = _parse_header(head[:header_size], str(path), size - header_size)
    return RowFile(path=path, dtype=dtype, shape=dims, data_offset=header_size)


def encode_idx(array: npt.NDArray[np.generic]) -> bytes:
    """Encode an array as IDX; the inverse of :func:`parse_idx`."""
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"IDX has no dtype code for {array.dtype}")
    if not 1 <= array.ndim <= MAX_DIMS:
        raise ValueError(f"IDX holds 1 to {MAX_DIMS} dimensions, not {array.ndim}")
    code = _CODES[native]
    header = MAGIC_PREFIX + bytes([code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
