"""The provenance store on real SQLite: creation, migrations, the batched writer, WAL readers,
content-addressed artifacts and queries."""

from __future__ import annotations

import contextlib
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlite_utils

from provtask import IntegrityError, NotFoundError, Store, StoreError
from provtask.store import StoreWriter
from provtask.store import schema as schema_module
from provtask.store.artifacts import (
    INLINE_LIMIT,
    ArtifactFiles,
    check_hash,
    digest,
    make_artifact,
    preview,
    serialize,
)
from provtask.store.connection import DB_NAME, connect
from provtask.store.schema import SCHEMA_VERSION

TABLES = {"runs", "tasks", "attempts", "workers", "edges", "artifacts"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path):
    opened = Store(root)
    yield opened
    opened.close()


@pytest.fixture
def writer(store: Store):
    opened = store.writer()
    yield opened
    with contextlib.suppress(StoreError):
        opened.close()


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def raw(root: Path) -> sqlite3.Connection:
    """A plain second connection, as another process (or a notebook) would open."""
    return sqlite3.connect(root / DB_NAME, timeout=5)


def count(root: Path, table: str) -> int:
    conn = raw(root)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def run_row(run_id: str, started_at: float = 1.0, **extra) -> dict:
    return {
        "run_id": run_id,
        "dag_name": "demo",
        "params": "{}",
        "status": "success",
        "started_at": started_at,
        **extra,
    }


def task_row(run_id: str, task_id: str, **extra) -> dict:
    return {
        "run_id": run_id,
        "task_id": task_id,
        "name": task_id.split("[")[0],
        "kind": "call",
        "state": "success",
        **extra,
    }


# -- creation and schema -----------------------------------------------------------------------
def test_new_store_is_private_even_with_a_permissive_umask(tmp_path):
    root = tmp_path / "deep" / "store"
    with umask(0o000):
        store = Store(root)
        store.writer().close()  # a write creates the WAL files too
        files = ArtifactFiles(root)
        relative = files.write(digest(b"data"), b"data")
    try:
        assert mode(root) == 0o700
        assert mode(root / DB_NAME) == 0o600
        for suffix in ("-wal", "-shm"):
            sidecar = root / (DB_NAME + suffix)
            if sidecar.exists():
                assert mode(sidecar) == 0o600
        assert mode(root / relative) == 0o600
        assert mode((root / relative).parent) == 0o700
        assert mode(root / "artifacts") == 0o700
    finally:
        store.close()


def test_new_store_in_an_existing_open_folder_is_made_private(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    root.chmod(0o755)
    (root / "README.md").write_text("notes")
    Store(root).close()
    assert mode(root) == 0o700
    assert mode(root / DB_NAME) == 0o600
    assert mode(root / "artifacts") == 0o700
    assert (root / "README.md").read_text() == "notes"


def test_store_root_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store("relative")
    try:
        assert store.root == tmp_path / "relative"
        assert store.root.is_absolute()
    finally:
        store.close()


def test_new_store_has_the_current_schema_in_wal_mode(store, root):
    conn = raw(root)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert TABLES.issubset(tables)
    finally:
        conn.close()


def test_a_new_store_has_the_schema_its_migrations_build_one_by_one(root, tmp_path):
    """New stores get the latest schema in one step; a store made by the first migration
    and upgraded by each of the others ends up with exactly the same tables and indexes."""
    Store(root).close()
    old = tmp_path / "old"
    old.mkdir()
    conn = sqlite3.connect(old / DB_NAME)
    conn.execute("PRAGMA journal_mode = WAL")
    schema_module.MIGRATIONS[0](sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    Store(old).close()

    def schema_of(folder):
        conn = raw(folder)
        try:
            query = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            return conn.execute(query).fetchall()
        finally:
            conn.close()

    assert schema_of(root) == schema_of(old)
    assert len(schema_of(root)) > len(TABLES)


def test_reopening_keeps_data_and_does_not_migrate_again(store, root, writer):
    writer.insert("runs", run_row("r1"))
    writer.close()
    again = Store(root, create=False)
    try:
        assert again.resolve_run("r1") == "r1"
        assert again.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        again.close()


def test_missing_store_is_not_created_when_create_is_false(tmp_path):
    with pytest.raises(NotFoundError, match="no provenance store"):
        Store(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_store_with_a_newer_schema_is_refused(store, root):
    store.close()
    conn = raw(root)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this provtask understands") as info:
        Store(root)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value)
    assert "upgrade provtask" in str(info.value)
    conn = raw(root)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1  # untouched
    conn.close()


def test_a_failing_migration_is_rolled_back(root, monkeypatch):
    Store(root).close()

    def broken(db):
        db["extra"].create({"a": int}, pk="a")
        db.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(schema_module, "MIGRATIONS", [*schema_module.MIGRATIONS, broken])
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match=f"past schema version {SCHEMA_VERSION} failed"):
        Store(root)
    conn = raw(root)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "extra" not in tables
    finally:
        conn.close()


def test_a_file_that_is_not_a_database_is_a_store_error(root):
    root.mkdir()
    (root / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store database"):
        Store(root)


def test_a_store_path_that_is_a_file_is_a_store_error(tmp_path):
    path = tmp_path / "store"
    path.write_text("oops")
    with pytest.raises(StoreError):
        Store(path)


def test_threads_migrating_a_new_store_at_once(tmp_path):
    """Each migration is applied once even when several openers find an empty database."""
    for attempt in range(5):
        root = tmp_path / f"store{attempt}"
        root.mkdir()
        empty = sqlite3.connect(root / DB_NAME)
        empty.execute("PRAGMA journal_mode = WAL")  # WAL already: only the migration races
        empty.close()
        barrier = threading.Barrier(6)
        errors: list[BaseException] = []

        def open_store(root=root, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                Store(root).close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        conn = raw(root)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()


_OPEN_ON_GO = """
import sys
from provtask import Store
print("ready", flush=True)
sys.stdin.readline()
try:
    store = Store(sys.argv[1])
    print(store.conn.execute("PRAGMA user_version").fetchone()[0], flush=True)
except Exception as exc:
    print(f"error: {exc}", flush=True)
"""


def test_two_processes_opening_a_new_store_at_once(root):
    """Deterministic form of the race: this process is still creating the new database (it holds
    the write lock) when another process opens the store; that one must wait, not fail."""
    child = subprocess.Popen(
        [sys.executable, "-c", _OPEN_ON_GO, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    root.mkdir()
    creating = sqlite3.connect(root / DB_NAME, isolation_level=None, check_same_thread=False)
    release = threading.Timer(0.5, creating.execute, ("COMMIT",))
    try:
        assert child.stdout.readline().strip() == "ready"
        creating.execute("BEGIN IMMEDIATE")
        creating.execute("CREATE TABLE scratch (a)")
        child.stdin.write("go\n")
        child.stdin.flush()
        release.start()
        answer = child.stdout.readline().strip()
        release.join()
        here = Store(root)
        here.close()
    finally:
        release.cancel()
        child.kill()
        child.communicate()
        creating.close()
    assert answer == str(SCHEMA_VERSION)


# -- the batched writer ------------------------------------------------------------------------
def test_writer_commits_many_inserts_in_batches(store, root):
    writer = StoreWriter(connect(root, create=False), max_batch=100)
    writer.insert("runs", run_row("r"))
    for i in range(5000):
        writer.insert("tasks", task_row("r", f"t[{i}]"))
    writer.flush()
    assert count(root, "tasks") == 5000  # visible to another connection once flush returns
    writer.close()


def test_writer_keeps_the_order_of_inserts_and_updates(store, root, writer):
    for i in range(300):
        writer.insert("runs", run_row(f"r{i}", status="running"))
        writer.update("runs", {"run_id": f"r{i}"}, {"status": "failed", "n_tasks": i})
        writer.update("runs", {"run_id": f"r{i}"}, {"status": "success"})
    writer.flush()
    conn = raw(root)
    rows = conn.execute(
        "SELECT status, count(*), sum(n_tasks) FROM runs GROUP BY status"
    ).fetchall()
    conn.close()
    assert rows == [("success", 300, sum(range(300)))]


def test_updates_merge_into_the_row_they_target_whatever_their_columns(store, root, writer):
    key = ("run_id", "task_id")
    writer.insert_row("tasks", ("run_id", "task_id", "state"), ("r", "a", "pending"))
    writer.update_row(
        "tasks", ("state", "attempts"), ("running", 1), ("task_id", "run_id"), ("a", "r")
    )
    writer.update("tasks", {"run_id": "r", "task_id": "a"}, {"attempts": 2, "error": "boom"})
    writer.update_row("tasks", ("state",), ("failed",), key, ("r", "a"))
    writer.insert_row("tasks", ("run_id", "task_id", "state"), ("r", "b", "pending"))
    writer.flush()
    writer.update_row("tasks", ("state",), ("running",), key, ("r", "b"))  # a row committed
    writer.update_row("tasks", ("state", "error"), ("failed", "lost"), key, ("r", "b"))
    writer.flush()
    conn = raw(root)
    rows = conn.execute("SELECT task_id, state, attempts, error FROM tasks ORDER BY task_id")
    assert rows.fetchall() == [("a", "failed", 2, "boom"), ("b", "failed", None, "lost")]
    conn.close()


def test_flush_is_a_barrier_for_every_queued_write(store, root, writer):
    for batch in range(5):
        for i in range(200):
            writer.insert("tasks", task_row("r", f"{batch}-{i}"))
        writer.flush()
        assert count(root, "tasks") == 200 * (batch + 1)
    writer.flush()  # nothing queued: returns at once


def test_insert_or_ignore_keeps_the_existing_row(store, root, writer):
    writer.insert("artifacts", {"hash": "a" * 64, "size": 1, "preview": "first"})
    writer.insert("artifacts", {"hash": "a" * 64, "size": 2, "preview": "second"}, ignore=True)
    writer.flush()
    conn = raw(root)
    assert conn.execute("SELECT size, preview FROM artifacts").fetchall() == [(1, "first")]
    conn.close()


@pytest.mark.parametrize(
    ("bad_row", "cause"),
    [
        (run_row("r1"), "UNIQUE constraint failed"),
        ({"run_id": "r2", "colour": "blue"}, "no column named colour"),
    ],
)
def test_writer_error_is_raised_as_store_error_on_the_next_call(store, root, bad_row, cause):
    writer = store.writer()
    writer.insert("runs", run_row("r1"))
    writer.flush()
    writer.insert("runs", bad_row)
    with pytest.raises(StoreError, match=f"writing provenance to the store failed: .*{cause}"):
        writer.flush()
    with pytest.raises(StoreError, match=cause):
        writer.insert("runs", run_row("r3"))
    with pytest.raises(StoreError, match=cause):
        writer.update("runs", {"run_id": "r1"}, {"status": "failed"})
    with pytest.raises(StoreError, match=cause):
        writer.close()
    conn = raw(root)
    assert conn.execute("SELECT run_id, status FROM runs").fetchall() == [("r1", "success")]
    conn.close()


def test_readers_see_committed_rows_while_a_run_writes(store, root):
    writer = store.writer()
    writer.insert("runs", run_row("r"))
    writer.flush()
    reads = 0
    stop = threading.Event()
    written: list[int] = []
    failures: list[BaseException] = []

    def produce():
        """Commit small batches until the reader has read many times during the writing."""
        try:
            i = 0
            while not stop.is_set() or i < 1000:
                for _ in range(20):
                    writer.insert("tasks", task_row("r", f"t[{i}]"))
                    i += 1
                writer.update("runs", {"run_id": "r"}, {"heartbeat_at": time.time()})
                writer.flush()
                written.append(i)
                time.sleep(0.002)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=produce)
    thread.start()
    seen = []
    try:
        while reads < 30 and thread.is_alive():
            reader = Store(root, create=False)  # opening also takes the migration lock
            try:
                before = written[-1] if written else 0
                seen.append(reader.conn.execute("SELECT count(*) FROM tasks").fetchone()[0])
                assert seen[-1] >= before  # everything flushed so far is visible
                assert len(reader.tasks("latest", state="success")) >= seen[-1]
            finally:
                reader.close()
            reads += 1
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert failures == []
    assert reads == 30
    assert seen == sorted(seen)  # committed rows never disappear
    assert len(set(seen)) > 2  # the reads really happened while rows were being written
    assert count(root, "tasks") == written[-1]


def test_an_open_reader_does_not_block_the_writer(store, root, writer):
    writer.insert("runs", run_row("r0"))
    writer.flush()
    reader = raw(root)
    reader.isolation_level = None
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        writer.insert("runs", run_row("r1"))
        writer.flush(timeout=5)  # would wait for the reader without WAL
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # its snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    finally:
        reader.close()


# -- artifacts ---------------------------------------------------------------------------------
def test_small_values_are_inline(root):
    files = ArtifactFiles(root)
    meta = make_artifact({"energy": -1.5}, files)
    assert meta.path is None
    assert meta.data == pickle.dumps({"energy": -1.5}, protocol=5)
    assert meta.hash == digest(meta.data)
    assert meta.size == len(meta.data)
    assert (meta.serializer, meta.type, meta.preview) == (
        "pickle",
        "builtins.dict",
        "{'energy': -1.5}",
    )
    assert not (root / "artifacts").exists()


def test_large_values_go_to_a_file_named_by_their_hash(root):
    files = ArtifactFiles(root)
    value = list(range(INLINE_LIMIT))
    meta = make_artifact(value, files)
    assert meta.data is None
    assert meta.path == f"artifacts/{meta.hash[:2]}/{meta.hash}"
    data = (root / meta.path).read_bytes()
    assert data == pickle.dumps(value, protocol=5)
    assert digest(data) == meta.hash and meta.size == len(data)
    assert files.read(meta.path) == data


def test_inline_threshold_is_inclusive(root):
    overhead = len(pickle.dumps(b"x" * (INLINE_LIMIT - 100), protocol=5)) - (INLINE_LIMIT - 100)
    at_limit = b"x" * (INLINE_LIMIT - overhead)
    assert len(pickle.dumps(at_limit, protocol=5)) == INLINE_LIMIT
    files = ArtifactFiles(root)
    assert make_artifact(at_limit, files).path is None
    assert make_artifact(at_limit + b"x", files).path is not None


def test_serializer_falls_back_to_cloudpickle_and_names_unpicklable_values():
    data, serializer = serialize(lambda x: x + 1)
    assert serializer == "cloudpickle"
    assert pickle.loads(data)(1) == 2
    with pytest.raises(TypeError, match="lock cannot be pickled"):
        serialize(threading.Lock())


def test_preview_is_short_and_survives_a_broken_repr():
    assert len(preview(list(range(1000)))) == 200
    assert preview(list(range(1000))).endswith("…")

    class Broken:
        def __repr__(self):
            raise RuntimeError("nope")

    assert preview(Broken()) == "<Broken: repr failed: nope>"


def test_concurrent_writes_of_one_artifact_leave_one_complete_file(root):
    files = ArtifactFiles(root)
    data = os.urandom(1 << 20)
    hash_ = digest(data)
    barrier = threading.Barrier(6)
    paths: list[str] = []

    def write():
        barrier.wait()
        paths.append(files.write(hash_, data))

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(paths) == {f"artifacts/{hash_[:2]}/{hash_}"}
    folder = root / "artifacts" / hash_[:2]
    assert sorted(p.name for p in folder.iterdir()) == [hash_]  # no temp files left
    assert (folder / hash_).read_bytes() == data


def test_a_failed_write_leaves_nothing_behind(root):
    files = ArtifactFiles(root)
    hash_ = "ab" * 32

    class NotBytes:
        def __len__(self):
            return 10

    with pytest.raises(TypeError):
        files.write(hash_, NotBytes())
    assert list((root / "artifacts" / "ab").iterdir()) == []


def test_a_truncated_artifact_file_is_rewritten(root):
    files = ArtifactFiles(root)
    data = b"0123456789" * 1000
    relative = files.write(digest(data), data)
    (root / relative).write_bytes(data[:10])
    files.write(digest(data), data)
    assert (root / relative).read_bytes() == data


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "../" + "a" * 61,
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "",
        " " + "a" * 63,
        "a" * 64 + "\n",
        123,
        None,
    ],
)
def test_check_hash_rejects_anything_but_64_lowercase_hex(bad):
    with pytest.raises(NotFoundError, match="not an artifact hash"):
        check_hash(bad)


def test_a_stored_artifact_is_found_by_its_hash_and_a_mistyped_hash_is_not(store, writer):
    data = pickle.dumps({"answer": 42})
    hash_ = digest(data)
    writer.insert("artifacts", {"hash": hash_, "size": len(data), "data": data})
    writer.flush()
    assert store.load_artifact(hash_) == {"answer": 42}
    with pytest.raises(NotFoundError, match="not an artifact hash"):
        store.load_artifact(hash_.upper())


def test_artifact_paths_cannot_escape_the_store(root):
    files = ArtifactFiles(root)
    with pytest.raises(NotFoundError):
        files.write("../../escaped", b"data")
    assert not (root.parent / "escaped").exists()
    with pytest.raises(StoreError, match="points outside the store"):
        files.read("artifacts/../../etc/passwd")


class _SideEffect:
    """Unpickling this creates ``marker``: proof that bytes were unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def store_artifact(store: Store, value) -> tuple[str, Path | None]:
    meta = make_artifact(value, store.files)
    writer = store.writer()
    writer.insert("artifacts", {**meta._asdict(), "created_at": time.time()})
    writer.close()
    return meta.hash, (store.root / meta.path) if meta.path else None


@pytest.mark.parametrize("size", [10, INLINE_LIMIT * 2])
def test_artifacts_round_trip(store, size):
    value = {"payload": b"z" * size, "n": size}
    hash_, path = store_artifact(store, value)
    assert (path is None) == (size < INLINE_LIMIT)
    assert store.load_artifact(hash_) == value


def test_tampered_artifact_file_is_refused_and_not_unpickled(store, tmp_path):
    hash_, path = store_artifact(store, list(range(INLINE_LIMIT)))
    original = path.read_bytes()
    path.write_bytes(original[:-2] + bytes([original[-2] ^ 1]) + original[-1:])
    with pytest.raises(IntegrityError, match=f"artifact {hash_[:12]}.* is corrupted"):
        store.load_artifact(hash_)
    marker = tmp_path / "unpickled"
    path.write_bytes(pickle.dumps(_SideEffect(marker)))
    with pytest.raises(IntegrityError, match="it was not loaded"):
        store.load_artifact(hash_)
    assert not marker.exists()


def test_tampered_inline_artifact_is_refused_and_not_unpickled(store, tmp_path):
    hash_, path = store_artifact(store, {"small": True})
    assert path is None
    marker = tmp_path / "unpickled"
    store.conn.execute(
        "UPDATE artifacts SET data = ? WHERE hash = ?", (pickle.dumps(_SideEffect(marker)), hash_)
    )
    with pytest.raises(IntegrityError):
        store.load_artifact(hash_)
    assert not marker.exists()


def test_artifact_row_pointing_outside_the_store_is_refused(store, tmp_path):
    hash_, _ = store_artifact(store, list(range(INLINE_LIMIT)))
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(b"secret")
    store.conn.execute("UPDATE artifacts SET path = ? WHERE hash = ?", ("../outside.pkl", hash_))
    with pytest.raises(StoreError, match="outside the store"):
        store.load_artifact(hash_)


def test_missing_artifacts_are_not_found(store):
    with pytest.raises(NotFoundError, match="no artifact"):
        store.load_artifact("f" * 64)
    with pytest.raises(NotFoundError, match="not an artifact hash"):
        store.load_artifact("../x")
    hash_, path = store_artifact(store, list(range(INLINE_LIMIT)))
    path.unlink()
    with pytest.raises(NotFoundError, match="missing from the store"):
        store.load_artifact(hash_)


def test_output_of_a_task_and_of_a_map(store, writer):
    hashes = [store_artifact(store, value)[0] for value in ("a", "b", "summary")]
    writer.insert("runs", run_row("r"))
    writer.insert("tasks", task_row("r", "m", kind="map"))
    writer.insert("tasks", task_row("r", "m[0]", kind="element", parent="m", output_hash=hashes[0]))
    writer.insert("tasks", task_row("r", "m[1]", kind="element", parent="m", output_hash=hashes[1]))
    writer.insert("tasks", task_row("r", "sum", output_hash=hashes[2]))
    writer.insert("tasks", task_row("r", "broken", state="failed"))
    writer.flush()
    assert store.output("r", "sum") == "summary"
    assert store.output("r", "m") == ["a", "b"]
    with pytest.raises(NotFoundError, match="has no output"):
        store.output("r", "broken")
    with pytest.raises(NotFoundError, match="has no task 'ghost'"):
        store.output("r", "ghost")


# -- queries -----------------------------------------------------------------------------------
RUN_IDS = ["20240101-120000-aaaaaa", "20240102-120000-bbbbbb", "20240102-130000-cccccc"]


@pytest.fixture
def runs(store, writer):
    # inserted out of time order: 'latest' must follow started_at, not insertion
    for run_id, started in zip(RUN_IDS, [100.0, 300.0, 200.0], strict=True):
        writer.insert("runs", run_row(run_id, started_at=started))
    writer.flush()
    return store


def test_resolve_run(runs):
    assert runs.resolve_run("latest") == "20240102-120000-bbbbbb"
    assert runs.resolve_run("20240101") == "20240101-120000-aaaaaa"
    assert runs.resolve_run("20240102-13") == "20240102-130000-cccccc"
    assert runs.resolve_run(RUN_IDS[1]) == RUN_IDS[1]
    with pytest.raises(NotFoundError, match="prefix '20240102' is ambiguous"):
        runs.resolve_run("20240102")
    with pytest.raises(NotFoundError, match="no run 'zzz'"):
        runs.resolve_run("zzz")
    for pattern in ("%", "2024%", "_", "20240101-1_0000"):  # not LIKE patterns
        with pytest.raises(NotFoundError, match="no run"):
            runs.resolve_run(pattern)


def test_latest_in_an_empty_store(store):
    with pytest.raises(NotFoundError, match="has no runs yet"):
        store.resolve_run("latest")


def test_run_returns_a_dict_with_state_counts(runs, writer):
    run_id = RUN_IDS[0]
    writer.update("runs", {"run_id": run_id}, {"params": '{"n": 16}'})
    writer.insert("tasks", task_row(run_id, "m", kind="map", state="failed"))
    writer.insert("tasks", task_row(run_id, "m[0]", kind="element", state="failed"))
    writer.insert("tasks", task_row(run_id, "m[1]", kind="element"))
    writer.insert("tasks", task_row(run_id, "sum", state="upstream_failed"))
    writer.flush()
    run = runs.run("20240101")
    assert run["run_id"] == run_id
    assert run["params"] == {"n": 16}
    assert run["states"] == {"failed": 1, "success": 1, "upstream_failed": 1}  # maps not counted


@pytest.mark.parametrize(
    "evil",
    [
        "x' OR '1'='1",
        "'; DROP TABLE tasks; --",
        '" OR 1=1 --',
        "%",
        "sim%",
        "_",
        "a\\b",
    ],
)
def test_filters_are_parameters_not_sql(runs, writer, root, evil):
    run_id = RUN_IDS[0]
    writer.insert("tasks", task_row(run_id, "simulate"))
    writer.insert(
        "attempts", {"run_id": run_id, "task_id": "simulate", "attempt": 1, "status": "success"}
    )
    writer.flush()
    assert len(runs.tasks(run_id)) == 1
    assert len(runs.tasks(run_id, name=evil)) == 0
    assert len(runs.tasks(run_id, state=[evil, "nope"])) == 0
    assert len(runs.attempts(task=evil)) == 0
    assert len(runs.attempts(status=evil)) == 0
    assert len(runs.runs(dag=evil)) == 0
    assert len(runs.runs(status=evil)) == 0
    assert count(root, "tasks") == 1  # still there


def test_filters_select_rows(runs, writer):
    run_id = RUN_IDS[0]
    writer.insert("tasks", task_row(run_id, "simulate[0]", state="success"))
    writer.insert("tasks", task_row(run_id, "simulate[1]", state="failed"))
    writer.insert("tasks", task_row(run_id, "summarise", state="upstream_failed"))
    writer.flush()
    assert list(runs.tasks(run_id, name="simulate")["task_id"]) == ["simulate[0]", "simulate[1]"]
    assert list(runs.tasks(run_id, state=["failed", "upstream_failed"])["task_id"]) == [
        "simulate[1]",
        "summarise",
    ]
    assert list(runs.runs(limit=2)["run_id"]) == [RUN_IDS[1], RUN_IDS[2]]


def test_query_frames_have_real_dtypes(runs, writer):
    run_id = RUN_IDS[0]
    writer.insert("tasks", task_row(run_id, "t", started_at=1000.0, ended_at=1002.5))
    writer.flush()
    tasks = runs.tasks(run_id)
    assert isinstance(tasks["state"].dtype, pd.CategoricalDtype)
    assert "upstream_failed" in tasks["state"].cat.categories
    assert tasks["started_at"].iloc[0] == pd.Timestamp(1000.0, unit="s", tz="UTC")
    assert tasks["duration"].iloc[0] == pd.Timedelta(seconds=2.5)
    frame = runs.runs()
    assert list(frame["run_id"]) == [RUN_IDS[1], RUN_IDS[2], RUN_IDS[0]]  # newest first
    assert str(frame["started_at"].dt.tz) == "UTC"
