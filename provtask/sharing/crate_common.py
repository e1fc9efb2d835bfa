"""What the parts of a crate share: adding an entity once, and values as JSON-LD likes them."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    from ..store import Store

STATUS = {
    True: "http://schema.org/CompletedActionStatus",
    False: "http://schema.org/FailedActionStatus",
}


def add_entity(crate: ROCrate, identifier: str, properties: dict[str, Any]) -> ContextEntity:
    """The entity ``identifier``, added with ``properties`` (None values left out) unless
    the crate has it already."""
    from rocrate.model.contextentity import ContextEntity

    if identifier in crate:  # (a missed crate.get scans every entity)
        return crate.get(identifier)
    clean = {k: v for k, v in properties.items() if v is not None}
    return crate.add(ContextEntity(crate, identifier, clean))


def artifact_bytes(store: Store, hash_: str) -> bytes:
    path, data = store.conn.execute(
        "SELECT path, data FROM artifacts WHERE hash = ?", (hash_,)
    ).fetchone()
    return data if data is not None else store.files.read(path)


def or_dash(value: Any) -> str:
    """A text value, or "-" where there is none (NaN from pandas)."""
    return value if isinstance(value, str) else "-"


def literal(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else json.dumps(value)


def iso(value: Any) -> str | None:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, timezone.utc).isoformat()
    return pd.Timestamp(value).isoformat()


def seconds(value: Any) -> float | None:
    import pandas as pd

    if value is None or pd.isna(value):
        return None
    return value.total_seconds() if isinstance(value, pd.Timedelta) else float(value)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
