"""JSON output of the commands of issue 14: times as ISO 8601 UTC strings ending in ``Z``
(``2026-12-02T18:14:00.123456Z``), durations as float seconds."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


def iso_utc(epoch: float | None) -> str | None:
    """An epoch time (s) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    if epoch is None:
        return None
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def dumps(value: Any) -> str:
    """``value`` as indented JSON; datetimes as :func:`iso_utc`, timedeltas as seconds,
    anything else unknown (paths, numpy scalars) as its ``str``."""
    return json.dumps(value, indent=2, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_utc(value.timestamp())
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)
