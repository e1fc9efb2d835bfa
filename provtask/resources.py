"""Resource requests of a task, validated when the task is decorated."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ResourceError

LAUNCHERS = ("srun", "mpirun", "mpiexec")

_MEMORY_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "KIB": 1024,
    "M": 1000**2,
    "MB": 1000**2,
    "MIB": 1024**2,
    "G": 1000**3,
    "GB": 1000**3,
    "GIB": 1024**3,
    "T": 1000**4,
    "TB": 1000**4,
    "TIB": 1024**4,
}
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_HMS_RE = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})$")  # [D-]HH:MM:SS (SLURM style)
_MS_RE = re.compile(r"^(\d+):(\d{1,2})$")  # MM:SS
_UNIT_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d)\s*$", re.IGNORECASE)
_TIME_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_memory(value: str | int, field: str = "memory") -> int:
    """Bytes from ``"4GB"``, ``"512MiB"``, ``"2G"`` or an int of bytes."""
    if isinstance(value, bool):
        raise ResourceError(f"{field}: expected a size such as '4GB', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ResourceError(f"{field}: must be positive, got {value}")
        return value
    if isinstance(value, str):
        match = _MEMORY_RE.match(value)
        unit = match.group(2).upper() if match else None
        if match and unit in _MEMORY_UNITS:
            size = int(float(match.group(1)) * _MEMORY_UNITS[unit])
            if size > 0:
                return size
    raise ResourceError(
        f"{field}: cannot read {value!r} as a size; write e.g. '4GB', '512MB' or '2GiB'"
    )


def parse_walltime(value: str | int | float, field: str = "walltime") -> int:
    """Seconds from ``"HH:MM:SS"``, ``"D-HH:MM:SS"``, ``"MM:SS"``, ``"1h"``, ``"90m"``, a number."""
    if isinstance(value, bool):
        raise ResourceError(f"{field}: expected a duration such as '01:00:00', got {value!r}")
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            seconds = float(text)
        elif match := _HMS_RE.match(text):
            days, hours, minutes, secs = (int(g or 0) for g in match.groups())
            if minutes < 60 and secs < 60:
                seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
        elif match := _MS_RE.match(text):
            minutes, secs = int(match.group(1)), int(match.group(2))
            if secs < 60:
                seconds = minutes * 60 + secs
        elif match := _UNIT_TIME_RE.match(text):
            seconds = float(match.group(1)) * _TIME_UNITS[match.group(2).lower()]
    if seconds is None or not math.isfinite(seconds):
        raise ResourceError(
            f"{field}: cannot read {value!r} as a duration; write 'HH:MM:SS', 'D-HH:MM:SS', "
            "'30m', '1h' or a number of seconds"
        )
    if round(seconds) <= 0:
        raise ResourceError(f"{field}: must be at least one second, got {value!r}")
    return round(seconds)


def format_walltime(seconds: int) -> str:
    """``HH:MM:SS`` (hours may exceed 24), as batch systems accept it."""
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _positive_int(value: Any, field: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ResourceError(f"{field}: expected an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Resources:
    """What one task asks of the cluster. Sizes are bytes, times seconds."""

    partition: str | None = None
    nodes: int = 1
    ntasks_per_node: int = 1
    cpus_per_task: int = 1
    gpus: int = 0
    memory: int | None = None
    walltime: int | None = None
    retries: int = 0
    launcher: str | None = None

    @property
    def ranks(self) -> int:
        return self.nodes * self.ntasks_per_node

    def to_record(self) -> dict[str, Any]:
        """Plain dict for the store (``None`` fields omitted)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def make_resources(**given: Any) -> Resources:
    """Validate user-given resource fields; every error names its field, and all the errors
    of one call are reported at once."""
    names = [f.name for f in dataclasses.fields(Resources)]
    errors = [
        f"unknown resource field {name!r}{_closest(name, names)}; known fields: {', '.join(names)}"
        for name in sorted(set(given) - set(names))
    ]
    fields: dict[str, Any] = {}
    for name, check in _CHECKS:
        if given.get(name) is not None:
            try:
                fields[name] = check(given[name], name)
            except ResourceError as exc:
                errors.append(str(exc))
    if errors:
        raise ResourceError("; ".join(errors))
    return Resources(**fields)


def _closest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _partition(value: Any, field: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
        raise ResourceError(
            f"{field}: expected a name of letters, digits, '_', '-' or '.', got {value!r}"
        )
    return value


def _launcher(value: Any, field: str) -> str:
    if value not in LAUNCHERS:
        raise ResourceError(f"{field}: expected one of {', '.join(LAUNCHERS)}, got {value!r}")
    return value


def _count(value: Any, field: str) -> int:
    return _positive_int(value, field, minimum=0)


_CHECKS: tuple[tuple[str, Callable[[Any, str], Any]], ...] = (
    ("partition", _partition),
    ("nodes", _positive_int),
    ("ntasks_per_node", _positive_int),
    ("cpus_per_task", _positive_int),
    ("gpus", _count),
    ("retries", _count),
    ("memory", parse_memory),
    ("walltime", parse_walltime),
    ("launcher", _launcher),
)
