"""Shared fixtures: one real LocalCluster for the engine tests, fresh stores per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask
import pytest

import provtask

DAGS = Path(__file__).parent / "dags"


@pytest.fixture(scope="session")
def client() -> Iterator[object]:
    """Two single-threaded worker processes, configured like provtask's embedded default."""
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as session_client,
    ):
        yield session_client


@pytest.fixture
def own_client() -> Iterator[object]:
    """Two workers of the test's own, for tests that kill workers: the nanny's replacement
    may take long to arrive on a busy machine, and no later test waits for it."""
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as own,
    ):
        yield own


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def load_dag():
    """Load a DAG file from tests/dags by stem."""

    def load(stem: str, name: str | None = None) -> provtask.DAG:
        return provtask.load_dag_file(DAGS / f"{stem}.py", name)

    return load
