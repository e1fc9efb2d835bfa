"""Applying one batch of queued row operations to SQLite in one transaction.

An operation is a tuple ``(verb, table, columns, values, key_columns, key_values, as_json)``:
``verb`` is ``INSERT``, ``INSERT OR IGNORE`` or ``UPDATE``; ``columns`` the names of the row's
columns (inserts) or of the changed ones (updates), and ``values`` theirs, in that order;
``key_columns`` and ``key_values`` the updated row's key (None for inserts); ``as_json`` the
columns whose values are stored as JSON text, encoded here rather than on the engine's thread
(or an empty tuple). The callers share one tuple of column names per call site, so a batch
carries each shape's names once (marshal writes a reference for an object it has written).
Nothing here knows the tables: the statements are built from the operations' own column
names, and primary keys are read from the database. Used by the writer process
(``writer_process.py``).
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Callable
from typing import Any

from .snapshot import SNAPSHOT_TABLES, bump_revisions

# (verb, table, columns, values, key_columns, key_values, as_json)
Operation = tuple[str, str, tuple, tuple, "tuple | None", "tuple | None", tuple]
_Coalesced = tuple[str, str, tuple, tuple, "tuple | None", "tuple | None"]

# One encoder for every JSON column: json.dumps with options builds a new one per call.
encode_json = json.JSONEncoder(default=repr, sort_keys=True).encode


class BatchApplier:
    """One connection's batches: coalesced, grouped per statement shape, one transaction each.

    What it works out per shape of operation (which values form a row's key, where two
    operations' columns merge, the SQL) is kept for the connection's later batches.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._keys: dict[str, tuple[str, ...]] = {}  # primary-key columns per table
        self._lookups: dict[tuple, tuple | None] = {}  # how to read a row's key, per shape
        self._merges: dict[tuple, tuple[tuple, Callable]] = {}  # columns of merged operations
        self._json: dict[tuple, tuple[int, ...]] = {}  # positions of JSON columns, per shape
        self._run_of: dict[tuple, int] = {}  # where the run id is, per shape
        self._sql: dict[tuple, str] = {}

    def apply(self, batch: list[Operation]) -> None:
        """Commit the batch, or roll it back and raise."""
        try:
            runs: set[str] = set()  # whose tasks or attempts change: their snapshots are stale
            statements = self.statements(batch, runs)  # before the write lock: readers wait less
            self.conn.execute("BEGIN IMMEDIATE")
            for sql, rows in statements:
                self.conn.executemany(sql, rows)
            bump_revisions(self.conn, runs)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def statements(self, batch: list[Operation], runs: set[str]) -> list[tuple[str, list[tuple]]]:
        """One ``executemany`` per statement shape, after coalescing; adds to ``runs`` the
        runs whose tasks or attempts the batch writes.

        After coalescing, each row has at most one update, so updates commute with each other;
        inserts go first because an update may target a row inserted in the same batch.
        """
        inserts: dict[tuple, list[tuple]] = {}
        updates: dict[tuple, list[tuple]] = {}
        for verb, table, columns, values, key_columns, key_values in self._coalesce(batch, runs):
            if key_columns is None:
                rows = inserts.get((verb, table, columns))
                if rows is None:
                    rows = inserts[(verb, table, columns)] = []
                rows.append(values)
            else:
                rows = updates.get((table, columns, key_columns))
                if rows is None:
                    rows = updates[(table, columns, key_columns)] = []
                rows.append(values + key_values)
        statements = [(self._statement(insert_sql, s), rows) for s, rows in inserts.items()]
        statements += [(self._statement(update_sql, s), rows) for s, rows in updates.items()]
        return statements

    def _coalesce(self, batch: list[Operation], runs: set[str]) -> list[_Coalesced]:
        """Merge each update into an earlier insert or update of the same row in the batch
        (the update's values win; its other columns are added)."""
        ops: list[_Coalesced] = []
        by_row: dict[tuple, int] = {}  # row key -> position in ops
        for verb, table, columns, values, key_columns, key_values, as_json in batch:
            if table in SNAPSHOT_TABLES:
                runs.add(self._run_id(columns, values, key_columns, key_values))
            if as_json:
                values = self._encoded(columns, values, as_json)
            if verb == "UPDATE":
                row_key = self._where_key(table, key_columns, key_values)
                earlier = by_row.get(row_key)
                if earlier is not None:
                    ops[earlier] = self._merged(ops[earlier], columns, values)
                    continue
                by_row[row_key] = len(ops)
            elif verb == "INSERT":
                row_key = self._insert_key(table, columns, values)
                if row_key is not None:
                    by_row[row_key] = len(ops)
            ops.append((verb, table, columns, values, key_columns, key_values))
        return ops

    def _merged(self, earlier: _Coalesced, columns: tuple, values: tuple) -> _Coalesced:
        """``earlier`` with an update's ``columns`` set to ``values``."""
        verb, table, first, first_values, key_columns, key_values = earlier
        if first == columns:
            return (verb, table, first, values, key_columns, key_values)
        merge = self._merges.get((first, columns))
        if merge is None:
            later = {name: len(first) + i for i, name in enumerate(columns)}
            merged = first + tuple(name for name in columns if name not in first)
            picks = [later.get(name, i) for i, name in enumerate(first)]
            picks += [later[name] for name in merged[len(first) :]]
            merge = self._merges[(first, columns)] = (merged, _getter(picks))
        merged, pick = merge
        return (verb, table, merged, pick(first_values + values), key_columns, key_values)

    def _encoded(self, columns: tuple, values: tuple, as_json: tuple) -> tuple:
        positions = self._json.get((columns, as_json))
        if positions is None:
            positions = self._json[(columns, as_json)] = tuple(map(columns.index, as_json))
        encoded = list(values)
        for i in positions:
            encoded[i] = encode_json(encoded[i])
        return tuple(encoded)

    def _where_key(self, table: str, key_columns: tuple, key_values: tuple) -> tuple:
        """The row an update targets: its key values in primary-key order, whatever the order
        of ``key_columns`` (or its own columns, if they are not the primary key)."""
        lookup = self._lookups.get((table, key_columns))
        if lookup is None:
            key = self._primary_key(table)
            order = key if set(key_columns) == set(key) else key_columns
            pick = _getter([key_columns.index(name) for name in order])
            lookup = self._lookups[(table, key_columns)] = (order, pick)
        order, pick = lookup
        return (table, order, pick(key_values))

    def _insert_key(self, table: str, columns: tuple, values: tuple) -> tuple | None:
        """The key of an inserted row, as :meth:`_where_key` gives it; None without one."""
        lookup = self._lookups.get((table, None, columns), False)
        if lookup is False:
            key = self._primary_key(table)
            lookup = None
            if key and set(key) <= set(columns):
                lookup = (key, _getter([columns.index(name) for name in key]))
            self._lookups[(table, None, columns)] = lookup
        if lookup is None:
            return None
        return (table, lookup[0], lookup[1](values))

    def _primary_key(self, table: str) -> tuple[str, ...]:
        if table not in self._keys:
            info = self.conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            self._keys[table] = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])
        return self._keys[table]

    def _run_id(self, columns: tuple, values: tuple, key_columns: Any, key_values: Any) -> str:
        """An operation's run id: from its key (updates) or its own columns (inserts)."""
        shape = (columns, key_columns)
        position = self._run_of.get(shape)
        if position is None:
            position = self._run_of[shape] = _run_id_position(columns, key_columns)
        return key_values[-position - 1] if position < 0 else values[position]

    def _statement(self, make: Callable[..., str], shape: tuple) -> str:
        sql = self._sql.get(shape)
        if sql is None:
            sql = self._sql[shape] = make(*shape)
        return sql


def _getter(positions: list[int]) -> Callable[[tuple], tuple]:
    """A function picking ``positions`` of a tuple, as a tuple."""
    if len(positions) == 1:
        (position,) = positions
        return lambda values: (values[position],)
    return operator.itemgetter(*positions)


def _run_id_position(columns: tuple, key_columns: tuple | None) -> int:
    """Where an operation's run id is: ``i`` in its values, ``-i - 1`` in its key values."""
    if key_columns is not None and "run_id" in key_columns:
        return -key_columns.index("run_id") - 1
    return columns.index("run_id")


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
