"""The one JSON form of every ``--json``: times as ISO 8601 UTC strings ending in ``Z``
(millisecond precision), durations as float seconds, missing values as ``null``."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import pandas as pd

# Columns of the store's rows that hold epoch seconds (the schema's REAL times).
EPOCH_COLUMNS = frozenset({"started_at", "ended_at", "heartbeat_at", "submitted_at"})


def iso_time(moment: dt.datetime) -> str:
    """``2026-11-25T04:10:33.062Z``."""
    utc = moment.astimezone(dt.timezone.utc) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def plain(value: Any) -> Any:
    """A value as JSON can hold it, in the documented forms."""
    import numpy as np
    import pandas as pd

    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):  # pd.Timestamp included
        return iso_time(value)
    if isinstance(value, dt.timedelta):  # pd.Timedelta included
        return value.total_seconds()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def epoch_to_iso(row: dict[str, Any]) -> dict[str, Any]:
    """A store row with its epoch-second times as ISO strings."""
    return {
        key: iso_time(dt.datetime.fromtimestamp(value, dt.timezone.utc))
        if key in EPOCH_COLUMNS and isinstance(value, int | float)
        else value
        for key, value in row.items()
    }


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame's rows as plain dicts."""
    return [plain(row) for row in frame.astype(object).to_dict(orient="records")]


def echo_json(data: Any) -> None:
    """``data`` in the one JSON form; what JSON cannot hold (a Path, a set) as its ``str``."""
    click.echo(json.dumps(plain(data), indent=2, default=str))
