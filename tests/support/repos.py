"""Throwaway git + DVC repositories made from this project's files, and the environment the
tools run in. Shared by the tests and the benchmark."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this venv first, no analytics, a fixed git identity."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
    )
    return env


def run(
    cwd: Path, *command: str, check: bool = True, timeout: float = 600, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = tool_env() | (extra_env or {})
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


#: Files DVC experiments rewrite in a working copy: a fresh repository takes them from the git
#: index (what the developer means to commit), never from the experiment state of this checkout.
EXPERIMENT_STATE = ("params.yaml", "dvc.lock")


def project_files() -> list[str]:
    """The project's files: tracked ones and new ones not ignored (this change's own files),
    without what DVC's runs leave in a working copy."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [name for name in listed if name and name not in EXPERIMENT_STATE and (PROJECT_ROOT / name).is_file()]


def indexed(name: str) -> bytes | None:
    """``name`` as the git index holds it, or None when git does not track it."""
    shown = subprocess.run(["git", "show", f":{name}"], cwd=PROJECT_ROOT, capture_output=True, check=False)
    return shown.stdout if shown.returncode == 0 else None


def make_repo(directory: Path) -> Path:
    """A fresh git repository holding this project's files, committed: what a clone gives, from
    any working copy (after `make repro`, `dvc exp run`, ...)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in project_files():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    for name in EXPERIMENT_STATE:
        content = indexed(name)
        if content is not None:
            (directory / name).write_bytes(content)
    run(directory, "git", "init", "-q", "-b", "main")
    run(directory, "git", "add", "-A")
    run(directory, "git", "commit", "-q", "-m", "project")
    return directory


def restore_committed(repo: Path, *names: str) -> None:
    """Put the committed ``names`` back as README "The daily loop" says after a refused run:
    touched first, so that git compares their content. DVC can write ``dvc.lock`` twice within
    one second at the same size while it restores the workspace, and git, which compares
    modification times to the second, then takes the second version for the first."""
    for name in names:
        (repo / name).touch()
    run(repo, "git", "checkout", "--", *names)
