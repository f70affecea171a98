"""Names that come from configuration or from archives, and the checks that keep them harmless.

Mirror URLs, dataset and split names, file names and zip member paths all become paths, URLs,
stage names or log lines. The rules live here, apart from the params schema, so that the zip
reader, the HTTP client and the machine-local settings can use them without the schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

MIRROR_SCHEMES = ("http", "https", "file")
#: The folder of the repository every stage writes in, and the only one (README "Atomic outputs").
DATA_DIR = "data"
#: The Hydra config folder params.yaml is composed from: a repository that runs the pipeline has one.
CONF_DIR = "conf"
#: The decode stage's folder under data/<dataset>/ (its files: the three functions below), which
#: every export and ``mnist_pipeline.load`` read.
DECODED_DIR = "decoded"
#: The unpack stage's PNG tree under data/<dataset>/export/, beside the export folders (dvc.yaml).
TREE_DIR = "images"
#: What each stage writes below data/<dataset>/, as dvc.yaml's outs name it (a path below one of
#: them belongs to the longest; check writes data/params/). A stage run by hand with other paths
#: may write neither what another stage writes nor its own output of another dataset
#: (tests/test_stage_deps.py compares this with dvc.yaml).
#: The export formats: each an ``export_<format>`` stage writing ``export/<format>/`` and its
#: sha256 file, an ``export.<format>`` section of params, and a ``<format>_options`` module.
KNOWN_FORMATS = ("csv", "npz", "parquet", "png")
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "download": ("raw",),
    "verify": ("checksums.json",),
    "extract": ("idx",),
    "decode": (DECODED_DIR, "stats.json"),
    **{f"export_{fmt}": (f"export/{fmt}", f"export/{fmt}.sha256") for fmt in KNOWN_FORMATS},
    "unpack": (f"export/{TREE_DIR}",),
    "report": ("export",),
}
#: Every output DVC caches below ``data/<dataset>/`` (dvc.yaml's outs and plots but those with
#: ``cache: false``, which git keeps). ``mnist-pipeline init`` git-ignores them from the root
#: too: DVC's own ignore file in a dataset folder an experiment created does not travel with
#: ``dvc exp apply`` or ``dvc exp branch``, and a ``git add -A`` would then take the data.
CACHED_OUTPUTS = (
    "raw/",
    "checksums.json",
    "idx/",
    f"{DECODED_DIR}/",
    *(name for fmt in KNOWN_FORMATS for name in (f"export/{fmt}/", f"export/{fmt}.sha256")),
    "export/README.md",
    "export/samples.png",
    "export/class_distribution.png",
)
#: Scratch folders of atomic writes are named ``.<final name>.mnist-pipeline-<random>.tmp``
#: (``.old`` for the previous output on its way out): fsio's cleanup removes only names of that
#: shape, so a user's own ``.<name>.backup.old`` beside an unpack target is never taken for one.
SCRATCH_TAG = "mnist-pipeline-"
SCRATCH_SUFFIXES = (".tmp", ".old")
#: A scratch folder holding its output's new version (or the folder itself, at the end of a
#: path), in a path: what an error line names as the output itself (the user wrote no scratch
#: name and can do nothing with one).
SCRATCH_PART = re.compile(
    rf"(^|/)\.([^/]+)\.{re.escape(SCRATCH_TAG)}[^/]*(?:{'|'.join(map(re.escape, SCRATCH_SUFFIXES))})(?:/\2(?=/|$)|$)"
)
#: The check stage's folder under data/: every dataset's params view and tracked params files.
PARAMS_DIR = "params"
#: The report stage's plot data under data/<dataset>/export/: ``class,split,count,bar`` rows in
#: label order, which ``mnist_pipeline.load`` reads the class names from too.
CLASS_DISTRIBUTION_CSV = "class_distribution.csv"
#: Dataset and split names become folder names, file names and DVC stage names
#: (``export_<format>@<dataset>``): lower-case, no dot, no dash.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: The last member of the PNG export's zip, listing every PNG (an unpacked tree keeps it; what
#: marks a tree as unpack's is ``treemark.MARKER``).
MANIFEST_NAME = "manifest.csv"
#: Its columns; ``path`` (first) lists every PNG of the zip, in member order.
MANIFEST_COLUMNS = ("path", "split", "index", "label", "class")
#: With layout flat, the zip's only members besides the PNGs and the manifest: one per split
#: folder, right after its PNGs, in Hugging Face's image-folder metadata format, so that
#: ``load_dataset("imagefolder", data_dir=<tree>)`` reads each image's label, which no class
#: folder gives it (with class folders, a metadata file would replace their class names).
SPLIT_METADATA_NAME = "metadata.csv"
SPLIT_METADATA_COLUMNS = ("file_name", "label")
#: ``user:password@host/...`` without a scheme: urlsplit takes ``user`` (or a one-letter user,
#: like a drive letter) as the scheme, and the rest would become a local folder name.
_SCHEMELESS_USERINFO = re.compile(r"^[^/?#@]*:[^/?#]*@")
_NETRC_HINT = "put credentials in ~/.netrc (or $NETRC) instead (README: Mirrors that need a login)"


#: The suffix each compression (``datasets.<d>.compression``) adds to its IDX payload's name
#: (``x-idx3-ubyte.gz``); archive.py holds how each is opened.
COMPRESSED_SUFFIXES = {"gzip": ".gz", "xz": ".xz", "none": ""}
#: The payload's name when a published file does not carry its compression's suffix.
PAYLOAD_SUFFIX = ".idx"


def payload_name(file_name: str, compression: str) -> str:
    """The IDX payload's file name in ``idx/`` (extract writes it, decode reads it) for a
    published file: ``x-idx3-ubyte.gz`` -> ``x-idx3-ubyte`` (the compression's suffix dropped),
    else the name plus ``.idx``. ``compression``: the config value (``gzip``)."""
    suffix = COMPRESSED_SUFFIXES[compression]
    if suffix and file_name.endswith(suffix) and file_name != suffix:
        return file_name.removesuffix(suffix)
    return file_name + PAYLOAD_SUFFIX


def images_path(decoded_dir: Path, split: str) -> Path:
    return decoded_dir / f"{split}_images.npy"


def labels_path(decoded_dir: Path, split: str) -> Path:
    return decoded_dir / f"{split}_labels.npy"


def table_path(decoded_dir: Path, split: str) -> Path:
    return decoded_dir / f"{split}_label_table.npy"


def is_local_folder(mirror: str) -> bool:
    """A mirror without a scheme (or with a Windows drive letter) is a local folder."""
    return len(urlsplit(mirror).scheme) <= 1


def mirror_problem(mirror: str) -> str | None:
    """Why ``mirror`` (a URL or a local folder) is unusable, or None.

    File names are appended to a mirror, and mirrors are written to params.yaml and dvc.lock:
    user info, a query string or a fragment (where tokens travel) are refused, never stored.
    """
    if not is_printable_line(mirror, 2048):
        return f"expected one line of printable characters, found {redact(mirror)!r}"
    if "://" not in mirror and _SCHEMELESS_USERINFO.match(mirror):
        return f"expected a URL with a scheme or a local folder, found user info in {redact(mirror)!r}; {_NETRC_HINT}"
    try:
        parts = urlsplit(mirror)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc}): {redact(mirror)!r}"
    if is_local_folder(mirror):
        return None
    if parts.scheme not in MIRROR_SCHEMES:
        allowed = ", ".join(MIRROR_SCHEMES)
        return f"unsupported scheme {parts.scheme!r} in {redact(mirror)!r}; allowed: {allowed} or a local folder"
    if parts.username is not None or parts.password is not None:
        return (
            f"credentials in a mirror URL would be written to params.yaml and dvc.lock: {redact(mirror)!r}; "
            f"{_NETRC_HINT}"
        )
    if "?" in mirror or "#" in mirror:
        return (
            f"a query string or fragment in a mirror URL would be written to params.yaml and dvc.lock "
            f"(file names are appended to the mirror): {redact(mirror)!r}; {_NETRC_HINT}"
        )
    if parts.scheme != "file" and not parts.hostname:
        return f"expected a host name in {redact(mirror)!r}"
    return None


def redact(url: str) -> str:
    """``url`` for messages: user info, query string and fragment replaced by ``***``."""
    hidden = re.sub(r"([?#]).*", r"\1***", url, flags=re.DOTALL)
    if "://" not in hidden:
        return _SCHEMELESS_USERINFO.sub("***@", hidden)
    try:
        parts = urlsplit(hidden)
        if parts.password is None and parts.username is None:
            return hidden
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return parts._replace(netloc=f"***@{host}{port}").geturl()
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", hidden)


def is_printable_line(value: str, max_length: int, *, ascii_only: bool = False) -> bool:
    """Non-empty, at most ``max_length`` characters, no control characters (CR, LF, NUL, ...)."""
    if not 0 < len(value) <= max_length or not value.isprintable():
        return False
    return value.isascii() or not ascii_only


def is_plain_file_name(name: str) -> bool:
    """True for a bare file name that cannot point outside the folder it is joined to."""
    return (
        is_printable_line(name, 255)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and name.strip() == name
    )


def is_member_name(name: str) -> bool:
    """A relative zip member path that stays inside (no empty, ``.`` or ``..`` parts)."""
    return is_printable_line(name, 1024) and is_clean_relative_path(name)


_UNCLEAN_PARTS = frozenset(("", ".", ".."))


def is_clean_relative_path(path: str) -> bool:
    """True for a relative POSIX path of plain parts: no empty, ``.`` or ``..`` part (so not
    absolute, not empty, and no two spellings of one path), no backslash, no NUL. Plain string
    work: the unpack stage calls it for every member of a zip of up to millions, twice."""
    return _UNCLEAN_PARTS.isdisjoint(path.split("/")) and "\\" not in path and "\x00" not in path
