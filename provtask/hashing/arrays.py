"""numpy values: arrays by dtype, shape and raw C-order bytes; object arrays item by item.

Imported only when a value's type comes from numpy, so provtask does not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UnhashableValue


def encoder_for(cls: type) -> Callable[[Any, Any], None] | None:
    """The encoder of a numpy type, or None for one without a stable encoding (subclasses)."""
    if cls is np.ndarray:
        return encode_array
    if issubclass(cls, np.generic):
        return _encode_scalar
    return None


def encode_array(enc: Any, value: np.ndarray) -> None:
    """dtype, shape, then the raw bytes in C order (items one by one for object/record dtypes)."""
    enc.add(b"A")
    enc.add_text(value.dtype.str)
    enc.add(b"%d(" % value.ndim + b",".join(b"%d" % n for n in value.shape) + b")")
    if value.dtype.hasobject or value.dtype.names is not None:
        # Object and record items have no canonical bytes (pointers, padding): encode each one.
        items = value.reshape(-1).tolist()
        if all(type(item) is str for item in items):
            _encode_strings(enc, items)
            return
        enc.add(b"[")
        enc.items(items, where=lambda i: f".flat[{i}]")
        enc.add(b"]")
        return
    if value.dtype.str.startswith("|V"):
        raise UnhashableValue(f"a numpy array of dtype {value.dtype} has no stable hash")
    flat = np.ascontiguousarray(value).reshape(-1)
    enc.add_buffer(flat.view(np.uint8))


def _encode_strings(enc: Any, items: list[str]) -> None:
    """Only strings (a common object column): their UTF-8 lengths, then all their bytes."""
    data = [item.encode() for item in items]
    enc.add(b"S")
    enc.add_buffer(np.fromiter(map(len, data), dtype="<i8", count=len(data)).view(np.uint8))
    enc.add_buffer(b"".join(data))


def _encode_scalar(enc: Any, value: np.generic) -> None:
    enc.add(b"Z")
    encode_array(enc, np.asarray(value))
