"""A typed JSON encoding of run params that gives back exactly what was encoded.

Plain JSON turns a tuple into a list and a ``Path`` into a string; replaying such a run would
pass other values, with other hashes, and miss the cache. Here JSON scalars (``str``,
``int``, finite ``float``, ``bool``, ``None``), lists and dicts with string keys are written
as themselves; every other supported type is a tagged object ``{"__type__": TAG, ...}``:
tuples, sets, frozensets, dicts with other keys, pathlib paths, ``datetime`` / ``date`` /
``time`` / ``timedelta``, ``Decimal``, ``bytes``, ``complex``, non-finite floats, numpy
scalars and numpy arrays of numbers. Anything else is refused with :class:`ParamError`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import pathlib
from decimal import Decimal
from typing import Any

from .errors import ParamError

TAG = "__type__"
_PATHS = {
    cls.__name__: cls
    for cls in (
        pathlib.Path,
        pathlib.PosixPath,
        pathlib.WindowsPath,
        pathlib.PurePath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
    )
}
_SUPPORTED = (
    "str, int, float, bool, None, list, tuple, set, dict, pathlib paths, datetime, date, "
    "time, timedelta, Decimal, bytes, complex, numpy scalars and numeric numpy arrays"
)


class _Refused(Exception):
    def __init__(self, where: str, value: Any, why: str) -> None:
        self.where, self.value, self.why = where, value, why


def encode_params(params: dict[str, Any]) -> str:
    """The params as typed JSON text; :class:`ParamError` names a param that cannot be
    given back exactly, and what to do about it."""
    encoded = {}
    for name, value in params.items():
        try:
            encoded[name] = _encode(value, name)
        except _Refused as refused:
            raise ParamError(
                f"param {name!r}: {refused.where} is a {type(refused.value).__name__} "
                f"({refused.why}), so the run could not record it for replay; pass one of "
                f"{_SUPPORTED} (e.g. a path or the settings that build the object), and "
                "create the object inside a task"
            ) from None
    return json.dumps(encoded, sort_keys=True, allow_nan=False)


def decode_params(text: str | None) -> dict[str, Any]:
    """The params encoded by :func:`encode_params`, with their exact types."""
    if not text:
        return {}
    return {name: _decode(value) for name, value in json.loads(text).items()}


def _encode(value: Any, where: str) -> Any:
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if kind is float:
        return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
    if kind is list:
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind is dict:
        if all(type(key) is str for key in value) and TAG not in value:
            return {key: _encode(item, f"{where}[{key!r}]") for key, item in value.items()}
        items = [
            [_encode(k, f"a key of {where}"), _encode(v, f"{where}[{k!r}]")]
            for k, v in value.items()
        ]
        return {TAG: "dict", "items": items}
    if kind in (tuple, set, frozenset):
        items = [_encode(item, f"an item of {where}") for item in value]
        if kind is not tuple:
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return {TAG: kind.__name__, "items": items}
    if kind.__name__ in _PATHS and kind is _PATHS[kind.__name__]:
        return {TAG: kind.__name__, "value": str(value)}
    return _encode_other(value, where)


def _encode_other(value: Any, where: str) -> Any:
    kind = type(value)
    if kind in (dt.datetime, dt.time):
        if value.tzinfo is not None and not isinstance(value.tzinfo, dt.timezone):
            raise _Refused(where, value, "its time zone is not a fixed UTC offset")
        return {TAG: kind.__name__, "value": value.isoformat(), "fold": value.fold}
    if kind is dt.date:
        return {TAG: "date", "value": value.isoformat()}
    if kind is dt.timedelta:
        return {TAG: "timedelta", "value": [value.days, value.seconds, value.microseconds]}
    if kind is Decimal:
        return {TAG: "Decimal", "value": str(value)}
    if kind is bytes:
        return {TAG: "bytes", "value": base64.b64encode(value).decode()}
    if kind is complex:
        return {TAG: "complex", "value": [repr(value.real), repr(value.imag)]}
    if kind.__module__ == "numpy":
        return _encode_numpy(value, where)
    raise _Refused(where, value, "not a type that the params encoding gives back exactly")


def _encode_numpy(value: Any, where: str) -> Any:
    import numpy as np

    dtype = value.dtype
    if dtype.kind not in "biufc" or dtype.byteorder not in "=|":
        raise _Refused(where, value, f"numpy dtype {dtype} is not a plain number type")
    data = base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()
    if isinstance(value, np.ndarray):
        return {TAG: "ndarray", "dtype": dtype.str, "shape": list(value.shape), "data": data}
    return {TAG: "numpy", "dtype": dtype.str, "data": data, "repr": repr(value.item())}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {key: _decode(item) for key, item in value.items()}
    if tag == "dict":
        return {_decode(k): _decode(v) for k, v in value["items"]}
    if tag in ("tuple", "set", "frozenset"):
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](
            _decode(item) for item in value["items"]
        )
    if tag in _PATHS:
        return _PATHS[tag](value["value"])
    return _decode_scalar(tag, value)


def _decode_scalar(tag: str, value: dict[str, Any]) -> Any:
    if tag == "float":
        return float(value["value"])
    if tag in ("datetime", "time"):
        kind = dt.datetime if tag == "datetime" else dt.time
        return kind.fromisoformat(value["value"]).replace(fold=value["fold"])
    if tag == "date":
        return dt.date.fromisoformat(value["value"])
    if tag == "timedelta":
        days, seconds, microseconds = value["value"]
        return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if tag == "Decimal":
        return Decimal(value["value"])
    if tag == "bytes":
        return base64.b64decode(value["value"])
    if tag == "complex":
        real, imag = value["value"]
        return complex(float(real), float(imag))
    if tag in ("numpy", "ndarray"):
        import numpy as np

        array = np.frombuffer(base64.b64decode(value["data"]), dtype=np.dtype(value["dtype"]))
        if tag == "numpy":
            return array[0]
        return array.reshape(value["shape"]).copy()
    raise ParamError(f"recorded param has unknown type tag {tag!r}; upgrade provtask to read it")
