"""Which code a stage runs: the import closure of its module and one digest over its sources.

The ``check`` stage writes each stage module's digest into the params views, and each stage
tracks its own (``code.<module>``): editing a module re-runs exactly the stages that import it.
In a team repository (``mnist-pipeline init``) ``mnist-pipeline.yaml`` records the digests of
the code the repository was adopted or upgraded with, and every stage compares that record with
the code it is about to run before it reads a byte (``mnist_pipeline.stage``): no stage ever
runs with code other than what the repository records. Kept apart from ``adopt`` (which writes
the record) because every stage imports this module.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.resources
from pathlib import Path

import yaml

from mnist_pipeline.errors import one_line

PACKAGE = __name__.split(".")[0]
DISTRIBUTION = "mnist-pipeline"
#: What version() says without the package's metadata (a source checkout not installed).
UNKNOWN_VERSION = "0+unknown"
#: The record, beside params.yaml in a team repository.
CODE_FILE = "mnist-pipeline.yaml"


def package_root() -> Path:
    return Path(str(importlib.resources.files(PACKAGE)))


def imported_modules(path: Path) -> frozenset[str]:
    """Names of the package modules that ``path`` imports (``mnist_pipeline.x``), at any nesting."""
    return _imports_in(path.read_text(encoding="utf-8"), str(path))


@functools.lru_cache(maxsize=256)
def _imports_in(source: str, filename: str) -> frozenset[str]:
    # Cached on the source itself, so an edited file is parsed again: ``check`` walks the import
    # closures of ten stage modules, which share most of their modules (130 look-ups, 41 files).
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            if node.module == PACKAGE:
                found.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
    return frozenset(found)


def module_file(module: str, root: Path) -> Path:
    return root.parent / (module.replace(".", "/") + ".py")


def import_closure(module: str, root: Path | None = None) -> set[str]:
    """``module`` and every package module reachable through its imports."""
    root = root or package_root()
    seen: set[str] = set()
    pending = [module]
    while pending:
        current = pending.pop()
        if current in seen or current == PACKAGE:
            continue
        seen.add(current)
        pending.extend(imported_modules(module_file(current, root)))
    return seen


def code_digest(module: str, root: Path | None = None) -> str:
    """sha256 over the sources of ``module``'s import closure (names and bytes, sorted)."""
    root = root or package_root()
    digest = hashlib.sha256()
    for name in sorted(import_closure(module, root)):
        digest.update(name.encode() + b"\0" + module_file(name, root).read_bytes() + b"\0")
    return digest.hexdigest()


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def newer_recorded_version(recorded: object) -> str | None:
    """Why the package must be upgraded, not the repository: ``init`` recorded a newer release
    than the installed one (a teammate upgraded, and this machine pulled before installing it);
    None otherwise, or when either version is unknown. Releases are compared, not local labels."""
    # Imported here: every stage imports this module, and only a mismatch gets this far (9 ms).
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415

    found, installed = recorded.get("version") if isinstance(recorded, dict) else None, version()
    try:
        newer = Version(str(found)).release > Version(installed).release and installed != UNKNOWN_VERSION
    except InvalidVersion:
        return None
    if not newer:
        return None
    return (
        f"expected a record of {DISTRIBUTION} {installed} (installed) or older, found {found}; "
        f"install {DISTRIBUTION} {found} as your team does, then run the command again"
    )


def stale_code(module: str, code_file: Path) -> str | None:
    """Why ``module``'s installed code differs from what ``code_file`` records, or None when it
    agrees or when there is no record (this repository, where the code is what check digested)."""
    try:
        recorded = yaml.safe_load(code_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return f"{code_file}: not valid YAML ({one_line(exc)}); run `mnist-pipeline init --upgrade`"
    entries = recorded.get("code") if isinstance(recorded, dict) else None
    key = module.removeprefix(f"{PACKAGE}.")
    if not isinstance(entries, dict) or entries.get(key) == code_digest(module):
        return None if isinstance(entries, dict) else f"{code_file}: expected a `code` mapping, found none"
    newer = newer_recorded_version(recorded)
    if newer:
        return f"{code_file}: {newer}"
    flag = pipelines_flag(recorded.get("dir"))
    return (
        f"{code_file}: records other code for {module} than the installed {DISTRIBUTION} runs "
        f"(upgraded?); run `mnist-pipeline init --upgrade`, commit, then `dvc repro{flag}`"
    )


def recorded_stages_dir(code_file: Path) -> object:
    """The folder ``init`` put the stages in, as ``code_file`` records it (None without one)."""
    try:
        recorded = yaml.safe_load(code_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return recorded.get("dir") if isinstance(recorded, dict) else None


def pipelines_flag(stages_dir: object) -> str:
    """`` -P`` (every dvc.yaml) for `dvc repro` and `dvc exp run` when ``init`` put the stages
    in a folder: DVC without targets runs the dvc.yaml of the folder it is in, the team's root one."""
    return " -P" if stages_dir not in (None, ".") else ""
