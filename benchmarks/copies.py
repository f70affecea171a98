"""Fresh copies of the project, as a clone gives them, from any working copy; and the stages DVC
would run in one, read from DVC itself (``dvc.yaml`` files, ``foreach``/``matrix`` resolved).

A copy holds the files git knows (``git ls-files``, plus new files not ignored: this change's own
modules) and never what runs leave behind: no ``dvc.lock``, no ``data/``, no machine-local
settings, and ``params.yaml`` as the git index holds it, not as the last ``dvc exp run`` left it
in the working copy. If that file is not what ``conf/`` composes to (conf/ edited, ``make
params`` not yet run), the copy gets the composition, and ``notes`` says so: the stages run with
the code and conf/ being measured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dvc.utils.hydra import compose_and_dump  # type: ignore[import-untyped, unused-ignore]

from tests.support.repos import PROJECT_ROOT, project_files, run, tool_env
from tests.support.repos import indexed as indexed_file

PARAMS = "params.yaml"
CONF = "conf"

#: What the copies found worth telling the reader (once each).
notes: list[str] = []


def compose(repo: Path, overrides: Sequence[str] = ()) -> bytes:
    """``repo``'s conf/ composed with ``overrides`` as ``dvc exp run -S`` does, into params.yaml;
    the bytes written."""
    target = repo / PARAMS
    compose_and_dump(str(target), str((repo / CONF).resolve()), None, "config", str(repo), list(overrides))
    return target.read_bytes()


def fresh_copy(
    directory: Path,
    conf_files: dict[str, str] | None = None,
    overrides: Sequence[str] = (),
    commit: bool = True,
) -> Path:
    """The project's files in a new git repository at ``directory``, committed (unless not
    ``commit``). ``conf_files`` (path below conf/ -> text) are written first; with them or with
    ``overrides``, params.yaml is conf/ composed with ``overrides`` (an experiment's variant)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in project_files():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    for name, text in (conf_files or {}).items():
        (directory / CONF / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / CONF / name).write_text(text)
    indexed = indexed_file(PARAMS)
    composed = compose(directory, overrides)
    if indexed is not None and not conf_files and not overrides:
        if indexed == composed:
            (directory / PARAMS).write_bytes(indexed)
        else:
            note = "params.yaml in the git index is not conf/'s composition (make params): copies use the composition"
            if note not in notes:
                notes.append(note)
    run(directory, "git", "init", "-q", "-b", "main")
    if commit:
        commit_all(directory, "project")
    return directory


def commit_all(repo: Path, message: str) -> None:
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "--allow-empty", "-m", message)


def empty_dvc_repo(directory: Path) -> Path:
    """``git init && dvc init``: DVC's own floor for a command in a repository."""
    directory.mkdir(parents=True)
    run(directory, "git", "init", "-q", "-b", "main")
    run(directory, "dvc", "init", "-q")
    commit_all(directory, "dvc init")
    return directory


@dataclass(frozen=True)
class StageCommand:
    """One stage as ``dvc repro`` would run it: its name, its shell command, its folder."""

    name: str
    command: str
    wdir: Path

    def runs(self, module: str) -> bool:
        """Whether the stage runs ``python -m mnist_pipeline.<module>``."""
        return f"mnist_pipeline.{module} " in self.command + " "


#: Prints the stages of the repository in the current folder, in the order `dvc repro` takes them.
_LIST_STAGES = """
import json
from dvc.repo import Repo
from dvc.repo.reproduce import plan_repro
with Repo(".") as repo:
    stages = [s for s in plan_repro(repo.index.graph) if getattr(s, "cmd", None)]
    print(json.dumps([
        {"name": s.addressing, "cmd": s.cmd if isinstance(s.cmd, list) else [s.cmd], "wdir": s.wdir}
        for s in stages
    ]))
"""


def stage_commands(repo: Path) -> list[StageCommand]:
    """Every stage of ``repo`` with a command, dependencies first (DVC's own plan)."""
    listed = subprocess.run(
        [sys.executable, "-c", _LIST_STAGES], cwd=repo, env=tool_env(), capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        last = (listed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{repo / 'dvc.yaml'}: DVC could not list the stages: {last}")
    return [
        StageCommand(item["name"], " && ".join(item["cmd"]), Path(item["wdir"])) for item in json.loads(listed.stdout)
    ]


def stage_label(name: str, dataset: str) -> str:
    """A stage's name without its dataset: ``export_png@mnist`` -> ``export_png``,
    ``unpack@mnist-png`` -> ``unpack@png``."""
    base, _, key = name.partition("@")
    rest = [part for part in key.split("-") if part and part != dataset]
    return base if not rest else f"{base}@{'-'.join(rest)}"
