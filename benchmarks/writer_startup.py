"""The store writer process: start-up until it answers, and its memory idle.

    python -m benchmarks.writer_startup [--rounds 7] [--json]

Each round ends this process's writer process (SIGTERM) and times ``Store.writer()`` plus one
inserted row flushed: from starting a new writer process to its answer that the row is
committed. Then the idle process's resident memory (VmRSS) and its peak (VmHWM), MB.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

from provtask import Store
from provtask.store import writer_channel

from .common import Figures, parser, report, rounds_of


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, MB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines if line.startswith(("VmRSS", "VmHWM")))
    return {name: int(value.split()[0]) / 1024 for name, value in fields.items()}


def stop_writer_process() -> None:
    """End this process's writer process (idle: nothing is lost) and wait until it is gone."""
    pid = writer_channel.writer_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    while writer_channel.writer_pid() is not None:
        time.sleep(0.01)


def main() -> None:
    args = parser(__doc__, rounds=7).parse_args()
    figures: Figures = {"ms until the first answer": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        for round_no in range(rounds_of(args)):
            stop_writer_process()  # the next writer starts a new one
            start = time.perf_counter()
            writer = store.writer()
            writer.insert("runs", {"run_id": f"r{round_no}", "dag_name": "d", "status": "ok"})
            writer.flush()
            figures["ms until the first answer"].append((time.perf_counter() - start) * 1000)
            writer.close()
        time.sleep(0.5)
        pid = writer_channel.writer_pid()
        assert pid is not None
        memory = memory_mb(pid)
        figures["idle VmRSS MB"] = [memory["VmRSS"]]
        figures["idle VmHWM MB"] = [memory["VmHWM"]]
        store.close()
    report("the store writer process", figures, {}, args.json)


if __name__ == "__main__":
    main()
