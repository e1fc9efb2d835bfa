"""Faults injected into real processes: a worker SIGKILLed mid-task, the driver SIGKILLed at
random points, the store's disk filling up, and a database on a network filesystem. After
each, nothing recorded is lost or corrupted and the run can be finished."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from drivers import start_provtask

from provtask import DAG, Store, task
from provtask.cli import main
from provtask.errors import StoreError
from provtask.store.doctor import check_store
from provtask.store.filesystem import (
    NetworkFilesystemWarning,
    filesystem_type,
    network_warning,
)


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- a worker killed mid-task ------------------------------------------------------------------
def test_a_worker_killed_mid_task_is_a_lost_attempt_then_retried_on_the_embedded_cluster(
    store_dir, tmp_path
):
    @task(retries=1)
    def victim(folder: str) -> str:
        pids = Path(folder) / "pids"
        with open(pids, "a") as file:
            file.write(f"{os.getpid()}\n")
        if len(pids.read_text().split()) == 1:
            time.sleep(120)  # the first attempt is killed here
        return "survived"

    with DAG("kill_worker") as dag:
        victim(str(tmp_path))

    handle = dag.submit(store=store_dir, n_workers=2)  # the embedded LocalCluster
    pids = tmp_path / "pids"
    wait_for(lambda: pids.exists() and pids.read_text().endswith("\n"))
    os.kill(int(pids.read_text().split()[0]), signal.SIGKILL)
    result = handle.result(timeout=120)

    assert result.ok and result["victim"] == "survived"
    attempts = Store(store_dir).attempts(result.run_id)
    assert list(attempts["status"]) == ["lost", "success"]
    assert attempts["exc_type"].iloc[0] == "distributed.scheduler.KilledWorker"
    # How the worker ended, not Dask's generic text.
    assert (
        attempts["exc_message"]
        .iloc[0]
        .startswith("its worker process was killed by signal 9 (SIGKILL)")
    )
    assert attempts["pid"].iloc[1] != int(pids.read_text().split()[0])


# -- the driver killed at random points --------------------------------------------------------
N = 40
CRASHING = f"""
import time
from provtask import DAG, task


@task
def work(i: int) -> bytes:
    time.sleep(0.15)
    return bytes([i]) * (100_000 if i % 2 else 100)  # odd: file artifacts, even: inline


@task
def total(values: list[bytes]) -> int:
    return sum(len(v) for v in values)


with DAG("driver_crash") as dag:
    total(work.map(list(range({N}))))
"""
TOTAL = sum(100_000 if i % 2 else 100 for i in range(N))


def provtask(*args: str, cwd: Path, store: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provtask.cli", *args, "--no-progress", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, "PROVTASK_STORE": str(store)},
    )


def committed_successes(store_dir: Path) -> int:
    """Successful attempts committed to the store so far, read as another process would."""
    database = store_dir / "provtask.db"
    if not database.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(
                "SELECT count(*) FROM attempts WHERE status = 'success'"
            ).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the schema is being created
        return 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_driver_killed_mid_run_loses_nothing_recorded(seed, tmp_path, store_dir):
    dag_file = tmp_path / "crash.py"
    dag_file.write_text(CRASHING)
    wanted = random.Random(seed).randint(1, N // 2)  # attempts committed before the kill
    driver = start_provtask(
        "run", str(dag_file), "--workers", "2", store=store_dir, cwd=tmp_path, own_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while committed_successes(store_dir) < wanted:
            assert driver.poll() is None and time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and its workers, without warning
        driver.wait()

    store = Store(store_dir)  # opens cleanly whatever the moment of the kill
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert {p.kind for p in check_store(store_dir).problems} <= {"orphan file"}
    [killed] = store.runs()["run_id"]
    attempts = store.attempts(killed)
    done = attempts[attempts["status"] == "success"]
    assert wanted <= len(done) < N  # killed mid-run: some attempts committed, some not
    recorded = {row.task_id: store.load_artifact(row.output_hash) for row in done.itertuples()}
    rows_before = attempts.drop(columns=["duration", "queue_wait"])

    finish = ("replay", killed) if seed % 2 else ("run", str(dag_file))
    finished = provtask(*finish, cwd=tmp_path, store=store_dir)

    assert finished.returncode == 0, finished.stderr
    last = store.runs().iloc[0]["run_id"]
    assert last != killed and store.output(last, "total") == TOTAL
    tasks = store.tasks(last)
    cached = set(tasks[(tasks["kind"] == "element") & (tasks["state"] == "cached")]["task_id"])
    assert cached == set(recorded)  # every recorded output reused, none computed again
    after = store.attempts(killed).drop(columns=["duration", "queue_wait"])
    assert after.equals(rows_before)  # no row of the killed run lost or changed
    for task_id, value in recorded.items():
        assert value == bytes([int(task_id[5:-1])]) * len(value)


# -- the disk fills up -------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (needs root, as in CI), unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr}")
        pytest.skip(f"cannot mount a tmpfs (run as root): {mounted.stderr}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_full_disk_is_a_clear_error_the_run_is_failed_and_the_store_intact(small_disk):
    @task
    def blob(i: int) -> bytes:
        time.sleep(0.1)
        return bytes([i % 256]) * 50_000  # inline: the database grows until the disk is full

    with DAG("fill_the_disk") as dag:
        blob.map(list(range(120)))
    root = small_disk / "store"

    with pytest.raises(StoreError, match=r"is full .*committed before is intact.*provtask replay"):
        dag.run(store=root, n_workers=2)

    store = Store(root)
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    run = store.run("latest")
    assert run["status"] == "failed" and "is full" in run["error"]
    attempts = store.attempts("latest")
    done = attempts[attempts["status"] == "success"]
    assert len(done) > 0  # batches committed before the disk filled are all there
    for row in done.itertuples():
        assert store.load_artifact(row.output_hash) == bytes([int(row.task_id[5:-1])]) * 50_000
    assert check_store(root).healthy

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    result = dag.run(store=root, n_workers=2)  # with space again, a rerun finishes the run
    assert result.ok
    assert (root / "provtask.db-reserve").stat().st_size == 256 * 1024  # room kept for next time
    states = store.tasks(result.run_id).set_index("task_id")["state"]
    assert (states[list(done["task_id"])] == "cached").all()


# -- a database on a network filesystem --------------------------------------------------------
def test_the_filesystem_type_comes_from_the_mount_table(small_disk):
    (small_disk / "deep" / "er").mkdir(parents=True)
    assert filesystem_type(small_disk / "deep" / "er") == "tmpfs"
    assert filesystem_type(small_disk.parent) != "tmpfs"


@pytest.fixture
def nfs_table(tmp_path) -> tuple[Path, Path]:
    """A mount table (as /proc/mounts writes it) where a folder is an NFS mount."""
    shared = tmp_path / "shared home"
    shared.mkdir()
    table = tmp_path / "mounts"
    table.write_text(
        "/dev/vda / ext4 rw,relatime 0 0\n"
        f"server:/export {str(shared).replace(' ', chr(92) + '040')} nfs4 rw,vers=4.2 0 0\n"
    )
    return shared, table


def test_a_database_on_nfs_is_warned_about_with_the_way_out(nfs_table, tmp_path):
    shared, table = nfs_table
    message = network_warning(shared / "store" / "provtask.db", mounts=table)
    assert "on a nfs4 filesystem" in message
    assert "PROVTASK_DATABASE=/local/path/provtask.db" in message
    assert network_warning(tmp_path / "store" / "provtask.db", mounts=table) is None


def test_opening_a_store_on_nfs_warns_once(nfs_table, monkeypatch):
    shared, table = nfs_table
    monkeypatch.setattr("provtask.store.filesystem.MOUNTS", table)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Store(shared / "store")
        Store(shared / "store")
    assert [type(w.message) for w in caught] == [NetworkFilesystemWarning]


def test_provtask_database_puts_the_database_on_local_disk(client, tmp_path, monkeypatch):
    local = tmp_path / "local" / "provtask.db"
    root = tmp_path / "shared" / "store"
    monkeypatch.setenv("PROVTASK_DATABASE", str(local))

    @task
    def big() -> bytes:
        return b"x" * 100_000

    with DAG("split") as dag:
        big()
    result = dag.run(client=client, store=root)

    assert local.is_file() and (local.stat().st_mode & 0o777) == 0o600
    assert not (root / "provtask.db").exists()
    assert [p.parent.parent.name for p in (root / "artifacts").rglob("*") if p.is_file()] == [
        "artifacts"
    ]
    shown = CliRunner().invoke(main, ["show", result.run_id, "--store", str(root)])
    assert shown.exit_code == 0 and "status success" in shown.output
    monkeypatch.delenv("PROVTASK_DATABASE")
    missing = CliRunner().invoke(main, ["runs", "--store", str(root)])
    assert missing.exit_code == 1 and "no provenance store" in missing.output
    assert sqlite3.connect(local).execute("SELECT count(*) FROM runs").fetchone()[0] == 1
