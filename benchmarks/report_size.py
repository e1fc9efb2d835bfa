"""Size and time of the HTML report and the PNGs for a run of many tasks.

    python -m benchmarks.report_size [--tasks 10000] [--workers 2]

Runs one DAG of ``--tasks`` tiny tasks (every 500th fails) on a local cluster, then writes
the report and prints the HTML size, the number of timeline bars and the time of each step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from provtask import DAG, Store, task
from provtask.analysis.report import write_html, write_pngs


@task
def items(n: int) -> list[int]:
    return list(range(n))


@task
def step(x: int) -> int:
    if x % 500 == 499:
        raise ValueError(f"input {x} is rejected")
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with DAG("report_size") as dag:
            step.map(items(args.tasks))
        started = time.perf_counter()
        run_id = dag.run(store=folder / "store", n_workers=args.workers).run_id
        print(f"run of {args.tasks} tasks: {time.perf_counter() - started:.1f} s")
        store = Store(folder / "store")

        started = time.perf_counter()
        html = write_html(store, run_id, folder / "report.html")
        elapsed = time.perf_counter() - started
        text = html.read_text()
        bars = text.count('<rect class="bar')
        print(f"HTML: {elapsed:.2f} s, {len(text.encode()) / 1e6:.2f} MB, {bars} timeline bars")
        started = time.perf_counter()
        pngs = write_pngs(store, run_id, folder / "png")
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e3:.0f} kB" for p in pngs)
        print(f"PNGs: {time.perf_counter() - started:.2f} s ({sizes})")


if __name__ == "__main__":
    main()
