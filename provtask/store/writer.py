"""The single writer of a run: queued row operations applied in batched transactions.

The engine queues inserts and updates without waiting; a background thread applies them in
one transaction per batch (every ``interval`` seconds or ``max_batch`` operations), so the
hot path never waits on a commit. Errors (disk full, a locked database past the busy timeout)
are kept and raised by the next ``flush`` or ``close``.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterable
from itertools import groupby
from typing import Any

from ..errors import StoreError

_FLUSH = object()
_STOP = object()


class StoreWriter:
    """Batched, ordered writes to one SQLite database from a dedicated thread."""

    def __init__(self, conn: sqlite3.Connection, interval: float = 0.2, max_batch: int = 20_000):
        self._conn = conn
        self._interval = interval
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._loop, name="provtask-store-writer", daemon=True
        )
        self._thread.start()

    # -- queueing (any thread) --------------------------------------------------------------
    def insert(self, table: str, row: dict[str, Any], *, ignore: bool = False) -> None:
        """Queue an insert; ``ignore`` keeps an existing row with the same key."""
        self._check()
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        self._queue.put((verb, table, tuple(row), (), tuple(row.values())))

    def insert_many(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.insert(table, row)

    def update(self, table: str, where: dict[str, Any], changes: dict[str, Any]) -> None:
        """Queue ``UPDATE table SET changes WHERE where``."""
        self._check()
        values = (*changes.values(), *where.values())
        self._queue.put(("UPDATE", table, tuple(changes), tuple(where), values))

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

    def _check(self) -> None:
        if self._error is not None:
            raise StoreError(f"writing provenance to the store failed: {self._error}") from (
                self._error
            )

    # -- the writer thread ------------------------------------------------------------------
    def _loop(self) -> None:
        stop = False
        while not stop:
            batch: list[tuple] = []
            waiters: list[threading.Event] = []
            try:
                item = self._queue.get(timeout=self._interval)
            except queue.Empty:
                continue
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, tuple) and item[0] is _FLUSH:
                    waiters.append(item[1])
                else:
                    batch.append(item)
                if stop or len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch and self._error is None:
                self._apply(batch)
            for waiter in waiters:
                waiter.set()

    def _apply(self, batch: list[tuple]) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            # Consecutive operations of the same shape become one executemany; order is kept.
            for (verb, table, cols, where), ops in groupby(batch, key=lambda op: op[:4]):
                if verb == "UPDATE":
                    assignments = ", ".join(f'"{c}" = ?' for c in cols)
                    condition = " AND ".join(f'"{c}" = ?' for c in where)
                    sql = f'UPDATE "{table}" SET {assignments} WHERE {condition}'
                else:
                    names = ", ".join(f'"{c}"' for c in cols)
                    sql = f'{verb} INTO "{table}" ({names}) VALUES ({", ".join("?" * len(cols))})'
                self._conn.executemany(sql, [op[4] for op in ops])
            self._conn.execute("COMMIT")
        except BaseException as exc:
            self._error = exc
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
