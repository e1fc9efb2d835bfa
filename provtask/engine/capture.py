"""Per-thread capture of ``print`` output, so each attempt records its own stdout/stderr.

``sys.stdout`` and ``sys.stderr`` of a worker are replaced once by streams that route each
write to the buffer of the attempt running in the writing thread, and everything else to
the original stream. Only Python-level writes are seen: output of C code or subprocesses
writing to file descriptors 1 and 2 goes to the worker's log as before.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

TAIL = 64 * 1024  # characters kept per stream and attempt: the end, where errors are


class _Tail:
    """The last ``TAIL`` characters written, and how many were dropped before them."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * TAIL:
            joined = "".join(self.parts)
            self.dropped += len(joined) - TAIL
            self.parts, self.size = [joined[-TAIL:]], TAIL

    def text(self) -> str | None:
        joined = "".join(self.parts)
        if len(joined) > TAIL:
            self.dropped += len(joined) - TAIL
            joined = joined[-TAIL:]
        if self.dropped:
            return f"[… {self.dropped} earlier characters not kept …]\n{joined}"
        return joined or None


class _RoutedStream(io.TextIOBase):
    def __init__(self, original: TextIO) -> None:
        self.original = original
        self.tails: dict[int, _Tail] = {}

    def write(self, text: str) -> int:
        tail = self.tails.get(threading.get_ident())
        if tail is None:
            return self.original.write(text)
        tail.write(text)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, ...
        return getattr(self.original, name)


def install_stream_routing() -> None:
    """Route this process's stdout and stderr (idempotent)."""
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream(sys.stdout)
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream(sys.stderr)


@contextmanager
def captured(into: dict[str, Any]) -> Iterator[None]:
    """Capture this thread's output; on exit, set ``into["stdout"]`` and ``into["stderr"]``."""
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    thread = threading.get_ident()
    tails = {name: _Tail() for name in streams}
    for name, stream in streams.items():
        if isinstance(stream, _RoutedStream):
            stream.tails[thread] = tails[name]
    try:
        yield
    finally:
        for name, stream in streams.items():
            if isinstance(stream, _RoutedStream):
                stream.tails.pop(thread, None)
            into[name] = tails[name].text()
