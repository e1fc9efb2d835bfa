"""Script-mode traps of the embedded cluster, caught before any worker starts.

Its worker processes start by importing the main script (multiprocessing's ``spawn``): a
script that runs a DAG at its top level without a ``__main__`` guard runs it again in every
worker (hundreds of lines of tracebacks and failed runs), and a script read from stdin
cannot be imported at all.
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path
from types import FrameType

from .errors import DAGFileError

GUARD = 'if __name__ == "__main__":'


def check_script_mode() -> None:
    """Raise :class:`DAGFileError` with what to do, if the embedded cluster cannot start
    from the way the main script is run."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main.__spec__, "name", None):  # python -m: imported by name
        return
    filename = getattr(main, "__file__", None)
    if filename is None:  # an interactive interpreter or Jupyter: nothing is re-imported
        return
    if not Path(filename).is_file():
        raise DAGFileError(
            f"the main script comes from {filename!r}, which the embedded cluster's worker "
            "processes cannot import: save it to a file and run 'python FILE.py' (with the "
            f"run under '{GUARD}'), or use 'provtask run FILE.py'"
        )
    path = str(Path(filename).resolve())
    frame = _top_level_frame(path)
    if frame is not None and not _guarded(path, frame.f_lineno):
        raise DAGFileError(
            f"{Path(filename).name} line {frame.f_lineno} starts a run at the top level of "
            "the script, which every worker process re-imports: put the run under "
            f"'{GUARD}' (or run the DAG with 'provtask run {Path(filename).name}')"
        )


def _top_level_frame(path: str) -> FrameType | None:
    """The frame of the main script's module-level code on this thread's stack, if any
    (code the script itself runs with ``exec`` is not the script's)."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>" and str(Path(code.co_filename).resolve()) == path:
            return frame
        frame = frame.f_back
    return None


@functools.cache
def _guard_ranges(path: str) -> tuple[tuple[int, int], ...]:
    """Line ranges of the file's ``if __name__ == "__main__":`` blocks."""
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return ((0, sys.maxsize),)  # cannot tell: assume guarded
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            ranges.append((node.lineno, node.end_lineno or node.lineno))
    return tuple(ranges)


def _is_main_test(test: ast.expr) -> bool:
    if not isinstance(test, ast.Compare) or len(test.comparators) != 1:
        return False
    sides = [test.left, test.comparators[0]]
    names = {s.id for s in sides if isinstance(s, ast.Name)}
    values = {s.value for s in sides if isinstance(s, ast.Constant)}
    return names == {"__name__"} and values == {"__main__"}


def _guarded(path: str, line: int) -> bool:
    return any(start <= line <= end for start, end in _guard_ranges(path))
