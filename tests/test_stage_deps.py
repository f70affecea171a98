"""dvc.yaml's deps and params are exact: each stage tracks, whole, the file check writes for it
from its own dataset's params view: the code digest of its module's import closure (so editing
a module re-runs exactly the stages that import it) and the options it reads (so every export
option re-runs exactly the stages that read it)."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mnist_pipeline import check, views
from mnist_pipeline.adopt import IGNORED
from mnist_pipeline.errors import ConfigError
from mnist_pipeline.names import CACHED_OUTPUTS, KNOWN_FORMATS, PARAMS_DIR, STAGE_OUTPUTS
from mnist_pipeline.params import compose_params
from mnist_pipeline.provenance import PACKAGE, code_digest, import_closure, imported_modules, module_file
from mnist_pipeline.stage import foreign_output
from mnist_pipeline.views import PARAMS_VIEWS
from tests.support.repos import PROJECT_ROOT

DATASETS = ("mnist", "fashion_mnist")


def stage_templates() -> dict[str, dict[str, object]]:
    stages: dict[str, dict[str, object]] = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}  # type: ignore[misc]


def stage_case(name: str, stage: dict[str, object]) -> tuple[str, str, list[str]]:
    """(stage, module run by its cmd, project module deps)."""
    module = re.search(r"python -m (\S+)", str(stage["cmd"]))
    assert module, f"{name}: no `python -m` in its cmd"
    listed = [str(dep) for dep in stage.get("deps", []) if str(dep).startswith(PACKAGE)]  # type: ignore[attr-defined]
    return name, module.group(1), listed


CASES = [stage_case(name, stage) for name, stage in stage_templates().items()]


def test_check_depends_on_params_and_the_whole_package_and_digests_every_dataset_stage() -> None:
    """check re-runs on any change of params.yaml (a file dep: dvc.lock keeps its hash, the views
    their values) or of any module, and writes the digest of every stage module; no other stage
    lists module files (its code digest stands for them)."""
    assert stage_templates()["check"]["deps"] == ["params.yaml", "conf", PACKAGE]
    deps = {stage: listed for stage, _, listed in CASES}
    assert deps.pop("check") == [PACKAGE]
    assert all(not listed for listed in deps.values()), deps
    assert {module for stage, module, _ in CASES if stage != "check"} == {
        f"{PACKAGE}.{module}" for module in views.STAGE_PARAMS
    }


def test_the_outputs_stages_guard_are_dvc_yamls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """names.STAGE_OUTPUTS, which a stage run by hand is held to, names exactly dvc.yaml's outs."""
    monkeypatch.chdir(tmp_path)
    declared: dict[str, set[str]] = {}
    for name, stage in stage_templates().items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):  # type: ignore[attr-defined]
                path = next(iter(entry)) if isinstance(entry, dict) else str(entry)
                path = re.sub(r"\$\{(key|item|item\.dataset)\}", "mnist", path).replace("${item.tree}", "png")
                assert foreign_output(Path(path), f"{name}@mnist" if name != "check" else name) is None, path
                declared.setdefault(name, set()).add(path.removeprefix("data/mnist/"))
                assert foreign_output(Path(path), f"{name}@fashion_mnist") is not None, path
    # The report writes files into export/ and the unpack stage a tree DVC tracks by its marker:
    # their folders are what the guard holds (above: each declared path is theirs).
    whole_folders = ("check", "report", "unpack")
    assert {name: outs for name, outs in declared.items() if name not in whole_folders} == {
        name: set(outs) for name, outs in STAGE_OUTPUTS.items() if name not in whole_folders
    }


def test_every_cached_output_is_git_ignored_from_the_root() -> None:
    """names.CACHED_OUTPUTS (what init and this repository's .gitignore ignore) is exactly what
    dvc.yaml caches below data/<dataset>/: a new output forgotten there would reach `git add -A`
    after `dvc exp apply` of an experiment that created its dataset's folder."""
    cached = set()
    for stage in stage_templates().values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):  # type: ignore[attr-defined]
                path, options = next(iter(entry.items())) if isinstance(entry, dict) else (str(entry), None)
                if (options or {}).get("cache", True):
                    cached.add(re.sub(r"^data/\$\{(key|item|item\.dataset)\}/", "", path))
    assert cached == {output.rstrip("/") for output in CACHED_OUTPUTS} | {f"data/{PARAMS_DIR}"}
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert [line for line in IGNORED if not line.startswith("#") and line not in ignored] == []


def test_stages_never_import_each_other() -> None:
    """Shared code lives in noun modules; a stage module imports no other stage module."""
    stage_modules = {module for _, module, _ in CASES}
    for module in stage_modules:
        others = imported_modules(module_file(module, PROJECT_ROOT / PACKAGE)) & (stage_modules - {module})
        assert not others, (
            f"{module} imports the stage module(s) {sorted(others)}: move what they share to a noun module"
        )


#: What every stage runs: the shell, the params schema, paths, errors, atomic writes, provenance.
#: No format's options and no stage's own work live here (a change here re-runs every stage).
CORE = {"config", "errors", "fsio", "names", "provenance", "stage", "views"}
#: The code each stage runs beyond the core and its own module: the modules whose edit re-runs
#: it. Each export holds its own format's options; the PNG export holds the zip writer, not the
#: reader unpack and download run; the report the cards' shared text, not the Parquet card.
STAGE_CODE = {
    "download": {"archive", "machine", "transfer", "ziparchive", "zipformat"},
    "verify": {"archive", "records"},
    "extract": {"archive"},
    "decode": {"decoded", "idx", "records", "rows"},
    "export_npz": {"decoded", "exports", "npz_options", "npzstream", "rows", "validation", "validation_options"},
    "export_csv": {"csv_options", "decoded", "exports", "rows", "validation", "validation_options"},
    "export_png": {"decoded", "exports", "png", "png_options", "pngpool", "rows", "treemark", "zipformat", "zipwriter"},
    "export_parquet": {"card", "cardtext", "decoded", "exports", "parquet_options", "png", "pngpool", "rows"},
    "unpack": {"tree", "treemark", "ziparchive", "zipformat"},
    "report": {"cardtext", "decoded", "records", "rows"},
}


@pytest.mark.parametrize("stage", sorted(STAGE_CODE))
def test_each_stage_runs_exactly_its_own_code(stage: str) -> None:
    """The import closure each stage's code digest covers, module by module: a new import that
    makes a stage depend on another's code (a format's options, the zip reader) fails here."""
    closure = {name.removeprefix(f"{PACKAGE}.") for name in import_closure(f"{PACKAGE}.{stage}")}
    assert closure - {stage} == CORE | STAGE_CODE[stage]


def test_the_code_table_lists_every_stage() -> None:
    assert set(STAGE_CODE) == set(views.STAGE_PARAMS)


def test_the_package_has_no_import_cycle() -> None:
    """Modules form layers: following imports from any module never leads back to it."""
    root = PROJECT_ROOT / PACKAGE
    graph = {
        f"{PACKAGE}.{path.stem}": imported_modules(path) - {PACKAGE}
        for path in root.glob("*.py")
        if path.stem != "__init__"
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path[path.index(module) :], module))}"
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


# params: which stages an option re-runs ---------------------------------------------------------


#: Each stage's tracked params: the file it reads them from and its keys (none: the whole file).
Tracked = dict[str, tuple[str, list[str]]]


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Tracked]:
    """The params of two datasets and every format, and each stage's tracked params, as DVC's
    own loader resolves dvc.yaml (foreach, interpolation) against them."""
    from dvc.dependency.param import ParamsDependency  # noqa: PLC0415 - DVC is slow to import
    from dvc.repo import Repo  # noqa: PLC0415

    root = tmp_path_factory.mktemp("resolved")
    compose_params(root / "params.yaml", [f"dataset=[{','.join(DATASETS)}]", "formats=[npz,csv,png,parquet]"],
                   PROJECT_ROOT / "conf")  # fmt: skip
    (root / "dvc.yaml").write_bytes((PROJECT_ROOT / "dvc.yaml").read_bytes())
    Repo.init(str(root), no_scm=True)
    with Repo(str(root)) as repo:
        tracked = {
            stage.name: (Path(dep.def_path).as_posix(), list(dep.params))
            for stage in repo.index.stages
            for dep in stage.deps
            if isinstance(dep, ParamsDependency)
        }
    params: dict[str, Any] = yaml.safe_load((root / "params.yaml").read_text())
    return params, tracked


def test_each_stage_tracks_its_own_file_whole(resolved: tuple[dict[str, Any], Tracked]) -> None:
    """Every stage but check tracks, whole, the file check writes for its module and its own
    dataset, which holds only that dataset's keys and the code digest of that module."""
    params, tracked = resolved
    assert "check" not in tracked
    modules = {stage: module.removeprefix(f"{PACKAGE}.") for stage, module, _ in CASES}
    for stage, (path, keys) in tracked.items():
        template, _, dataset = stage.partition("@")
        dataset = dataset.removesuffix("-png")  # unpack@<d>-png
        module = modules[template]
        assert (path, keys) == (views.tracked_file(dataset, module).as_posix(), []), stage
        written = views.tracked_params(views.dataset_view(params, dataset, SAME_CODE), dataset, module)
        assert written[f"code.{module}"] == "unchanged", stage
        assert [key for key in written if key.startswith("code.")] == [f"code.{module}"], stage
        assert all(not key.startswith("datasets.") or key.startswith(f"datasets.{dataset}.") for key in written)


def test_a_missing_tracked_key_is_named() -> None:
    """DVC would refuse a stage whose tracked key is missing; check names it first."""
    view = {"code": {"verify": ""}, "sha256": {"splits": ""}, "datasets": {"x": {"compression": ""}}}
    with pytest.raises(ConfigError, match=r"^verify.archive: expected in params.yaml \(the verify stage reads it\)"):
        views.tracked_params(view, "x", "verify")


#: Code digests for the comparisons that change params only.
SAME_CODE = dict.fromkeys(views.STAGE_PARAMS, "unchanged")


def stages_changed(
    tracked: Tracked,
    before: dict[str, Any],
    after: dict[str, Any],
    code_before: dict[str, str] = SAME_CODE,
    code_after: dict[str, str] = SAME_CODE,
) -> set[str]:
    """The stages whose tracked params differ between params.yaml (and code) ``before`` and
    ``after``, as DVC compares them once check has written each stage's file."""

    def written(params: dict[str, Any], path: str) -> dict[str, Any]:
        code = code_before if params is before else code_after
        dataset, module = Path(path).parent.name, Path(path).stem
        return views.tracked_params(views.dataset_view(params, dataset, code), dataset, module)

    return {stage for stage, (path, _) in tracked.items() if written(before, path) != written(after, path)}


@pytest.mark.parametrize(
    ("module", "kinds"),
    [
        ("png.py", ("export_png", "export_parquet")),  # the encoder: both formats holding PNGs
        ("tree.py", ("unpack",)),  # how a tree is unpacked: not the PNG export, which reads its marker only
        ("treemark.py", ("export_png", "unpack")),
    ],
)
def test_a_module_edit_reruns_exactly_the_stages_importing_it(
    resolved: tuple[dict[str, Any], Tracked], tmp_path: Path, module: str, kinds: tuple[str, ...]
) -> None:
    params, tracked = resolved
    package = tmp_path / PACKAGE
    shutil.copytree(PROJECT_ROOT / PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))

    def digests() -> dict[str, str]:
        return {module: code_digest(f"{PACKAGE}.{module}", package) for module in views.STAGE_PARAMS}

    before = digests()
    (package / module).write_text((package / module).read_text() + "\n# edited\n")
    changed = stages_changed(tracked, params, copy.deepcopy(params), before, digests())
    assert changed == {stage for stage in tracked if stage.partition("@")[0] in kinds}
    assert {f"export_png@{name}" for name in DATASETS} <= set(tracked)


def test_bulky_facts_rerun_exactly_the_stages_reading_them(resolved: tuple[dict[str, Any], Tracked]) -> None:
    """Tracked by their sha256, the class names and the split files re-run the same stages their
    values would: a class name everything from decode on; a file's digest everything up to
    decode, and the Parquet card and the report that describe the splits."""
    params, tracked = resolved
    renamed = copy.deepcopy(params)
    renamed["datasets"]["mnist"]["classes"][0] = "zero"
    assert stages_changed(tracked, params, renamed) == {
        "decode@mnist",
        *(f"export_{fmt}@mnist" for fmt in KNOWN_FORMATS),
        "report@mnist",
    }
    republished = copy.deepcopy(params)
    republished["datasets"]["mnist"]["splits"]["test"]["labels"]["sha256"] = "0" * 64
    assert stages_changed(tracked, params, republished) == {
        f"{stage}@mnist" for stage in ("download", "verify", "extract", "decode", "export_parquet", "report")
    }


def changed_value(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return f"{value}-changed"


def option_cases() -> list[tuple[str, str]]:
    export = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["export"]
    return [(fmt, option) for fmt in KNOWN_FORMATS for option in export[fmt]]


@pytest.mark.parametrize(("fmt", "option"), option_cases(), ids=[f"{f}.{o}" for f, o in option_cases()])
def test_a_shared_option_reruns_only_its_format(
    resolved: tuple[dict[str, Any], Tracked], fmt: str, option: str
) -> None:
    params, tracked = resolved
    after = copy.deepcopy(params)
    after["export"][fmt][option] = changed_value(params["export"][fmt][option])
    assert stages_changed(tracked, params, after) == {f"export_{fmt}@{name}" for name in DATASETS}


@pytest.mark.parametrize(("fmt", "option"), option_cases(), ids=[f"{f}.{o}" for f, o in option_cases()])
def test_a_dataset_option_reruns_only_that_datasets_format(
    resolved: tuple[dict[str, Any], Tracked], fmt: str, option: str
) -> None:
    """``++datasets.fashion_mnist.export.<format>.<option>=...``: one stage, not the dataset's
    other exports, not its report, nothing of mnist."""
    params, tracked = resolved
    after = copy.deepcopy(params)
    after["datasets"]["fashion_mnist"]["export"][fmt][option] = changed_value(params["export"][fmt][option])
    assert stages_changed(tracked, params, after) == {f"export_{fmt}@fashion_mnist"}


def test_selecting_the_png_tree_reruns_the_reports_that_name_it(resolved: tuple[dict[str, Any], Tracked]) -> None:
    """The card names the tree (``images/``) when the trees group selects it; the exports do not
    change (the unpack stage is new, so it has nothing to compare)."""
    params, tracked = resolved
    after = copy.deepcopy(params)
    after["export"]["trees"] = {"png": {}}
    assert stages_changed(tracked, params, after) == {f"report@{name}" for name in DATASETS}


def test_workers_rerun_no_stage_after_check(resolved: tuple[dict[str, Any], Tracked]) -> None:
    params, tracked = resolved
    after = copy.deepcopy(params)
    after["export"]["workers"] += 1
    assert stages_changed(tracked, params, after) == set()


def test_dvc_itself_sees_the_same_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above, once through DVC's own code and the check stage's views: each
    stage's params dependency is given the values of a recorded run (as dvc.lock holds them),
    then, after one dataset's CSV option changed and check wrote the views again, asked for its
    status."""
    from dvc.dependency.param import ParamsDependency  # noqa: PLC0415 - DVC is slow to import
    from dvc.repo import Repo  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    compose_params(tmp_path / "params.yaml", [f"dataset=[{','.join(DATASETS)}]"], PROJECT_ROOT / "conf")
    (tmp_path / "dvc.yaml").write_bytes((PROJECT_ROOT / "dvc.yaml").read_bytes())
    Repo.init(str(tmp_path), no_scm=True)
    run_check = ["--params", "params.yaml", "--conf", str(PROJECT_ROOT / "conf"), str(PARAMS_VIEWS)]
    assert check.main(run_check) == 0
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    with Repo(str(tmp_path)) as repo:
        dependencies = [
            (stage.name, dep) for stage in repo.index.stages for dep in stage.deps if isinstance(dep, ParamsDependency)
        ]
        (params_file,) = [dep for dep in repo.stage.collect("check")[0].deps if dep.def_path == "params.yaml"]
        params_file.save()
        for _, dep in dependencies:
            dep.fill_values(dep.read_params())  # what a recorded run holds
        params["datasets"]["fashion_mnist"]["export"]["csv"]["header"] = False
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert params_file.workspace_status() == {"params.yaml": "modified"}  # check runs first
        assert {stage for stage, dep in dependencies if dep.workspace_status()} == set()
        assert check.main(run_check) == 0
        changed = {stage for stage, dep in dependencies if dep.workspace_status()}
    assert changed == {"export_csv@fashion_mnist"}
