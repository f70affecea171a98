"""Adopting the pipeline in a team's own git + DVC repository, and upgrading it safely.

``mnist-pipeline init`` writes what the pipeline needs into an existing repository: its stages
(in the root ``dvc.yaml`` next to the team's own, or in ``<dir>/dvc.yaml``), ``conf/``,
``params.yaml``, ignore entries and ``mnist-pipeline.yaml``. It never overwrites a file of the
team's: a file that exists with other content is refused and named (stages are merged into an
existing dvc.yaml only when none of their names is taken), and no file is written through a
symbolic link or outside the repository (``fsio.safe_target``, checked for every file before
the first is written). The pipeline's stages go into the team's dvc.yaml as one block of text
between two marker comments (``BLOCK_BEGIN``/``BLOCK_END``): adoption inserts it at the end of
``stages:``, an upgrade replaces the lines between the markers, and every other byte of the file
(the team's stages, comments, anchors, indentation, line endings) stays as it was.

Each stage tracks ``code.<its module>`` in the params file the ``check`` stage writes for it,
the digest of its import closure (mnist_pipeline.check). In this repository ``check`` depends
on the package folder; a team repository has none, so ``mnist-pipeline.yaml``
records the digest of each stage's code in the installed package and ``check`` tracks that file:
after an upgrade, ``mnist-pipeline init --upgrade`` rewrites the digests, ``check`` re-runs and
exactly the stages whose code changed follow. Until then nothing is stale to DVC (the outputs
are what the recorded code made), and any stage that would run compares the record with the code
it is about to run and stops with one line naming that command (mnist_pipeline.provenance,
checked in the shell every stage shares): no ``always_changed`` stage, so a team repository's
``dvc status`` is clean after a run.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mnist_pipeline.errors import PipelineError, one_line
from mnist_pipeline.fsio import is_repository_root, safe_target, write_bytes_under
from mnist_pipeline.names import CACHED_OUTPUTS, CONF_DIR, DATA_DIR, PARAMS_DIR
from mnist_pipeline.provenance import (
    CODE_FILE,
    PACKAGE,
    code_digest,
    newer_recorded_version,
    package_root,
    version,
)

RESOURCES = "resources"
IGNORED = (
    "# mnist-pipeline: what DVC caches (also where an applied experiment brought no ignore file)",
    f"/{DATA_DIR}/{PARAMS_DIR}/",
    *(f"/{DATA_DIR}/*/{output}" for output in CACHED_OUTPUTS),
    "# mnist-pipeline: scratch, shared downloads and trees rebuilt by `dvc repro`",
    "/data/*/.partial/",
    "/data/.downloads/",
    "/data/**/.*.tmp/",
    "/data/**/.*.old/",
    "/data/*/export/images/",
    "/dvc_plots/",
    "# this machine's mirrors and download settings (README: Mirrors)",
    "/mnist-pipeline.local.yaml",
)
_MODULE_IN_CMD = re.compile(rf"python -m ({PACKAGE}\.\w+)")
#: The lines around the pipeline's stages in a dvc.yaml: ``init --upgrade`` replaces what lies
#: between them, and nothing else of the file.
BLOCK_BEGIN = "# >>> mnist-pipeline stages: written by `mnist-pipeline init`; `init --upgrade` replaces them"
BLOCK_END = "# <<< mnist-pipeline stages"
_STAGES_KEY = re.compile(r"stages[ \t]*:[ \t]*(?:#.*)?")
_MAPPING_KEY = re.compile(r"( *)(['\"]?)([^\s#'\":][^#'\":]*?)\2[ \t]*:(?:[ \t]|$)")


class AdoptError(PipelineError):
    """The repository is not ready, or a file of the team's would be overwritten."""


def stage_modules(stages: dict[str, Any]) -> dict[str, str]:
    """Stage name (a ``foreach`` template's too) -> the module its cmd runs."""
    result = {}
    for name, stage in stages.items():
        match = _MODULE_IN_CMD.search(str(stage.get("do", stage)["cmd"]))
        if not match:
            raise AdoptError(f"dvc.yaml: stage {name} runs no `python -m {PACKAGE}.<stage>`")
        result[name] = match.group(1)
    return result


def code_record(stages: dict[str, Any]) -> dict[str, Any]:
    """What mnist-pipeline.yaml holds: the version and one digest per stage module."""
    digests = {module.removeprefix(f"{PACKAGE}."): code_digest(module) for module in stage_modules(stages).values()}
    return {"version": version(), "code": dict(sorted(digests.items()))}


def team_stages(stages: dict[str, Any], wdir: str | None) -> dict[str, Any]:
    """This repository's stages rewritten for a team repository, which has no package folder to
    depend on: ``check`` tracks mnist-pipeline.yaml instead. ``init --upgrade`` rewrites the
    record, so ``check`` re-runs and writes the installed code's digests into the views, and
    exactly the stages whose digest changed follow (each stage also compares the record with
    the code it is about to run: mnist_pipeline.stage)."""
    rewritten = {}
    for name, original in stages.items():
        stage = dict(original)
        template = dict(stage.get("do", stage))
        match = _MODULE_IN_CMD.search(str(template["cmd"]))
        assert match is not None  # stage_modules checked every cmd
        template["deps"] = [dep for dep in template.get("deps", []) if str(dep) != PACKAGE]
        if match.group(1) == f"{PACKAGE}.check":
            template["params"] = [*template.get("params", []), {CODE_FILE: None}]
        if not template["deps"]:
            del template["deps"]
        if wdir:
            template["wdir"] = wdir
        rewritten[name] = {**stage, "do": template} if "do" in stage else template
    return rewritten


#: The actions of ``Planned`` that write the file.
WRITTEN = ("new", "update")


@dataclass(frozen=True)
class Planned:
    path: Path
    content: bytes
    #: "new", "same" (already there, identical), "update" (ours, from an older version); on an
    #: upgrade, a conf file the team edited is not written (``content`` is theirs): "kept", or
    #: "differs" (this version changed it too, and it is not merged yet: init names it)
    action: str
    #: The repository: the file is written inside it, through no symbolic link.
    root: Path


def resource(name: str) -> Path:
    """``conf`` or ``stages.yaml``: in an installed wheel, the copies setup.py put in the
    package; in a source checkout (an editable install), the repository's conf/ and dvc.yaml."""
    bundled = package_root() / RESOURCES
    if bundled.is_dir():
        return bundled / name
    return package_root().parent / {"stages.yaml": "dvc.yaml"}.get(name, name)


def source_stages() -> dict[str, Any]:
    loaded = yaml.safe_load(resource("stages.yaml").read_text(encoding="utf-8"))
    stages: dict[str, Any] = loaded["stages"]
    return stages


def conf_files() -> Iterator[tuple[PurePosixPath, bytes]]:
    base = resource(CONF_DIR)
    for path in sorted(base.rglob("*.yaml")):
        yield PurePosixPath(path.relative_to(base).as_posix()), path.read_bytes()


def plan(repo: Path, stages_dir: str | None, upgrade: bool) -> list[Planned]:
    """Every file init writes, with what it would do; AdoptError for a file of the team's,
    ``UnsafePathError`` for a target reached through a symbolic link or outside ``repo``.
    ``stages_dir``: the folder of the pipeline's dvc.yaml; None for the one ``CODE_FILE``
    records (an upgrade) or the root."""
    if not (repo / ".git").exists() or not (repo / ".dvc").is_dir():
        raise AdoptError(f"{repo}: expected a git + DVC repository (git init && dvc init), found none")
    safe_target(repo / CODE_FILE, repo)  # read before the other targets are known: checked first
    previous = _read_yaml(repo / CODE_FILE) if (repo / CODE_FILE).exists() else None
    stages_dir = _stages_dir(repo, stages_dir, previous if upgrade else None)
    stages_path = repo / stages_dir / "dvc.yaml"
    conf = list(conf_files())
    targets = [
        *(repo / CONF_DIR / relative for relative, _ in conf),
        stages_path,
        repo / CODE_FILE,
        repo / ".gitignore",
        repo / "params.yaml",  # composed by init after these: refused now, before anything is written
        repo / ".dvc" / "config",
    ]
    for target in targets:
        safe_target(target, repo)
    _refuse_shared_dvc_config(repo / ".dvc" / "config")
    _refuse_wrong_kind_of_run(repo, previous, upgrade)
    relative_root = os.path.relpath(repo, repo / stages_dir) if stages_dir not in ("", ".") else None
    source = source_stages()
    written_before = _record_map(repo, previous, "files")
    pending_before = _record_map(repo, previous, "pending")
    planned = [
        _planned(repo, repo / CONF_DIR / relative, content, written_before.get(key), pending_before.get(key), upgrade)
        for relative, content in conf
        for key in [f"{CONF_DIR}/{relative}"]
    ]
    planned.append(_planned_stages(repo, stages_path, team_stages(source, relative_root), upgrade, relative_root))
    planned.append(_planned_record(repo, source, stages_dir, conf, planned, upgrade))
    planned.append(_planned_ignore(repo, repo / ".gitignore"))
    return planned


def _refuse_wrong_kind_of_run(repo: Path, previous: dict[str, Any] | None, upgrade: bool) -> None:
    """An upgrade needs a record this version can read; an adoption needs a repository that has
    neither adopted the pipeline nor a params.yaml of its own."""
    if upgrade and previous is None:
        raise AdoptError(f"{repo / CODE_FILE}: not found; adopt first with `mnist-pipeline init`")
    newer = newer_recorded_version(previous)
    if newer:
        raise AdoptError(f"{repo / CODE_FILE}: {newer} (init would write the older files)")
    if not upgrade and previous is not None:
        raise AdoptError(
            f"{repo / CODE_FILE}: already adopted; to refresh after an upgrade run `mnist-pipeline init --upgrade`"
        )
    if not upgrade and (repo / "params.yaml").exists():
        raise AdoptError(
            f"{repo / 'params.yaml'}: exists; the pipeline's stages read a params.yaml that `dvc exp run` "
            "composes from conf/, which would replace yours; refusing (adopt in a repository without one)"
        )


def _planned_record(
    repo: Path,
    source: dict[str, Any],
    stages_dir: str,
    conf: list[tuple[PurePosixPath, bytes]],
    planned: list[Planned],
    upgrade: bool,
) -> Planned:
    """``CODE_FILE``: the code's digests, the pipeline's folder, the conf files as written, and
    those the team edited that this version changed too (``pending``, until they are merged)."""
    record = {**code_record(source), "dir": stages_dir}
    record["files"] = {f"{CONF_DIR}/{relative}": _sha256(content) for relative, content in conf}
    pending = {
        item.path.relative_to(repo).as_posix(): _sha256(item.content) for item in planned if item.action == "differs"
    }
    if pending:
        record["pending"] = pending
    code_yaml = _code_yaml(record)
    unchanged = (repo / CODE_FILE).exists() and (repo / CODE_FILE).read_bytes() == code_yaml
    return Planned(repo / CODE_FILE, code_yaml, "same" if unchanged else "update" if upgrade else "new", repo)


def _record_map(repo: Path, record: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """``record[key]``: a mapping of conf file -> sha256, or none yet."""
    value = (record or {}).get(key) or {}
    if not isinstance(value, dict):
        raise AdoptError(
            f"{repo / CODE_FILE}: {key}: expected a mapping of conf files to sha256, found {type(value).__name__} "
            "(edited by hand?); restore it with git"
        )
    return value


def _stages_dir(repo: Path, given: str | None, record: dict[str, Any] | None) -> str:
    """The folder of the pipeline's dvc.yaml, as a relative POSIX path ("." for the root): the
    one given, else the one an upgrade's record names (adopted with --dir), else the root. An
    upgrade refuses another folder than the record's: it would add a second copy of the stages."""
    recorded = record.get("dir") if record else None
    if given is None:
        if not recorded:
            return "."
        _check_stages_dir(repo, posixpath.normpath(str(recorded)), f"{repo / CODE_FILE}: dir: {recorded}")
        return str(recorded)
    # Normalized first, so that sub/../conf is checked as the conf/ it is.
    normalized = posixpath.normpath(Path(given).as_posix())
    _check_stages_dir(repo, normalized, f"--dir {given}")
    if recorded is not None and normalized != recorded:
        raise AdoptError(
            f"--dir {given}: expected {recorded}, where {repo / CODE_FILE} records the pipeline's dvc.yaml; "
            "upgrade without --dir"
        )
    return normalized


def _check_stages_dir(repo: Path, stages_dir: str, where: str) -> None:
    """A folder the pipeline's dvc.yaml may go in: the repository's own (links and paths
    leaving it are ``safe_target``'s to refuse), outside ``conf/`` and ``data/``."""
    parts = PurePosixPath(stages_dir).parts
    if parts[:1] in ((CONF_DIR,), (DATA_DIR,)):
        # check depends on conf/ (the stages' dvc.lock there would re-run it on every run) and
        # every stage replaces its folder of data/.
        raise AdoptError(f"{where}: expected a folder outside {CONF_DIR}/ and {DATA_DIR}/, found one inside")
    hidden = [part for part in parts if part.startswith(".") and part not in (".", "..")]
    if hidden:
        # .git/ and .dvc/ are git's and DVC's own; no pipeline belongs in a hidden folder.
        raise AdoptError(f"{where}: expected a folder of the repository's own, found one inside {hidden[0]}/")
    for depth in range(1, len(parts) + 1):
        nested = repo.joinpath(*parts[:depth])
        if is_repository_root(nested):
            raise AdoptError(
                f"{where}: expected a folder of this repository, found {nested}, another repository "
                "(a submodule, a nested clone or a DVC subdir project): adopt the pipeline there instead"
            )


def _planned(
    repo: Path, path: Path, content: bytes, written_sha256: str | None, pending_sha256: str | None, upgrade: bool
) -> Planned:
    """A conf file: new, identical, ours and unedited since init wrote it (updated), or, on an
    upgrade, edited by the team and kept: "differs" when this version changed it too, or when
    an earlier upgrade said so and the file is unchanged since (not merged yet: ``pending``
    in the record), which init names; "kept" otherwise. Adoption refuses a file of the team's."""
    if not path.exists():
        return Planned(path, content, "new", repo)
    current = path.read_bytes()
    if current == content:
        return Planned(path, content, "same", repo)
    if written_sha256 is not None and _sha256(current) == written_sha256:
        return Planned(path, content, "update", repo)
    if upgrade:
        merged = _sha256(current) != pending_sha256
        return Planned(path, current, "kept" if merged and written_sha256 == _sha256(content) else "differs", repo)
    raise AdoptError(
        f"{path}: exists with content mnist-pipeline did not write; refusing to overwrite it "
        "(move it away, merge it by hand, or adopt in another repository)"
    )


def _planned_stages(
    repo: Path, path: Path, stages: dict[str, Any], upgrade: bool, relative_root: str | None
) -> Planned:
    """dvc.yaml with the pipeline's block of stages put in as text, every other byte kept.

    Adoption inserts the block at the end of ``stages:`` (indented like the team's stages, with
    the file's line endings); an upgrade replaces the lines between the block's markers (or,
    in a file adopted before the markers existed, the pipeline's stage entries). The result is
    parsed: the team's stages must read exactly as before and the pipeline's as given. In a
    sub-folder, DVC's templating reads the params.yaml beside the dvc.yaml: ``vars`` points it
    at the root one the stages use."""
    text = _read_text(path) if path.exists() else ""
    existing: dict[str, Any] = (_parse_yaml(path, text).get("stages") or {}) if text.strip() else {}
    taken = sorted(set(existing) & set(stages))
    if taken and not upgrade:
        raise AdoptError(
            f"{path}: already has stages named {taken}; refusing to merge (use --dir for another dvc.yaml)"
        )
    if upgrade and not taken:
        raise AdoptError(
            f"{path}: holds none of the pipeline's stages to upgrade; if you adopted with --dir, "
            "run `mnist-pipeline init --upgrade --dir <that folder>`"
        )
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    lines = _with_block(path, lines, stages, newline)
    if relative_root:
        lines = _with_root_vars(path, lines, f"{relative_root}/params.yaml", newline)
    content = "".join(lines)
    _check_merge(path, content, existing, stages)
    action = "update" if path.exists() else "new"
    return Planned(path, content.encode(), "same" if text == content else action, repo)


def _with_block(path: Path, lines: list[str], stages: dict[str, Any], newline: str) -> list[str]:
    begins = [i for i, line in enumerate(lines) if line.strip() == BLOCK_BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == BLOCK_END]
    if begins or ends:
        if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
            raise AdoptError(
                f"{path}: expected one line {BLOCK_BEGIN!r} and then one {BLOCK_END!r}, found {len(begins)} and "
                f"{len(ends)}; restore them (git diff) or remove the pipeline's stages and both lines"
            )
        begin, end = begins[0], ends[0]
        indent = len(lines[begin]) - len(lines[begin].lstrip(" "))
        return [*lines[:begin], _stages_block(stages, indent, newline), *lines[end + 1 :]]
    region = _stages_region(path, lines)
    if region is None:
        return [*lines, f"stages:{newline}", _stages_block(stages, 2, newline)]
    start, end, indent = region
    spans = _entry_spans(lines, start, end, indent, set(stages))
    if not spans:
        return [*lines[:end], _stages_block(stages, indent, newline), *lines[end:]]
    # Adopted before the markers existed: the first of the pipeline's entries becomes the block.
    kept = []
    position = 0
    for number, (span_start, span_end) in enumerate(spans):
        kept += lines[position:span_start]
        if number == 0:
            kept.append(_stages_block(stages, indent, newline))
        position = span_end
    return kept + lines[position:]


def _stages_region(path: Path, lines: list[str]) -> tuple[int, int, int] | None:
    """(first line after ``stages:``, line after its last entry line, indentation of its keys),
    or None when the file has no top-level ``stages:``. Only block style is accepted."""
    keys = [i for i, line in enumerate(lines) if line.startswith("stages") and re.match(r"stages[ \t]*:", line)]
    if not keys:
        return None
    (key,) = keys  # the file parsed, so the key is unique
    if not _STAGES_KEY.fullmatch(lines[key].rstrip("\r\n")):
        raise AdoptError(
            f"{path}: expected `stages:` in block style (one stage per indented entry), found "
            f"{lines[key].strip()!r}; rewrite it in block style or adopt with --dir"
        )
    end = key + 1
    indent = None
    for index in range(key + 1, len(lines)):
        content = lines[index].strip()
        if not content or content.startswith("#"):
            continue
        width = len(lines[index]) - len(lines[index].lstrip(" "))
        if width == 0:
            break
        indent = width if indent is None else indent
        end = index + 1
    return key + 1, end, indent or 2


def _entry_spans(lines: list[str], start: int, end: int, indent: int, names: set[str]) -> list[tuple[int, int]]:
    """Line ranges of the entries of ``stages:`` named in ``names``: the key line through its
    last more-indented line (comments and blank lines after it belong to what follows)."""
    keys = []
    for index in range(start, end):
        match = _MAPPING_KEY.match(lines[index])
        if match and len(match.group(1)) == indent:
            keys.append((index, match.group(3)))
    spans = []
    for number, (index, name) in enumerate(keys):
        if name not in names:
            continue
        limit = keys[number + 1][0] if number + 1 < len(keys) else end
        last = index
        for body in range(index + 1, limit):
            content = lines[body].strip()
            width = len(lines[body]) - len(lines[body].lstrip(" "))
            if content and (width > indent or not content.startswith("#")):
                last = body
        spans.append((index, last + 1))
    return spans


def _stages_block(stages: dict[str, Any], indent: int, newline: str) -> str:
    dumped = yaml.safe_dump(stages, sort_keys=False, width=120).splitlines()
    pad = " " * indent
    return newline.join([pad + BLOCK_BEGIN, *(pad + line if line else line for line in dumped), pad + BLOCK_END]) + (
        newline
    )


def _with_root_vars(path: Path, lines: list[str], root_params: str, newline: str) -> list[str]:
    document = _parse_yaml(path, "".join(lines))
    found = document.get("vars")
    if found is None:
        stages_line = next(i for i, line in enumerate(lines) if _STAGES_KEY.fullmatch(line.rstrip("\r\n")))
        return [*lines[:stages_line], f"vars:{newline}", f"  - {root_params}{newline}", *lines[stages_line:]]
    if isinstance(found, list) and root_params in found:
        return lines
    raise AdoptError(
        f"{path}: expected its vars: to list {root_params!r} (the stages read the root params.yaml), found "
        f"{found!r}; add `- {root_params}` to it, or adopt with another --dir"
    )


def _check_merge(path: Path, content: str, existing: dict[str, Any], stages: dict[str, Any]) -> None:
    """The merged text parses, the team's stages read exactly as before and ours as given."""
    merged = _parse_yaml(path, content).get("stages") or {}
    theirs_before = {name: stage for name, stage in existing.items() if name not in stages}
    theirs_after = {name: stage for name, stage in merged.items() if name not in stages}
    ours = yaml.safe_load(yaml.safe_dump(stages))
    if theirs_after != theirs_before or {name: merged.get(name) for name in stages} != ours:
        raise AdoptError(f"{path}: could not merge the pipeline's stages into it as text; adopt with --dir instead")


def _planned_ignore(repo: Path, path: Path) -> Planned:
    current = _read_text(path) if path.exists() else ""
    missing = [line for line in IGNORED if line not in current.splitlines()]
    if not missing:
        return Planned(path, current.encode(), "same", repo)
    newline = "\r\n" if "\r\n" in current else "\n"
    separator = "" if not current or current.endswith("\n") else newline
    content = current + separator + newline.join(missing) + newline
    return Planned(path, content.encode(), "update" if current else "new", repo)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _code_yaml(record: dict[str, Any]) -> bytes:
    header = (
        "# Written by `mnist-pipeline init`: the installed version and a digest of each stage's code.\n"
        "# The check stage tracks this file and each stage compares it with the code it runs, so\n"
        "# `mnist-pipeline init --upgrade` re-runs exactly the stages whose code changed. Commit this\n"
        "# file; do not edit it.\n"
    )
    return (header + yaml.safe_dump(record, sort_keys=False)).encode()


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdoptError(f"{path}: expected UTF-8 text, found {exc.reason} at byte {exc.start}") from exc


def _parse_yaml(path: Path, text: str) -> dict[str, Any]:
    """``text`` read as DVC reads a dvc.yaml (ruamel.yaml's safe loader: duplicate keys refused)."""
    try:
        loaded = YAML(typ="safe").load(text)
    except (YAMLError, ValueError) as exc:
        raise AdoptError(f"{path}: not valid YAML: {one_line(exc)}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise AdoptError(f"{path}: expected a mapping, found {type(loaded).__name__}")
    return loaded


def _read_yaml(path: Path) -> dict[str, Any]:
    loaded = _parse_yaml(path, _read_text(path))
    if not loaded:
        raise AdoptError(f"{path}: expected a mapping, found an empty file")
    return loaded


def apply(planned: list[Planned]) -> None:
    """Write each new or updated file atomically, inside its repository and through no link
    (each target is checked again: ``plan`` may have run a while before)."""
    for item in planned:
        if item.action in WRITTEN:
            write_bytes_under(item.path, item.content, item.root)


def _hydra_enabled(config: Path) -> bool:
    text = config.read_text(encoding="utf-8") if config.exists() else ""
    return re.search(r"^\[hydra\]\s*\n(?:[^\[]*\n)*?\s*enabled\s*=\s*true", text, flags=re.MULTILINE) is not None


def _refuse_shared_dvc_config(config: Path) -> None:
    """`dvc config` rewrites .dvc/config in place: when the file has another name too (a hard
    link), that other file would change with it, so init refuses before writing anything."""
    if _hydra_enabled(config) or not config.exists() or (names := config.stat().st_nlink) == 1:
        return
    raise AdoptError(
        f"{config}: expected a file of this repository's own, found a hard link ({names} names); "
        "refusing to let `dvc config hydra.enabled true` change it in place (copy it, or set that yourself)"
    )


def enable_hydra(repo: Path) -> bool:
    """Let `dvc exp run -S` compose conf/ into params.yaml (DVC's hydra.enabled); True if changed."""
    config = repo / ".dvc" / "config"
    if _hydra_enabled(config):
        return False
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "config", "hydra.enabled", "true"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AdoptError(f"{config}: could not set hydra.enabled: {' '.join(result.stderr.split())}")
    return True
