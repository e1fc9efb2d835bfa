"""Finding outputs to keep although the task's code changed (``keep=`` / ``--keep``).

A kept task reuses the output of the same task (by name) recorded with other code but the
same inputs and ``cache_version``: its key under each earlier code hash is what the key
was then, so the ordinary cache lookup finds it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from .cache_lookup import Source, find_sources


@dataclass(frozen=True)
class Wanted:
    """A task to keep: its name, current code hash, and its key under any code hash."""

    name: str
    code_hash: str
    key_for: Callable[[str], str]  # code hash -> cache key with this task's inputs


@dataclass(frozen=True)
class Kept:
    source: Source
    code_hash: str  # the code the output was computed with


def find_kept(conn: sqlite3.Connection, wanted: list[Wanted]) -> dict[int, Kept]:
    """By index in ``wanted``: the newest successful output under earlier code, if any."""
    code_hashes = _earlier_code(conn, {w.name for w in wanted})
    keys: dict[int, list[tuple[str, str]]] = {}
    for index, item in enumerate(wanted):
        keys[index] = [
            (h, item.key_for(h)) for h in code_hashes.get(item.name, ()) if h != item.code_hash
        ]
    found = find_sources(conn, [key for pairs in keys.values() for _, key in pairs])
    kept = {}
    for index, pairs in keys.items():
        for code_hash, key in pairs:  # newest code first
            if key in found:
                kept[index] = Kept(found[key], code_hash)
                break
    return kept


def changed_components(conn: sqlite3.Connection, old_hash: str, new: dict[str, str]) -> list[str]:
    """Names of the code components that differ between ``old_hash`` and ``new``."""
    row = conn.execute("SELECT components FROM code WHERE code_hash = ?", (old_hash,)).fetchone()
    old = json.loads(row[0]) if row else {}
    return sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))


def _earlier_code(conn: sqlite3.Connection, names: set[str]) -> dict[str, list[str]]:
    """Per task name, the code hashes it was recorded with, most recently used first."""
    found: dict[str, list[str]] = {}
    listed = sorted(names)
    rows = conn.execute(
        "SELECT t.name, t.code_hash FROM tasks t JOIN runs r ON r.run_id = t.run_id "
        f"WHERE t.name IN ({', '.join('?' * len(listed))}) AND t.cache_key IS NOT NULL "
        "GROUP BY t.name, t.code_hash ORDER BY max(r.started_at) DESC",
        listed,
    ).fetchall()
    for name, code_hash in rows:
        found.setdefault(name, []).append(code_hash)
    return found
