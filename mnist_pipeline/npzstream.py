"""A streaming ``.npz`` writer whose bytes equal ``np.savez`` / ``np.savez_compressed`` of the
same arrays, while holding only one chunk of rows at a time.

It does what numpy does (``numpy.lib._npyio_impl._savez`` and ``format.write_array``), with
the array data arriving in chunks: a ``zipfile.ZipFile`` (``allowZip64``, ``ZIP_DEFLATED`` or
``ZIP_STORED``, default level), one member ``<key>.npy`` per array opened with
``force_zip64=True`` (numpy always forces it), the version 1.0 header numpy chooses whenever
the header fits in 65,535 bytes (always, for a plain dtype and a few dimensions), then the raw
C-order bytes. zlib's output does not depend on how its input is cut into writes, and
``zipfile`` dates members 1980-01-01, so the file is byte-identical to numpy's (a test proves it).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import numpy as np
import numpy.typing as npt

from mnist_pipeline.errors import DatasetError

COMPRESSIONS = {True: zipfile.ZIP_DEFLATED, False: zipfile.ZIP_STORED}


@dataclass(frozen=True)
class NpzArray:
    """One array of the npz: its key, dtype and full shape, and its rows as C-order chunks
    whose lengths add up to ``shape[0]`` (the chunks are read once, lazily)."""

    key: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    chunks: Iterable[npt.NDArray[Any]]


def npy_header(dtype: np.dtype[Any], shape: tuple[int, ...]) -> dict[str, Any]:
    # Python ints: numpy 2 writes the repr of the shape, and np.int64(5) would show as such.
    return {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(map(int, shape))}


def write_npz_stream(out: BinaryIO, arrays: Iterable[NpzArray], *, compressed: bool) -> None:
    """Write ``arrays`` to ``out`` (a seekable binary file), in order.

    Raises ``DatasetError`` when an array's chunks do not match its declared dtype and shape.
    """
    with zipfile.ZipFile(out, mode="w", compression=COMPRESSIONS[compressed], allowZip64=True) as archive:
        for array in arrays:
            with archive.open(f"{array.key}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, npy_header(array.dtype, array.shape))
                rows = 0
                for chunk in array.chunks:
                    rows += _write_chunk(member, chunk, array)
            if rows != array.shape[0]:
                raise DatasetError(f"{array.key}: expected {array.shape[0]} rows, found {rows}")


def _write_chunk(member: IO[bytes], chunk: npt.NDArray[Any], array: NpzArray) -> int:
    if chunk.dtype != array.dtype or chunk.shape[1:] != array.shape[1:]:
        raise DatasetError(
            f"{array.key}: expected chunks of {array.dtype} rows shaped {array.shape[1:]}, "
            f"found {chunk.dtype} {chunk.shape}"
        )
    member.write(np.ascontiguousarray(chunk).data.cast("B"))
    return len(chunk)
