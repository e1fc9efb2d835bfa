"""The store writer process: applies the runs' batches of row operations to SQLite.

Started by ``writer_channel.WriterChannel``, which runs ``main()`` in a new interpreter that
imports only this module's imports (the standard library, sqlite3, ``batch``, ``connection``,
``snapshot`` and what they import of ``provtask/store``), not the ``provtask`` package: see
``writer_channel.BOOTSTRAP``. pyarrow is imported when a first snapshot is taken, pandas
never (``RefusePandas``).

One process per driver process writes for all of its runs (one *session* per run's
``StoreWriter``), so SQLite's work and the writer's Python never take the driver's interpreter
lock. It reads frames from stdin and answers on stdout; a frame is a 4-byte big-endian length,
one byte saying how the message is encoded (``marshal``, about twice as fast as ``pickle`` for
rows of built-in values, or ``pickle`` for a batch holding anything else) and the message:

- ``("open", session, database)``: open a connection to the database file;
- ``("ops", session, seq, operations)``: one batch (see ``batch.py``), committed in one
  transaction (batches of one session waiting in the pipe are merged into it);
- ``("close", session, snapshot)``: checkpoint and close the session's connection (answered
  ``("closed", session)``); then,
  if ``snapshot`` is ``(store root, run id)`` and the session committed everything, snapshot
  the run's tables (``snapshot.take_snapshot``, on a thread and a connection of their own, so
  other sessions' batches do not wait), answered ``("snapshot", run id)``.

Each committed (or failed) batch is answered ``("done", session, seq, error)``, ``error`` the
message of a failed write or None; after a failure the session's later batches are not
applied (the driver raises the error and fails the run). At the end of stdin (the driver exited
or was killed) it applies what it has read, checkpoints, finishes the snapshots it was asked
for and exits. A snapshot cut short (the process killed) leaves at most a temporary file,
never a snapshot a reader would trust: the file is renamed into place whole, then recorded.
SIGINT is ignored: a Ctrl-C of the terminal reaches the whole process group, and the driver
must record the interruption.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import pickle
import queue
import signal
import sqlite3
import struct
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from .batch import BatchApplier, explain
from .connection import open_database
from .snapshot import SNAPSHOT_TABLES, take_snapshot

CHECKPOINT_EVERY = 1.0  # seconds: how much committed work the WAL holds before it is copied
MERGE_UP_TO = 50_000  # operations in one transaction, at most, when batches queued up
_HEADER = struct.Struct(">I")
_END = ("end",)
_MARSHAL, _PICKLE = b"m", b"p"


def write_frame(stream: IO[bytes], message: Any) -> None:
    """Write one frame (the caller serialises writers of one stream)."""
    try:
        payload = _MARSHAL + marshal.dumps(message, 4)
    except ValueError:  # a value of a type marshal does not know (a numpy scalar, ...)
        payload = _PICKLE + pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's message; ``_END`` at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return _END
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return _END
    if payload[:1] == _MARSHAL:
        return marshal.loads(memoryview(payload)[1:])
    return pickle.loads(memoryview(payload)[1:])


class Session:
    """One run's connection, its failure if any, and whether a checkpoint is due."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.conn = open_database(Path(database))
        self.conn.execute("PRAGMA synchronous = FULL")  # a commit is on disk when it returns
        self.conn.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpoint()
        self.applier = BatchApplier(self.conn)
        self.error: str | None = None
        self.committed = False  # since the last checkpoint

    def apply(self, operations: list) -> None:
        if self.error is not None:
            return
        try:
            self.applier.apply(operations)
            self.committed = True
        except BaseException as exc:
            self.error = explain(exc, self.database)

    def checkpoint(self) -> None:
        """Copy committed pages from the WAL into the database file. Passive: it never waits
        for readers; what it cannot copy yet, the next one does. SQLite would otherwise
        checkpoint inside the commit that makes the WAL reach 1,000 pages."""
        if self.committed and self.error is None:  # after a failure, salvage needs the room
            with contextlib.suppress(sqlite3.Error):  # e.g. another process checkpointing
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.committed = False

    def close(self) -> None:
        self.checkpoint()
        self.conn.close()


class WriterProcess:
    """The loop: frames in, batches applied, answers out."""

    def __init__(self, inbox: IO[bytes], outbox: IO[bytes]) -> None:
        self.sessions: dict[int, Session] = {}
        self.frames: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.outbox = outbox
        self._outbox_lock = threading.Lock()  # answers come from two threads
        self.last_checkpoint = time.monotonic()
        self.snapshots: queue.SimpleQueue[Any] = queue.SimpleQueue()  # (database, root, run)
        self._snapshotter = threading.Thread(target=self._snapshot_runs, daemon=True)
        self._snapshotter.start()
        threading.Thread(target=self._read, args=(inbox,), daemon=True).start()

    def answer(self, message: tuple) -> None:
        with self._outbox_lock:
            write_frame(self.outbox, message)

    def _read(self, inbox: IO[bytes]) -> None:
        while True:
            message = read_frame(inbox)
            self.frames.put(message)
            if message is _END:
                return

    def run(self) -> None:
        pending: Any = None
        while True:
            if pending is not None:
                message, pending = pending, None
            else:
                try:
                    message = self.frames.get(timeout=CHECKPOINT_EVERY)
                except queue.Empty:
                    self._checkpoint()
                    continue
            if message == _END:
                break
            kind, session_id = message[0], message[1]
            if kind == "open":
                self._open(session_id, message[2])
            elif kind == "close":
                self._close(session_id, message[2])
            else:
                pending = self._apply(session_id, message[2], message[3])
            if time.monotonic() - self.last_checkpoint >= CHECKPOINT_EVERY:
                self._checkpoint()
        for session in self.sessions.values():
            session.close()
        self.snapshots.put(_END)
        self._snapshotter.join()

    def _close(self, session_id: int, snapshot: tuple[str, str] | None) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            session.close()
        self.answer(("closed", session_id))
        if snapshot is None:
            return
        if session is None or session.error is not None:
            self.answer(("snapshot", snapshot[1]))  # nothing to wait for
        else:
            self.snapshots.put((session.database, *snapshot))

    def _snapshot_runs(self) -> None:
        """The snapshot thread: one run after the other, until ``_END``."""
        while (job := self.snapshots.get()) is not _END:
            database, root, run_id = job
            with contextlib.suppress(Exception):  # a failed snapshot: readers read SQLite
                conn = open_database(Path(database))
                try:
                    for table in SNAPSHOT_TABLES:
                        take_snapshot(conn, Path(root), run_id, table)
                finally:
                    conn.close()
                    _release_arrow_memory()
            with contextlib.suppress(OSError):  # the driver is gone
                self.answer(("snapshot", run_id))

    def _open(self, session_id: int, database: str) -> None:
        try:
            self.sessions[session_id] = Session(database)
        except BaseException as exc:
            self.answer(("done", session_id, 0, explain(exc, database)))

    def _apply(self, session_id: int, seq: int, operations: list) -> Any:
        """Apply the batch and the session's batches queued behind it in one transaction;
        returns the first other message read, if any."""
        following = None
        while len(operations) < MERGE_UP_TO:
            try:
                following = self.frames.get_nowait()
            except queue.Empty:
                following = None
                break
            if following[0] != "ops" or following[1] != session_id:
                break
            seq, operations, following = following[2], operations + following[3], None
        session = self.sessions.get(session_id)
        if session is not None:
            session.apply(operations)
            error = session.error
        else:
            error = "the store writer has no open database for this run"
        self.answer(("done", session_id, seq, error))
        return following

    def _checkpoint(self) -> None:
        for session in self.sessions.values():
            session.checkpoint()
        self.last_checkpoint = time.monotonic()


def _release_arrow_memory() -> None:
    """Give the memory pyarrow's allocator keeps for reuse back to the system."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()


class RefusePandas:
    """A meta-path finder refusing ``pandas``: pyarrow imports it, when installed, for its
    optional pandas integration at its first conversion (+50 MB and ~0.5 s), which
    snapshots, built from SQLite rows, never use."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(f"the store writer process does not import {name}")


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.meta_path.insert(0, RefusePandas)
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot break a frame
    WriterProcess(sys.stdin.buffer, outbox).run()


if __name__ == "__main__":
    main()
