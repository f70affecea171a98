"""Typed schema of params.yaml, which every stage loads its params view with.

OmegaConf checks types, enum values and unknown or missing keys, naming the full key; the
rules types cannot express follow in ``_problems``. Every value that becomes a path, a URL,
a header or a resource bound is checked here (or, for a format's options, in that format's
module), so that a stage (and the ``check`` stage that runs before all of them) refuses a bad
override before DVC has removed any output. Each rule lives once; the stages trust a loaded
``Params``.
(The dataclasses are not ``frozen``: OmegaConf cannot merge into frozen ones. Treat a loaded
Params as read-only.)

``conf/`` is plain YAML that DVC composes without importing this package; ``params.yaml`` is
its composition: ``datasets`` maps each selected dataset's name to its facts
(``conf/dataset/<name>.yaml``), the other sections are shared by every dataset. A dataset's
options of a format, ``export.<format>`` with ``datasets.<d>.export.<format>`` over it, are
merged and typed by ``export_options`` with the format's own schema and rules
(``<format>_options.<FORMAT>``), not here: every stage imports this module, and a format's
options must re-run that format's exports only.
"""

from __future__ import annotations

import enum
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_pipeline.errors import ConfigError
from mnist_pipeline.names import (
    KNOWN_FORMATS,
    NAME_PATTERN,
    PARAMS_DIR,
    is_member_name,
    is_plain_file_name,
    is_printable_line,
    mirror_problem,
)

_HEX = {"md5": 32, "sha256": 64}
MAX_TIMEOUT = 3600.0
MAX_RETRIES = 10
MAX_BACKOFF = 300.0
MAX_WORKERS = 4 * (os.cpu_count() or 1)
MAX_CLASSES = 256  # labels are stored as uint8
MAX_IMAGE_SIDE = 4096
MAX_HEADER_VALUE = 256
MAX_FILE_SIZE = 1 << 40
#: The whole family with every format composes to ~28 KB; a params.yaml far beyond that is not ours.
MAX_PARAMS_BYTES = 1 << 18


class ArchiveCheck(enum.Enum):
    strict = "strict"
    payload = "payload"


class Compression(enum.Enum):
    """How each published file wraps its IDX payload (table of openers: mnist_pipeline.archive)."""

    gzip = "gzip"
    xz = "xz"
    none = "none"


class LabelLayout(enum.Enum):
    """How a label file holds its labels; what each layout's files hold: ``LABEL_SOURCES``."""

    idx_vector = "idx_vector"
    idx_table = "idx_table"


@dataclass(frozen=True)
class LabelSource:
    """What the label files of one layout hold."""

    #: IDX item type of the label file (numpy notation, big-endian).
    idx_dtype: str
    #: The file is a table of named columns (``labels.columns``), one of them the class label;
    #: decode keeps the whole table beside the labels. Otherwise it is one label per image.
    table: bool


#: Label layouts: idx_vector is IDX uint8 (n,); idx_table is IDX int32 (n, columns) (QMNIST).
LABEL_SOURCES: dict[LabelLayout, LabelSource] = {
    LabelLayout.idx_vector: LabelSource(idx_dtype=">u1", table=False),
    LabelLayout.idx_table: LabelSource(idx_dtype=">i4", table=True),
}


@dataclass
class FileSpec:
    """One published file. ``payload_size`` and at least one digest are required; a size or
    digest that no source publishes is left out, never invented. ``member`` is its path inside the
    dataset's container (a zip), when it has one."""

    file: str
    payload_size: int
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    payload_sha256: str | None = None
    payload_md5: str | None = None
    member: str | None = None

    @property
    def has_payload_digest(self) -> bool:
        return self.payload_sha256 is not None or self.payload_md5 is not None


@dataclass
class SplitSpec:
    images: FileSpec
    labels: FileSpec
    #: Images in the split; with ``rows``, the rows taken from the files: [start, stop).
    count: int
    rows: list[int] | None = None

    @property
    def row_span(self) -> tuple[int, int]:
        """[start, stop) of the split's rows in its files: ``rows``, else all ``count`` of them."""
        return (self.rows[0], self.rows[1]) if self.rows is not None else (0, self.count)


@dataclass
class ContainerSpec:
    """A zip that holds the dataset's files as members (EMNIST's gzip.zip)."""

    file: str
    size: int
    md5: str | None = None
    sha256: str | None = None


@dataclass
class LabelSpec:
    layout: LabelLayout = LabelLayout.idx_vector
    #: idx_table: one name per column; ``column`` is the class label.
    columns: list[str] = field(default_factory=list)
    column: int = 0
    #: Subtracted from every stored label, so that labels count from 0 (EMNIST letters: 1..26).
    offset: int = 0

    @property
    def source(self) -> LabelSource:
        return LABEL_SOURCES[self.layout]

    @property
    def table_width(self) -> int | None:
        """Columns of the label table kept beside the labels; None when the files hold plain labels."""
        return len(self.columns) if self.source.table else None

    @property
    def extra_columns(self) -> list[tuple[int, str]]:
        """(index, name) of the table's columns besides the class label (which an export's own
        label column holds): what ``extended_labels`` adds. Empty for plain labels."""
        if not self.source.table:
            return []
        return [(index, name) for index, name in enumerate(self.columns) if index != self.column]


@dataclass
class DatasetSpec:
    title: str
    homepage: str
    license: str
    citation: str
    image_shape: list[int]
    classes: list[str]
    mirrors: list[str]
    splits: dict[str, SplitSpec]
    compression: Compression = Compression.gzip
    container: ContainerSpec | None = None
    #: The files store every image transposed (EMNIST): decode turns them upright.
    transposed: bool = False
    labels: LabelSpec = field(default_factory=LabelSpec)
    #: The options this dataset sets itself, per format, untyped: ``export_options`` puts them
    #: over the shared ``export.<format>`` and types the result with the format's own module.
    export: dict[str, dict[str, Any]] = field(default_factory=dict)

    def files(self) -> list[FileSpec]:
        """Every distinct published file, in config order (splits may share files)."""
        unique: dict[str, FileSpec] = {}
        for split in self.splits.values():
            for spec in (split.images, split.labels):
                unique.setdefault(spec.file, spec)
        return list(unique.values())


@dataclass
class DownloadConfig:
    timeout: float
    retries: int
    backoff: float
    user_agent: str
    #: Bytes per second below which a transfer is abandoned, measured over the last ``timeout``
    #: seconds (curl's --speed-limit/--speed-time), so a slow drip cannot hang the stage.
    min_rate: int


@dataclass
class VerifyConfig:
    archive: ArchiveCheck


#: The archive formats ``export.trees`` can unpack into a browsable tree.
KNOWN_TREES = ("png",)


@dataclass
class ExportConfig:
    #: PNG encoding threads (PNG and Parquet); never changes the bytes, so no stage tracks it.
    workers: int
    #: Selected formats (the ``formats`` config group). Each writes data/<dataset>/export/<format>/.
    formats: dict[str, Any]
    #: Archives unpacked into a browsable tree (filled by trees/png.yaml).
    trees: dict[str, Any]
    #: Each format's options shared by every dataset (``names.KNOWN_FORMATS``), untyped here: the
    #: format's own module types and checks them (``<format>_options``; every one:
    #: ``mnist_pipeline.formats``), since every stage imports this module and a CSV option must
    #: re-run CSV exports only.
    npz: dict[str, Any]
    csv: dict[str, Any]
    png: dict[str, Any]
    parquet: dict[str, Any]
    #: Per format, the datasets DVC makes an ``export_<format>@<dataset>`` stage for: every
    #: selected dataset for a selected format, none otherwise (filled by the ``formats`` group;
    #: DVC's ``foreach`` cannot filter, and a stage list must exist for every format).
    build: dict[str, list[str]] = field(default_factory=dict)

    def shared(self, format_name: str) -> dict[str, Any]:
        """``export.<format_name>``: the options every dataset starts from."""
        return cast(dict[str, Any], getattr(self, format_name))


@dataclass
class ReportConfig:
    samples_per_class: int


@dataclass
class Params:
    datasets: dict[str, DatasetSpec]
    download: DownloadConfig
    verify: VerifyConfig
    export: ExportConfig
    report: ReportConfig
    #: Only in a dataset's params view (mnist_pipeline.check): each stage module's code digest,
    #: and the digests the stages track in place of the dataset's bulky facts.
    code: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            chosen = ", ".join(self.datasets) or "none"
            raise ConfigError(f"datasets.{name}: not in params.yaml (selected: {chosen}); add it with -S dataset=...")
        return self.datasets[name]


class _AnchorError(yaml.YAMLError):
    def __init__(self, line: int) -> None:
        super().__init__(f"line {line}")
        self.line = line


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader refusing anchors and aliases: params.yaml is composed without them, and a few
    nested aliases (a "billion laughs") expand to gigabytes once built."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AnchorError(event.start_mark.line + 1)
        return super().compose_node(parent, index)


#: The keys that say what a dataset is, which only its conf/dataset/ entry sets: an entry
#: with none of them holds overrides only. Those the schema requires, but ``mirrors``, which an
#: override sets too.
_DESCRIBING_KEYS = {
    spec.name for spec in fields(DatasetSpec) if spec.default is NO_DEFAULT and spec.default_factory is NO_DEFAULT
} - {"mirrors"}


def read_params(path: Path) -> dict[str, Any]:
    """params.yaml (or a ``.json`` view) as plain data, bounded before anything is built: at most
    ``MAX_PARAMS_BYTES``, no anchors or aliases."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_PARAMS_BYTES + 1)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: not found; compose it from conf/ with `dvc exp run` or `mnist-pipeline params` "
            "(in a repository without conf/, adopt the pipeline first: `mnist-pipeline init`)"
        ) from exc
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: expected at most {MAX_PARAMS_BYTES:,} bytes of params, found more")
    # A view (the check stage writes one per dataset) is JSON; params.yaml is YAML.
    raw = _parse_json(path, data) if path.suffix == ".json" else _parse_yaml(path, data)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, found {type(raw).__name__}")
    return raw


def _parse_json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc


def _parse_yaml(path: Path, data: bytes) -> Any:
    try:
        return yaml.load(data.decode("utf-8"), Loader=_PlainLoader)
    except _AnchorError as exc:
        raise ConfigError(
            f"{path}: line {exc.line}: expected plain YAML values, found an anchor or alias (& or *)"
        ) from exc
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def params_from_dict(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a composed config against the schema, then the rules types cannot express: all
    but the formats' options, which each format's module checks (``export_options``; every
    format's at once: ``mnist_pipeline.formats.validate_params``)."""
    datasets = raw.get("datasets")
    if isinstance(datasets, dict):
        for name, entry in datasets.items():
            if isinstance(entry, dict) and entry and not set(entry) & _DESCRIBING_KEYS:
                # `-S '++datasets.<d>.export.csv.header=false'` (or `.mirrors=[...]`) for a dataset
                # the run does not select: the schema would name the first missing key instead.
                raise ConfigError(
                    f"{source}: datasets.{name}: expected a selected dataset, found only overrides "
                    f"({', '.join(sorted(map(str, entry)))}) for a dataset this run does not select; "
                    f"select it with -S 'dataset=[...,{name}]'"
                )
            own = entry.get("export") if isinstance(entry, dict) else None
            unknown = [key for key in own if key not in KNOWN_FORMATS] if isinstance(own, dict) else []
            if unknown:
                raise ConfigError(
                    f"{source}: datasets.{name}.export.{unknown[0]}: expected a format "
                    f"({', '.join(KNOWN_FORMATS)}), found {unknown[0]!r}"
                )
    params = cast(Params, _structured(Params, raw, source))
    problems = _problems(params)
    if problems:
        key, problem = problems[0]
        raise ConfigError(f"{source}: {key}: {problem}")
    return params


def _structured(schema: type[Any], raw: Any, source: str) -> Any:
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), raw))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{source}: {_reason(exc)}") from exc


def _reason(exc: OmegaConfBaseException) -> str:
    return ": ".join(_key_and_reason(exc))


def _key_and_reason(exc: OmegaConfBaseException) -> tuple[str, str]:
    """The full key OmegaConf names, and the first line of its message."""
    return str(getattr(exc, "full_key", None) or "?"), str(getattr(exc, "msg", exc)).splitlines()[0]


Problems = list[tuple[str, str]]
Options = TypeVar("Options")


def _problems(params: Params) -> Problems:
    problems: Problems = []
    if not params.datasets:
        problems.append(("datasets", "expected at least one dataset (-S dataset=<name>), found none"))
    for name, dataset in params.datasets.items():
        problems += _dataset_problems(f"datasets.{name}", name, dataset)
    problems += download_problems(params.download)
    problems += _shared_export_problems(params.export, list(params.datasets))
    problems += _payload_check_problems(params)
    if not 1 <= params.report.samples_per_class <= 100:
        problems.append(("report.samples_per_class", f"expected 1 to 100, found {params.report.samples_per_class}"))
    return problems


def _payload_check_problems(params: Params) -> Problems:
    """``verify.archive: payload`` accepts a recompressed file on its payload digest: every file
    must publish one."""
    if params.verify.archive is not ArchiveCheck.payload:
        return []
    return [
        (
            "verify.archive",
            f"'payload' needs a published payload digest, and datasets.{name} has none for {spec.file}; use 'strict'",
        )
        for name, dataset in params.datasets.items()
        for spec in dataset.files()
        if not spec.has_payload_digest
    ][:1]


def _dataset_problems(key: str, name: str, ds: DatasetSpec) -> Problems:
    problems: Problems = []
    if not NAME_PATTERN.fullmatch(name):
        problems.append((key, f"expected a dataset name matching {NAME_PATTERN.pattern}, found {name!r}"))
    elif name == PARAMS_DIR:
        problems.append((key, f"expected another dataset name: data/{PARAMS_DIR}/ holds every dataset's params views"))
    if len(ds.image_shape) != 2 or not all(1 <= side <= MAX_IMAGE_SIDE for side in ds.image_shape):
        problems.append(
            (f"{key}.image_shape", f"expected [rows, cols] of 1 to {MAX_IMAGE_SIDE}, found {ds.image_shape}")
        )
    if not 1 <= len(ds.classes) <= MAX_CLASSES:
        problems.append((f"{key}.classes", f"expected 1 to {MAX_CLASSES} class names, found {len(ds.classes)}"))
    for index, class_name in enumerate(ds.classes):
        if not is_printable_line(class_name, 64):
            problems.append((f"{key}.classes.{index}", f"expected 1 to 64 printable characters, found {class_name!r}"))
    if len(set(ds.classes)) != len(ds.classes):
        problems.append((f"{key}.classes", "expected distinct class names, found duplicates"))
    if not ds.mirrors:
        problems.append((f"{key}.mirrors", "expected at least one mirror, found none"))
    for index, mirror in enumerate(ds.mirrors):
        problem = mirror_problem(mirror)
        if problem:
            problems.append((f"{key}.mirrors.{index}", problem))
    if not ds.splits:
        problems.append((f"{key}.splits", "expected at least one split, found none"))
    for split_name, split in ds.splits.items():
        problems += _split_problems(f"{key}.splits.{split_name}", split_name, split, ds)
    if ds.container is not None:
        problems += _file_problems(f"{key}.container", ds.container)
        for spec in ds.files():
            if spec.member is None or not is_member_name(spec.member):
                problems.append(
                    (
                        f"{key}.container",
                        f"expected every file to name its zip member, found {spec.member!r} for {spec.file!r}",
                    )
                )
    problems += _label_problems(f"{key}.labels", ds.labels)
    return problems


def _split_problems(key: str, split_name: str, split: SplitSpec, ds: DatasetSpec) -> Problems:
    problems: Problems = []
    if not NAME_PATTERN.fullmatch(split_name):
        problems.append((key, f"expected a split name matching {NAME_PATTERN.pattern}, found {split_name!r}"))
    if split_name in RESERVED_SPLITS:
        problems.append((key, f"{split_name!r} is made by the exports (validation_size); rename the split"))
    if split_name == HF_ALL_SPLITS:
        problems.append((key, f"{split_name!r} is Hugging Face's name for all splits at once, which it refuses as one"))
    for kind in ("images", "labels"):
        spec: FileSpec = getattr(split, kind)
        problems += _file_problems(f"{key}.{kind}", spec)
        if not 0 < spec.payload_size <= MAX_FILE_SIZE:
            problems.append(
                (f"{key}.{kind}.payload_size", f"expected 1 to {MAX_FILE_SIZE} bytes, found {spec.payload_size}")
            )
        for digest, length in _HEX.items():
            problems += _hex_problems(f"{key}.{kind}.payload_{digest}", getattr(spec, f"payload_{digest}"), length)
    if split.count < 1:
        problems.append((f"{key}.count", f"expected images > 0, found {split.count}"))
    if split.rows is not None:
        start_stop = split.rows
        if (
            len(start_stop) != 2
            or not 0 <= start_stop[0] < start_stop[1]
            or start_stop[1] - start_stop[0] != split.count
        ):
            problems.append(
                (f"{key}.rows", f"expected [start, stop) with stop - start = count {split.count}, found {start_stop}")
            )
    return problems


def _file_problems(key: str, spec: FileSpec | ContainerSpec) -> Problems:
    problems: Problems = []
    if not is_plain_file_name(spec.file):
        problems.append((f"{key}.file", f"expected a plain file name, found {spec.file!r}"))
    size = spec.size
    if size is not None and not 0 < size <= MAX_FILE_SIZE:
        problems.append((f"{key}.size", f"expected 1 to {MAX_FILE_SIZE} bytes, found {size}"))
    if spec.md5 is None and spec.sha256 is None:
        problems.append((key, "expected a published md5 or sha256, found neither"))
    for digest, length in _HEX.items():
        problems += _hex_problems(f"{key}.{digest}", getattr(spec, digest), length)
    return problems


def _hex_problems(key: str, value: str | None, length: int) -> Problems:
    """A published digest: absent, or ``length`` lower-case hex digits."""
    if value is None or re.fullmatch(f"[0-9a-f]{{{length}}}", value):
        return []
    return [(key, f"expected {length} lower-case hex digits, found {value!r}")]


def _label_problems(key: str, labels: LabelSpec) -> Problems:
    problems: Problems = []
    if labels.source.table:
        if not labels.columns:
            problems.append((f"{key}.columns", "expected a name for every column of the label table, found none"))
        if not 0 <= labels.column < max(len(labels.columns), 1):
            problems.append(
                (f"{key}.column", f"expected a column index below {len(labels.columns)}, found {labels.column}")
            )
        if len(set(labels.columns)) != len(labels.columns):
            problems.append((f"{key}.columns", f"expected distinct column names, found {labels.columns}"))
        for index, column in enumerate(labels.columns):
            clashes_with_label = column == "label" and index != labels.column
            if column in RESERVED_COLUMNS or clashes_with_label or re.fullmatch(r"pixel\d+", column):
                problems.append((f"{key}.columns.{index}", f"{column!r} is a column the exports write themselves"))
            elif not NAME_PATTERN.fullmatch(column):
                problems.append(
                    (
                        f"{key}.columns.{index}",
                        f"expected a column name matching {NAME_PATTERN.pattern}, found {column!r}",
                    )
                )
    if not 0 <= labels.offset <= MAX_CLASSES:
        problems.append((f"{key}.offset", f"expected 0 to {MAX_CLASSES}, found {labels.offset}"))
    return problems


def download_problems(download: DownloadConfig) -> Problems:
    problems: Problems = []
    for name, value, low, high in (
        ("timeout", download.timeout, 0.0, MAX_TIMEOUT),
        ("backoff", download.backoff, 0.0, MAX_BACKOFF),
    ):
        zero_allowed = name == "backoff"  # no pause between retries; a timeout of 0 would never connect
        if not math.isfinite(value) or not low <= value <= high or (value == 0 and not zero_allowed):
            interval = f"{'[' if zero_allowed else '('}{low:g}, {high:g}]"
            problems.append((f"download.{name}", f"expected seconds in {interval}, found {value}"))
    if not 0 <= download.retries <= MAX_RETRIES:
        problems.append(("download.retries", f"expected 0 to {MAX_RETRIES}, found {download.retries}"))
    if not 1 <= download.min_rate <= 1 << 30:
        problems.append(("download.min_rate", f"expected bytes per second 1 to {1 << 30}, found {download.min_rate}"))
    if not is_printable_line(download.user_agent, MAX_HEADER_VALUE, ascii_only=True):
        problems.append(
            (
                "download.user_agent",
                f"expected 1 to {MAX_HEADER_VALUE} printable ASCII characters on one line, "
                f"found {download.user_agent!r}",
            )
        )
    return problems


def _shared_export_problems(export: ExportConfig, datasets: list[str]) -> Problems:
    problems: Problems = []
    if not 1 <= export.workers <= MAX_WORKERS:
        problems.append(("export.workers", f"expected 1 to {MAX_WORKERS} (4 x cores), found {export.workers}"))
    for name in export.formats:
        if name not in KNOWN_FORMATS:
            problems.append(("export.formats", f"unknown format {name!r}; allowed: {', '.join(KNOWN_FORMATS)}"))
    for name in export.trees:
        if name not in KNOWN_TREES or name not in export.formats:
            problems.append(
                (
                    "export.trees",
                    f"a tree needs its archive format selected, "
                    f"found tree {name!r} with formats {list(export.formats)}",
                )
            )
    for name, built in export.build.items():
        if name not in KNOWN_FORMATS:
            problems.append(("export.build", f"unknown format {name!r}; allowed: {', '.join(KNOWN_FORMATS)}"))
        # The formats group writes these lists (dvc.yaml makes export_<format>@<dataset> from
        # them); a hand-edited one naming another dataset would run a stage check wrote no view for.
        unselected = [dataset for dataset in built if dataset not in datasets]
        if unselected:
            problems.append(
                (
                    f"export.build.{name}",
                    f"expected selected datasets only ({', '.join(datasets)}; the formats group writes it), "
                    f"found {unselected[0]!r}",
                )
            )
    return problems


@dataclass(frozen=True)
class FormatOptions(Generic[Options]):
    """A format's options: their schema, and the rules its types cannot express, each problem
    keyed by its option (``decimals``), with the dataset the options are for."""

    name: str
    schema: type[Options]
    rules: Callable[[Options, DatasetSpec], Problems] = lambda _options, _dataset: []


def export_options(params: Params, dataset_name: str, fmt: FormatOptions[Options], source: str = "params") -> Options:
    """``dataset_name``'s options of ``fmt``, typed and checked: the shared ``export.<format>``
    with the dataset's own ``datasets.<d>.export.<format>`` over it. The stage of that format
    calls this once, and ``check`` for every format and dataset (``mnist_pipeline.formats``). A
    problem is named under ``datasets.<d>.export`` when the dataset sets that option itself,
    else under ``export``, where the shared value is."""
    dataset = params.dataset(dataset_name)
    own = dataset.export.get(fmt.name, {})

    def where(option: str) -> str:
        return f"datasets.{dataset_name}.export.{fmt.name}" if option in own else f"export.{fmt.name}"

    try:
        merged = OmegaConf.merge(OmegaConf.structured(fmt.schema), params.export.shared(fmt.name), own)
        typed = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        option, message = _key_and_reason(exc)
        option = option.split(".")[0]
        raise ConfigError(f"{source}: {where(option)}.{option}: {message}") from exc
    problems = fmt.rules(cast(Options, typed), dataset)
    if problems:
        option, problem = problems[0]
        raise ConfigError(f"{source}: {where(option)}.{option}: {problem}")
    return cast(Options, typed)


#: The split a validation split is carved from, and the one whose mean and std standardize uses.
TRAIN_SPLIT = "train"
#: The split the exports carve from the training images (``validation_size``).
VALIDATION_SPLIT = "val"
#: Split names the exports create themselves.
RESERVED_SPLITS = (VALIDATION_SPLIT,)
#: Hugging Face ``datasets``' name for every split together: its loaders refuse a split of that name.
HF_ALL_SPLITS = "all"
#: Column names the exports write themselves (extended label columns must not collide).
RESERVED_COLUMNS = ("image", "pixels", "path", "split", "index", "class")
