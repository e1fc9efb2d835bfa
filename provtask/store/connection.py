"""Opening the store's SQLite database with the settings every connection needs."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

DB_NAME = "provtask.db"
BUSY_TIMEOUT_MS = 60_000


def connect(root: Path, *, create: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal.

    WAL lets readers (pandas in a notebook, ``provtask show``) read while a run writes.
    """
    if create:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = root / DB_NAME
    new = not path.exists()
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    if new:  # a lab notebook is private by default, even in a folder that was not
        os.chmod(root, 0o700)
        os.chmod(path, 0o600)
        (root / "artifacts").mkdir(mode=0o700, exist_ok=True)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable at each checkpoint; safe with WAL
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
