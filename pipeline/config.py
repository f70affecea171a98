"""Typed schema of params.yaml, and the one loader every stage uses.

OmegaConf checks types, enum values and unknown or missing keys, naming the full key; the
rules types cannot express follow. (The dataclasses are not ``frozen``: OmegaConf cannot merge
into frozen ones. Treat a loaded Params as read-only.)

``conf/`` is plain YAML that DVC composes without importing this package; the stages then
validate what DVC tracks (params.yaml) against these frozen dataclasses before doing any work.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import urlsplit

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.errors import ConfigError

KNOWN_FORMATS = ("csv", "npz", "parquet", "png")
MIRROR_SCHEMES = ("http", "https", "file")
_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class ArchiveCheck(enum.Enum):
    strict = "strict"
    payload = "payload"


class SplitMethod(enum.Enum):
    first = "first"
    shuffle = "shuffle"


class ArrayDtype(enum.Enum):
    uint8 = "uint8"
    float32 = "float32"


class Scale(enum.Enum):
    none = "none"
    unit = "unit"
    centered = "centered"
    standardize = "standardize"


class CsvScale(enum.Enum):
    none = "none"
    unit = "unit"


class LabelPosition(enum.Enum):
    first = "first"
    last = "last"


class PngLayout(enum.Enum):
    imagefolder = "imagefolder"
    flat = "flat"


class ParquetCompression(enum.Enum):
    none = "none"
    snappy = "snappy"
    zstd = "zstd"
    gzip = "gzip"


@dataclass
class ArchiveSpec:
    file: str
    size: int
    md5: str
    sha256: str
    payload_size: int
    payload_sha256: str


@dataclass
class SplitSpec:
    images: ArchiveSpec
    labels: ArchiveSpec


@dataclass
class DatasetSpec:
    name: str
    title: str
    homepage: str
    license: str
    citation: str
    image_shape: list[int]
    classes: list[str]
    mirrors: list[str]
    splits: dict[str, SplitSpec]

    def archives(self) -> list[ArchiveSpec]:
        """Every archive of every split, in config order."""
        return [a for split in self.splits.values() for a in (split.images, split.labels)]


@dataclass
class DownloadConfig:
    timeout: float
    retries: int
    backoff: float
    user_agent: str


@dataclass
class VerifyConfig:
    archive: ArchiveCheck


@dataclass
class FormatOutput:
    out: str


@dataclass
class TreeSpec:
    archive: str
    out: str
    manifest: str


@dataclass
class NpzOptions:
    compressed: bool
    validation_size: int
    validation_split: SplitMethod
    seed: int
    dtype: ArrayDtype
    scale: Scale
    flatten: bool
    one_hot: bool


@dataclass
class CsvOptions:
    header: bool
    label_position: LabelPosition
    scale: CsvScale
    decimals: int
    gzip: bool
    validation_size: int
    validation_split: SplitMethod
    seed: int


@dataclass
class PngOptions:
    layout: PngLayout
    invert: bool


@dataclass
class ParquetOptions:
    compression: ParquetCompression
    row_group_size: int


@dataclass
class ExportConfig:
    workers: int
    formats: dict[str, FormatOutput]
    trees: dict[str, TreeSpec]
    npz: NpzOptions
    csv: CsvOptions
    png: PngOptions
    parquet: ParquetOptions


@dataclass
class ReportConfig:
    samples_per_class: int


@dataclass
class Params:
    dataset: DatasetSpec
    download: DownloadConfig
    verify: VerifyConfig
    export: ExportConfig
    report: ReportConfig


def load_params(path: Path) -> Params:
    """Read and validate params.yaml; raise ConfigError naming the first bad key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found (run `make params` or `dvc exp run`)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, found {type(raw).__name__}")
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a composed config against the schema, then the rules types cannot express."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Params), raw)
        params = cast(Params, OmegaConf.to_object(merged))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        reason = str(getattr(exc, "msg", exc)).splitlines()[0]
        raise ConfigError(f"{source}: {key}: {reason}") from exc
    problems = _semantic_problems(params)
    if problems:
        key, problem = problems[0]
        raise ConfigError(f"{source}: {key}: {problem}")
    return params


def _semantic_problems(params: Params) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    ds = params.dataset
    if not _NAME_PATTERN.fullmatch(ds.name):
        problems.append(("dataset.name", f"expected a lower-case name usable as a folder, found {ds.name!r}"))
    if len(ds.image_shape) != 2 or min(ds.image_shape, default=0) < 1:
        problems.append(("dataset.image_shape", f"expected [rows, cols] > 0, found {ds.image_shape}"))
    if not 1 <= len(ds.classes) <= 256:
        problems.append(("dataset.classes", f"expected 1 to 256 class names, found {len(ds.classes)}"))
    if not ds.mirrors:
        problems.append(("dataset.mirrors", "expected at least one mirror, found none"))
    for index, mirror in enumerate(ds.mirrors):
        scheme = urlsplit(mirror).scheme
        if scheme and scheme not in MIRROR_SCHEMES and not re.fullmatch(r"[a-zA-Z]", scheme):
            problems.append(
                (
                    f"dataset.mirrors.{index}",
                    f"unsupported scheme {scheme!r} in {mirror!r}; "
                    f"allowed: {', '.join(MIRROR_SCHEMES)} or a local directory",
                )
            )
    if not ds.splits:
        problems.append(("dataset.splits", "expected at least one split, found none"))
    for split_name, split in ds.splits.items():
        for kind in ("images", "labels"):
            spec: ArchiveSpec = getattr(split, kind)
            key = f"dataset.splits.{split_name}.{kind}"
            problems += _archive_problems(key, spec)
    download = params.download
    if download.timeout <= 0:
        problems.append(("download.timeout", f"expected seconds > 0, found {download.timeout}"))
    if download.retries < 0:
        problems.append(("download.retries", f"expected >= 0, found {download.retries}"))
    if download.backoff < 0:
        problems.append(("download.backoff", f"expected seconds >= 0, found {download.backoff}"))
    problems += _export_problems(params.export)
    if params.report.samples_per_class < 1:
        problems.append(("report.samples_per_class", f"expected >= 1, found {params.report.samples_per_class}"))
    return problems


def _archive_problems(key: str, spec: ArchiveSpec) -> list[tuple[str, str]]:
    problems = []
    if not is_plain_file_name(spec.file):
        problems.append((f"{key}.file", f"expected a plain file name, found {spec.file!r}"))
    for field in ("size", "payload_size"):
        if getattr(spec, field) <= 0:
            problems.append((f"{key}.{field}", f"expected bytes > 0, found {getattr(spec, field)}"))
    for field, length in (("md5", 32), ("sha256", 64), ("payload_sha256", 64)):
        value = getattr(spec, field)
        if not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
            problems.append((f"{key}.{field}", f"expected {length} lower-case hex digits, found {value!r}"))
    return problems


def _export_problems(export: ExportConfig) -> list[tuple[str, str]]:
    problems = []
    if export.workers < 1:
        problems.append(("export.workers", f"expected >= 1, found {export.workers}"))
    for name, output in export.formats.items():
        if name not in KNOWN_FORMATS:
            problems.append(("export.formats", f"unknown format {name!r}; allowed: {', '.join(KNOWN_FORMATS)}"))
        if not is_relative_inside(output.out):
            problems.append(
                (
                    f"export.formats.{name}.out",
                    f"expected a path inside the export folder, found {output.out!r}",
                )
            )
    for name, tree in export.trees.items():
        for field in ("archive", "out", "manifest"):
            if not is_relative_inside(getattr(tree, field)):
                problems.append(
                    (
                        f"export.trees.{name}.{field}",
                        f"expected a path inside the export folder, found {getattr(tree, field)!r}",
                    )
                )
    for section in ("npz", "csv"):
        size = getattr(export, section).validation_size
        if size < 0:
            problems.append((f"export.{section}.validation_size", f"expected >= 0, found {size}"))
    if export.npz.scale is not Scale.none and export.npz.dtype is not ArrayDtype.float32:
        problems.append(("export.npz.scale", f"{export.npz.scale.value!r} needs export.npz.dtype float32, found uint8"))
    if not 0 <= export.csv.decimals <= 10:
        problems.append(("export.csv.decimals", f"expected 0 to 10, found {export.csv.decimals}"))
    if export.parquet.row_group_size < 1:
        problems.append(
            (
                "export.parquet.row_group_size",
                f"expected >= 1, found {export.parquet.row_group_size}",
            )
        )
    return problems


def is_plain_file_name(name: str) -> bool:
    """True for a bare file name that cannot point outside the folder it is joined to."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def is_relative_inside(path: str) -> bool:
    """True for a relative POSIX path with no ``..`` part (stays inside its base folder)."""
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path
