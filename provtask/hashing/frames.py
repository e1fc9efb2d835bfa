"""pandas values: DataFrame, Series and Index by their dtypes, labels and values.

Column values are encoded from their arrays, never from pandas' own 64-bit row hashes:
numpy-backed columns by raw bytes, categoricals by categories, order flag and codes,
datetimes with a time zone and periods by their integer values (the dtype names the zone or
frequency), masked and Arrow columns by validity mask and data, anything else item by item.
Imported only when a value's type comes from pandas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UnhashableValue
from .arrays import encode_array


def encoder_for(cls: type) -> Callable[[Any, Any], None] | None:
    """The encoder of a pandas type, or None for one without a stable encoding."""
    for base, encoder in _ENCODERS:
        if issubclass(cls, base):
            return encoder
    return None


def _encode_frame(enc: Any, value: pd.DataFrame) -> None:
    enc.add(b"Pf")
    _encode_index(enc, value.columns)
    _encode_index(enc, value.index)
    for position, name in enumerate(value.columns):
        try:
            _encode_values(enc, value.iloc[:, position].array)
        except UnhashableValue as exc:
            exc.where = f"[{name!r}]" + exc.where
            raise


def _encode_series(enc: Any, value: pd.Series) -> None:
    enc.add(b"Ps")
    enc.encode(value.name)
    _encode_index(enc, value.index)
    _encode_values(enc, value.array)


def _encode_index(enc: Any, value: pd.Index) -> None:
    """Names and the values of each level; a RangeIndex hashes like the same integers."""
    enc.add(b"Pi%d:" % value.nlevels)
    enc.encode(list(value.names))
    for level in range(value.nlevels):
        _encode_values(enc, value.get_level_values(level).array)


def _encode_values(enc: Any, values: Any) -> None:
    """One column's values, preceded by its dtype's name."""
    dtype = values.dtype
    enc.add_text(str(dtype))
    if isinstance(dtype, np.dtype):
        encode_array(enc, values.to_numpy())
    elif isinstance(dtype, pd.CategoricalDtype):
        enc.add(b"o" if dtype.ordered else b"u")
        _encode_index(enc, dtype.categories)
        encode_array(enc, values.codes)
    elif isinstance(dtype, pd.DatetimeTZDtype | pd.PeriodDtype):
        encode_array(enc, values.asi8)
    elif getattr(dtype, "numpy_dtype", None) is not None and dtype.numpy_dtype.kind in "biufc":
        numpy_dtype = dtype.numpy_dtype
        encode_array(enc, np.asarray(values.isna(), dtype=bool))
        encode_array(enc, values.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0)))
    else:
        encode_array(enc, values.to_numpy(dtype=object))


def _encode_timestamp(enc: Any, value: pd.Timestamp) -> None:
    enc.add(b"Pt")
    enc.add_text(f"{value.isoformat()}|{value.tz}|{value.unit}")


def _encode_interval(enc: Any, value: pd.Interval) -> None:
    enc.add(b"Pv")
    enc.add_text(value.closed)
    enc.encode(value.left)
    enc.encode(value.right)


_ENCODERS: list[tuple[type, Callable[[Any, Any], None]]] = [
    (pd.DataFrame, _encode_frame),
    (pd.Series, _encode_series),
    (pd.Index, _encode_index),
    (pd.Timestamp, _encode_timestamp),
    (pd.Timedelta, lambda enc, v: (enc.add(b"Pd"), enc.add_text(f"{v.value}|{v.unit}"))),
    (pd.Period, lambda enc, v: (enc.add(b"Pp"), enc.add_text(f"{v}|{v.freqstr}"))),
    (pd.Interval, _encode_interval),
    (type(pd.NaT), lambda enc, v: enc.add(b"PT")),
    (type(pd.NA), lambda enc, v: enc.add(b"PN")),
]
