"""What both dataset cards say (the Parquet export's, mnist_pipeline.card, and the export
folder's README.md, mnist_pipeline.report): the dataset's title, source, license with its Hub id,
citation, and how the exports differ from the published files, from the config's facts; and the
Markdown escaping that keeps a config value from reading as syntax. Apart from the Parquet card
(which reads Parquet files with pyarrow), so that the report depends on this text only.
"""

from __future__ import annotations

import re

from mnist_pipeline.config import DatasetSpec

#: An IDX images file's header: magic + 3 dimensions, 4 bytes each. Written out rather than taken
#: from mnist_pipeline.idx: importing it would make the IDX reader's code part of the Parquet
#: export's and the report's, re-running both on every edit of it.
IDX_IMAGES_HEADER = 16

#: Display names used in conf/ -> the Hub's license ids (https://huggingface.co/docs/hub/repositories-licenses).
#: Keys are lower case, without a trailing parenthesis ("CC0 1.0 (NIST)" -> "cc0 1.0").
LICENSE_IDS = {
    "cc by-sa 3.0": "cc-by-sa-3.0",
    "cc by-sa 4.0": "cc-by-sa-4.0",
    "cc by 3.0": "cc-by-3.0",
    "cc by 4.0": "cc-by-4.0",
    "cc0": "cc0-1.0",
    "cc0 1.0": "cc0-1.0",
    "mit": "mit",
    "apache 2.0": "apache-2.0",
    "bsd": "bsd",
    "bsd-style": "bsd",
    "bsd 2-clause": "bsd-2-clause",
    "bsd 3-clause": "bsd-3-clause",
    "public domain": "pddl",
}
#: Hub ids a config may also give as they are.
HUB_LICENSE_IDS = frozenset(LICENSE_IDS.values()) | {"other", "unknown", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "gpl-3.0"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def license_metadata(display: str, homepage: str) -> dict[str, str]:
    """The Hub's license fields for a license as conf/ names it: an id from the Hub's list,
    or ``other`` with a slug name and a link."""
    key = re.sub(r"\s*\(.*\)\s*$", "", display).strip().lower()
    if key in HUB_LICENSE_IDS:
        return {"license": key}
    if key in LICENSE_IDS:
        return {"license": LICENSE_IDS[key]}
    slug = re.sub(r"[^a-z0-9]+", "-", key).strip("-") or "custom"
    return {"license": "other", "license_name": slug, "license_link": homepage}


def md(text: str) -> str:
    """``text`` as literal Markdown inline text: every punctuation mark that Markdown or a
    table could read as syntax is backslash-escaped, line breaks become spaces."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def code(text: str) -> str:
    """``text`` as a Markdown code span (outside tables), delimited by more backticks than it holds."""
    text = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(text: str) -> list[str]:
    """``text`` in a fenced block whose fence no run of backticks inside it can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *text.splitlines(), fence]


def file_images(dataset: DatasetSpec, file: str) -> int | None:
    """Images in a published images file, from its payload size (IDX header + rows x cols each)."""
    rows, cols = dataset.image_shape
    spec = next(split.images for split in dataset.splits.values() if split.images.file == file)
    count, remainder = divmod(spec.payload_size - IDX_IMAGES_HEADER, rows * cols)
    return count if remainder == 0 else None


def differences(dataset: DatasetSpec) -> list[str]:
    """What differs from the published files and from other loaders, from the config's facts."""
    points: list[str] = []
    if dataset.transposed:
        points.append(
            "**Orientation**: the published files store every image transposed. Every export here is "
            "upright: `image = stored.T`. torchvision's `EMNIST` and TFDS' `emnist` return the stored, "
            "transposed images; to compare with them, transpose (`x.transpose(0, 2, 1)` on a batch)."
        )
    if dataset.labels.offset:
        first, last = dataset.labels.offset, dataset.labels.offset + len(dataset.classes) - 1
        points.append(
            f"**Labels**: the files number the classes {first}..{last}. Here *label = stored label - {first}*, "
            f"so labels run 0..{len(dataset.classes) - 1} in every export and in the class names "
            f"(0 is {md(dataset.classes[0])}, no empty class). torchvision keeps the stored labels, "
            f'with an empty class 0 named "N/A"; subtract {first} from its labels to compare.'
        )
    if dataset.labels.source.table:
        columns = ", ".join(code(name) for name in dataset.labels.columns)
        points.append(
            f"**Label table**: the label files hold one row of {len(dataset.labels.columns)} integers per "
            f"image ({columns}); the class label is column {dataset.labels.column}. With "
            "`export.{npz,csv,parquet}.extended_labels=true` the exports keep the other columns "
            "(torchvision: `compat=False`)."
        )
    points += _kept_rows(dataset)
    return points


def _kept_rows(dataset: DatasetSpec) -> list[str]:
    points = []
    by_file: dict[str, list[tuple[str, int, int]]] = {}
    for name, split in dataset.splits.items():
        start, stop = split.row_span
        by_file.setdefault(split.images.file, []).append((name, start, stop))
    for file, parts in by_file.items():
        total = file_images(dataset, file)
        kept = sum(stop - start for _, start, stop in parts)
        described = "; ".join(f"{code(name)} = rows {start:,} to {stop - 1:,}" for name, start, stop in parts)
        if len(parts) > 1 or (total is not None and kept != total):
            dropped = f"; {total - kept:,} images of the file are not exported" if total and kept < total else ""
            points.append(f"**Splits**: {md(file)}: {described}{dropped}.")
    if not points:
        points.append("**Images**: every image of the published files is exported, in the published order.")
    return points


def source_lines(dataset: DatasetSpec) -> list[str]:
    """Title, source, license (with its Hub id), citation and the differences: what both the
    Parquet card and the export folder's README say first."""
    license_fields = license_metadata(dataset.license, dataset.homepage)
    homepage = dataset.homepage
    source = f"<{homepage}>" if re.fullmatch(r"https?://[^\s<>]+", homepage) else md(homepage)
    return [
        f"# {md(dataset.title)}",
        "",
        f"Source: {source}  ",
        f"License: {md(dataset.license)} (Hub id `{license_fields['license']}`)",
        "",
        "## Citation",
        "",
        *code_block(dataset.citation),
        "",
        "## How this differs from the published files and from other loaders",
        "",
        *(f"- {point}" for point in differences(dataset)),
        "",
    ]
