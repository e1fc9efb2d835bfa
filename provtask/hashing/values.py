"""The canonical encoding: builtins, the standard library and dataclasses; numpy, pandas and
paths are delegated to their own modules, imported only when a value needs them."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import hashlib
import math
import types
import uuid
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from ..errors import UnhashableValue
from .paths import PathMemo, path_digest

HASH_SCHEME = 1
"""Version of the encoding; part of every hash, so a new encoding never collides with old keys."""

_PREFIX = b"provtask-value-v%d\n" % HASH_SCHEME


class _Encoder:
    """Streams the canonical encoding of values into one BLAKE2b hasher."""

    __slots__ = ("hasher", "memo", "parts")

    def __init__(self, memo: PathMemo | None) -> None:
        self.hasher = hashlib.blake2b(_PREFIX, digest_size=32)
        self.parts: list[bytes] = []
        self.memo = memo

    def add(self, data: bytes) -> None:
        self.parts.append(data)

    def add_text(self, text: str) -> None:
        data = text.encode()
        self.parts.append(b"%d:" % len(data) + data)

    def add_buffer(self, buffer: Any) -> None:
        """A large buffer goes straight to the hasher, without a copy."""
        self.parts.append(b"%d:" % memoryview(buffer).nbytes)
        self.flush()
        self.hasher.update(buffer)

    def flush(self) -> None:
        if self.parts:
            self.hasher.update(b"".join(self.parts))
            self.parts.clear()

    def digest(self) -> bytes:
        self.flush()
        return self.hasher.digest()

    def encode(self, value: Any) -> None:
        encoder = _EXACT.get(type(value)) or _encoder_for_type(type(value))
        encoder(self, value)

    def sub_digest(self, value: Any) -> bytes:
        """The raw digest of one value on its own (dict keys and set items are sorted by it)."""
        child = _Encoder(self.memo)
        child.encode(value)
        return child.digest()

    def items(self, values: Any, where: Callable[[int], str] = "[{}]".format) -> None:
        for index, item in enumerate(values):
            try:
                self.encode(item)
            except UnhashableValue as exc:
                exc.where = where(index) + exc.where
                raise


def value_hash(value: Any, *, memo: PathMemo | None = None) -> str:
    """Hex BLAKE2b-256 of the canonical encoding of ``value`` (rules in docs/caching.md).

    ``memo`` remembers the digests of files reached through ``pathlib.Path`` values.
    Raises ``UnhashableValue`` for a value with no stable encoding.
    """
    encoder = _Encoder(memo)
    try:
        encoder.encode(value)
    except RecursionError:
        raise UnhashableValue("the value contains itself or is nested too deeply") from None
    return encoder.digest().hex()


def hash_arguments(arguments: dict[str, Any], *, memo: PathMemo | None = None) -> dict[str, str]:
    """One ``value_hash`` per argument name; an ``UnhashableValue`` names the argument."""
    hashes = {}
    for name, value in arguments.items():
        try:
            hashes[name] = value_hash(value, memo=memo)
        except UnhashableValue as exc:
            exc.argument = name
            raise
    return hashes


def combine(parts: list[str]) -> str:
    """One hash for an ordered list of hashes (Merkle-style)."""
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=32).hexdigest()


# -- builtins ------------------------------------------------------------------------------------
def _float_text(value: float) -> str:
    return "nan" if math.isnan(value) else value.hex()


def _encode_sequence(tag: bytes) -> Callable[[_Encoder, Any], None]:
    def encode(enc: _Encoder, value: Any) -> None:
        enc.add(tag + b"%d[" % len(value))
        enc.items(value)
        enc.add(b"]")

    return encode


def _encode_dict(enc: _Encoder, value: dict) -> None:
    entries = []
    for key, item in value.items():
        try:
            entries.append((enc.sub_digest(key), key, item))
        except UnhashableValue as exc:
            exc.where = f" (a key of the dict{exc.where})"
            raise
    entries.sort(key=lambda entry: entry[0])
    enc.add(b"d%d{" % len(entries))
    for digest, key, item in entries:
        enc.add(digest)
        try:
            enc.encode(item)
        except UnhashableValue as exc:
            exc.where = f"[{key!r}]" + exc.where
            raise
    enc.add(b"}")


def _encode_set(enc: _Encoder, value: set | frozenset) -> None:
    try:
        digests = sorted(enc.sub_digest(item) for item in value)
    except UnhashableValue as exc:
        exc.where = f" (an item of the set{exc.where})"
        raise
    enc.add(b"S%d{" % len(digests) + b"".join(digests) + b"}")


_EXACT: dict[type, Callable[[_Encoder, Any], None]] = {
    type(None): lambda enc, v: enc.add(b"N"),
    bool: lambda enc, v: enc.add(b"T" if v else b"F"),
    int: lambda enc, v: enc.add(b"i%d;" % v),
    float: lambda enc, v: enc.add(b"f" + _float_text(v).encode() + b";"),
    complex: lambda enc, v: enc.add(f"c{_float_text(v.real)},{_float_text(v.imag)};".encode()),
    str: lambda enc, v: (enc.add(b"s"), enc.add_text(v)),
    bytes: lambda enc, v: enc.add(b"b%d:" % len(v) + v),
    bytearray: lambda enc, v: enc.add(b"B%d:" % len(v) + bytes(v)),
    range: lambda enc, v: enc.add(b"r%d,%d,%d;" % (v.start, v.stop, v.step)),
    list: _encode_sequence(b"l"),
    tuple: _encode_sequence(b"t"),
    dict: _encode_dict,
    set: _encode_set,
    frozenset: _encode_set,
}


# -- other types, chosen once per type -------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _encoder_for_type(cls: type) -> Callable[[_Encoder, Any], None]:
    if callable(getattr(cls, "__provtask_hash__", None)):
        return _encode_custom
    root = cls.__module__.partition(".")[0]
    if root == "numpy":
        from .arrays import encoder_for

        return encoder_for(cls) or _unhashable
    if root == "pandas":
        from .frames import encoder_for

        return encoder_for(cls) or _unhashable
    if issubclass(cls, enum.Enum):
        return _encode_enum
    if dataclasses.is_dataclass(cls):
        return _encode_dataclass
    if issubclass(cls, PurePath):
        return _encode_path if issubclass(cls, Path) else _encode_pure_path
    for base, encoder in _STDLIB:
        if issubclass(cls, base):
            return encoder
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return _encode_namedtuple
    for base, encoder in _EXACT.items():
        if base is not type(None) and issubclass(cls, base):
            return _subclass_of(base, encoder)
    return _unhashable


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _unhashable(enc: _Encoder, value: Any) -> None:
    raise UnhashableValue(f"a value of type {_qualified(type(value))} has no stable hash")


def _encode_custom(enc: _Encoder, value: Any) -> None:
    data = value.__provtask_hash__()
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes):
        raise UnhashableValue(
            f"{_qualified(type(value))}.__provtask_hash__ returned {type(data).__name__}; "
            "it must return bytes or str"
        )
    enc.add(b"u")
    enc.add_text(type(value).__qualname__)
    enc.add(b"%d:" % len(data) + data)


def _encode_enum(enc: _Encoder, value: enum.Enum) -> None:
    enc.add(b"e")
    enc.add_text(type(value).__qualname__)
    enc.add_text(value.name)
    enc.encode(value.value)


def _encode_dataclass(enc: _Encoder, value: Any) -> None:
    fields = dataclasses.fields(value)
    enc.add(b"D")
    enc.add_text(type(value).__qualname__)
    enc.add(b"%d{" % len(fields))
    for field in fields:
        enc.add_text(field.name)
        try:
            enc.encode(getattr(value, field.name))
        except UnhashableValue as exc:
            exc.where = f".{field.name}" + exc.where
            raise
    enc.add(b"}")


def _encode_namedtuple(enc: _Encoder, value: tuple) -> None:
    enc.add(b"n")
    enc.add_text(type(value).__qualname__)
    _encode_sequence(b"t")(enc, value)


def _encode_namespace(enc: _Encoder, value: types.SimpleNamespace) -> None:
    enc.add(b"o")
    _encode_dict(enc, vars(value))


def _subclass_of(base: type, encoder: Callable[[_Encoder, Any], None]) -> Callable:
    """A subclass of a builtin type: its class name, then the builtin's encoding."""

    def encode(enc: _Encoder, value: Any) -> None:
        if getattr(value, "__dict__", None):
            raise UnhashableValue(
                f"a value of type {_qualified(type(value))} (a {base.__name__} subclass) has "
                "instance attributes, which are not part of a stable hash"
            )
        enc.add(b"x")
        enc.add_text(type(value).__qualname__)
        encoder(enc, value)

    return encode


def _encode_path(enc: _Encoder, value: Path) -> None:
    enc.add(b"p" + path_digest(value, enc.memo))


def _encode_pure_path(enc: _Encoder, value: PurePath) -> None:
    enc.add(b"P")
    enc.add_text(type(value).__name__)
    enc.add_text(str(value))


def _encode_datetime(enc: _Encoder, value: datetime.datetime | datetime.time) -> None:
    enc.add(b"t" if isinstance(value, datetime.time) else b"w")
    enc.add_text(f"{value.isoformat()}|{value.tzinfo}|{value.fold}")


_STDLIB: list[tuple[type, Callable[[_Encoder, Any], None]]] = [
    (datetime.datetime, _encode_datetime),
    (datetime.time, _encode_datetime),
    (datetime.date, lambda enc, v: (enc.add(b"a"), enc.add_text(v.isoformat()))),
    (
        datetime.timedelta,
        lambda enc, v: enc.add(b"k%d,%d,%d;" % (v.days, v.seconds, v.microseconds)),
    ),
    (decimal.Decimal, lambda enc, v: (enc.add(b"m"), enc.add_text(str(v)))),
    (uuid.UUID, lambda enc, v: enc.add(b"g" + v.bytes)),
    (types.SimpleNamespace, _encode_namespace),
]
