"""Provenance archives that cannot be trusted: importing checks everything, then lands all or
nothing. Runs are real (the local cluster); archives are tampered with as zip files."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from provtask import Store
from provtask.errors import IntegrityError, StoreError
from provtask.sharing.archive import export_archive
from provtask.store.archive import LOCAL_TABLES, MANIFEST, import_archive, store_tables, table_plans
from provtask.store.artifacts import digest
from provtask.store.schema import SCHEMA_VERSION

pytestmark = pytest.mark.timeout(120)


DAG_FILE = """
from provtask import DAG, task

@task
def big(n: int) -> bytes:
    return bytes(n)  # larger than INLINE_LIMIT: an artifact file

@task
def boom(data: bytes) -> int:
    raise ValueError(f"cannot use {len(data)} bytes")

with DAG("archived") as dag:
    boom(big(200_000))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, client) -> dict:
    """A run with an artifact file and a failed task, exported to an archive."""
    import provtask

    root = tmp_path_factory.mktemp("archive")
    (root / "archived.py").write_text(DAG_FILE)
    dag = provtask.load_dag_file(root / "archived.py")
    result = dag.run(store=root / "store", client=client)
    store = Store(root / "store")
    export_archive(store, [result.run_id], root / "run.zip")
    return {"root": root, "run_id": result.run_id, "store": store, "archive": root / "run.zip"}


def rewrite(source: Path, target: Path, change) -> Path:
    """A copy of an archive with ``change(name, data) -> data | None`` applied to each member
    (None drops it)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = change(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return target


def nothing_imported(store: Store) -> bool:
    counts = [
        store.conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
        for t in store_tables(store.conn)
    ]
    files = [p for p in (store.root / "artifacts").rglob("*") if p.is_file()]
    return sum(counts) == 0 and not files


def test_every_table_of_the_schema_travels_or_is_local_to_a_store(exported):
    conn = exported["store"].conn
    assert conn.execute("SELECT count(*) FROM artifacts WHERE path IS NOT NULL").fetchone()[0]
    planned = {plan.table for plan in table_plans(conn)}
    assert planned | LOCAL_TABLES == set(store_tables(conn))
    with zipfile.ZipFile(exported["archive"]) as archive:
        manifest = json.loads(archive.read(MANIFEST))
    assert set(manifest["tables"]) == planned
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["runs"] == [exported["run_id"]]


def test_an_artifact_whose_bytes_changed_is_refused_and_nothing_lands(exported, tmp_path):
    def corrupt(name: str, data: bytes) -> bytes:
        return bytes([data[0] ^ 1]) + data[1:] if name.startswith("artifacts/") else data

    archive = rewrite(exported["archive"], tmp_path / "bad.zip", corrupt)
    store = Store(tmp_path / "store")
    with pytest.raises(IntegrityError, match=r"is corrupted .* nothing was imported"):
        import_archive(store, archive)
    assert nothing_imported(store)


def test_a_pickle_is_never_loaded_on_import(exported, tmp_path):
    """An artifact whose recorded hash matches its (malicious) bytes lands unread: importing
    never unpickles, and loading it later is the store's hash-checked load."""
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = pickle.dumps(Payload())
    evil_hash = digest(evil)
    with zipfile.ZipFile(exported["archive"]) as archive:
        rows = [json.loads(line) for line in archive.read("tables/artifacts.jsonl").splitlines()]
    victim = rows[0]["hash"]

    def swap(name: str, data: bytes) -> bytes | None:
        text = data.replace(victim.encode(), evil_hash.encode())
        if name == f"artifacts/{victim}":
            return None
        if name == MANIFEST:
            manifest = json.loads(text)
            manifest["artifacts"][evil_hash] = len(evil)
            return json.dumps(manifest).encode()
        if name == "tables/artifacts.jsonl":
            lines = [json.loads(line) for line in text.splitlines()]
            for line in lines:
                if line["hash"] == evil_hash:
                    line["size"] = len(evil)
            return "\n".join(json.dumps(line) for line in lines).encode()
        return text

    archive = rewrite(exported["archive"], tmp_path / "evil.zip", swap)
    with zipfile.ZipFile(archive, "a") as patched:
        patched.writestr(f"artifacts/{evil_hash}", evil)
    store = Store(tmp_path / "store")
    import_archive(store, archive)
    assert not marker.exists()


def test_an_archive_of_a_newer_schema_is_refused(exported, tmp_path):
    def newer(name: str, data: bytes) -> bytes:
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        manifest["schema_version"] = SCHEMA_VERSION + 1
        return json.dumps(manifest).encode()

    archive = rewrite(exported["archive"], tmp_path / "newer.zip", newer)
    store = Store(tmp_path / "store")
    with pytest.raises(StoreError, match=f"newer than this one \\({SCHEMA_VERSION}\\); upgrade"):
        import_archive(store, archive)
    assert nothing_imported(store)


def test_a_run_the_store_already_has_is_refused(exported, tmp_path):
    store = Store(tmp_path / "store")
    import_archive(store, exported["archive"])
    before = store.conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
    with pytest.raises(StoreError, match=f"already has run\\(s\\) {exported['run_id']}"):
        import_archive(store, exported["archive"])
    assert store.conn.execute("SELECT count(*) FROM attempts").fetchone()[0] == before


def test_a_failure_while_inserting_rows_leaves_nothing_behind(exported, tmp_path):
    """A row that breaks the last table's insert (a duplicate key) rolls back every table,
    and the artifact files written for the import are removed."""

    def duplicate_edge(name: str, data: bytes) -> bytes:
        if name == "tables/edges.jsonl":
            first = data.splitlines()[0]
            return data + first + b"\n"
        if name == MANIFEST:
            manifest = json.loads(data)
            manifest["tables"]["edges"] += 1
            return json.dumps(manifest).encode()
        return data

    archive = rewrite(exported["archive"], tmp_path / "dup.zip", duplicate_edge)
    store = Store(tmp_path / "store")
    with pytest.raises(StoreError, match="nothing was imported"):
        import_archive(store, archive)
    assert nothing_imported(store)


def test_what_is_not_an_archive_says_so(tmp_path):
    (tmp_path / "notes.zip").write_text("not a zip")
    with pytest.raises(StoreError, match=r"cannot read .*notes\.zip as a provtask archive"):
        import_archive(Store(tmp_path / "store"), tmp_path / "notes.zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as other:
        other.writestr("README", "hello")
    with pytest.raises(StoreError, match="is not a provtask archive"):
        import_archive(Store(tmp_path / "store"), tmp_path / "other.zip")


def test_the_cli_exports_and_imports_and_refuses_a_second_import(exported, tmp_path):
    cli = [sys.executable, "-m", "provtask.cli"]
    archive = tmp_path / "cli.zip"
    store = str(exported["root"] / "store")
    done = subprocess.run(
        [*cli, "export", exported["run_id"], "--archive", str(archive), "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    into = str(tmp_path / "colleague")
    first = subprocess.run(
        [*cli, "import", str(archive), "--store", into], capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0 and f"imported run(s) {exported['run_id']}" in first.stdout
    second = subprocess.run(
        [*cli, "import", str(archive), "--store", into], capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1 and "already has run(s)" in second.stderr
    both = subprocess.run(
        [*cli, "export", "latest", "--store", store], capture_output=True, text=True, timeout=60
    )
    assert both.returncode == 2 and "give exactly one of --parquet" in both.stderr
