"""The single writer of a run: queued row operations, committed by the store writer process.

The engine queues inserts and updates without waiting: each is appended to a list as one
tuple of values beside a tuple of column names that its call site shares (``batch.py``). A
thread ships the list every ``interval`` seconds (or at ``max_batch`` operations) as one
frame to the writer process (``writer_process.py``), which applies it in one transaction, so
neither SQLite nor the merging of operations runs under the driver's interpreter lock. Errors
(disk full, a locked database past the busy timeout, the writer process dying) are kept and
raised by the next call; ``salvage`` then tries one last small update (the run marked failed)
on the driver's own connection, since a single row often fits where a batch did not.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .batch import update_sql
from .writer_channel import channel

RESERVE_FILE = "provtask.db-reserve"  # beside the database: room for the last update
RESERVE = 256 * 1024  # bytes


class StoreWriter:
    """Batched, ordered writes to one SQLite database through the writer process.

    ``conn``: the driver's connection to the database, used only by :meth:`salvage`.
    """

    def __init__(self, conn: sqlite3.Connection, interval: float = 0.2, max_batch: int = 20_000):
        self._conn = conn
        self._database = conn.execute("PRAGMA database_list").fetchone()[2]
        self._interval = interval
        self._max_batch = max_batch
        self._ops: list[tuple] = []  # see batch.py
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}  # see _shared
        self._lock = threading.Lock()  # the list of queued operations
        self._ship_lock = threading.Lock()  # batches leave in order
        self._answered = threading.Condition()
        self._sent = 0  # sequence number of the last batch sent
        self._done = 0  # and of the last one committed
        self._error: str | None = None
        self._closed = threading.Event()
        self._reserve = Path(self._database).parent / RESERVE_FILE
        _keep_reserve(self._reserve)
        self._channel = channel()
        self._session = self._channel.open(self, self._database)
        self._shipper = threading.Thread(
            target=self._ship_every_interval, name="provtask-store-writer", daemon=True
        )
        self._shipper.start()

    @property
    def writer_pid(self) -> int:
        """The pid of the writer process committing this writer's rows."""
        return self._channel.pid

    # -- queueing (any thread) --------------------------------------------------------------
    def insert_row(
        self,
        table: str,
        columns: tuple[str, ...],
        values: tuple,
        *,
        ignore: bool = False,
        as_json: tuple[str, ...] = (),
    ) -> None:
        """Queue an insert of ``values`` into ``columns`` (a tuple the call site shares across
        its calls, so a batch ships the names once); ``ignore`` keeps an existing row with the
        same key; ``as_json``: columns whose values the writer process stores as JSON text."""
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        self._queue((verb, table, columns, values, None, None, as_json))

    def update_row(
        self,
        table: str,
        columns: tuple[str, ...],
        values: tuple,
        key_columns: tuple[str, ...],
        key_values: tuple,
        as_json: tuple[str, ...] = (),
    ) -> None:
        """Queue ``UPDATE table SET columns = values WHERE key_columns = key_values``
        (``key_columns`` names the primary key; tuples shared as for :meth:`insert_row`)."""
        self._queue(("UPDATE", table, columns, values, key_columns, key_values, as_json))

    def insert(
        self, table: str, row: dict[str, Any], *, ignore: bool = False, as_json: tuple = ()
    ) -> None:
        """:meth:`insert_row` of a dict's columns."""
        self.insert_row(
            table, self._shared(row), tuple(row.values()), ignore=ignore, as_json=as_json
        )

    def update(
        self, table: str, where: dict[str, Any], changes: dict[str, Any], as_json: tuple = ()
    ) -> None:
        """:meth:`update_row` of dicts: ``UPDATE table SET changes WHERE where``."""
        columns, key_columns = self._shared(changes), self._shared(where)
        self.update_row(
            table, columns, tuple(changes.values()), key_columns, tuple(where.values()), as_json
        )

    def _shared(self, row: dict[str, Any]) -> tuple[str, ...]:
        """The one tuple of these column names, so a batch ships them once."""
        names = tuple(row)
        return self._shapes.setdefault(names, names)

    def _queue(self, operation: tuple) -> None:
        if self._error is not None:
            self._raise()
        with self._lock:
            self._ops.append(operation)
            full = len(self._ops) >= self._max_batch
        if full:
            self._ship()

    def flush(self, timeout: float | None = 60) -> None:
        """Block until everything queued so far is committed."""
        seq = self._ship()
        with self._answered:
            if not self._answered.wait_for(
                lambda: self._done >= seq or self._error is not None, timeout
            ):
                raise StoreError(f"the store writer did not commit within {timeout} s")
        if self._error is not None:
            self._raise()

    def close(self, snapshot: tuple[Path, str] | None = None) -> None:
        """Commit what is queued and end this writer's session; ``snapshot`` (store root,
        run id): once everything is committed, the writer process snapshots the run's tables
        without this call waiting for it (``Store.snapshot(run)`` waits)."""
        if not self._closed.is_set():
            committed = False
            try:
                self.flush(timeout=None)
                committed = True
            finally:
                self._closed.set()
                self._shipper.join()
                self._channel.close(self._session, snapshot if committed else None)
        if self._error is not None:
            self._raise()

    def salvage(self, table: str, where: dict[str, Any], changes: dict[str, Any]) -> bool:
        """End the session, then apply one update in a transaction of its own on the driver's
        connection, even after a failed batch; on a full disk, the reserve file is deleted to
        make room for it. Returns whether it was committed; never raises."""
        if not self._closed.is_set():
            self._closed.set()
            self._shipper.join()
            self._channel.close(self._session)
        for last_try in (False, True):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(
                    update_sql(table, tuple(changes), tuple(where)),
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

    # -- answers (the channel's reader thread) ----------------------------------------------
    def committed(self, seq: int | None, error: str | None) -> None:
        """The writer process committed batch ``seq`` (or failed with ``error``)."""
        with self._answered:
            if error is not None and self._error is None:
                self._error = error
            if seq is not None:
                self._done = max(self._done, seq)
            self._answered.notify_all()

    # -- shipping ---------------------------------------------------------------------------
    def _ship(self) -> int:
        """Send what is queued as one batch; the sequence number it will be answered with."""
        with self._ship_lock:
            with self._lock:
                ops, self._ops = self._ops, []
            if ops and self._error is None:
                self._sent += 1
                try:
                    self._channel.send(("ops", self._session, self._sent, ops))
                except Exception as exc:  # e.g. a value pickle refuses
                    self.committed(None, f"writing provenance to the store failed: {exc!r}")
            return self._sent

    def _ship_every_interval(self) -> None:
        while not self._closed.wait(self._interval):
            self._ship()

    def _raise(self) -> None:
        raise StoreError(self._error)


def _keep_reserve(path: Path) -> None:
    """Make sure ``RESERVE`` bytes of the disk are held by a file that ``salvage`` may delete
    (without it, the update that records a run as failed on a full disk rarely fits)."""
    if path.exists():
        return
    with contextlib.suppress(OSError):  # a disk already full: nothing to reserve
        path.write_bytes(bytes(RESERVE))
