"""Code identity of a task function: a hash of its normalised source."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable


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
    if source is not None:
        payload = source.encode()
    else:
        code = fn.__code__
        payload = code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode()
    return hashlib.sha256(payload).hexdigest()
