"""Code identity of a task function: a hash of its normalised source."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from types import CodeType


def function_source(fn: Callable) -> str | None:
    """The function's source without decorators, comments or formatting, or None if unknown."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.decorator_list = []
            return ast.unparse(node)
    return None


def code_hash(fn: Callable) -> str:
    """sha256 of the normalised source; falls back to the bytecode when there is no source."""
    source = function_source(fn)
    payload = source.encode() if source is not None else _bytecode_identity(fn.__code__)
    return hashlib.sha256(payload).hexdigest()


def _bytecode_identity(code: CodeType) -> bytes:
    """Bytecode, names and constants; nested functions by their own identity, never by
    their repr (which holds memory addresses)."""
    constants = [
        hashlib.sha256(_bytecode_identity(c)).hexdigest() if isinstance(c, CodeType) else repr(c)
        for c in code.co_consts
    ]
    return code.co_code + repr((constants, code.co_names)).encode()
