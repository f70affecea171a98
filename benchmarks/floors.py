"""Floors and naive baselines for the PNG tree: what writing it could cost at best, and what
the usual scripts cost.

- Floors, in C (``benchmarks/floors/*.c``, compiled with gcc at bench time): ``png_encode``
  PNG-encodes every image with one reused deflate stream; ``write_tree`` only creates the files
  of the tree from a zip of stored members (the PNG export's own zip, so the same names and sizes).
- Naive ways, each one Python process: a Pillow save loop (``naive_pil.py``) and the classic
  pypng converter's approach (``naive_pypng.py``).

All of them read the uncompressed IDX payloads, so they need no stage to have worked, except
``write_tree`` when the PNG export failed: it then gets a zip built here from ``png_encode``'s PNGs.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement, measure
from tests.support.repos import tool_env

BENCH_DIR = Path(__file__).resolve().parent
FLOOR_SOURCES = BENCH_DIR / "floors"
C_PROGRAMS = ("png_encode", "write_tree")
ZLIB_HEADER = Path("/usr/include/zlib.h")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class FloorError(Exception):
    """A floor cannot be built or run here; the message says why."""


@dataclass(frozen=True)
class SplitPayload:
    name: str
    images: Path
    labels: Path
    count: int


def gunzip_payloads(entry: dict[str, Any], mirror: Path, out_dir: Path) -> list[SplitPayload]:
    """The IDX payloads of a generated dataset, uncompressed into ``out_dir``, in split order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payloads = []
    for name, split in entry["splits"].items():
        paths = []
        for kind in ("images", "labels"):
            source = mirror / split[kind]["file"]
            target = out_dir / source.name.removesuffix(".gz")
            with gzip.open(source, "rb") as compressed, target.open("wb") as plain:
                shutil.copyfileobj(compressed, plain, 1 << 20)
            paths.append(target)
        payloads.append(SplitPayload(name, paths[0], paths[1], int(split["count"])))
    return payloads


def payload_arguments(payloads: list[SplitPayload]) -> list[str]:
    """``SPLIT IMAGES LABELS ...``, what the naive scripts take."""
    return [str(part) for payload in payloads for part in (payload.name, payload.images, payload.labels)]


@dataclass(frozen=True)
class FloorPrograms:
    """Commands of the two floors (arguments follow) and what they are."""

    encode: list[str]
    tree: list[str]
    kind: str


def floor_programs(bin_dir: Path) -> FloorPrograms:
    """The C floors compiled into ``bin_dir``, or the Python stand-ins when they cannot be."""
    try:
        programs = compile_floors(bin_dir)
    except FloorError as exc:
        fallback = [sys.executable, str(BENCH_DIR / "floor_fallback.py")]
        return FloorPrograms([*fallback, "encode"], [*fallback, "tree"], f"Python stand-ins (no C floor: {exc})")
    return FloorPrograms([str(programs["png_encode"])], [str(programs["write_tree"])], "C, gcc -O2")


def compile_floors(bin_dir: Path) -> dict[str, Path]:
    """Compile the C floors into ``bin_dir``; raise FloorError when they cannot be."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FloorError("gcc is not installed")
    if not ZLIB_HEADER.exists():
        _install_zlib_headers()
    bin_dir.mkdir(parents=True, exist_ok=True)
    programs = {}
    for name in C_PROGRAMS:
        binary = bin_dir / name
        source = FLOOR_SOURCES / f"{name}.c"
        command = [gcc, "-O2", "-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-o", str(binary), str(source), "-lz"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise FloorError(f"gcc {name}.c failed: {result.stderr.strip()[-500:]}")
        programs[name] = binary
    return programs


def _install_zlib_headers() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise FloorError(f"{ZLIB_HEADER} is missing and zlib1g-dev cannot be installed here (needs root and apt-get)")
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "zlib1g-dev"],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        timeout=600,
        check=False,
    )
    if not ZLIB_HEADER.exists():
        raise FloorError("zlib1g-dev could not be installed (apt-get install zlib1g-dev failed)")


def floor_encode(programs: FloorPrograms, payloads: list[SplitPayload], pack: Path) -> Measurement:
    return measure([*programs.encode, str(pack), *(str(p.images) for p in payloads)], pack.parent)


def zip_from_pack(pack: Path, payloads: list[SplitPayload], zip_path: Path) -> None:
    """A zip of stored members named as the PNG export names them, from ``png_encode``'s PNGs
    (used only when the PNG export itself failed)."""
    data = pack.read_bytes()
    width = len(str(max(payload.count for payload in payloads) - 1))
    offset = 0
    with zipfile.ZipFile(zip_path, "w") as archive:
        for payload in payloads:
            labels = payload.labels.read_bytes()[8:]
            for index, label in enumerate(labels):
                (size,) = struct.unpack_from("<I", data, offset)
                info = zipfile.ZipInfo(f"{payload.name}/{label}/{index:0{width}d}.png", date_time=ZIP_EPOCH)
                archive.writestr(info, data[offset + 4 : offset + 4 + size])
                offset += 4 + size


def floor_tree(programs: FloorPrograms, zip_path: Path, tree: Path) -> Measurement:
    return measure([*programs.tree, str(zip_path), str(tree)], tree.parent)


def naive_pil(payloads: list[SplitPayload], tree: Path) -> Measurement:
    script = BENCH_DIR / "naive_pil.py"
    return measure([sys.executable, str(script), str(tree), *payload_arguments(payloads)], tree.parent, tool_env())


def pypng_available() -> bool:
    return importlib.util.find_spec("png") is not None


def naive_pypng(payloads: list[SplitPayload], tree: Path) -> Measurement:
    script = BENCH_DIR / "naive_pypng.py"
    return measure([sys.executable, str(script), str(tree), *payload_arguments(payloads)], tree.parent, tool_env())
