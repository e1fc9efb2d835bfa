"""Opening the store's SQLite database with the settings every connection needs."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from .filesystem import DATABASE_ENV, warn_if_network

DB_NAME = "provtask.db"
BUSY_TIMEOUT_MS = 60_000


def database_path(root: Path) -> Path:
    """The store's SQLite file: ``$PROVTASK_DATABASE`` if set (a database on local disk for a
    store folder on a network filesystem), else ``<root>/provtask.db``."""
    override = os.environ.get(DATABASE_ENV)
    return Path(override).absolute() if override else root / DB_NAME


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Enable WAL, retrying: SQLite does not apply the busy timeout to this pragma, so it
    fails at once while another process is creating the same store."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def connect(root: Path, *, create: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal.

    WAL lets readers (pandas in a notebook, ``provtask show``) read while a run writes.
    """
    path = database_path(root)
    if create:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    new = not path.exists()
    warn_if_network(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    if new:  # a lab notebook is private by default, even in a folder that was not
        os.chmod(root, 0o700)
        os.chmod(path, 0o600)
        (root / "artifacts").mkdir(mode=0o700, exist_ok=True)
    return configure(conn)


def open_database(path: Path) -> sqlite3.Connection:
    """A connection to an existing database file, with the same settings as :func:`connect`
    (for the writer process, which is handed the file rather than the store)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    return configure(conn)


def configure(conn: sqlite3.Connection) -> sqlite3.Connection:
    """The settings every connection needs: busy timeout, WAL, synchronous, foreign keys."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _switch_to_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")  # see docs/reliability.md; the writer: FULL
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
