"""This machine's download settings: where bytes come from, kept out of everything git tracks.

A mirror folder on one person's disk, a private HTTP mirror or a slower timeout on one network
are properties of the machine, not of an experiment: they never change which bytes are accepted
(the checksums in ``conf/`` decide that), so no stage tracks them and they must never reach
``params.yaml``, ``dvc.lock`` or an experiment ref. They live in two places, read by the
download stage only:

- ``mnist-pipeline.local.yaml`` beside ``params.yaml`` (git-ignored, as DVC's ``config.local``)::

      mirrors:                     # tried before the published mirrors, in this order
        mnist: [../shared/mirror/mnist]
      download:                    # overrides conf's `download` section on this machine
        timeout: 10

- ``MNIST_PIPELINE_MIRRORS``: whitespace-separated ``<dataset>=<mirror>`` entries, or a bare
  ``<mirror>`` for every dataset, tried before the file's (``make repro MIRROR=...`` sets it;
  queued experiments inherit it from ``dvc queue start``).

DVC runs a queued experiment in a copy of the repository under ``.dvc/tmp/exps/``, without the
git-ignored file: there the file of the repository that queued it applies (``local_file``).

The published mirrors of ``conf/dataset/<name>.yaml`` always follow as the fallback.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mnist_pipeline.config import DownloadConfig, Params, download_problems
from mnist_pipeline.errors import ConfigError, one_line
from mnist_pipeline.names import NAME_PATTERN, is_local_folder, mirror_problem, redact

LOCAL_FILE = "mnist-pipeline.local.yaml"
MIRRORS_ENV = "MNIST_PIPELINE_MIRRORS"
MAX_LOCAL_FILE_SIZE = 1 << 16
EVERY_DATASET = "*"


@dataclass(frozen=True)
class Sources:
    """Where one dataset's files are fetched from on this machine, and how."""

    mirrors: list[str]
    download: DownloadConfig


def sources_for(params: Params, dataset_name: str, folder: Path, environ: Mapping[str, str] = os.environ) -> Sources:
    """The mirrors to try for ``dataset_name`` (this machine's first, then the published ones)
    and the download settings (``params.download`` with this machine's overrides)."""
    path = local_file(folder)
    local = _read_local(path)
    local_mirrors = local.get("mirrors") or {}
    if not isinstance(local_mirrors, dict):
        raise ConfigError(f"{path}: mirrors: expected a mapping of dataset name to a list of mirrors")
    from_env = _env_mirrors(environ)
    chosen = from_env.get(dataset_name, []) + from_env.get(EVERY_DATASET, [])
    listed = local_mirrors.get(dataset_name) or []
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        raise ConfigError(f"{path}: mirrors.{dataset_name}: expected a list of folders or URLs, found {listed!r}")
    for index, mirror in enumerate(listed):
        _check_mirror(f"{path}: mirrors.{dataset_name}.{index}", mirror)
    # A relative folder is relative to the repository the file is in (the working directory,
    # but for a queued experiment's copy).
    chosen += [
        str(path.parent / item)
        if path.parent != folder and is_local_folder(item) and not Path(item).is_absolute()
        else item
        for item in listed
    ]
    published = params.dataset(dataset_name).mirrors
    mirrors = list(dict.fromkeys(chosen + published))  # each mirror once, first place kept
    return Sources(mirrors=mirrors, download=_download_settings(params.download, local.get("download"), path))


def local_file(folder: Path) -> Path:
    """This machine's settings file for the repository at ``folder``: the one beside its
    params.yaml; in an experiment's workspace of DVC's (``<repo>/.dvc/tmp/exps/<tmp>/``, or
    ``.../exps/standalone/<tmp>/`` for ``--temp``; a copy without git-ignored files), the one of
    ``<repo>``, the folder holding that ``.dvc``."""
    own = folder / LOCAL_FILE
    if own.exists():
        return own
    for ancestor in folder.absolute().parents:
        if ancestor.name == "exps" and ancestor.parent.name == "tmp" and ancestor.parent.parent.name == ".dvc":
            return ancestor.parent.parent.parent / LOCAL_FILE
    return own


def _read_local(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_LOCAL_FILE_SIZE:
            raise ConfigError(f"{path}: expected at most {MAX_LOCAL_FILE_SIZE} bytes of settings")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {one_line(exc)}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not set(loaded) <= {"mirrors", "download"}:
        found = sorted(loaded) if isinstance(loaded, dict) else type(loaded).__name__
        raise ConfigError(f"{path}: expected a mapping with `mirrors` and/or `download`, found {found}")
    return loaded


def _env_mirrors(environ: Mapping[str, str]) -> dict[str, list[str]]:
    mirrors: dict[str, list[str]] = {}
    for entry in environ.get(MIRRORS_ENV, "").split():
        name, sep, mirror = entry.partition("=")
        if not sep or not NAME_PATTERN.fullmatch(name):
            name, mirror = EVERY_DATASET, entry  # a bare folder or URL: for every dataset
        if not mirror:
            raise ConfigError(f"{MIRRORS_ENV}: expected [<dataset>=]<folder or URL> entries, found {entry!r}")
        _check_mirror(f"{MIRRORS_ENV}: {redact(entry)}", mirror)
        mirrors.setdefault(name, []).append(mirror)
    return mirrors


def _check_mirror(key: str, mirror: str) -> None:
    problem = mirror_problem(mirror)
    if problem:
        raise ConfigError(f"{key}: {problem}")


def _download_settings(shared: DownloadConfig, overrides: Any, source: Path) -> DownloadConfig:
    if not overrides:
        return shared
    known = {item.name: item.type for item in dataclasses.fields(DownloadConfig)}
    if not isinstance(overrides, dict) or not set(overrides) <= set(known):
        found = sorted(overrides) if isinstance(overrides, dict) else type(overrides).__name__
        raise ConfigError(f"{source}: download: expected keys among {sorted(known)}, found {found}")
    for key, value in overrides.items():
        expected = (int, float) if key in ("timeout", "backoff") else int if key != "user_agent" else str
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ConfigError(f"{source}: download.{key}: expected a {known[key]}, found {value!r}")
    settings = dataclasses.replace(shared, **overrides)
    problems = download_problems(settings)
    if problems:
        key, problem = problems[0]
        raise ConfigError(f"{source}: {key}: {problem}")
    return settings
