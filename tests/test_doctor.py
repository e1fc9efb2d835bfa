"""`provtask doctor` on real stores damaged the ways disks and people damage them: missing,
corrupted and orphan artifact files, tampered inline bytes, dead runs, truncated and
overwritten databases. Checking changes nothing; --repair does what each problem says."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from provtask import DAG, Store, task
from provtask.cli import main
from provtask.errors import IntegrityError, NotFoundError, StoreError
from provtask.store.connection import DB_NAME
from provtask.store.doctor import check_store


def make_dag() -> DAG:
    @task
    def big(i: int) -> bytes:
        return bytes([i]) * 100_000  # over 64 KiB: a file artifact

    @task
    def small(i: int) -> int:
        return i * i  # stored inline

    with DAG("doctor") as dag:
        big.map([1, 2])
        small.map([1, 2, 3])
    return dag


@pytest.fixture
def store(client, store_dir) -> Store:
    assert make_dag().run(client=client, store=store_dir).ok
    return Store(store_dir)


def doctor(store: Store, *args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", "--store", str(store.root), *args])


def output_hash(store: Store, task_id: str) -> str:
    return store.tasks("latest").set_index("task_id").loc[task_id, "output_hash"]


def artifact_file(store: Store, task_id: str) -> Path:
    hash_ = output_hash(store, task_id)
    return store.root / "artifacts" / hash_[:2] / hash_


def snapshot(store: Store) -> tuple[list[str], dict[str, bytes]]:
    """Every row of the database and every file under artifacts/."""
    conn = sqlite3.connect(store.root / DB_NAME)
    rows = list(conn.iterdump())
    conn.close()
    files = {
        str(p.relative_to(store.root)): p.read_bytes()
        for p in (store.root / "artifacts").rglob("*")
        if p.is_file()
    }
    return rows, files


def checkpoint(store: Store) -> None:
    """Move every committed page from the WAL into the database file."""
    conn = sqlite3.connect(store.root / DB_NAME)
    assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    conn.close()


def test_a_healthy_store_passes_and_counts_what_it_checked(store):
    answer = doctor(store)
    n_artifacts = store.conn.execute("SELECT count(*) FROM artifacts").fetchone()[0]
    assert answer.exit_code == 0, answer.output
    assert "no problems found" in answer.output
    assert f"artifacts {n_artifacts}, files 2, runs 1" in answer.output


def test_a_missing_artifact_file_is_reported_without_changing_anything(client, store):
    file = artifact_file(store, "big[0]")
    file.unlink()
    with pytest.raises(NotFoundError, match="is missing from the store"):
        store.output("latest", "big[0]")
    before = snapshot(store)

    answer = doctor(store)

    assert answer.exit_code == 1
    assert f"missing artifact {file.name}: file {file} is missing" in answer.output
    assert snapshot(store) == before
    assert doctor(store, "--repair").exit_code == 1  # nothing to repair: it must be recomputed
    assert make_dag().run(client=client, store=store.root).ok  # the next run recomputes it
    assert doctor(store).exit_code == 0
    assert store.output("latest", "big[0]") == bytes([1]) * 100_000


def test_a_corrupted_file_artifact_is_refused_then_repaired(client, store):
    file = artifact_file(store, "big[1]")
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="corrupted"):
        store.output("latest", "big[1]")

    found = doctor(store)
    assert found.exit_code == 1
    assert f"corrupted artifact {file.name}" in found.output
    assert "--repair will delete the file" in found.output
    assert file.read_bytes() == bytes(data)  # checking changed nothing

    repaired = doctor(store, "--repair")
    assert f"repaired corrupted artifact {file.name}" in repaired.output
    assert not file.exists()
    result = make_dag().run(client=client, store=store.root)
    assert result.states["big[1]"].value == "success"  # recomputed, not taken from the cache
    assert doctor(store).exit_code == 0
    assert store.output("latest", "big[1]") == bytes([2]) * 100_000


def test_tampered_inline_bytes_are_refused_and_repair_drops_the_row(store):
    hash_ = output_hash(store, "small[2]")
    store.conn.execute("UPDATE artifacts SET data = ? WHERE hash = ?", (b"\x80\x04K\x00.", hash_))
    with pytest.raises(IntegrityError):
        store.output("latest", "small[2]")

    assert f"corrupted artifact {hash_}: its inline bytes" in doctor(store).output
    assert doctor(store, "--repair").exit_code == 0
    with pytest.raises(NotFoundError):
        store.output("latest", "small[2]")
    assert store.output("latest", "small[1]") == 4  # healthy rows untouched


def test_orphan_files_and_leftover_temporary_files_are_found_and_removed(store):
    orphan = store.root / "artifacts" / "ab" / ("ab" + "0" * 62)
    leftover = artifact_file(store, "big[0]").parent / ".tmp-k2j3h4"
    orphan.parent.mkdir()
    orphan.write_bytes(b"from a run whose driver died")
    leftover.write_bytes(b"half a write")

    found = doctor(store)
    assert found.exit_code == 1
    assert "orphan file artifacts/ab/ab000" in found.output
    assert "a temporary file left by an interrupted write" in found.output
    assert orphan.exists() and leftover.exists()

    assert doctor(store, "--repair").exit_code == 0
    assert not orphan.exists() and not leftover.exists()
    assert store.output("latest", "big[0]") == bytes([1]) * 100_000
    assert doctor(store).output.endswith("no problems found\n")


def stop_heartbeat(store: Store, beat: float) -> str:
    """Make the run look as if its driver were still (or last) alive at ``beat``."""
    run_id = store.resolve_run("latest")
    store.conn.execute(
        "UPDATE runs SET status = 'running', ended_at = NULL, heartbeat_at = ?", (beat,)
    )
    store.conn.execute("UPDATE tasks SET state = 'running' WHERE task_id = 'small[0]'")
    store.conn.execute("UPDATE attempts SET status = 'running' WHERE task_id = 'small[0]'")
    return run_id


def test_a_dead_run_is_reported_and_repair_records_it_as_interrupted(store):
    run_id = stop_heartbeat(store, time.time() - 3600)

    found = doctor(store)
    assert found.exit_code == 1
    assert f"dead run {run_id}: recorded as running" in found.output
    assert store.conn.execute("SELECT status FROM runs").fetchone()[0] == "running"

    assert doctor(store, "--repair").exit_code == 0
    run = store.run(run_id)
    assert run["status"] == "interrupted" and "provtask doctor --repair" in run["error"]
    tasks = store.tasks(run_id).set_index("task_id")["state"]
    assert tasks["small[0]"] == "cancelled" and tasks["small[1]"] == "success"
    attempts = store.attempts(run_id).set_index("task_id")
    assert attempts.loc["small[0]", "status"] == "lost"
    assert attempts.loc["small[1]", "status"] == "success"


def test_repair_is_refused_while_a_run_is_alive(store):
    stop_heartbeat(store, time.time())
    orphan = store.root / "artifacts" / ".tmp-being-written"
    orphan.write_bytes(b"a worker is writing this")

    answer = doctor(store, "--repair")

    assert answer.exit_code == 1
    assert "is in progress; repair the store when no run is going on" in answer.output
    assert orphan.exists()


def test_a_truncated_database_is_a_clear_error_everywhere(store):
    checkpoint(store)
    database = store.root / DB_NAME
    with open(database, "r+b") as file:
        file.truncate(database.stat().st_size // 2)

    with pytest.raises(StoreError, match=r"malformed.*provtask doctor --store"):
        Store(store.root)
    runs = CliRunner().invoke(main, ["runs", "--store", str(store.root)])
    assert runs.exit_code == 1 and "Traceback" not in runs.output
    answer = doctor(store)
    assert answer.exit_code == 1
    assert f"database {database}: SQLite cannot read it" in answer.output
    assert f"sqlite3 {database} .recover" in answer.output


def test_an_overwritten_page_is_found_by_the_integrity_check(store):
    checkpoint(store)
    page = store.conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
    size = store.conn.execute("PRAGMA page_size").fetchone()[0]
    with open(store.root / DB_NAME, "r+b") as file:
        file.seek((page[0] - 1) * size)  # the first page of the runs table
        file.write(os.urandom(size))

    assert [p.kind for p in check_store(store.root).problems] == ["database"]
    shown = CliRunner().invoke(main, ["show", "latest", "--store", str(store.root)])
    assert shown.exit_code == 1
    assert "the store database is damaged" in shown.output and "Traceback" not in shown.output


def test_an_emptied_database_is_not_silently_replaced_by_a_new_store(store):
    (store.root / DB_NAME).write_bytes(b"")
    for sidecar in ("-wal", "-shm"):
        (store.root / (DB_NAME + sidecar)).unlink(missing_ok=True)

    with pytest.raises(StoreError, match=r"is empty \(0 bytes\).*truncated"):
        Store(store.root)
    problems = check_store(store.root).problems
    assert [p.kind for p in problems] == ["schema"] and "truncated" in problems[0].detail


def test_a_newer_schema_is_reported(store):
    store.conn.execute("PRAGMA user_version = 999")
    answer = doctor(store)
    assert answer.exit_code == 1 and "schema version 999 is newer" in answer.output


def test_json_lists_problems_with_their_repairs(store):
    artifact_file(store, "big[0]").unlink()
    report = json.loads(doctor(store, "--json").output)
    assert report["checked"]["runs"] == 1
    assert [(p["kind"], p["repair"]) for p in report["problems"]] == [("missing artifact", "")]


def test_a_store_that_does_not_exist(tmp_path):
    answer = CliRunner().invoke(main, ["doctor", "--store", str(tmp_path / "nowhere")])
    assert answer.exit_code == 1 and "no provenance store" in answer.output
