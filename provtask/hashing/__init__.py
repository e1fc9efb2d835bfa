"""Stable identities of values: the input half of a cache key.

``value_hash`` is the BLAKE2b-256 of a canonical, type-tagged encoding of a value. It is the
same in every process, whatever the str hash seed, on every machine with the same library
versions. Only the types listed in docs/caching.md are accepted: anything else raises
``UnhashableValue`` instead of falling back to pickle bytes, which are not stable (sets inside
objects, memory addresses, library internals). numpy and pandas are imported only when a value
comes from them.
"""

from __future__ import annotations

from .paths import PathMemo
from .values import HASH_SCHEME, combine, hash_arguments, value_hash

__all__ = ["HASH_SCHEME", "PathMemo", "combine", "hash_arguments", "value_hash"]
