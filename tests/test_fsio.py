"""fsio: atomic writes keep the old file until the new one is complete (an exception or a
SIGKILL mid-write leaves it intact, no temporary file at the target), and no write goes through
a symbolic link or outside its root."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mnist_pipeline import download
from mnist_pipeline.errors import PipelineError, os_error_line
from mnist_pipeline.fsio import (
    UnsafePathError,
    atomic_dir,
    atomic_outputs,
    atomic_path,
    remove_dir,
    safe_target,
    stage_output,
    write_bytes_atomic,
    write_bytes_under,
)


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_an_exception_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old and good")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_bytes(b"half of the new")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old and good"
    assert names(tmp_path) == ["out.bin"]


def test_an_exception_mid_write_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "tree"
    target.mkdir()
    (target / "a").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "b").write_bytes(b"new")
        raise RuntimeError("crash")
    assert names(target) == ["a"] and names(tmp_path) == ["tree"]


@pytest.mark.parametrize(
    ("failing", "error", "had_sums"),
    [
        ("sums", PermissionError(1, "Operation not permitted"), True),  # an immutable file
        ("sums", PermissionError(1, "Operation not permitted"), False),
        ("sums", KeyboardInterrupt(), True),  # Ctrl-C between a file's two moves
        ("folder", KeyboardInterrupt(), True),  # ... and a folder's
    ],
    ids=["refused", "refused-first-run", "interrupted-file", "interrupted-folder"],
)
def test_outputs_replaced_together_are_all_put_back_when_one_cannot_be_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str, error: BaseException, had_sums: bool
) -> None:
    """An export and its sha256 file: moving one new version in fails (an immutable file, a full
    disk, Ctrl-C); the previous versions of both come back, and no scratch stays."""
    export, sums = tmp_path / "npz", tmp_path / "npz.sha256"
    export.mkdir()
    (export / "old.npz").write_bytes(b"old")
    if had_sums:
        sums.write_bytes(b"old sums")
    target = sums if failing == "sums" else export
    replace = Path.replace

    def failing_replace(self: Path, destination: Path) -> Path:
        if Path(destination) == target and self.parent.name.endswith(".tmp"):  # the new version only
            raise error
        return replace(self, destination)

    monkeypatch.setattr(Path, "replace", failing_replace)
    with pytest.raises(type(error)), atomic_outputs(export, sums) as (staged_export, staged_sums):
        staged_export.mkdir()
        (staged_export / "new.npz").write_bytes(b"new")
        staged_sums.write_bytes(b"new sums")
    assert names(export) == ["old.npz"]
    assert names(tmp_path) == (["npz", "npz.sha256"] if had_sums else ["npz"])
    assert not had_sums or sums.read_bytes() == b"old sums"


@pytest.mark.parametrize("second", ["npz", "npz/SUMS"])
def test_overlapping_outputs_are_refused(tmp_path: Path, second: str) -> None:
    with (
        pytest.raises(UnsafePathError, match="found the same path or one inside it"),
        atomic_outputs(tmp_path / "npz", tmp_path / second),
    ):
        pass
    assert names(tmp_path) == []


def test_outputs_replaced_together_all_change_on_success(tmp_path: Path) -> None:
    export, sums = tmp_path / "npz", tmp_path / "npz.sha256"
    export.mkdir()
    (export / "old.npz").write_bytes(b"old")
    with atomic_outputs(export, sums) as (staged_export, staged_sums):
        staged_export.mkdir()
        (staged_export / "new.npz").write_bytes(b"new")
        staged_sums.write_bytes(b"new sums")
    assert names(export) == ["new.npz"] and sums.read_bytes() == b"new sums"
    assert names(tmp_path) == ["npz", "npz.sha256"]


def test_remove_dir_leaves_nothing_and_refuses_a_link(tmp_path: Path) -> None:
    Path("data/tree/sub").mkdir(parents=True)
    Path("data/tree/sub/a.png").write_bytes(b"png")
    remove_dir(Path("data/tree"))
    assert names(tmp_path / "data") == []
    (tmp_path / "outside").mkdir()
    Path("data/linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(UnsafePathError):
        remove_dir(Path("data/linked"))
    assert (tmp_path / "outside").is_dir()


def test_a_sigkill_mid_write_keeps_the_old_file_and_the_next_write_clears_the_scratch(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old and good")
    writer = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from mnist_pipeline.fsio import atomic_path
        with atomic_path(Path({str(target)!r})) as temp:
            with temp.open("wb") as stream:
                stream.write(b"x" * 100_000)
                stream.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", writer], check=False)
    assert result.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old and good"
    leftovers = [name for name in names(tmp_path) if name != "out.bin"]
    assert leftovers and all(
        name.startswith(".out.bin.mnist-pipeline-") and name.endswith(".tmp") for name in leftovers
    )
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and names(tmp_path) == ["out.bin"]


def test_atomic_writes_refuse_a_linked_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    Path("data").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(PipelineError, match=r"data/out\.bin: expected no symbolic link on the way, found .*/data -> "):
        write_bytes_atomic(Path("data/out.bin"), b"x")
    assert names(tmp_path / "elsewhere") == []


def test_a_refused_link_costs_nothing_behind_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The link is refused before any folder is made or any old scratch removed through it."""
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside"
    kept = outside / ".npz.mnist-pipeline-abc.tmp"
    kept.mkdir(parents=True)
    (kept / "precious.txt").write_text("someone's")
    Path("data").mkdir()
    Path("data/export").symlink_to(outside, target_is_directory=True)
    refused = r"expected no symbolic link on the way, found .*/data/export -> "
    with pytest.raises(PipelineError, match=refused), atomic_dir(Path("data/export/npz")):
        pass
    with pytest.raises(PipelineError, match=refused), atomic_path(Path("data/export/new/x")):
        pass
    assert names(outside) == [".npz.mnist-pipeline-abc.tmp"] and names(kept) == ["precious.txt"]


def test_only_scratch_of_our_own_shape_is_cleaned_up(tmp_path: Path) -> None:
    target = tmp_path / "pngs"
    for name in (".pngs.2023-backup.old", ".pngs.draft.tmp", ".pngs.mnist-pipeline-killed1.tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "file").write_text("x")
    with atomic_dir(target) as staging:
        (staging / "a").write_bytes(b"new")
    assert names(tmp_path) == [".pngs.2023-backup.old", ".pngs.draft.tmp", "pngs"]


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("conf", "expected a path inside data/ of the working directory"),
        ("data", "found data/ itself"),
        ("data/", "found data/ itself"),
        ("./data", "found data/ itself"),
        ("params.yaml", "expected a path inside data/ of the working directory"),
        ("data/../conf", "expected a path inside data/ of the working directory"),
        ("../outside/x", "expected a path inside data/ of the working directory"),
        ("/tmp/x", "expected a path inside data/ of the working directory"),
        ("data/mnist/export/npz", r"found .*/data/mnist/export -> "),
        ("linked/mnist/raw", "expected a path inside data/ of the working directory"),
    ],
)
def test_a_stage_writes_only_inside_data(tmp_path: Path, target: str, match: str) -> None:
    """Whatever a stage is started with, its outputs stay in data/ of its working directory."""
    (tmp_path / "outside").mkdir()
    Path("data/mnist").mkdir(parents=True)
    Path("data/mnist/export").symlink_to(tmp_path / "outside", target_is_directory=True)
    Path("linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    for fine in ("data/mnist/raw", "data/params", str(tmp_path / "data" / "new" / "x")):
        assert stage_output(Path(fine)) == Path(fine)
    with pytest.raises(UnsafePathError, match=match) as caught:
        stage_output(Path(target))
    assert "\n" not in str(caught.value)


#: Each stage's arguments after --params/--dataset, with ``{}`` for one output at a time.
STAGE_ARGUMENTS = {
    "download": [["{}"]],
    "verify": [["data/m/raw", "{}"]],
    "extract": [["data/m/raw", "{}"]],
    "decode": [["data/m/idx", "{}", "data/m/stats.json"], ["data/m/idx", "data/m/decoded", "{}"]],
    "export_npz": [
        ["data/m/decoded", "{}", "--sums", "data/m/npz.sha256"],
        ["data/m/decoded", "data/m/npz", "--sums", "{}"],
    ],
    "export_csv": [["data/m/decoded", "{}"]],
    "export_png": [["data/m/decoded", "{}"]],
    "export_parquet": [["data/m/decoded", "{}"]],
    "report": [["data/m/decoded", "data/m/stats.json", "data/m/checksums.json", "{}"]],
    "unpack": [["data/m/export/png/images.zip", "{}"]],
    "check": [["--conf", "conf", "{}"]],
}
STAGE_CASES = [(module, arguments) for module, cases in STAGE_ARGUMENTS.items() for arguments in cases]


@pytest.mark.parametrize(("module", "arguments"), STAGE_CASES)
def test_every_stage_refuses_an_output_outside_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: str, arguments: list[str]
) -> None:
    """Checked before anything is read, whatever else the arguments name: no input is needed."""
    stage = importlib.import_module(f"mnist_pipeline.{module}")
    per_dataset = ["--params", "p.yaml", "--dataset", "m"] if module != "check" else ["--params", "p.yaml"]
    for outside in ("conf", "params.yaml", "data", "../x"):
        argv = [*per_dataset, *(outside if argument == "{}" else argument for argument in arguments)]
        assert stage.main(argv) == 1, argv
        (line,) = capsys.readouterr().err.splitlines()
        assert "expected a path inside data/ of the working directory" in line, line
    assert names(tmp_path) == []


@pytest.mark.parametrize(("module", "arguments"), STAGE_CASES)
def test_every_stage_refuses_to_run_in_a_repositorys_subfolder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module: str,
    arguments: list[str],
) -> None:
    """Run by hand from conf/ (or any folder of a repository without dvc.yaml), data/ would be a
    new folder there: every stage refuses before reading anything, and writes nothing."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "conf").mkdir()
    monkeypatch.chdir(tmp_path / "conf")
    stage = importlib.import_module(f"mnist_pipeline.{module}")
    per_dataset = ["--params", "p.yaml", "--dataset", "m"] if module != "check" else ["--params", "p.yaml"]
    argv = [*per_dataset, *(argument.replace("{}", "data/m/out") for argument in arguments)]
    assert stage.main(argv) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"found the working directory {tmp_path / 'conf'} inside the repository {tmp_path};" in line
    assert sorted(path.name for path in tmp_path.rglob("*")) == [".git", "conf", "dvc.yaml"]


@pytest.mark.parametrize(("module", "arguments"), STAGE_CASES)
def test_every_stage_refuses_another_stages_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: str, arguments: list[str]
) -> None:
    """Run by hand, a stage may not replace what dvc.yaml has another stage write, a path inside
    it, nor its own output of another dataset, nor a dataset's folder (names.STAGE_OUTPUTS);
    refused before anything is read."""
    stage = importlib.import_module(f"mnist_pipeline.{module}")
    per_dataset = ["--params", "p.yaml", "--dataset", "m"] if module != "check" else ["--params", "p.yaml"]
    raw = "data/other/raw" if module == "download" else "data/m/raw"
    cases = [
        (raw, f"found what download@{raw.split('/')[1]} writes (dvc.yaml)"),
        (f"{raw}/sub", f"found a path inside what download@{raw.split('/')[1]} writes (dvc.yaml)"),
        ("data/k", "found the folder of k's outputs (k/checksums.json, ...)"),
    ]
    if module != "check":
        cases.append(("data/params/x", "found a path inside what check writes (dvc.yaml)"))
    Path("data/k").mkdir(parents=True)
    Path("data/k/checksums.json").write_text("{}")
    before = names(tmp_path)
    for foreign, found in cases:
        argv = [*per_dataset, *(foreign if argument == "{}" else argument for argument in arguments)]
        assert stage.main(argv) == 1, argv
        (line,) = capsys.readouterr().err.splitlines()
        expected = f"{foreign}: expected {line.split(':')[0]}'s own output, {found}; refusing to replace it"
        assert line.endswith(expected), line
    assert names(tmp_path) == before


def test_the_download_stage_refuses_a_raw_folder_whose_scratch_falls_outside_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stage also writes beside its raw folder: data/<dataset>/.partial and data/.downloads."""
    assert download.main(["--params", "p.yaml", "--dataset", "m", "data/raw"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "download@m: error: .downloads: expected a path inside data/ of the working directory (the repository), "
        "found one outside it; refusing to write it"
    ]
    assert names(tmp_path) == []


def test_a_linked_data_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    Path("data").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"found .*/data -> "):
        stage_output(Path("data/mnist/raw"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "repo" / "conf").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "repo"


def test_safe_target_accepts_plain_paths(root: Path) -> None:
    for path in (root / "conf" / "config.yaml", root / "new" / "deep" / "file", root / "conf"):
        assert safe_target(path, root) == path


@pytest.mark.parametrize(
    ("make", "target", "match"),
    [
        (lambda r: (r / "sub").symlink_to(r.parent / "outside"), "sub/dvc.yaml", r"found .*/sub -> "),
        (lambda r: (r / "params.yaml").symlink_to(r.parent / "outside" / "nothing"), "params.yaml", "params.yaml -> "),
        (lambda r: (r / "conf" / "x").symlink_to(r / "conf"), "conf/x/y", "conf/x -> "),
        (lambda r: None, "../outside/file", "expected a path without '..' parts"),
        (lambda r: None, "/etc/passwd", "expected a path inside"),
    ],
    ids=["linked-folder", "dangling-link", "link-inside", "dotdot", "absolute-outside"],
)
def test_safe_target_refuses_links_and_paths_outside(root: Path, make: object, target: str, match: str) -> None:
    assert callable(make)
    make(root)
    path = Path(target) if target.startswith("/") else root / target
    with pytest.raises(UnsafePathError, match=match) as caught:
        safe_target(path, root)
    assert "\n" not in str(caught.value)


def test_write_bytes_under_replaces_atomically_and_keeps_the_mode(root: Path) -> None:
    target = root / "conf" / "config.yaml"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_bytes_under(target, b"new", root)
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o640
    assert names(root / "conf") == ["config.yaml"]
    write_bytes_under(root / "a" / "b" / "c.txt", b"made", root)
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"made"


def test_write_bytes_under_ignores_planted_temp_links(root: Path) -> None:
    """A link at the name an older init used for its temporary file is never written through."""
    victim = root.parent / "outside" / "victim"
    victim.write_bytes(b"untouched")
    for planted in (".dvc.yaml.init-tmp", ".dvc.yaml.tmp"):
        (root / planted).symlink_to(victim)
    write_bytes_under(root / "dvc.yaml", b"stages: {}\n", root)
    assert victim.read_bytes() == b"untouched"
    assert not (root / "dvc.yaml").is_symlink() and (root / "dvc.yaml").read_bytes() == b"stages: {}\n"


def test_write_bytes_under_removes_its_temp_file_on_failure(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = root / "conf" / "config.yaml"
    target.write_bytes(b"old")

    def fail(path: Path, data: bytes) -> int:
        path.open("wb").write(data[:1])  # a part is written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", fail)
    with pytest.raises(OSError, match="No space"):
        write_bytes_under(target, b"new", root)
    assert target.read_bytes() == b"old" and names(root / "conf") == ["config.yaml"]


def test_write_bytes_under_refuses_a_linked_target(root: Path) -> None:
    victim = root.parent / "outside" / "victim"
    victim.write_bytes(b"untouched")
    (root / "params.yaml").symlink_to(victim)
    with pytest.raises(UnsafePathError):
        write_bytes_under(root / "params.yaml", b"x", root)
    assert victim.read_bytes() == b"untouched" and (root / "params.yaml").is_symlink()


@pytest.mark.parametrize(
    ("filename", "named"),
    [
        ("data/mnist/.checksums.json.mnist-pipeline-2kgfjhks.tmp/checksums.json", "data/mnist/checksums.json"),
        ("/r/data/mnist/export/.npz.mnist-pipeline-a_b.tmp/npz/mnist.npz", "/r/data/mnist/export/npz/mnist.npz"),
        ("data/.x.mnist-pipeline-a.tmp/y", "data/.x.mnist-pipeline-a.tmp/y"),  # not that output's scratch
        ("data/mnist/.notes.old/notes", "data/mnist/.notes.old/notes"),  # a user's own name
        ("data/d/.stats.json.mnist-pipeline-ab.tmp", "data/d/stats.json"),  # the scratch folder itself
        (  # an atomic write inside another's scratch
            "data/d/.decoded.mnist-pipeline-a.tmp/decoded/.x.npy.mnist-pipeline-b.tmp/x.npy",
            "data/d/decoded/x.npy",
        ),
    ],
)
def test_an_error_while_writing_in_scratch_names_the_output(filename: str, named: str) -> None:
    """A write that fails in the scratch folder (a full disk) is reported under the output's own
    path: the user never wrote the scratch name and can do nothing with it."""
    assert os_error_line(OSError(28, "No space left on device", filename)) == f"{named}: No space left on device"
