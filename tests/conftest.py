"""Shared fixtures: a tiny but valid MNIST-shaped dataset and a loopback mirror serving it.
The builders behind them live in tests/support/ (benchmarks use them too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.data import TinyDataset, make_tiny_dataset
from tests.support.faultserver import FaultServer, serve


@pytest.fixture(autouse=True)
def _in_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in a folder of its own, as a stage runs in its repository: a stage writes
    only below ``data/`` of its working directory (``fsio.stage_output``), and no test can write
    into the project's checkout by accident."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny() -> TinyDataset:
    return make_tiny_dataset({"train": 60, "test": 20})


@pytest.fixture
def mirror(tiny: TinyDataset) -> Iterator[FaultServer]:
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        yield server
