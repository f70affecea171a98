"""The strict IDX reader: named errors for every deviation, round trips, and a bounded fuzz."""

from __future__ import annotations

import contextlib
import random
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mnist_pipeline.errors import IdxFormatError
from mnist_pipeline.idx import DTYPES, encode_idx, parse_idx

VALID = encode_idx(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


def test_reads_a_valid_file() -> None:
    array = parse_idx(VALID, "x.idx")
    assert array.shape == (2, 3, 4) and array.dtype == np.uint8
    assert array[1, 2, 3] == 23


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "expected a 4-byte IDX header, found 0 bytes"),
        (b"\x01\x00" + VALID[2:], "expected magic 0x0000 in bytes 0-1, found 0x0100"),
        (VALID[:2] + b"\x0a" + VALID[3:], "unknown dtype code 0x0A; allowed: 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E"),
        (VALID[:3] + b"\x00" + VALID[4:], "expected 1 to 8 dimensions, found 0"),
        (VALID[:3] + b"\x05" + VALID[4:10], "header declares 5 dimensions but the file ends at byte 10"),
        (VALID[:-1], "truncated payload: header 2x3x4 of uint8 needs 24 payload bytes, found 23"),
        (VALID + b"\x00", "trailing bytes: header 2x3x4 of uint8 needs 24 payload bytes, found 25"),
        (VALID[:4] + struct.pack(">III", 2, 3, 5) + VALID[16:], "needs 30 payload bytes, found 24"),
    ],
    ids=["empty", "magic", "dtype", "zero-dims", "short-header", "truncated", "trailing", "dims"],
)
def test_rejects_with_named_error(data: bytes, message: str) -> None:
    with pytest.raises(IdxFormatError, match=r"^x\.idx: ") as caught:
        parse_idx(data, "x.idx")
    assert message in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(DTYPES)).flatmap(
        lambda code: hnp.arrays(
            dtype=DTYPES[code].newbyteorder("="),
            shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6),
        )
    )
)
def test_round_trip_every_dtype_and_shape(array: np.ndarray) -> None:
    decoded = parse_idx(encode_idx(array), "prop")
    assert decoded.dtype == array.dtype.newbyteorder("=")
    assert decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=len(VALID)), st.binary(max_size=8))
def test_corruption_only_ever_raises_the_named_error(prefix: bytes, cut: int, tail: bytes) -> None:
    """Random edits of a valid file either decode or raise IdxFormatError, nothing else."""
    for data in (prefix, VALID[:cut] + tail, tail + VALID[cut:], prefix + VALID):
        with contextlib.suppress(IdxFormatError):
            parse_idx(data, "fuzz")


FUZZ_SECONDS = 3.0


@pytest.mark.slow  # large generated input: in make test, not in the quick loop
def test_fuzz_mutations_for_a_few_seconds() -> None:
    """Mutation fuzzing (flips, inserts, deletes, header scribbles) bounded in time, seeded."""
    rng = random.Random(20261121)
    seeds = [VALID, encode_idx(np.arange(10, dtype=">i4")), encode_idx(np.zeros((3, 2), dtype=">f8"))]
    deadline = time.monotonic() + FUZZ_SECONDS
    runs = 0
    while time.monotonic() < deadline:
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data) + 1)
            action = rng.randrange(4)
            if action == 0 and data:
                data[min(position, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif action == 1:
                data[position:position] = rng.randbytes(rng.randint(1, 4))
            elif action == 2:
                del data[position : position + rng.randint(1, 4)]
            else:
                data[rng.randrange(4) : 4] = rng.randbytes(rng.randint(0, 4))
        with contextlib.suppress(IdxFormatError):
            parse_idx(bytes(data), "fuzz")
        runs += 1
    assert runs > 1000
