"""unpack stage and ``mnist-pipeline unpack``: a PNG export becomes its tree (marked as ours and
git-ignored); a hostile, broken or foreign zip, or a destination that is not ours, is refused
with one line, the previous tree stays as it was, and nothing is left beside it."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from mnist_pipeline import cli, unpack, ziparchive
from mnist_pipeline import tree as tree_module
from mnist_pipeline.errors import ArchiveError, PipelineError
from mnist_pipeline.tree import GITIGNORE, GITIGNORE_CONTENT, unpack_zip
from mnist_pipeline.treemark import MARKER, MARKER_HEADER
from tests.support.data import TinyDataset, params_for, snapshot, write_params
from tests.support.zips import Crafted, crafted_export, export_of, manifest_for, overlapping_bomb, zip_of

PREVIOUS = {
    "manifest.csv": b"previous tree\n",
    "train/0/0.png": b"old png",
    MARKER: MARKER_HEADER.encode() + b"zip sha256 0\n",
}


def with_marks(files: dict[str, bytes], zip_path: Path) -> dict[str, bytes]:
    """What a tree unpacked from ``zip_path``, an export of ``files``, holds: the members, the
    marker naming the zip, the ignore file."""
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    marker = MARKER_HEADER.encode() + f"zip sha256 {digest}\n".encode()
    return {**files, MARKER: marker, GITIGNORE: GITIGNORE_CONTENT}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder below data/ holding a previous tree, as the stage finds it on a re-run."""
    folder = tmp_path / "data"
    write_tree(folder / "tree", PREVIOUS)
    return folder


def assert_previous_tree_kept(workspace: Path) -> None:
    """The tree from before is as it was, and nothing is left beside it."""
    assert read_tree(workspace / "tree") == PREVIOUS
    assert sorted(path.name for path in workspace.iterdir()) == ["in.zip", "tree"]


def assert_refused(workspace: Path, archive: bytes, match: str) -> None:
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(archive)
    with pytest.raises(ArchiveError, match=match) as caught:
        unpack_zip(zip_path, workspace / "tree")
    assert str(caught.value).startswith(f"{zip_path}: ") and "\n" not in str(caught.value)
    assert_previous_tree_kept(workspace)


def test_unpacks_stored_deflated_and_large_members(workspace: Path) -> None:
    files = {
        "train/3/00001.png": b"\x89PNG one",
        "train/3/00002.png": b"\x89PNG two",
        "test/7/00000.png": b"",
        "big/streamed.bin": bytes(range(256)) * 20_000,  # 5 MB: above the read-whole size
    }
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of(files, zipfile.ZIP_DEFLATED))
    assert unpack_zip(zip_path, workspace / "tree") == len(files) + 1
    assert read_tree(workspace / "tree") == with_marks({**files, "manifest.csv": manifest_for(list(files))}, zip_path)
    assert sorted(path.name for path in workspace.iterdir()) == ["in.zip", "tree"]


def many_folders(folders: int = 6, per_folder: int = 60, size: int = 3000) -> dict[str, bytes]:
    """Files in several class folders, so that the helper gets every other folder and several
    batches (about 1 MB in all by default)."""
    return {
        f"train/{folder}/{index:05d}.png": bytes([folder, index % 256]) * (size // 2 + index)
        for folder in range(folders)
        for index in range(per_folder)
    }


def before_creating(monkeypatch: pytest.MonkeyPatch, name: str, action: Callable[[str], None]) -> None:
    """Run ``action(path)`` just before the file whose path ends with ``name`` is created, in
    whichever process creates it (the helper inherits the patch when it is forked)."""
    create_file = tree_module._create_file

    def hooked(path: str, chunks: Iterable[bytes]) -> None:
        if path.endswith(name):
            action(path)
        create_file(path, chunks)

    monkeypatch.setattr(tree_module, "_create_file", hooked)


@pytest.fixture
def helper_pids(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the helpers unpack forks during the test, as this process saw them (other
    children of a test worker, the servers of session fixtures, are not theirs to check)."""
    pids: list[int] = []
    fork = os.fork

    def recording_fork() -> int:
        pid = fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    return pids


def assert_reaped(pids: list[int], forked: int = 1) -> None:
    """``forked`` helpers were forked, and each was waited for: none is left, running or not."""
    assert len(pids) == forked
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize("helper", [True, False], ids=["helper", "one-process"])
def test_the_helper_process_makes_the_same_tree(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, helper_pids: list[int], helper: bool
) -> None:
    """With a second core, a forked helper creates every other folder's files; without one,
    this process creates them all. The same tree either way, and no process left behind."""
    monkeypatch.setattr(tree_module, "_helper_possible", lambda: helper)
    files = many_folders()
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of(files))
    assert unpack_zip(zip_path, workspace / "tree") == len(files) + 1
    assert read_tree(workspace / "tree") == with_marks({**files, "manifest.csv": manifest_for(list(files))}, zip_path)
    assert_reaped(helper_pids, forked=1 if helper else 0)


def test_no_descriptor_for_the_helper_s_pipes_means_no_helper(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, helper_pids: list[int]
) -> None:
    """The second pipe cannot be had (too many open files): the first is closed again, no
    helper is forked, and this process makes the same tree."""
    monkeypatch.setattr(tree_module, "_helper_possible", lambda: True)
    pipe = os.pipe
    pipes: list[tuple[int, int]] = []

    def second_fails() -> tuple[int, int]:
        if pipes:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        pipes.append(pipe())
        return pipes[-1]

    monkeypatch.setattr(os, "pipe", second_fails)
    files = many_folders()
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of(files))
    assert unpack_zip(zip_path, workspace / "tree") == len(files) + 1
    assert read_tree(workspace / "tree") == with_marks({**files, "manifest.csv": manifest_for(list(files))}, zip_path)
    assert_reaped(helper_pids, forked=0)
    for descriptor in pipes[0]:  # closed: fstat of a closed descriptor fails
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(descriptor)


def test_an_os_error_in_the_helper_is_raised_here_and_nothing_is_left(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, helper_pids: list[int]
) -> None:
    """The disk fills while the helper creates a file of the second folder (the helper's): the
    error comes back with its path, the previous tree stays, the staging folder goes."""
    monkeypatch.setattr(tree_module, "_helper_possible", lambda: True)

    def full_disk(path: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    before_creating(monkeypatch, "train/1/00030.png", full_disk)
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of(many_folders()))
    with pytest.raises(OSError, match="No space left on device") as caught:
        unpack_zip(zip_path, workspace / "tree")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename.endswith("train/1/00030.png")
    assert_previous_tree_kept(workspace)
    assert_reaped(helper_pids)


@pytest.mark.parametrize(
    ("sent", "raised", "match"),
    [
        (
            signal.SIGKILL,
            PipelineError,
            "expected the process creating the tree's files to finish, found it killed by SIGKILL",
        ),
        (signal.SIGINT, KeyboardInterrupt, None),
    ],
    ids=["killed", "ctrl-c"],
)
def test_a_helper_stopped_by_a_signal_is_reported_and_nothing_is_left(
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    helper_pids: list[int],
    sent: signal.Signals,
    raised: type[BaseException],
    match: str | None,
) -> None:
    """Killed (the out-of-memory killer), or reached by Ctrl-C before this process: one
    error or the interruption the stage reports as such, never a half tree."""
    monkeypatch.setattr(tree_module, "_helper_possible", lambda: True)
    before_creating(monkeypatch, "train/1/00030.png", lambda _: os.kill(os.getpid(), sent))
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of(many_folders()))
    with pytest.raises(raised, match=match):
        unpack_zip(zip_path, workspace / "tree")
    assert_previous_tree_kept(workspace)
    assert_reaped(helper_pids)


def test_records_split_across_the_pipe_s_reads_make_the_same_tree(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, helper_pids: list[int]
) -> None:
    """The helper stalls on its first file while this process fills the pipe (1 MB) with about
    4 MB of records: its reads then end mid-record, and every file still comes out whole."""
    monkeypatch.setattr(tree_module, "_helper_possible", lambda: True)
    before_creating(monkeypatch, "train/1/00000.png", lambda _: time.sleep(0.5))
    files = many_folders(folders=4, per_folder=500, size=4000)
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of(files))
    assert unpack_zip(zip_path, workspace / "tree") == len(files) + 1
    assert read_tree(workspace / "tree") == with_marks({**files, "manifest.csv": manifest_for(list(files))}, zip_path)
    assert_reaped(helper_pids)


def test_ctrl_c_held_back_across_the_fork_stops_the_helper(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, helper_pids: list[int]
) -> None:
    """Ctrl-C arriving while the helper is forked is delivered once the helper is recorded:
    the helper is stopped and reaped, and nothing is left."""
    monkeypatch.setattr(tree_module, "_helper_possible", lambda: True)
    fork = os.fork

    def interrupted_fork() -> int:
        pid = fork()
        if pid:  # to this thread, as in a stage's process, the only thread there
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        return pid

    monkeypatch.setattr(os, "fork", interrupted_fork)
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of(many_folders()))
    with pytest.raises(KeyboardInterrupt):
        unpack_zip(zip_path, workspace / "tree")
    assert_previous_tree_kept(workspace)
    assert_reaped(helper_pids)


#: Run in a process of its own: unpack with the helper, its folder's files slow (10 ms each),
#: printing the helper's pid, so that the test can kill the unpack while the helper works.
SLOW_HELPER_UNPACK = """
import os, sys, time
from pathlib import Path
from mnist_pipeline import tree
tree._helper_possible = lambda: True
create_file, fork = tree._create_file, os.fork
def slow(path, chunks):
    if "/train/1/" in path:
        time.sleep(0.01)
    create_file(path, chunks)
def noted():
    pid = fork()
    if pid:
        print(pid, flush=True)
    return pid
tree._create_file, os.fork = slow, noted
tree.unpack_zip(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_a_killed_unpack_s_helper_ends_by_itself_and_the_next_run_cleans_up(workspace: Path) -> None:
    """SIGKILL reaches only the unpack: its helper finds the pipe closed once it has created
    what was already sent into the scratch folder, and exits on its own. The next unpack
    removes that scratch and writes the whole tree."""
    files = many_folders(per_folder=100)
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of(files))
    command = [sys.executable, "-c", SLOW_HELPER_UNPACK, str(zip_path), str(workspace / "tree")]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, cwd=Path(tree_module.__file__).parents[1]
    ) as unpack:
        assert unpack.stdout is not None
        helper = int(unpack.stdout.readline())
        time.sleep(0.2)
        unpack.kill()
    assert unpack.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while (state := process_state(helper)) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state in (None, "Z"), f"the helper {helper} still runs"
    assert any(path.name.endswith(".tmp") for path in workspace.iterdir())  # the killed run's scratch
    assert unpack_zip(zip_path, workspace / "tree") == len(files) + 1
    assert read_tree(workspace / "tree") == with_marks({**files, "manifest.csv": manifest_for(list(files))}, zip_path)
    assert sorted(path.name for path in workspace.iterdir()) == ["in.zip", "tree"]


def process_state(pid: int) -> str | None:
    """The state letter of process ``pid`` (``Z`` a zombie), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def test_a_refusal_after_files_were_sent_stops_the_helper(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, helper_pids: list[int]
) -> None:
    """The last member breaks the manifest's order after the helper has created most of its
    files: it is stopped before the staging folder is removed, and nothing is left."""
    monkeypatch.setattr(tree_module, "_helper_possible", lambda: True)
    files = many_folders()
    names = list(files)
    archive = zip_of({**files, "manifest.csv": manifest_for([*names[:-1], "train/5/other.png"])})
    assert_refused(workspace, archive, "member 'train/5/00059.png' where manifest.csv row 360 lists")
    assert_reaped(helper_pids)


def test_a_tree_an_earlier_version_unpacked_is_replaced(workspace: Path) -> None:
    """Its marker names the manifest's sha256, not the zip's: the header is what proves the tree ours."""
    write_tree(workspace / "tree", {**PREVIOUS, MARKER: MARKER_HEADER.encode() + b"manifest.csv sha256 0\n"})
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(export_of({"a.png": b"new"}))
    assert unpack_zip(zip_path, workspace / "tree") == 2
    assert read_tree(workspace / "tree") == with_marks(
        {"a.png": b"new", "manifest.csv": manifest_for(["a.png"])}, zip_path
    )


def test_main_reports_one_line_and_keeps_the_tree(
    workspace: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    params = write_params(workspace / "conf", params_for(tiny, ["unused"]))
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(crafted_export([Crafted("a.png"), Crafted("../../escape.png")]))
    args = ["--params", str(params), "--dataset", "mnist", str(zip_path), str(workspace / "tree")]
    assert unpack.main(args) == 1
    assert capsys.readouterr().err.strip() == (
        f"unpack@mnist: error: {zip_path}: refusing member '../../escape.png' (not a relative file path)"
    )
    assert read_tree(workspace / "tree") == PREVIOUS
    zip_path.write_bytes(export_of({"a.png": b"new"}))
    assert unpack.main(args) == 0
    assert read_tree(workspace / "tree") == with_marks(
        {"a.png": b"new", "manifest.csv": manifest_for(["a.png"])}, zip_path
    )
    assert "2 files -> " in capsys.readouterr().err


def test_encrypted_member_refused(workspace: Path) -> None:
    assert_refused(
        workspace, crafted_export([Crafted("ok.png"), Crafted("secret.png", flags=0x1)]), "'secret.png'.*encrypt"
    )


@pytest.mark.parametrize("method", [12, 99])
def test_bzip2_and_aes_members_refused(workspace: Path, method: int) -> None:
    assert_refused(
        workspace,
        crafted_export([Crafted("ok.png"), Crafted("x.png", method=method)]),
        f"'x.png'.*method.*found {method}",
    )


def test_symlink_refused(workspace: Path) -> None:
    link = Crafted("link.png", b"/etc/passwd", external_attr=(stat.S_IFLNK | 0o777) << 16)
    assert_refused(workspace, crafted_export([Crafted("ok.png"), link]), "'link.png'.*symbolic link")


@pytest.mark.parametrize("name", ["/abs.png", "../up.png", "a/../../up.png"])
def test_escaping_names_refused(workspace: Path, name: str) -> None:
    assert_refused(workspace, crafted_export([Crafted("ok.png"), Crafted(name)]), f"refusing member '{name}'")
    assert not (workspace.parent / "up.png").exists() and not Path("/abs.png").exists()


def test_nul_in_name_refused(workspace: Path) -> None:
    assert_refused(workspace, crafted_export([Crafted(b"a\x00.png")]), r"'a\\x00.png'.*control characters")


def test_folder_entry_refused(workspace: Path) -> None:
    folder = Crafted("train/", b"", external_attr=((stat.S_IFDIR | 0o755) << 16) | 0x10)
    assert_refused(workspace, crafted_export([folder]), "'train/': expected files only, found a folder entry")


def test_deflate_bomb_refused(workspace: Path) -> None:
    content = bytes(30_000_000)
    bomb = Crafted("bomb.png", content, method=8, declared_size=100, crc=zlib.crc32(content[:100]))
    assert_refused(workspace, crafted_export([Crafted("ok.png"), bomb]), "'bomb.png': expected 100 bytes, found more")


def test_large_deflate_bomb_refused_while_streaming(workspace: Path) -> None:
    content = bytes(30_000_000)
    bomb = Crafted("bomb.png", content, method=8, declared_size=2_000_000, crc=zlib.crc32(content[:2_000_000]))
    assert_refused(workspace, crafted_export([bomb]), "'bomb.png': expected 2000000 bytes, found more")


def test_declared_size_larger_than_actual_refused(workspace: Path) -> None:
    short = Crafted("short.png", b"x" * 100, method=8, declared_size=150)
    assert_refused(workspace, crafted_export([short]), "'short.png': expected 150 bytes, found 100")


def test_crc_mismatch_refused(workspace: Path) -> None:
    assert_refused(
        workspace, crafted_export([Crafted("bad.png", b"pixels", crc=0)]), "'bad.png': expected CRC-32 00000000"
    )


def test_truncated_zip_refused(workspace: Path) -> None:
    data = export_of({"a.png": b"a" * 100, "b.png": b"b" * 100})
    assert_refused(workspace, data[: len(data) // 2], "expected an end of central directory record")


def test_member_count_over_the_limit_refused(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_module, "MAX_MEMBERS", 3)
    assert_refused(workspace, export_of({f"{i}.png": b"" for i in range(3)}), "expected at most 3 members, found 4")


def test_total_size_over_the_limit_refused(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_module, "MAX_TOTAL_BYTES", 250)
    files = {"a.png": b"a" * 100, "b.png": b"b" * 100, "c.png": b"c" * 100}
    assert_refused(workspace, export_of(files), "refusing member 'c.png': expected at most 250 bytes in all")


def test_expansion_over_the_limit_refused(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_module, "MAX_EXPANSION", 10)
    archive = export_of({"small.png": b"x" * 10, "zeros.png": bytes(100_000)}, zipfile.ZIP_DEFLATED)
    assert_refused(workspace, archive, f"refusing member 'zeros.png': expected at most {10 * len(archive):,} bytes")


def test_zip64_members_unpack(workspace: Path) -> None:
    zip_path = workspace / "in.zip"
    manifest = manifest_for(["a/forced.png", "b.png"])
    with zipfile.ZipFile(zip_path, "w") as archive:
        with archive.open("a/forced.png", "w", force_zip64=True) as member:
            member.write(b"forced zip64")
        archive.writestr("b.png", b"plain")
        archive.writestr("manifest.csv", manifest)
    zip_path_crafted = workspace / "crafted.zip"
    zip_path_crafted.write_bytes(crafted_export([Crafted("c/d.png", b"zip64 extra", zip64=True)], zip64_end=True))
    assert unpack_zip(zip_path, workspace / "tree") == 3
    assert read_tree(workspace / "tree") == with_marks(
        {"a/forced.png": b"forced zip64", "b.png": b"plain", "manifest.csv": manifest}, zip_path
    )
    assert unpack_zip(zip_path_crafted, workspace / "tree") == 2
    assert read_tree(workspace / "tree") == with_marks(
        {"c/d.png": b"zip64 extra", "manifest.csv": manifest_for(["c/d.png"])}, zip_path_crafted
    )


def test_empty_zip_refused(workspace: Path) -> None:
    assert_refused(workspace, zip_of({}), "expected at least one member, found an empty archive")


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["a.png", "a.png"], "refusing member 'a.png': expected a new path"),
        (["a", "a/b.png"], "refusing member 'a/b.png': expected a new path"),
        (["a/b.png", "a"], "refusing member 'a': expected a new path"),
        (["x/a.png", "x//a.png"], re.escape("refusing member 'x//a.png' (not a relative file path)")),
    ],
)
def test_duplicate_and_clashing_names_refused(workspace: Path, names: list[str], match: str) -> None:
    assert_refused(workspace, crafted_export([Crafted(name) for name in names]), match)


def test_missing_zip_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        unpack_zip(tmp_path / "absent.zip", tmp_path / "tree")
    assert list(tmp_path.iterdir()) == []


def peak_memory_of_unpack(tmp_path: Path, count: int) -> int:
    zip_path = tmp_path / f"{count}.zip"
    names = [f"{index % 10}/{index:06d}.png" for index in range(count)]
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name in names:
            archive.writestr(name, b"p")
        archive.writestr("manifest.csv", "".join(f"{row}\n" for row in ["path", *names]))
    tracemalloc.start()
    try:
        assert unpack_zip(zip_path, tmp_path / f"tree{count}") == count + 1
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # large generated input: in make test, not in the quick loop
def test_peak_memory_does_not_grow_with_the_member_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Directory chunks of 16 KiB: both zips (116 KB and 1.2 MB of central directory) fill
    # several, so what is left to differ is anything held per member.
    monkeypatch.setattr(ziparchive, "DIRECTORY_CHUNK", 1 << 14)
    few = peak_memory_of_unpack(tmp_path, 2_000)
    many = peak_memory_of_unpack(tmp_path, 20_000)
    # Holding a ZipInfo-sized object per member would add about 4 MB for the 18,000 more.
    assert few < 2 << 20, few
    assert many < 2 << 20, many


def test_the_flat_layouts_split_metadata_is_unpacked_without_a_manifest_row(workspace: Path) -> None:
    """<split>/metadata.csv (Hugging Face's labels, layout flat) is the one member the manifest does not list."""
    pngs = {"train/3_00001.png": b"\x89PNG one", "test/7_00000.png": b"\x89PNG two"}
    files = {
        "train/3_00001.png": pngs["train/3_00001.png"],
        "train/metadata.csv": b"file_name,label\n3_00001.png,3\n",
        "test/7_00000.png": pngs["test/7_00000.png"],
        "test/metadata.csv": b"file_name,label\n7_00000.png,7\n",
    }
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(zip_of({**files, "manifest.csv": manifest_for(list(pngs))}))
    assert unpack_zip(zip_path, workspace / "tree") == len(files) + 1
    assert read_tree(workspace / "tree") == with_marks({**files, "manifest.csv": manifest_for(list(pngs))}, zip_path)


# what is unpacked: only a PNG export of this pipeline -----------------------------------------


def zip_of_pairs(members: list[tuple[str, bytes]]) -> bytes:
    """A zip of ``members`` in order, a name twice if listed twice (zipfile warns, and writes it)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def npz_like() -> bytes:
    """What an .npz is: a zip of .npy members and no manifest."""
    return zip_of({"x_train.npy": b"\x93NUMPY", "y_train.npy": b"\x93NUMPY", "x_test.npy": b"", "y_test.npy": b""})


@pytest.mark.parametrize(
    ("archive", "match"),
    [
        (npz_like(), r"expected a PNG export of mnist-pipeline .*found no manifest.csv \(last member 'y_test.npy'\)"),
        (
            zip_of({"a.png": b"a", "manifest.csv": manifest_for(["a.png"]), "b.png": b"b"}),
            "found manifest.csv at entry 2 of 3",
        ),
        (
            zip_of({"a.png": b"a", "sneaked.png": b"s", "manifest.csv": manifest_for(["a.png"])}),
            "found member 'sneaked.png' where manifest.csv row 2 lists the end of the list",
        ),
        (
            zip_of({"b.png": b"b", "a.png": b"a", "manifest.csv": manifest_for(["a.png", "b.png"])}),
            "found member 'b.png' where manifest.csv row 1 lists 'a.png'",
        ),
        (
            zip_of({"a.png": b"a", "manifest.csv": manifest_for(["a.png", "gone.png"])}),
            "found manifest.csv row 2 listing 'gone.png', which the zip does not hold",
        ),
        (zip_of({"a.png": b"a", "manifest.csv": b"name\na.png\n"}), r"found manifest.csv with header \['name'\]"),
        (zip_of({"a.png": b"a", "manifest.csv": b"path\n\xff.png\n"}), "found manifest.csv that is not UTF-8"),
        (
            zip_of({MARKER: b"forged", "manifest.csv": manifest_for([MARKER])}),
            f"found a member named '{MARKER}', where unpack writes {MARKER} itself",
        ),
        (
            zip_of({".gitignore/a.png": b"a", "manifest.csv": manifest_for([".gitignore/a.png"])}),
            "found a member named '.gitignore/a.png', where unpack writes .gitignore itself",
        ),
        (
            zip_of(
                {".git/config": b"[core]\n\tfsmonitor = touch pwned\n", "manifest.csv": manifest_for([".git/config"])}
            ),
            "found a member named '.git/config', a name part starting with a dot",
        ),
        (
            zip_of({"train/.dvcignore": b"*", "manifest.csv": manifest_for(["train/.dvcignore"])}),
            "found a member named 'train/.dvcignore', a name part starting with a dot",
        ),
        (
            zip_of({"a.png": b"a", "metadata.csv": b"m", "manifest.csv": manifest_for(["a.png"])}),
            "found member 'metadata.csv' where manifest.csv row 2 lists the end of the list",
        ),
        (
            zip_of({"t/a.png": b"a", "t/3/metadata.csv": b"m", "manifest.csv": manifest_for(["t/a.png"])}),
            "found member 't/3/metadata.csv' where manifest.csv row 2 lists the end of the list",
        ),
        (  # a class folder's PNG before it: one would drop every folder's labels in Hugging Face
            zip_of({"t/3/a.png": b"a", "t/metadata.csv": b"m", "manifest.csv": manifest_for(["t/3/a.png"])}),
            "found member 't/metadata.csv' where manifest.csv row 2 lists the end of the list",
        ),
        (
            zip_of({"t/metadata.csv": b"m", "t/a.png": b"a", "manifest.csv": manifest_for(["t/a.png"])}),
            "found member 't/metadata.csv' where manifest.csv row 1 lists 't/a.png'",
        ),
        (  # another split's PNG before it
            zip_of({"t/a.png": b"a", "u/metadata.csv": b"m", "manifest.csv": manifest_for(["t/a.png"])}),
            "found member 'u/metadata.csv' where manifest.csv row 2 lists the end of the list",
        ),
        (
            zip_of(
                {
                    "t/a.png": b"a",
                    "t/metadata.csv": b"m",
                    "t/b.png": b"b",
                    "manifest.csv": manifest_for(["t/a.png", "t/b.png"]),
                }
            ),
            "found member 't/b.png' after t/metadata.csv",
        ),
        (  # listed, in a class-folder split
            zip_of(
                {
                    "t/3/a.png": b"a",
                    "t/metadata.csv": b"m",
                    "manifest.csv": manifest_for(["t/3/a.png", "t/metadata.csv"]),
                }
            ),
            "found member 't/metadata.csv', a name Hugging Face reads labels from, not a flat split's own",
        ),
        (  # listed, at the root, in another of the loader's formats
            zip_of(
                {"t/a.png": b"a", "metadata.jsonl": b"{}", "manifest.csv": manifest_for(["t/a.png", "metadata.jsonl"])}
            ),
            "found member 'metadata.jsonl', a name Hugging Face reads labels from, not a flat split's own",
        ),
        (  # a split with class folders and one file beside them
            zip_of(
                {
                    "t/3/a.png": b"a",
                    "t/b.png": b"b",
                    "t/metadata.csv": b"m",
                    "manifest.csv": manifest_for(["t/3/a.png", "t/b.png"]),
                }
            ),
            "found member 't/metadata.csv' where manifest.csv row 3 lists the end of the list",
        ),
        (
            zip_of_pairs(
                [
                    ("t/a.png", b"a"),
                    ("t/metadata.csv", b"m"),
                    ("t/metadata.csv", b"m"),
                    ("manifest.csv", manifest_for(["t/a.png"])),
                ]
            ),
            "found member 't/metadata.csv' where manifest.csv row 2 lists the end of the list",
        ),
    ],
    ids=[
        "npz",
        "manifest-not-last",
        "unlisted",
        "out-of-order",
        "listed-missing",
        "header",
        "utf8",
        "marker",
        "marker-folder",
        "git-folder",
        "dvcignore",
        "metadata-at-the-root",
        "metadata-below-a-split",
        "metadata-after-a-class-folder",
        "metadata-first",
        "metadata-of-another-split",
        "png-after-metadata",
        "listed-metadata-in-a-class-folder-split",
        "listed-metadata-jsonl-at-the-root",
        "metadata-in-a-mixed-split",
        "metadata-twice",
    ],
)
def test_a_zip_that_is_not_an_export_is_refused(workspace: Path, archive: bytes, match: str) -> None:
    assert_refused(workspace, archive, match)


def test_an_npz_is_refused_by_the_command_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npz = tmp_path / "mnist.npz"
    npz.write_bytes(npz_like())
    assert cli.main(["unpack", str(npz), str(tmp_path / "tree")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mnist-pipeline: error: {npz}: expected a PNG export of mnist-pipeline")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mnist.npz"]


@pytest.mark.parametrize(("kind", "found"), [("folder", "a folder"), ("fifo", "a special file")])
def test_a_folder_or_fifo_given_as_the_zip_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, found: str
) -> None:
    """Named, and never waited on: a FIFO no one writes to would block a plain open forever."""
    source = tmp_path / "images.zip"
    source.mkdir() if kind == "folder" else os.mkfifo(source)
    assert cli.main(["unpack", str(source), str(tmp_path / "tree")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"mnist-pipeline: error: {source}: expected a zip file, found {found}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images.zip"]


def test_overlapping_entry_bomb_refused_before_anything_is_written(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = overlapping_bomb(50, bytes(20_000))
    written: list[str] = []
    monkeypatch.setattr(tree_module, "_write_members", lambda *args: written.append(args[3]))
    assert_refused(workspace, archive, "refusing member '0001.png': .*overlapping .*zip bomb")
    assert written == []


def test_a_2000_level_member_path_is_one_line(workspace: Path) -> None:
    deep = "/".join(["d"] * 2000) + ".png"
    assert_refused(workspace, crafted_export([Crafted(deep)]), "expected a name of at most 1024 bytes, found 4003")


def test_the_tree_is_marked_and_ignored_by_git(tmp_path: Path) -> None:
    """A consumer's `git add -A` adds the zip, never the unpacked files."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "png.zip").write_bytes(export_of({"train/0/0.png": b"png", "train/1/1.png": b"png"}))
    assert unpack_zip(tmp_path / "data" / "png.zip", tmp_path / "data" / "png") == 3
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout.splitlines() == ["?? data/png.zip"]
    assert (tmp_path / "data" / "png" / GITIGNORE).read_bytes() == GITIGNORE_CONTENT
    assert (tmp_path / "data" / "png" / MARKER).read_text().startswith(MARKER_HEADER)


# where a tree may be written ------------------------------------------------------------------


@pytest.fixture
def export_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    zip_path = tmp_path / "png.zip"
    zip_path.write_bytes(export_of({"a.png": b"a"}))
    return zip_path


def refused_target(
    zip_path: Path, tree: Path, match: str, capsys: pytest.CaptureFixture[str], *, named: Path | None = None
) -> None:
    """Refused in one line, naming ``tree`` (or the path it ``named`` once read), by the command
    and by the library; nothing created or left beside."""
    before = snapshot(zip_path.parent)
    assert cli.main(["unpack", str(zip_path), str(tree)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mnist-pipeline: error: {named or tree}: ") and re.search(match, line), line
    with pytest.raises(PipelineError, match=match):
        unpack_zip(zip_path, tree)
    assert snapshot(zip_path.parent) == before


def test_an_existing_file_is_not_replaced(export_zip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (export_zip.parent / "notes.txt").write_text("mine")
    refused_target(export_zip, Path("notes.txt"), "expected a folder .*found a file; refusing to replace it", capsys)


@pytest.mark.parametrize("tree", ["notes.txt/tree", "notes.txt/../tree"])
def test_a_path_through_a_file_is_one_line(export_zip: Path, capsys: pytest.CaptureFixture[str], tree: str) -> None:
    (export_zip.parent / "notes.txt").write_text("mine")
    found = "expected folders to unpack into, found the file notes.txt on the way"
    refused_target(export_zip, Path(tree), found, capsys)
    assert (export_zip.parent / "notes.txt").read_text() == "mine"


def test_a_dangling_link_on_the_way_outside_the_working_directory_is_one_line(
    export_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside the working directory only the target itself is checked for links (the path is
    the user's choice); a link to nowhere on the way still gets its own line."""
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "gone").symlink_to(elsewhere / "missing")
    tree = elsewhere / "gone" / "tree"
    refused_target(export_zip, tree, f"found the dangling link {elsewhere / 'gone'} on the way", capsys)


def test_the_zip_itself_is_not_replaced(export_zip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_target(export_zip, Path("png.zip"), "found a file; refusing to replace it", capsys)


def test_a_folder_with_a_manifest_but_no_marker_is_not_replaced(
    export_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thesis = export_zip.parent / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    (thesis / "manifest.csv").write_text("path\n")
    refused_target(
        export_zip, Path("thesis"), f"expected an empty folder or a tree .*{MARKER}.*found other files", capsys
    )


@pytest.mark.parametrize("dest", [".", ".."])
def test_the_working_directory_is_not_replaced(export_zip: Path, dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    refused_target(export_zip, Path(dest), "found the working directory or a folder holding it", capsys)


def test_a_folder_holding_the_zip_is_not_replaced(export_zip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = export_zip.parent / "tree"
    assert unpack_zip(export_zip, tree) == 2
    inside = tree / "png.zip"
    inside.write_bytes(export_zip.read_bytes())
    refused_target(inside, Path("tree"), "expected a folder apart from the zip", capsys)


@pytest.mark.parametrize("where", ["tree", "data/tree"])
def test_links_on_the_way_are_refused(
    export_zip: Path, tmp_path_factory: pytest.TempPathFactory, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "tree").mkdir()
    (outside / "tree" / "precious.txt").write_text("not yours")
    link = export_zip.parent / Path(where).parts[0]
    link.symlink_to(outside / "tree" if where == "tree" else outside, target_is_directory=True)
    refused_target(export_zip, Path(where), "expected no symbolic link on the way", capsys)
    assert sorted(p.name for p in outside.rglob("*")) == ["precious.txt", "tree"]


@pytest.mark.parametrize(
    ("tree", "match"),
    [
        # The system reads `missing/..` only once `missing` is made, and then goes through the link.
        ("nosub/../linkdir/tree", "found nothing at nosub on the way"),
        ("linkdir/../tree", "expected no symbolic link before '..', found linkdir -> "),
        # A link further back: `linkdir/sub/..` is the link itself, and the next `..` its target's parent.
        ("linkdir/sub/../../tree", "expected no symbolic link before '..', found linkdir -> "),
        ("notes.txt/../linkdir/tree", "found the file notes.txt on the way"),
        ("notes.txt/a/../tree", "found the file notes.txt on the way"),
        # Back into the working directory from above: held to the rule for paths below it.
        ("../{cwd}/linkdir/tree", "expected no symbolic link on the way, found .*/linkdir -> "),
    ],
)
def test_dot_dots_do_not_hide_a_link(
    export_zip: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tree: str,
    match: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The link points one folder down, so that a write beside its target shows too.
    outside = tmp_path_factory.mktemp("outside")
    (outside / "inner" / "sub").mkdir(parents=True)
    (export_zip.parent / "linkdir").symlink_to(outside / "inner", target_is_directory=True)
    (export_zip.parent / "notes.txt").write_text("mine")
    given = Path(tree.format(cwd=export_zip.parent.name))
    named = Path("linkdir/tree") if given.parts[0] == ".." else None  # the path it reaches, once read
    refused_target(export_zip, given, match, capsys, named=named)
    assert sorted(str(path.relative_to(outside)) for path in outside.rglob("*")) == ["inner", "inner/sub"]


def test_dot_dots_through_real_folders_are_read_as_written(export_zip: Path) -> None:
    (export_zip.parent / "sub").mkdir()
    assert unpack_zip(export_zip, Path("sub/../tree")) == 2
    assert (export_zip.parent / "tree" / "a.png").read_bytes() == b"a"
    assert unpack_zip(export_zip, Path("..") / export_zip.parent.name / "sub" / "tree") == 2
    assert (export_zip.parent / "sub" / "tree" / "a.png").read_bytes() == b"a"


def test_a_missing_destination_and_an_earlier_tree_are_fine(export_zip: Path) -> None:
    assert unpack_zip(export_zip, Path("new/deep/tree")) == 2
    assert unpack_zip(export_zip, Path("new/deep/tree")) == 2  # ours: replaced
    (export_zip.parent / "empty").mkdir()
    assert unpack_zip(export_zip, Path("empty")) == 2


def test_a_refused_zip_leaves_no_folder_it_made(export_zip: Path) -> None:
    export_zip.write_bytes(npz_like())
    with pytest.raises(ArchiveError):
        unpack_zip(export_zip, Path("new/deep/tree"))
    broken = crafted_export([Crafted("a.png", b"pixels", crc=0)])
    export_zip.write_bytes(broken)
    with pytest.raises(ArchiveError, match="expected CRC-32"):
        unpack_zip(export_zip, Path("new/deep/tree"))
    assert sorted(path.name for path in export_zip.parent.iterdir()) == ["png.zip"]
