"""dvc.yaml's deps are complete: every project module a stage imports, directly or through
another module, is listed, so editing any of them re-runs exactly the stages that use it. (The
closure is the one `mnist-pipeline init` digests for team repositories.)"""

from __future__ import annotations

import re

import pytest
import yaml

from mnist_pipeline.adopt import PACKAGE, import_closure, imported_modules, module_file
from mnist_pipeline.config import KNOWN_FORMATS
from tests.support.repos import PROJECT_ROOT


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
    needed = {f"{m.replace('.', '/')}.py" for m in import_closure(module, PROJECT_ROOT / PACKAGE)}
    missing = sorted(needed - set(listed))
    assert not missing, f"dvc.yaml stage {stage}: add {missing} to deps (imported by {module})"


@pytest.mark.parametrize("template", sorted(stage_templates()))
def test_stage_deps_list_nothing_unused(template: str) -> None:
    """A listed module no instance of the stage imports would re-run it for nothing. (The
    export matrix shares one deps list: a module used by one format is listed for all.)"""
    cases = [case for case in CASES if case[0].split("@")[0] == template]
    needed = {
        f"{m.replace('.', '/')}.py" for _, module, _ in cases for m in import_closure(module, PROJECT_ROOT / PACKAGE)
    }
    unused = sorted(set(cases[0][2]) - needed)
    assert not unused, f"dvc.yaml stage {template}: {unused} are listed but never imported"


def test_stages_never_import_each_other() -> None:
    """Shared code lives in noun modules; a stage module imports no other stage module."""
    stage_modules = {module for _, module, _ in CASES}
    for module in stage_modules:
        others = imported_modules(module_file(module, PROJECT_ROOT / PACKAGE)) & (stage_modules - {module})
        assert not others, (
            f"{module} imports the stage module(s) {sorted(others)}: move what they share to a noun module"
        )
