"""The driver's end of the store writer process: starting it, sending batches, reading answers.

One writer process per driver process (started with the first run, restarted if it died) serves
every run's ``StoreWriter``. Its death fails every open writer: the answers' reader sees the end
of the process's stdout and sets an error on each, which their next call raises.

The process imports only what writing needs (the standard library, sqlite3 and the modules of
``provtask/store`` that ``writer_process.py`` imports): ``BOOTSTRAP`` registers ``provtask``
and ``provtask.store`` in ``sys.modules`` as *bare* packages (module objects whose
``__path__`` is the package's folder, their ``__init__.py`` not run), so importing
``provtask.store.writer_process`` finds its modules in the same files as the driver does
without loading the package's public API (and with it Dask, pandas, sqlite-utils). It starts
in an eighth of the time and a sixth of the memory (docs/performance.md).
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

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the folder holding provtask/
BOOTSTRAP = """
import sys, types
from pathlib import Path
store = Path({package_parent!r}) / "provtask" / "store"
for name, folder in (("provtask", store.parent), ("provtask.store", store)):
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    sys.modules[name] = package
{entry}
"""


def bootstrap_command(entry: str) -> list[str]:
    """The command running ``entry`` (Python statements) with the bare packages registered."""
    code = BOOTSTRAP.format(package_parent=_PACKAGE_PARENT, entry=entry)
    return [sys.executable, "-c", code]


class WriterChannel:
    """A writer process and the writers (sessions) using it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            bootstrap_command("from provtask.store.writer_process import main\nmain()"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self.pid = self.process.pid
        self.owner = os.getpid()
        self.dead: str | None = None  # why, once the process has died
        self._sessions: dict[int, StoreWriter] = {}
        self._closing: dict[int, threading.Event] = {}  # session -> its connection closed
        self._snapshots: dict[str, threading.Event] = {}  # run id -> taken (or given up)
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

    def close(
        self, session: int, snapshot: tuple[Path, str] | None = None, timeout: float = 30
    ) -> None:
        """End a session, waiting (up to ``timeout`` s) until the process has checkpointed
        and closed its connection; ``snapshot`` (store root, run id): the process then
        snapshots the run's tables (see ``Store.snapshot``), which :meth:`wait_for_snapshot`
        waits for."""
        closed = threading.Event()
        with self._lock:
            self._sessions.pop(session, None)
            if self.dead is not None:
                return
            self._closing[session] = closed
            if snapshot is not None:
                self._snapshots[snapshot[1]] = threading.Event()
        request = (str(snapshot[0]), snapshot[1]) if snapshot is not None else None
        self.send(("close", session, request))
        closed.wait(timeout)
        with self._lock:
            self._closing.pop(session, None)

    def wait_for_snapshot(self, run_id: str, timeout: float | None) -> bool:
        """Wait until the process has taken (or given up) the run's snapshot, if asked to;
        whether it is done."""
        taken = self._snapshots.get(run_id)
        if taken is None:
            return True
        done = taken.wait(timeout)
        if done:
            with self._lock:
                self._snapshots.pop(run_id, None)
        return done

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
            if message[0] in ("closed", "snapshot"):
                self._answered(message[0], message[1])
                continue
            _, session, seq, error = message
            writer = self._sessions.get(session)
            if writer is not None:
                writer.committed(seq, error)

    def _answered(self, kind: str, key: int | str) -> None:
        """A session closed or a run's snapshot taken: wake who waits for it."""
        table: dict = self._closing if kind == "closed" else self._snapshots
        with self._lock:
            waiting = table.get(key)
        if waiting is not None:
            waiting.set()

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
            waiting = [*self._closing.values(), *self._snapshots.values()]
        for writer in writers:
            writer.committed(None, self.dead)
        for event in waiting:  # nothing more will come (a run not snapshotted reads SQLite)
            event.set()


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


def wait_for_snapshot(run_id: str, timeout: float | None = None) -> bool:
    """Wait until this process's writer process has snapshotted ``run_id``, if it was asked
    to (a big run that ended here); whether it is done (False: ``timeout`` passed)."""
    current = _channel
    if current is None or current.owner != os.getpid():
        return True
    return current.wait_for_snapshot(run_id, timeout)


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
