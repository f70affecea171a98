"""Sharing: push from one clone, pull into a fresh clone through a local directory, an S3
endpoint and an SSH server (all real, all on loopback), and consume pinned artifacts from
another repository with `dvc import` / `dvc update` and `dvc.api`."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import dvc.api
import pytest
import yaml

from tests.support.data import TinyDataset, add_tiny_dataset_config, sha256_tree
from tests.support.faultserver import FaultServer, serve
from tests.support.remotes import configure_remote, s3_server, ssh_server, sshd_available
from tests.support.repos import make_repo, run

pytestmark = pytest.mark.slow
NPZ = "data/tiny/export/npz/tiny.npz"
PNG_ZIP = "data/tiny/export/png/images.zip"


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, tiny: TinyDataset) -> Iterator[Path]:
    """A repository whose tiny pipeline ran and was committed, as a team member leaves it."""
    root = tmp_path_factory.mktemp("sharing")
    repo = make_repo(root / "source")
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        add_tiny_dataset_config(repo, tiny, mirrors=[server.url])
        run(repo, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", "trees=[png]")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "tiny pipeline ran")
    yield repo


def share(
    source: Path,
    clone: Path,
    name: str,
    url: str,
    *,
    options: dict[str, str] | None = None,
    local: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Push ``source`` to a remote, pull it into a fresh clone, finish the clone; return the output.

    Every artifact must arrive byte-identical, and the only stage left to run is the cheap
    local one the README names (unpacking the PNG tree from the pulled zip).
    """
    configure_remote(source, name, url, options or {}, local or {})
    pushed = run(source, "dvc", "push", "-r", name, extra_env=env)
    run(clone.parent, "git", "clone", "-q", str(source), str(clone))
    configure_remote(clone, name, url, options or {}, local or {})
    pulled = run(clone, "dvc", "pull", "-r", name, extra_env=env)
    status = run(clone, "dvc", "status").stdout
    assert "unpack@tiny-png" in status and "export_png@tiny" not in status and "decode" not in status
    repro = run(clone, "dvc", "repro")
    assert [stage for stage in stages_run(repro.stdout) if stage != "check"] == ["unpack@tiny-png"]
    assert run(clone, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    assert sha256_tree(clone / "data") == sha256_tree(source / "data")
    return "".join((pushed.stdout, pushed.stderr, pulled.stdout, pulled.stderr, repro.stdout, repro.stderr))


def test_local_directory_remote_round_trip(source: Path, tmp_path: Path) -> None:
    share(source, tmp_path / "clone", "shared-drive", str(tmp_path / "store"))


def test_s3_remote_round_trip_keeps_credentials_out(source: Path, tmp_path: Path) -> None:
    with s3_server(tmp_path) as endpoint:
        endpoint.create_bucket("team-data")
        output = share(
            source,
            tmp_path / "clone",
            "s3",
            "s3://team-data/mnist",
            options={"endpointurl": endpoint.url},
            env=endpoint.environment(),
        )
    clone_config = (tmp_path / "clone" / ".dvc" / "config").read_text()
    for text in (output, clone_config, (source / ".dvc" / "config").read_text()):
        assert endpoint.secret_key not in text and endpoint.access_key not in text


def test_ssh_remote_round_trip(source: Path, tmp_path: Path) -> None:
    reason = sshd_available()
    if reason:
        pytest.skip(f"SSH remote not tested: {reason}")
    with ssh_server(tmp_path) as endpoint:
        url = f"ssh://{endpoint.user}@{endpoint.host}:{endpoint.port}{tmp_path / 'ssh-store'}"
        share(source, tmp_path / "clone", "ssh", url, local={"keyfile": str(endpoint.key_file)})
    assert str(endpoint.key_file) not in (tmp_path / "clone" / ".dvc" / "config").read_text()
    assert (tmp_path / "ssh-store" / "files" / "md5").is_dir()


# Team repositories. These tests tag and extend the source repository, so they run last.


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_import_pins_a_version_and_update_moves_it(source: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run(source, "dvc", "remote", "add", "-d", "-f", "team", str(store))
    run(source, "git", "commit", "-q", "-am", "default remote: team")
    run(source, "dvc", "push")
    run(source, "git", "tag", "v1")
    v1 = (source / NPZ).read_bytes()
    run(source, "dvc", "exp", "run", "-S", "dataset=tiny", "-S", "export.npz.validation_size=10")
    run(source, "git", "commit", "-q", "-am", "npz with a validation split")
    run(source, "dvc", "push")
    run(source, "git", "tag", "v2")
    v2 = (source / NPZ).read_bytes()
    assert v1 != v2

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    run(consumer, "git", "init", "-q")
    run(consumer, "dvc", "init", "-q")
    (consumer / "data").mkdir()
    run(consumer, "dvc", "import", str(source), NPZ, "-o", "data/mnist.npz", "--rev", "v1")
    assert (consumer / "data/mnist.npz").read_bytes() == v1
    assert "rev: v1" in (consumer / "data/mnist.npz.dvc").read_text()
    run(consumer, "dvc", "update", "--rev", "v2", "data/mnist.npz.dvc")
    assert (consumer / "data/mnist.npz").read_bytes() == v2
    assert "rev: v2" in (consumer / "data/mnist.npz.dvc").read_text()

    # The PNG tree, as the README says: import its zip, unpack it with one command.
    run(consumer, "dvc", "import", str(source), PNG_ZIP, "-o", "data/png.zip", "--rev", "v1")
    run(consumer, "mnist-pipeline", "unpack", "data/png.zip", "data/png")
    assert sha256_tree(consumer / "data/png") == sha256_tree(source / "data/tiny/export/images")

    assert dvc.api.read(NPZ, repo=str(source), rev="v1", mode="rb") == v1
    with dvc.api.open(NPZ, repo=str(source), rev="v2", mode="rb") as handle:
        assert handle.read() == v2


def test_queued_experiments_run_in_parallel_and_are_pushed(source: Path, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    run(tmp_path, "git", "init", "-q", "--bare", str(origin))
    run(source, "git", "remote", "add", "origin", str(origin))
    run(source, "git", "push", "-q", "origin", "HEAD:main")
    overrides = ["-S", "dataset=tiny", "-S", "export.npz.dtype=float32", "-S", "export.npz.scale=unit,standardize"]
    queued = run(source, "dvc", "exp", "run", "--queue", *overrides)
    assert queued.stdout.count("Queued experiment") == 2
    run(source, "dvc", "queue", "start", "-j", "2")
    wait_for_queue(source)
    names = run(source, "dvc", "exp", "list", "--name-only").stdout.split()
    assert len(names) == 2
    run(source, "dvc", "exp", "push", "origin", *names)
    default = run(source, "dvc", "remote", "default").stdout.strip()
    store = Path(run(source, "dvc", "config", f"remote.{default}.url").stdout.strip())
    scales = set()
    for name in names:
        run(source, "dvc", "exp", "apply", name)
        scales.add(json_param(source, "export.npz.scale"))
        digest = file_md5(source / NPZ)
        assert (store / "files" / "md5" / digest[:2] / digest[2:]).is_file(), f"{name}: npz not pushed"
    assert scales == {"unit", "standardize"}
    assert run(tmp_path, "git", "ls-remote", str(origin), "refs/exps/*").stdout.count("refs/exps/") >= 2


def wait_for_queue(repo: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(repo, "dvc", "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            assert "Failed" not in status, status
            return
        time.sleep(1)
    raise AssertionError(f"queue still busy after {timeout} s:\n{status}")


def json_param(repo: Path, dotted: str) -> object:
    node: object = yaml.safe_load((repo / "params.yaml").read_text())
    for part in dotted.split("."):
        assert isinstance(node, dict)
        node = node[part]
    return node
