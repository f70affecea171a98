"""Adopting the pipeline in a team's own git + DVC repository, and upgrading it safely.

``mnist-pipeline init`` writes what the pipeline needs into an existing repository: its stages
(in the root ``dvc.yaml`` next to the team's own, or in ``<dir>/dvc.yaml``), ``conf/``,
``params.yaml``, ignore entries and ``mnist-pipeline.yaml``. It never overwrites a file of the
team's: a file that exists with other content is refused and named (stages are merged into an
existing dvc.yaml only when none of their names is taken).

In this repository every stage lists the modules it imports as DVC deps. A team repository
has no module files to list, so ``mnist-pipeline.yaml`` records a digest of each stage's code
(its import closure in the installed package) and each stage tracks its own entry as a
parameter: after an upgrade, ``mnist-pipeline init --upgrade`` rewrites the digests and
exactly the stages whose code changed re-run. Until then the ``check`` stage (always run, a
few hundred milliseconds) stops ``dvc repro`` with one line naming that command.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.resources
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from mnist_pipeline.errors import PipelineError

PACKAGE = __name__.split(".")[0]
DISTRIBUTION = "mnist-pipeline"
CODE_FILE = "mnist-pipeline.yaml"
RESOURCES = "resources"
CONF = "conf"
IGNORED = (
    "# mnist-pipeline: scratch, shared downloads and trees rebuilt by `dvc repro`",
    "/data/*/.partial/",
    "/data/.downloads/",
    "/data/**/.*.tmp/",
    "/data/**/.*.old/",
    "/data/*/export/images/",
    "/dvc_plots/",
)
_MODULE_IN_CMD = re.compile(rf"python -m ({PACKAGE}\.[\w${{}}.]+)")


class AdoptError(PipelineError):
    """The repository is not ready, or a file of the team's would be overwritten."""


def package_root() -> Path:
    return Path(str(importlib.resources.files(PACKAGE)))


def version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def imported_modules(path: Path) -> set[str]:
    """Names of the package modules that ``path`` imports (``mnist_pipeline.x``), at any nesting."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            if node.module == PACKAGE:
                found.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
    return found


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


def stage_modules(stages: dict[str, Any]) -> dict[str, list[str]]:
    """Stage template name -> the modules its cmd runs (one per format for the export matrix)."""
    from mnist_pipeline.config import KNOWN_FORMATS  # noqa: PLC0415 - config is heavy; only init needs it

    result = {}
    for name, stage in stages.items():
        template = stage.get("do", stage)
        match = _MODULE_IN_CMD.search(str(template["cmd"]))
        if not match:
            raise AdoptError(f"dvc.yaml: stage {name} runs no `python -m {PACKAGE}.<stage>`")
        module = match.group(1)
        formats = KNOWN_FORMATS if "${item.format}" in module else ("",)
        result[name] = [module.replace("${item.format}", fmt) for fmt in formats]
    return result


def code_record(stages: dict[str, Any]) -> dict[str, Any]:
    """What mnist-pipeline.yaml holds: the version and one digest per stage module."""
    digests = {
        module.removeprefix(f"{PACKAGE}."): code_digest(module)
        for modules in stage_modules(stages).values()
        for module in modules
    }
    return {"version": version(), "code": dict(sorted(digests.items()))}


def team_stages(stages: dict[str, Any], wdir: str | None) -> dict[str, Any]:
    """This repository's stages rewritten for a team repository: module deps replaced by the
    stage's entry in mnist-pipeline.yaml, and the check stage always run."""
    rewritten = {}
    for name, original in stages.items():
        stage = dict(original)
        template = dict(stage.get("do", stage))
        match = _MODULE_IN_CMD.search(str(template["cmd"]))
        assert match is not None  # stage_modules checked every cmd
        key = f"code.{match.group(1).removeprefix(f'{PACKAGE}.')}"
        template["deps"] = [dep for dep in template.get("deps", []) if not str(dep).startswith(f"{PACKAGE}/")]
        template["params"] = [*template.get("params", []), {CODE_FILE: [key]}]
        if not template["deps"]:
            del template["deps"]
        if wdir:
            template["wdir"] = wdir
        if name == "check":
            template["always_changed"] = True
        rewritten[name] = {**stage, "do": template} if "do" in stage else template
    return rewritten


@dataclass(frozen=True)
class Planned:
    path: Path
    content: bytes
    #: "new", "same" (already there, identical), "update" (ours, from an older version)
    action: str


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
    base = resource(CONF)
    for path in sorted(base.rglob("*.yaml")):
        yield PurePosixPath(path.relative_to(base).as_posix()), path.read_bytes()


def plan(repo: Path, stages_dir: str, upgrade: bool) -> list[Planned]:
    """Every file init writes, with what it would do; AdoptError for a file of the team's."""
    if not (repo / ".git").exists() or not (repo / ".dvc").is_dir():
        raise AdoptError(f"{repo}: expected a git + DVC repository (git init && dvc init), found none")
    stages_path = repo / stages_dir / "dvc.yaml"
    relative_root = os.path.relpath(repo, repo / stages_dir) if stages_dir not in ("", ".") else None
    stages = team_stages(source_stages(), relative_root)
    previous = _read_yaml(repo / CODE_FILE) if (repo / CODE_FILE).exists() else None
    if upgrade and previous is None:
        raise AdoptError(f"{repo / CODE_FILE}: not found; adopt first with `mnist-pipeline init`")
    if not upgrade and previous is not None:
        raise AdoptError(
            f"{repo / CODE_FILE}: already adopted; to refresh after an upgrade run `mnist-pipeline init --upgrade`"
        )
    if not upgrade and (repo / "params.yaml").exists():
        raise AdoptError(
            f"{repo / 'params.yaml'}: exists; the pipeline's stages read a params.yaml that `dvc exp run` "
            "composes from conf/, which would replace yours; refusing (adopt in a repository without one)"
        )
    written_before: dict[str, str] = (previous or {}).get("files", {})
    planned = [
        _planned(repo / CONF / relative, content, written_before.get(f"{CONF}/{relative}"))
        for relative, content in conf_files()
    ]
    planned.append(_planned_stages(stages_path, stages, upgrade, relative_root))
    record = code_record(source_stages())
    record["files"] = {f"{CONF}/{relative}": hashlib.sha256(content).hexdigest() for relative, content in conf_files()}
    planned.append(Planned(repo / CODE_FILE, _code_yaml(record), "update" if upgrade else "new"))
    planned.append(_planned_ignore(repo / ".gitignore"))
    return planned


def _planned(path: Path, content: bytes, written_sha256: str | None) -> Planned:
    """A conf file: new, identical, or ours and unedited since init wrote it (else refused)."""
    if not path.exists():
        return Planned(path, content, "new")
    current = path.read_bytes()
    if current == content:
        return Planned(path, content, "same")
    if written_sha256 is not None and hashlib.sha256(current).hexdigest() == written_sha256:
        return Planned(path, content, "update")
    raise AdoptError(
        f"{path}: exists with content mnist-pipeline did not write; refusing to overwrite it "
        "(move it away, merge it by hand, or adopt in another repository)"
    )


def _planned_stages(path: Path, stages: dict[str, Any], upgrade: bool, relative_root: str | None) -> Planned:
    """dvc.yaml with the pipeline's stages merged in, the team's own entries kept. When
    ``stages:`` is the file's last section the new stages are appended as text, so every byte of
    the team's stays as it was; otherwise a round trip through ruamel.yaml (which DVC uses)
    keeps their entries and comments. In a sub-folder, DVC's templating reads the params.yaml
    beside the dvc.yaml: ``vars`` points it at the root one the stages use."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    existing = (_read_yaml(path).get("stages") or {}) if text.strip() else {}
    taken = sorted(set(existing) & set(stages))
    if taken and not upgrade:
        raise AdoptError(
            f"{path}: already has stages named {taken}; refusing to merge (use --dir for another dvc.yaml)"
        )
    if text.strip() and not taken and not relative_root and _last_section(text) == "stages":
        appended = yaml.safe_dump({"stages": stages}, sort_keys=False, width=120).split("\n", 1)[1]
        content = text + ("" if text.endswith("\n") else "\n") + appended
    else:
        content = _round_trip_merge(path, text, stages, relative_root)
    merged = yaml.safe_load(content).get("stages") or {}
    if list(merged) != [*(name for name in existing if name not in stages), *stages] and not taken:
        raise AdoptError(f"{path}: could not merge the pipeline's stages into it; adopt with --dir instead")
    action = "update" if path.exists() else "new"
    return Planned(path, content.encode(), "same" if text == content else action)


def _last_section(text: str) -> str | None:
    """The last top-level key of a YAML mapping written in block style."""
    keys = re.findall(r"^([A-Za-z_][\w-]*)\s*:", text, flags=re.MULTILINE)
    return keys[-1] if keys else None


def _round_trip_merge(path: Path, text: str, stages: dict[str, Any], relative_root: str | None) -> str:
    round_trip = YAML()
    round_trip.width = 120
    try:
        document = round_trip.load(text) if text.strip() else None
    except (YAMLError, ValueError) as exc:
        raise AdoptError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if document is None:
        document = CommentedMap()
    if not isinstance(document, dict):
        raise AdoptError(f"{path}: expected a mapping, found {type(document).__name__}")
    if relative_root:
        root_params = f"{relative_root}/params.yaml"
        document["vars"] = [*(v for v in document.get("vars", []) if v != root_params), root_params]
    existing = document.setdefault("stages", CommentedMap())
    for name, stage in stages.items():
        existing[name] = stage
    buffer = io.StringIO()
    round_trip.dump(document, buffer)
    return buffer.getvalue()


def _planned_ignore(path: Path) -> Planned:
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = [line for line in IGNORED if line not in current.splitlines()]
    if not missing:
        return Planned(path, current.encode(), "same")
    separator = "" if not current or current.endswith("\n") else "\n"
    return Planned(path, (current + separator + "\n".join(missing) + "\n").encode(), "update" if current else "new")


def _code_yaml(record: dict[str, Any]) -> bytes:
    header = (
        "# Written by `mnist-pipeline init`: the installed version and a digest of each stage's code.\n"
        "# Each stage tracks its entry, so `mnist-pipeline init --upgrade` re-runs exactly the stages\n"
        "# whose code changed. Commit this file; do not edit it.\n"
    )
    return (header + yaml.safe_dump(record, sort_keys=False)).encode()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        raise AdoptError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise AdoptError(f"{path}: expected a mapping, found {type(loaded).__name__}")
    return loaded


def apply(planned: list[Planned]) -> None:
    for item in planned:
        if item.action == "same":
            continue
        item.path.parent.mkdir(parents=True, exist_ok=True)
        temp = item.path.with_name(f".{item.path.name}.init-tmp")
        temp.write_bytes(item.content)
        temp.replace(item.path)


def outdated_code(code_file: Path) -> str | None:
    """Why the recorded stage code differs from the installed package, or None if it agrees
    (or if there is no record: this repository lists the module files as deps instead)."""
    if not code_file.exists():
        return None
    recorded = _read_yaml(code_file)
    current = code_record(source_stages())
    if recorded.get("code") == current["code"]:
        return None
    return (
        f"{code_file}: records the stage code of {DISTRIBUTION} {recorded.get('version')}, but the installed "
        f"{current['version']} differs; run `mnist-pipeline init --upgrade`, then commit"
    )


def enable_hydra(repo: Path) -> bool:
    """Let `dvc exp run -S` compose conf/ into params.yaml (DVC's hydra.enabled); True if changed."""
    config = repo / ".dvc" / "config"
    text = config.read_text(encoding="utf-8") if config.exists() else ""
    if re.search(r"^\[hydra\]\s*\n(?:[^\[]*\n)*?\s*enabled\s*=\s*true", text, flags=re.MULTILINE):
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
