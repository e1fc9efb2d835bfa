"""Stable identities of small driver-side values (DAG constants and params).

The encoding is canonical for JSON-like data (dict and set order do not matter); anything
else is identified by its pickle bytes. Large values are never hashed on the driver: task
outputs are hashed by the worker that produced them.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from typing import Any


def _encode(value: Any, out: list[bytes]) -> None:
    if value is None or isinstance(value, bool):
        out.append(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, int):
        out.append(f"int:{value};".encode())
    elif isinstance(value, float):
        out.append(f"float:{'nan' if math.isnan(value) else value.hex()};".encode())
    elif isinstance(value, str):
        data = value.encode()
        out.append(b"str:%d:" % len(data) + data)
    elif isinstance(value, bytes):
        out.append(b"bytes:%d:" % len(value) + value)
    elif isinstance(value, list | tuple):
        out.append(f"{type(value).__name__}:{len(value)}[".encode())
        for item in value:
            _encode(item, out)
        out.append(b"]")
    elif isinstance(value, dict):
        items = sorted(((value_hash(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        out.append(f"dict:{len(items)}{{".encode())
        for key_hash, item in items:
            out.append(key_hash.encode())
            _encode(item, out)
        out.append(b"}")
    elif isinstance(value, set | frozenset):
        out.append(f"set:{sorted(value_hash(v) for v in value)};".encode())
    else:
        cls = type(value)
        out.append(f"pickle:{cls.__module__}.{cls.__qualname__}:".encode())
        out.append(pickle.dumps(value, protocol=5))


def value_hash(value: Any) -> str:
    """Hex BLAKE2b-256 of a canonical encoding of ``value``."""
    out: list[bytes] = []
    _encode(value, out)
    return hashlib.blake2b(b"".join(out), digest_size=32).hexdigest()


def combine(parts: list[str]) -> str:
    """One hash for an ordered list of hashes (Merkle-style)."""
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=32).hexdigest()
