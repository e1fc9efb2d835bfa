"""Reading a run's attempts into a DataFrame: ``Store.attempts(run)`` for 1,000,000 attempts.

    python -m benchmarks.attempts_frame [--attempts 1000000] [--rounds 5] [--quick] [--json]

Fills a fresh store with one run of ``--attempts`` finished attempts, rows as a run on 4
nodes, 8 workers and 2 partitions writes them (times, worker, host, CPU time, peak RSS,
output hash, resources; every 1,000th failed with a traceback), inserted directly with SQL
(ingest is ``store_ingest``'s business), then times ``Store.attempts(run)`` twice each round:

- from SQLite: the run's revision is bumped first (as any write to its rows does), so the read
  goes to SQLite;
- taking the snapshot: ``Store.snapshot(run)`` writes its Parquet snapshot (the work the store
  writer process does after a big run's last commit);
- from the snapshot: the same call again, now served by the snapshot.

Both frames are checked to be equal.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from provtask import Store
from provtask.store.snapshot import bump_revisions

from .common import Figures, parser, report, rounds_of, timed

RUN = "20260101-000000-00f4a3"
COLUMNS = [
    *("run_id", "task_id", "attempt", "key", "status", "partition", "resources"),
    *("submitted_at", "started_at", "function_ended_at", "ended_at"),
    *("worker", "hostname", "pid", "node", "cpu_time", "peak_rss"),
    *("exc_type", "exc_message", "traceback", "output_hash", "failure_cause"),
]


def attempt_rows(n: int) -> Iterator[tuple]:
    resources = json.dumps({"cpus_per_task": 1, "memory": "1GB", "partition": None})
    start = time.time()
    for i in range(n):
        failed = i % 1000 == 999
        submitted = start + i * 0.001
        host = f"node-{i % 4}"  # 4 nodes of 2 workers, in 2 partitions
        yield (
            RUN,
            f"simulate[{i}]",
            1,
            f"simulate-{i}-1",
            "failed" if failed else "success",
            "cpu" if i % 4 < 2 else "gpu",
            resources,
            submitted,
            submitted + 0.002,
            submitted + 0.012 + i % 7 * 1e-4,
            submitted + 0.013 + i % 7 * 1e-4,
            f"tcp://10.0.0.{i % 4}:{40000 + i % 8}",
            host,
            4000 + i % 8,
            host,
            0.009 + i % 13 * 1e-4,
            120_000_000 + i,
            "ValueError" if failed else None,
            f"input {i} is rejected" if failed else None,
            "Traceback (most recent call last):\n  ...\nValueError" if failed else None,
            None if failed else f"{i:064x}",
            "error" if failed else None,
        )


def fill(folder: Path, n: int) -> Store:
    store = Store(folder)
    store.conn.execute("BEGIN")
    store.conn.execute(
        "INSERT INTO runs (run_id, dag_name, status, started_at) VALUES (?, 'bench', 'success', ?)",
        (RUN, time.time()),
    )
    names = ", ".join(COLUMNS)
    marks = ", ".join("?" * len(COLUMNS))
    store.conn.executemany(f"INSERT INTO attempts ({names}) VALUES ({marks})", attempt_rows(n))
    store.conn.execute("COMMIT")
    return store


def _read_into(frames: list[pd.DataFrame], store: Store) -> None:
    frames.append(store.attempts(RUN))


def main() -> None:
    options = parser(__doc__, rounds=5)
    options.add_argument("--attempts", type=int, default=1_000_000)
    args = options.parse_args()
    n = 50_000 if args.quick else args.attempts
    figures: Figures = {
        "seconds, from SQLite": [],
        "seconds, taking the snapshot": [],
        "seconds, from the snapshot": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = fill(Path(tmp) / "store", n)
        for _ in range(rounds_of(args)):
            bump_revisions(store.conn, [RUN])
            frames: list[pd.DataFrame] = []
            read = functools.partial(_read_into, frames, store)
            figures["seconds, from SQLite"].append(timed(read))
            start = time.perf_counter()
            assert store.snapshot(RUN) == ["attempts"]
            figures["seconds, taking the snapshot"].append(time.perf_counter() - start)
            figures["seconds, from the snapshot"].append(timed(read))
            pd.testing.assert_frame_equal(*frames, check_exact=True)
            assert len(frames[0]) == n
        store.close()
    report(f"Store.attempts(run) of {n} attempts into a DataFrame", figures, {}, args.json)


if __name__ == "__main__":
    main()
