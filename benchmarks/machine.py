"""A description of the machine a benchmark ran on, as (what, value) rows."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

from benchmarks.fsprobe import mount_of
from benchmarks.tables import markdown_table

GIB = 1 << 30


def describe(work_dir: Path) -> list[tuple[str, str]]:
    """CPU, cores, load, memory, the file system of ``work_dir``, and the tool versions."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        ("CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} (load average at start: {load})"),
        ("RAM", _memory()),
        ("disk", _file_system(work_dir)),
        ("I/O pressure at start", _io_pressure()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        ("bytecode", _bytecode()),
        ("numpy", np.__version__),
        ("zlib", f"{zlib.ZLIB_RUNTIME_VERSION} (Python's), compiled against {zlib.ZLIB_VERSION}"),
        ("Pillow", _version("pillow")),
        ("pypng", _version("pypng")),
        ("DVC", _version("dvc")),
        ("gcc", _gcc()),
    ]


def machine_section(work_dir: Path) -> str:
    """The description as a markdown section."""
    rows = [[what, value] for what, value in describe(work_dir)]
    return "## Machine\n\n" + markdown_table(["what", "value"], rows, numeric_from=2)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _bytecode() -> str:
    """Whether the libraries' .pyc files exist (DVC's stands for all): without them every `dvc`
    command and every stage compiles its libraries from source (README, Quickstart)."""
    import dvc  # noqa: PLC0415 - only to find its files

    compiled = Path(importlib.util.cache_from_source(dvc.__file__)).is_file()
    written = "not written" if sys.dont_write_bytecode else "written on import"
    return f"libraries precompiled: {'yes' if compiled else 'no'}; new .pyc files {written}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    fields: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return "unknown"
    return (
        f"{fields.get('MemTotal', 0) / GIB:.1f} GiB ({fields.get('MemAvailable', 0) / GIB:.1f} GiB available at start)"
    )


def _file_system(path: Path) -> str:
    """Type, device, options, journal and free space of the mount holding ``path``."""
    free = shutil.disk_usage(path.resolve()).free / GIB
    mount = mount_of(path)
    if mount is None:
        return f"unknown; {path.resolve()}: {free:.0f} GiB free"
    journal = {True: ", journaled", False: ", no journal (see benchmarks/fsprobe.py)", None: ""}[mount.has_journal()]
    return (
        f"{mount.fs_type}{journal} on {mount.device} at {mount.point} ({mount.options}); "
        f"{path.resolve()}: {free:.0f} GiB free"
    )


def _io_pressure() -> str:
    """Share of time some task waited for I/O over the last 10 and 60 s (Linux PSI)."""
    try:
        some = Path("/proc/pressure/io").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return "unknown"
    fields = dict(part.split("=") for part in some[1:])
    return f"{fields.get('avg10', '?')} % (10 s), {fields.get('avg60', '?')} % (60 s) of the time some task waited"


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        return "not installed"
    result = subprocess.run([gcc, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else "unknown"
