"""Bytes on disk: their digest, and writing a file whole or not at all.

Standard library only, so the store writer process can use it without the artifacts' imports.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def digest(data: bytes) -> str:
    """Hex BLAKE2b-256 of the bytes: an artifact's identity, a snapshot's checksum."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def write_atomically(target: Path, data: bytes) -> None:
    """Write a private file whole or not at all: a temporary file beside it, flushed to disk
    (fsync), renamed into place. Missing folders are created with mode 0700."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
