"""dvc.yaml's deps are complete: every project module a stage imports, directly or through
another module, is listed, so editing any of them re-runs exactly the stages that use it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import KNOWN_FORMATS
from tests.repos import PROJECT_ROOT

PACKAGE = "pipeline"


def imported_modules(path: Path) -> set[str]:
    """Names of the project modules ``path`` imports (``pipeline.x``), at any nesting."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            if node.module == PACKAGE:
                found.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
    return found


def module_path(module: str) -> Path:
    return PROJECT_ROOT / (module.replace(".", "/") + ".py")


def import_closure(module: str) -> set[str]:
    """``module`` and every project module reachable through its imports."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        current = pending.pop()
        if current in seen or current == PACKAGE:
            continue
        seen.add(current)
        pending.extend(imported_modules(module_path(current)))
    return seen


def stage_templates() -> dict[str, dict[str, object]]:
    stages: dict[str, dict[str, object]] = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}  # type: ignore[misc]


def instances(name: str, stage: dict[str, object]) -> list[tuple[str, str, list[str]]]:
    """(stage, module run by its cmd, project module deps), one per export format for the matrix."""
    command = str(stage["cmd"])
    deps = [str(dep) for dep in stage["deps"]]  # type: ignore[attr-defined]
    module = re.search(r"python -m (\S+)", command)
    assert module, f"{name}: no `python -m` in its cmd"
    formats = KNOWN_FORMATS if "${item.format}" in module.group(1) else ("",)
    result = []
    for fmt in formats:
        listed = [dep.replace("${item.format}", fmt) for dep in deps if dep.startswith(f"{PACKAGE}/")]
        result.append((f"{name}{'@' + fmt if fmt else ''}", module.group(1).replace("${item.format}", fmt), listed))
    return result


CASES = [case for name, stage in stage_templates().items() for case in instances(name, stage)]


@pytest.mark.parametrize(("stage", "module", "listed"), CASES, ids=[case[0] for case in CASES])
def test_stage_deps_include_its_import_closure(stage: str, module: str, listed: list[str]) -> None:
    needed = {f"{m.replace('.', '/')}.py" for m in import_closure(module)}
    missing = sorted(needed - set(listed))
    assert not missing, f"dvc.yaml stage {stage}: add {missing} to deps (imported by {module})"


@pytest.mark.parametrize("template", sorted(stage_templates()))
def test_stage_deps_list_nothing_unused(template: str) -> None:
    """A listed module no instance of the stage imports would re-run it for nothing. (The
    export matrix shares one deps list: a module used by one format is listed for all.)"""
    cases = [case for case in CASES if case[0].split("@")[0] == template]
    needed = {f"{m.replace('.', '/')}.py" for _, module, _ in cases for m in import_closure(module)}
    unused = sorted(set(cases[0][2]) - needed)
    assert not unused, f"dvc.yaml stage {template}: {unused} are listed but never imported"


def test_stages_never_import_each_other() -> None:
    """Shared code lives in noun modules; a stage module imports no other stage module."""
    stage_modules = {module for _, module, _ in CASES}
    for module in stage_modules:
        others = imported_modules(module_path(module)) & (stage_modules - {module})
        assert not others, (
            f"{module} imports the stage module(s) {sorted(others)}: move what they share to a noun module"
        )
