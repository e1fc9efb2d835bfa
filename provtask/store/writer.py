"""The single writer of a run: queued row operations applied in batched transactions.

The engine queues inserts and updates without waiting; a background thread applies them in
one transaction per batch (every ``interval`` seconds or ``max_batch`` operations), so the
hot path never waits on a commit. Within a batch, updates of a row inserted or updated
earlier in the same batch are merged into that operation: a short task's "submitted" and
"finished" become one row write. The thread also checkpoints the WAL into the database (which
flushes it to disk) once a second while it commits, instead of SQLite doing so inside every
commit of a busy run. Errors (disk full, a locked database past the busy timeout)
roll the batch back, are kept, and are raised by the next call; ``salvage`` then tries one last
small update (the run marked failed), since a single row often fits where a batch did not.
"""

from __future__ import annotations

import contextlib
import operator
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .snapshot import SNAPSHOT_TABLES, bump_revisions

_FLUSH = object()
_STOP = object()
CHECKPOINT_EVERY = 1.0  # seconds: at most this much committed work waits for its fsync
RESERVE_FILE = "provtask.db-reserve"  # beside the database: room for the last update
RESERVE = 256 * 1024  # bytes


class StoreWriter:
    """Batched, ordered writes to one SQLite database from a dedicated thread."""

    def __init__(self, conn: sqlite3.Connection, interval: float = 0.2, max_batch: int = 20_000):
        self._conn = conn
        self._database = conn.execute("PRAGMA database_list").fetchone()[2]
        self._interval = interval
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._keys: dict[str, tuple[str, ...]] = {}  # primary-key columns per table
        self._lookups: dict[tuple, tuple] = {}  # how to read a row's key, per shape
        self._committed = False  # since the last checkpoint
        self._checkpointed = time.monotonic()
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the thread checkpoints, see _checkpoint
        self._reserve = Path(self._database).parent / RESERVE_FILE
        _keep_reserve(self._reserve)
        self._thread = threading.Thread(
            target=self._loop, name="provtask-store-writer", daemon=True
        )
        self._thread.start()

    # -- queueing (any thread) --------------------------------------------------------------
    def insert(self, table: str, row: dict[str, Any], *, ignore: bool = False) -> None:
        """Queue an insert (the writer owns ``row`` from now on); ``ignore`` keeps an
        existing row with the same key."""
        self._check()
        self._queue.put(["INSERT OR IGNORE" if ignore else "INSERT", table, row, None])

    def update(self, table: str, where: dict[str, Any], changes: dict[str, Any]) -> None:
        """Queue ``UPDATE table SET changes WHERE where`` (``where`` names the primary key)."""
        self._check()
        self._queue.put(["UPDATE", table, changes, where])

    def flush(self, timeout: float | None = 60) -> None:
        """Block until everything queued so far is committed."""
        done = threading.Event()
        self._queue.put((_FLUSH, done))
        if not done.wait(timeout):
            raise StoreError(f"the store writer did not commit within {timeout} s")
        self._check()

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._check()

    def salvage(self, table: str, where: dict[str, Any], changes: dict[str, Any]) -> bool:
        """Stop the thread, then apply one update in a transaction of its own, even after a
        failed batch; on a full disk, the reserve file is deleted to make room for it.
        Returns whether it was committed; never raises."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        for last_try in (False, True):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(
                    _update_sql(table, tuple(changes), tuple(where)),
                    (*changes.values(), *where.values()),
                )
                self._conn.execute("COMMIT")
                return True
            except sqlite3.Error:
                if self._conn.in_transaction:
                    self._conn.rollback()
                if last_try or not self._reserve.exists():
                    return False
                self._reserve.unlink(missing_ok=True)
        return False

    def _check(self) -> None:
        if self._error is not None:
            raise StoreError(_explain(self._error, self._database)) from self._error

    # -- the writer thread ------------------------------------------------------------------
    def _loop(self) -> None:
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=CHECKPOINT_EVERY if self._committed else None)
            except queue.Empty:
                self._checkpoint()
                continue
            batch: list[list] = []
            waiters: list[threading.Event] = []
            # Collect for up to one interval after the first item: one transaction per batch
            # (a commit per trickling operation would rewrite the same pages thousands of times).
            deadline = time.monotonic() + self._interval
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, tuple) and item[0] is _FLUSH:
                    waiters.append(item[1])
                else:
                    batch.append(item)
                if stop or waiters or len(batch) >= self._max_batch:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if batch and self._error is None:
                self._apply(batch)
            if stop or time.monotonic() - self._checkpointed >= CHECKPOINT_EVERY:
                self._checkpoint()
            for waiter in waiters:
                waiter.set()

    def _checkpoint(self) -> None:
        """Copy committed pages from the WAL into the database, flushing both to disk (with
        ``synchronous=NORMAL``, what makes commits survive a power loss). Passive: it never
        waits for readers; what it cannot copy yet, the next one does."""
        if self._committed and self._error is None:  # after a failure, salvage needs the room
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                return  # e.g. another process checkpointing: try again a second later
            self._committed = False
        self._checkpointed = time.monotonic()

    def _apply(self, batch: list[list]) -> None:
        try:
            statements = self._statements(batch)  # before the write lock: readers wait less
            runs = _changed_runs(batch)
            self._conn.execute("BEGIN IMMEDIATE")
            for sql, rows in statements:
                self._conn.executemany(sql, rows)
            bump_revisions(self._conn, runs)
            self._conn.execute("COMMIT")
            self._committed = True
        except BaseException as exc:
            self._error = exc
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    def _statements(self, batch: list[list]) -> list[tuple[str, list[tuple]]]:
        """One ``executemany`` per statement shape, after coalescing.

        After coalescing, each row has at most one update, so updates commute with each other;
        inserts go first because an update may target a row inserted in the same batch.
        """
        inserts: dict[tuple, list[tuple]] = {}
        updates: dict[tuple, list[tuple]] = {}
        for verb, table, data, where in self._coalesce(batch):
            if where is None:
                inserts.setdefault((verb, table, tuple(data)), []).append(tuple(data.values()))
            else:
                shape = (table, tuple(data), tuple(where))
                updates.setdefault(shape, []).append((*data.values(), *where.values()))
        statements = [(_insert_sql(*shape), rows) for shape, rows in inserts.items()]
        statements += [(_update_sql(*shape), rows) for shape, rows in updates.items()]
        return statements

    def _coalesce(self, batch: list[list]) -> list[list]:
        """Merge each update into an earlier insert or update of the same row in the batch."""
        ops: list[list] = []
        by_row: dict[tuple, list] = {}
        for op in batch:
            verb, table, data, where = op
            if verb == "UPDATE":
                row_key = self._where_key(table, where)
                earlier = by_row.get(row_key)
                if earlier is not None:
                    earlier[2].update(data)
                    continue
                by_row[row_key] = op
            elif verb == "INSERT":
                row_key = self._insert_key(table, data)
                if row_key is not None:
                    by_row[row_key] = op
            ops.append(op)
        return ops

    def _where_key(self, table: str, where: dict[str, Any]) -> tuple:
        """The row an update targets: its key values in primary-key order, whatever the order
        of ``where`` (or its own columns, if ``where`` is not the primary key)."""
        names = tuple(where)
        lookup = self._lookups.get((table, names))
        if lookup is None:
            key = self._primary_key(table)
            order = key if set(names) == set(key) else names
            lookup = self._lookups[(table, names)] = (order, operator.itemgetter(*order))
        order, values = lookup
        return (table, order, values(where))

    def _insert_key(self, table: str, row: dict[str, Any]) -> tuple | None:
        """The key of an inserted row, as :meth:`_where_key` gives it; None without one."""
        key = self._primary_key(table)
        if not key:
            return None
        lookup = self._lookups.get((table, None))
        if lookup is None:
            lookup = self._lookups[(table, None)] = (key, operator.itemgetter(*key))
        try:
            return (table, key, lookup[1](row))
        except KeyError:
            return None

    def _primary_key(self, table: str) -> tuple[str, ...]:
        if table not in self._keys:
            info = self._conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            self._keys[table] = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])
        return self._keys[table]


def _keep_reserve(path: Path) -> None:
    """Make sure ``RESERVE`` bytes of the disk are held by a file that ``salvage`` may delete
    (without it, the update that records a run as failed on a full disk rarely fits)."""
    if path.exists():
        return
    with contextlib.suppress(OSError):  # a disk already full: nothing to reserve
        path.write_bytes(bytes(RESERVE))


def _changed_runs(batch: list[list]) -> set[str]:
    """The runs whose tasks or attempts the batch writes (their snapshots become stale)."""
    return {
        (data if where is None else where)["run_id"]
        for _, table, data, where in batch
        if table in SNAPSHOT_TABLES
    }


def _insert_sql(verb: str, table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'{verb} INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


def _update_sql(table: str, columns: tuple[str, ...], where: tuple[str, ...]) -> str:
    assignments = ", ".join(f'"{c}" = ?' for c in columns)
    condition = " AND ".join(f'"{c}" = ?' for c in where)
    return f'UPDATE "{table}" SET {assignments} WHERE {condition}'


def _explain(error: BaseException, database: str) -> str:
    """The message of a failed write: what happened, what is safe, what to do."""
    full = getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if full or "disk is full" in str(error) or "No space left" in str(error):
        return (
            f"the disk holding the store database {database} is full ({error}): the rows "
            "queued since the last commit were not written, and everything committed before "
            "is intact. Free some space (or move the store to a larger disk), then "
            "'provtask replay RUN' finishes the run"
        )
    return f"writing provenance to the store failed: {error} (database {database})"
