"""A program's output as the store keeps it: bounded text, and a tail for the attempts row."""

from __future__ import annotations

from pathlib import Path

STREAM_LIMIT = 2 * 1024 * 1024  # bytes of a stream kept in the store: its start and its end
HEAD = STREAM_LIMIT // 4
TAIL = 64 * 1024  # characters in the attempts row (as for Python tasks' captured output)


def bounded_text(path: Path) -> str:
    """The file as text; past ``STREAM_LIMIT`` bytes, its first quarter and its end."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= STREAM_LIMIT:
            return handle.read().decode(errors="replace")
        head = handle.read(HEAD)
        handle.seek(size - (STREAM_LIMIT - HEAD))
        tail = handle.read()
    dropped = size - len(head) - len(tail)
    return (
        head.decode(errors="replace")
        + f"\n[… {dropped} bytes not kept …]\n"
        + tail.decode(errors="replace")
    )


def tail_of(text: str) -> str | None:
    """The end of a stream for quick reading (``None`` when it is empty)."""
    if len(text) <= TAIL:
        return text or None
    return f"[… {len(text) - TAIL} earlier characters not kept …]\n{text[-TAIL:]}"
