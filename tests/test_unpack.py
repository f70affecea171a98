"""unpack stage: a good zip becomes its tree; a hostile or broken one is refused with one line
naming the member, the previous tree stays as it was, and no scratch folder is left beside it."""

from __future__ import annotations

import re
import stat
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from mnist_pipeline import tree as tree_module
from mnist_pipeline import unpack, ziparchive
from mnist_pipeline.errors import ArchiveError
from mnist_pipeline.tree import unpack_zip
from tests.support.data import TinyDataset, params_for, write_params
from tests.support.zips import Crafted, craft_zip, zip_of

PREVIOUS = {"manifest.csv": b"previous tree\n", "train/0/0.png": b"old png"}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder holding a previous tree, as the stage finds it on a re-run."""
    write_tree(tmp_path / "tree", PREVIOUS)
    return tmp_path


def assert_refused(workspace: Path, archive: bytes, match: str) -> None:
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(archive)
    with pytest.raises(ArchiveError, match=match) as caught:
        unpack_zip(zip_path, workspace / "tree")
    assert str(caught.value).startswith(f"{zip_path}: ") and "\n" not in str(caught.value)
    assert read_tree(workspace / "tree") == PREVIOUS
    assert sorted(path.name for path in workspace.iterdir()) == ["in.zip", "tree"]


def test_unpacks_stored_deflated_and_large_members(workspace: Path) -> None:
    files = {
        "train/3/00001.png": b"\x89PNG one",
        "train/3/00002.png": b"\x89PNG two",
        "test/7/00000.png": b"",
        "big/streamed.bin": bytes(range(256)) * 20_000,  # 5 MB: above the read-whole size
        "manifest.csv": b"path,split,index,label\n",
    }
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(zip_of(files, zipfile.ZIP_DEFLATED))
    assert unpack_zip(zip_path, workspace / "tree") == len(files)
    assert read_tree(workspace / "tree") == files
    assert sorted(path.name for path in workspace.iterdir()) == ["in.zip", "tree"]


def test_main_reports_one_line_and_keeps_the_tree(
    workspace: Path, tiny: TinyDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    params = write_params(workspace / "conf", params_for(tiny, ["unused"]))
    zip_path = workspace / "in.zip"
    zip_path.write_bytes(craft_zip([Crafted("a.png"), Crafted("../../escape.png")]))
    args = ["--params", str(params), "--dataset", "mnist", str(zip_path), str(workspace / "tree")]
    assert unpack.main(args) == 1
    assert capsys.readouterr().err.strip() == (
        f"unpack@mnist: error: {zip_path}: refusing member '../../escape.png' (not a relative file path)"
    )
    assert read_tree(workspace / "tree") == PREVIOUS
    zip_path.write_bytes(zip_of({"a.png": b"new"}))
    assert unpack.main(args) == 0
    assert read_tree(workspace / "tree") == {"a.png": b"new"}
    assert "1 files -> " in capsys.readouterr().err


def test_encrypted_member_refused(workspace: Path) -> None:
    assert_refused(workspace, craft_zip([Crafted("ok.png"), Crafted("secret.png", flags=0x1)]), "'secret.png'.*encrypt")


@pytest.mark.parametrize("method", [12, 99])
def test_bzip2_and_aes_members_refused(workspace: Path, method: int) -> None:
    assert_refused(
        workspace, craft_zip([Crafted("ok.png"), Crafted("x.png", method=method)]), f"'x.png'.*method.*found {method}"
    )


def test_symlink_refused(workspace: Path) -> None:
    link = Crafted("link.png", b"/etc/passwd", external_attr=(stat.S_IFLNK | 0o777) << 16)
    assert_refused(workspace, craft_zip([Crafted("ok.png"), link]), "'link.png'.*symbolic link")


@pytest.mark.parametrize("name", ["/abs.png", "../up.png", "a/../../up.png"])
def test_escaping_names_refused(workspace: Path, name: str) -> None:
    assert_refused(workspace, craft_zip([Crafted("ok.png"), Crafted(name)]), f"refusing member '{name}'")
    assert not (workspace.parent / "up.png").exists() and not Path("/abs.png").exists()


def test_nul_in_name_refused(workspace: Path) -> None:
    assert_refused(workspace, craft_zip([Crafted(b"a\x00.png")]), r"'a\\x00.png'.*control characters")


def test_folder_entry_refused(workspace: Path) -> None:
    folder = Crafted("train/", b"", external_attr=((stat.S_IFDIR | 0o755) << 16) | 0x10)
    assert_refused(workspace, craft_zip([folder]), "'train/': expected files only, found a folder entry")


def test_deflate_bomb_refused(workspace: Path) -> None:
    content = bytes(30_000_000)
    bomb = Crafted("bomb.png", content, method=8, declared_size=100, crc=zlib.crc32(content[:100]))
    assert_refused(workspace, craft_zip([Crafted("ok.png"), bomb]), "'bomb.png': expected 100 bytes, found more")


def test_large_deflate_bomb_refused_while_streaming(workspace: Path) -> None:
    content = bytes(30_000_000)
    bomb = Crafted("bomb.png", content, method=8, declared_size=2_000_000, crc=zlib.crc32(content[:2_000_000]))
    assert_refused(workspace, craft_zip([bomb]), "'bomb.png': expected 2000000 bytes, found more")


def test_declared_size_larger_than_actual_refused(workspace: Path) -> None:
    short = Crafted("short.png", b"x" * 100, method=8, declared_size=150)
    assert_refused(workspace, craft_zip([short]), "'short.png': expected 150 bytes, found 100")


def test_crc_mismatch_refused(workspace: Path) -> None:
    assert_refused(workspace, craft_zip([Crafted("bad.png", b"pixels", crc=0)]), "'bad.png': expected CRC-32 00000000")


def test_truncated_zip_refused(workspace: Path) -> None:
    data = zip_of({"a.png": b"a" * 100, "b.png": b"b" * 100})
    assert_refused(workspace, data[: len(data) // 2], "expected an end of central directory record")


def test_member_count_over_the_limit_refused(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_module, "MAX_MEMBERS", 3)
    assert_refused(workspace, zip_of({f"{i}.png": b"" for i in range(4)}), "expected at most 3 members, found 4")


def test_total_size_over_the_limit_refused(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_module, "MAX_TOTAL_BYTES", 250)
    files = {"a.png": b"a" * 100, "b.png": b"b" * 100, "c.png": b"c" * 100}
    assert_refused(workspace, zip_of(files), "refusing member 'c.png': expected at most 250 bytes in all")


def test_expansion_over_the_limit_refused(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree_module, "MAX_EXPANSION", 10)
    archive = zip_of({"small.png": b"x" * 10, "zeros.png": bytes(100_000)}, zipfile.ZIP_DEFLATED)
    assert_refused(workspace, archive, f"refusing member 'zeros.png': expected at most {10 * len(archive):,} bytes")


def test_zip64_members_unpack(workspace: Path) -> None:
    zip_path = workspace / "in.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        with archive.open("a/forced.png", "w", force_zip64=True) as member:
            member.write(b"forced zip64")
        archive.writestr("b.png", b"plain")
    zip_path_crafted = workspace / "crafted.zip"
    zip_path_crafted.write_bytes(craft_zip([Crafted("c/d.png", b"zip64 extra", zip64=True)], zip64_end=True))
    assert unpack_zip(zip_path, workspace / "tree") == 2
    assert read_tree(workspace / "tree") == {"a/forced.png": b"forced zip64", "b.png": b"plain"}
    assert unpack_zip(zip_path_crafted, workspace / "tree") == 1
    assert read_tree(workspace / "tree") == {"c/d.png": b"zip64 extra"}


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
    assert_refused(workspace, craft_zip([Crafted(name) for name in names]), match)


def test_missing_zip_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        unpack_zip(tmp_path / "absent.zip", tmp_path / "tree")
    assert list(tmp_path.iterdir()) == []


def peak_memory_of_unpack(tmp_path: Path, count: int) -> int:
    zip_path = tmp_path / f"{count}.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for index in range(count):
            archive.writestr(f"{index % 10}/{index:06d}.png", b"p")
    tracemalloc.start()
    try:
        assert unpack_zip(zip_path, tmp_path / f"tree{count}") == count
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_member_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Directory chunks of 16 KiB: both zips (116 KB and 1.2 MB of central directory) fill
    # several, so what is left to differ is anything held per member.
    monkeypatch.setattr(ziparchive, "DIRECTORY_CHUNK", 1 << 14)
    few = peak_memory_of_unpack(tmp_path, 2_000)
    many = peak_memory_of_unpack(tmp_path, 20_000)
    # Holding a ZipInfo-sized object per member would add about 4 MB for the 18,000 more.
    assert few < 2 << 20, few
    assert many < 2 << 20, many
