"""Applying one batch of queued row operations to SQLite in one transaction.

An operation is ``[verb, table, data, where, as_json]``: ``verb`` is ``INSERT``, ``INSERT OR
IGNORE`` or ``UPDATE``; ``data`` the row (inserts) or the changed columns (updates), a dict;
``where`` the updated row's key columns, a dict, or None for inserts; ``as_json`` the columns of
``data`` whose values are stored as JSON text, encoded here rather than on the engine's
thread (or an empty tuple). Nothing here knows the tables: the
statements are built from the operations' own column names, and primary keys are read from
the database. Used by the writer process (``writer_process.py``).
"""

from __future__ import annotations

import json
import operator
import sqlite3
from typing import Any

from .snapshot import SNAPSHOT_TABLES, bump_revisions

Operation = list  # [verb, table, data, where, as_json]

# One encoder for every JSON column: json.dumps with options builds a new one per call.
encode_json = json.JSONEncoder(default=repr, sort_keys=True).encode


class BatchApplier:
    """One connection's batches: coalesced, grouped per statement shape, one transaction each."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._keys: dict[str, tuple[str, ...]] = {}  # primary-key columns per table
        self._lookups: dict[tuple, tuple] = {}  # how to read a row's key, per shape

    def apply(self, batch: list[Operation]) -> None:
        """Commit the batch, or roll it back and raise."""
        try:
            statements = self.statements(batch)  # before the write lock: readers wait less
            runs = _changed_runs(batch)
            self.conn.execute("BEGIN IMMEDIATE")
            for sql, rows in statements:
                self.conn.executemany(sql, rows)
            bump_revisions(self.conn, runs)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def statements(self, batch: list[Operation]) -> list[tuple[str, list[tuple]]]:
        """One ``executemany`` per statement shape, after coalescing.

        After coalescing, each row has at most one update, so updates commute with each other;
        inserts go first because an update may target a row inserted in the same batch.
        """
        inserts: dict[tuple, list[tuple]] = {}
        updates: dict[tuple, list[tuple]] = {}
        for verb, table, data, where, _ in self._coalesce(batch):
            if where is None:
                inserts.setdefault((verb, table, tuple(data)), []).append(tuple(data.values()))
            else:
                shape = (table, tuple(data), tuple(where))
                updates.setdefault(shape, []).append((*data.values(), *where.values()))
        statements = [(insert_sql(*shape), rows) for shape, rows in inserts.items()]
        statements += [(update_sql(*shape), rows) for shape, rows in updates.items()]
        return statements

    def _coalesce(self, batch: list[Operation]) -> list[Operation]:
        """Merge each update into an earlier insert or update of the same row in the batch."""
        ops: list[Operation] = []
        by_row: dict[tuple, Operation] = {}
        for op in batch:
            verb, table, data, where, as_json = op
            for column in as_json:
                data[column] = encode_json(data[column])
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
            info = self.conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            self._keys[table] = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])
        return self._keys[table]


def _changed_runs(batch: list[Operation]) -> set[str]:
    """The runs whose tasks or attempts the batch writes (their snapshots become stale)."""
    return {
        (data if where is None else where)["run_id"]
        for _, table, data, where, _ in batch
        if table in SNAPSHOT_TABLES
    }


def insert_sql(verb: str, table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'{verb} INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


def update_sql(table: str, columns: tuple[str, ...], where: tuple[str, ...]) -> str:
    assignments = ", ".join(f'"{c}" = ?' for c in columns)
    condition = " AND ".join(f'"{c}" = ?' for c in where)
    return f'UPDATE "{table}" SET {assignments} WHERE {condition}'


def explain(error: BaseException, database: str) -> str:
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
