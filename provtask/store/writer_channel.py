"""The driver's end of the store writer process: starting it, sending batches, reading answers.

One writer process per driver process (started with the first run, restarted if it died) serves
every run's ``StoreWriter``. Its death fails every open writer: the answers' reader sees the end
of the process's stdout and sets an error on each, which their next call raises.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .writer_process import _END, read_frame, write_frame

if TYPE_CHECKING:
    from .writer import StoreWriter

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # what makes provtask importable


class WriterChannel:
    """A writer process and the writers (sessions) using it."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from provtask.store.writer_process import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self.pid = self.process.pid
        self.owner = os.getpid()
        self.dead: str | None = None  # why, once the process has died
        self._sessions: dict[int, StoreWriter] = {}
        self._next_session = 0
        self._lock = threading.Lock()  # one frame at a time on stdin; the session table
        threading.Thread(
            target=self._read_answers, name="provtask-store-answers", daemon=True
        ).start()

    def open(self, writer: StoreWriter, database: str) -> int:
        with self._lock:
            self._next_session += 1
            session = self._next_session
            self._sessions[session] = writer
        self.send(("open", session, database))
        return session

    def close(self, session: int) -> None:
        with self._lock:
            self._sessions.pop(session, None)
        if self.dead is None:
            self.send(("close", session))

    def send(self, message: tuple) -> None:
        """Send one frame; a dead process fails the open writers (and raises nothing here)."""
        with self._lock:
            if self.dead is not None:
                return
            try:
                write_frame(self.process.stdin, message)  # type: ignore[arg-type]
                return
            except (BrokenPipeError, OSError, ValueError):
                pass
        self._died()

    def _read_answers(self) -> None:
        stdout = self.process.stdout
        while True:
            try:
                message = read_frame(stdout)  # type: ignore[arg-type]
            except Exception:  # a torn frame: the process is gone
                message = _END
            if message is _END:
                self._died()
                return
            _, session, seq, error = message
            writer = self._sessions.get(session)
            if writer is not None:
                writer.committed(seq, error)

    def _died(self) -> None:
        try:
            status = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its pipes closed, yet alive: stop it
            self.process.kill()
            status = self.process.wait()
        with self._lock:
            if self.dead is None:
                self.dead = describe_exit(self.pid, status)
            writers = list(self._sessions.values())
        for writer in writers:
            writer.committed(None, self.dead)


def describe_exit(pid: int, status: int) -> str:
    how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
    return (
        f"the store writer process (pid {pid}) died ({how}): the rows it had not committed "
        "were not written, and everything committed before is intact. 'provtask doctor' "
        "checks the store; 'provtask replay RUN' finishes the run"
    )


_channel: WriterChannel | None = None
_channel_lock = threading.Lock()


def channel() -> WriterChannel:
    """This process's writer process, started (again) if there is none alive."""
    global _channel
    with _channel_lock:
        if _channel is None or _channel.dead is not None or _channel.owner != os.getpid():
            _channel = WriterChannel()
        return _channel


def writer_pid() -> int | None:
    """The pid of this process's writer process, if one is running (for tests and tools)."""
    current = _channel
    if current is None or current.dead is not None or current.owner != os.getpid():
        return None
    return current.pid


@atexit.register
def _stop_at_exit() -> None:
    """Close the writer process's stdin: it commits what it read and exits."""
    current = _channel
    if current is None or current.owner != os.getpid() or current.process.stdin is None:
        return
    with current._lock, contextlib.suppress(OSError):
        current.process.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        current.process.wait(timeout=30)
