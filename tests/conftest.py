"""Shared fixtures: a tiny but valid MNIST-shaped dataset and a loopback mirror serving it.
The builders behind them live in tests/support/ (benchmarks use them too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.data import TinyDataset, make_tiny_dataset
from tests.support.faultserver import FaultServer, serve


@pytest.fixture(scope="session")
def tiny() -> TinyDataset:
    return make_tiny_dataset({"train": 60, "test": 20})


@pytest.fixture
def mirror(tiny: TinyDataset) -> Iterator[FaultServer]:
    with serve(FaultServer(files=dict(tiny.archives))) as server:
        yield server
