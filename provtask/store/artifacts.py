"""Content-addressed artifacts: serialised task outputs named by the hash of their bytes.

Small artifacts live inline in the database; larger ones are files under
``<store>/artifacts/<2 hex>/<hash>``, written atomically by the worker that produced them.
Nothing is unpickled before its bytes are checked against the recorded hash.
This module needs no database, so workers can use it.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, NamedTuple

import cloudpickle

from ..errors import IntegrityError, NotFoundError, StoreError
from .atomic import digest, write_atomically

INLINE_LIMIT = 64 * 1024  # bytes; larger artifacts go to files
PREVIEW_LENGTH = 200
_HASH_RE = re.compile(r"[0-9a-f]{64}")


def serialize(value: Any) -> tuple[bytes, str]:
    """Pickle (protocol 5), falling back to cloudpickle for functions and classes by value.

    Raises ``TypeError`` naming the cause when neither can serialise the value.
    """
    try:
        return pickle.dumps(value, protocol=5), "pickle"
    except Exception:
        pass
    try:
        return cloudpickle.dumps(value, protocol=5), "cloudpickle"
    except Exception as exc:
        raise TypeError(f"{type(value).__name__} cannot be pickled: {exc}") from None


def preview(value: Any) -> str:
    """A short readable form of a value for listings."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the task
        text = f"<{type(value).__name__}: repr failed: {exc}>"
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"


class ArtifactMeta(NamedTuple):
    """What the store records about one artifact."""

    hash: str
    size: int
    serializer: str
    type: str
    preview: str
    path: str | None  # relative to the store root; None when inline
    data: bytes | None  # the bytes when inline


def check_hash(value: str) -> str:
    """An artifact hash used as a path must be exactly 64 hex digits (no '../' tricks)."""
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value):
        raise NotFoundError(f"{value!r} is not an artifact hash (64 hex digits)")
    return value


class ArtifactFiles:
    """The ``artifacts/`` folder of a store."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def relative_path(self, hash_: str) -> str:
        check_hash(hash_)
        return f"artifacts/{hash_[:2]}/{hash_}"

    def write(self, hash_: str, data: bytes) -> str:
        """Write once, atomically (temp file + rename); returns the relative path."""
        relative = self.relative_path(hash_)
        target = self.root / relative
        if target.exists() and target.stat().st_size == len(data):
            return relative
        write_atomically(target, data)
        return relative

    def read(self, relative: str) -> bytes:
        if "\0" in relative:
            raise StoreError(f"artifact path {relative!r} contains a NUL byte")
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve() / "artifacts"):
            raise StoreError(f"artifact path {relative!r} points outside the store")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"artifact file {path} is missing from the store") from None


def make_artifact(value: Any, files: ArtifactFiles) -> ArtifactMeta:
    """Serialise and hash a value; write it to a file unless it is small enough to inline."""
    data, serializer = serialize(value)
    hash_ = digest(data)
    path = None
    if len(data) > INLINE_LIMIT:
        path = files.write(hash_, data)
    return ArtifactMeta(
        hash=hash_,
        size=len(data),
        serializer=serializer,
        type=f"{type(value).__module__}.{type(value).__qualname__}",
        preview=preview(value),
        path=path,
        data=None if path else data,
    )


def load_verified(data: bytes, expected_hash: str) -> Any:
    """Unpickle only after the bytes match the recorded hash."""
    actual = digest(data)
    if actual != expected_hash:
        raise IntegrityError(
            f"artifact {expected_hash[:12]}… is corrupted: its bytes hash to {actual[:12]}…; "
            "it was not loaded. Run the DAG again to recompute it."
        )
    return pickle.loads(data)
