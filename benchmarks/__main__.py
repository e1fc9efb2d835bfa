"""Every benchmark, each in a process of its own, and one table of results with the targets.

    python -m benchmarks [--rounds 5] [--quick] [--workers 2] [--only NAME ...]

Runs ``benchmarks.engine`` for plain distributed, for plain distributed with provtask's
batches and chains (provenance off) and for provtask (one process and one ``LocalCluster``
per framework), ``noop_100k`` (one round per framework), then ``store_ingest``,
``attempts_frame``, ``dag_build``, ``writer_startup`` and ``mpi_packing`` (on the local
SLURM; skipped with a message without it), and prints the median (min–max) of the rounds,
the ratio provtask / dask and the target of each figure (issue 7). ``--quick`` runs small
sizes once: a check that everything runs, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from .common import Figures

# (figure, target) per benchmark; the engine's figures are shown for both frameworks.
ENGINE = [
    ("no-op tasks/s", "≥ 5,000"),
    ("efficiency 10 ms", "≥ 0.95"),
    ("efficiency 1 ms", "≥ 0.70"),
    ("efficiency 1 s", "≥ 0.99"),
    ("chain ms per hop", "≤ 1"),
]
THROUGHPUT = {"no-op tasks/s", "efficiency 10 ms", "efficiency 1 ms", "efficiency 1 s"}
STORE = {
    "store_ingest": [
        ("attempts/s, short tasks", "≥ 100,000"),
        ("attempts/s, all in flight", "≥ 100,000"),
        ("µs per attempt, caller's side", ""),
    ],
    "attempts_frame": [
        ("seconds, from SQLite", ""),
        ("seconds, taking the snapshot", ""),
        ("seconds, from the snapshot", "≤ 2"),
    ],
    "dag_build": [
        ("build + validate s", "≤ 3"),
        ("checks before submit s", ""),
        ("run graph s", ""),
        ("peak RSS MB", "bounded"),
    ],
    "writer_startup": [
        ("ms until the first answer", ""),
        ("idle VmRSS MB", ""),
    ],
}
TITLES = {
    "store_ingest": "ingest",
    "attempts_frame": "attempts into a DataFrame",
    "dag_build": "DAG",
    "writer_startup": "writer process",
}
PACKING_FIGURES = ("jobs submitted", "makespan", "node-s idle", "efficiency idle", "efficiency")
SIZES = "100,000 attempts ingested, 1,000,000 read, a 100,000-node DAG"
QUICK_SIZES = "20,000 attempts ingested, 50,000 read, a 10,000-node DAG"


def measure(module: str, args: argparse.Namespace, *extra: str, rounds: int = 0) -> Figures:
    """Run ``benchmarks.<module>`` in a new process (``rounds``: instead of ``--rounds``)."""
    command = [sys.executable, "-m", f"benchmarks.{module}", "--json", *extra]
    command += ["--quick"] if args.quick else ["--rounds", str(rounds or args.rounds)]
    print(f"running {' '.join(command[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def cell(values: list[float]) -> str:
    digits = 0 if max(values) >= 100 else 2
    low, high = min(values), max(values)
    return f"{statistics.median(values):,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def engine_table(dask: Figures, provtask: Figures) -> str:
    rows = [["figure", "plain dask", "provtask", "provtask/dask", "target (provtask)"]]
    for name, target in ENGINE:
        rows.append([name, cell(dask[name]), cell(provtask[name]), ratios(provtask, dask, name)])
        rows[-1].append(target)
    return table(rows)


def provenance_table(batched: Figures, provtask: Figures) -> str:
    """Provenance on (provtask) vs off (plain dask running provtask's batches and chains)."""
    rows = [["figure", "provenance off", "provenance on", "on/off", "target (on/off)"]]
    for name, _ in ENGINE:
        rows.append([name, cell(batched[name]), cell(provtask[name])])
        rows[-1] += [ratios(provtask, batched, name), "≥ 0.95" if name in THROUGHPUT else ""]
    return table(rows)


def ratios(numerators: Figures, denominators: Figures, name: str) -> str:
    pairs = zip(numerators[name], denominators[name], strict=True)
    return cell([n / d for n, d in pairs])


def store_table(results: dict[str, Figures]) -> str:
    rows = [["figure", "provtask", "target"]]
    for module, figures in results.items():
        for name, target in STORE[module]:
            rows.append([f"{TITLES[module]}: {name}", cell(figures[name]), target])
    return table(rows)


def packing_table(figures: Figures) -> str:
    """Packed MPI jobs vs one task per job: a column per layout."""
    from .mpi_packing import LAYOUTS

    rows = [["figure", *LAYOUTS]]
    for name in PACKING_FIGURES:
        rows.append([name, *(cell(figures[f"{layout}: {name}"]) for layout in LAYOUTS)])
    return table(rows)


BIG_RUN = "A 100,000-task no-op .map (10,000 with --quick)"
BIG_RUN_FRAMEWORKS = ("dask", "dask-batched", "provtask")


def big_run_table(args: argparse.Namespace) -> str:
    """``noop_100k`` once per framework, each in its own process (its own peak RSS)."""
    workers = ("--workers", str(args.workers))
    runs = {
        framework: measure("noop_100k", args, "--framework", framework, *workers, rounds=1)
        for framework in BIG_RUN_FRAMEWORKS
    }
    rows = [["framework", "tasks/s", "driver peak RSS MB", "kB per task", "target (provtask)"]]
    for framework, figures in runs.items():
        rows.append([framework, *(cell(figures[name]) for name in list(figures)[:3])])
        rows[-1].append("≥ 15,000 tasks/s, ≤ 2 kB per task" if framework == "provtask" else "")
    on_off = ratios(runs["provtask"], runs["dask-batched"], "tasks/s")
    writer = cell(runs["provtask"]["writer process peak RSS MB"])
    return f"{table(rows)}\nprovtask / dask-batched (on/off): {on_off}; writer process {writer} MB"


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=5, help="default 5")
    options.add_argument("--quick", action="store_true", help="small sizes and one round")
    options.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    names = ["engine", "noop_100k", *STORE, "mpi_packing"]
    options.add_argument("--only", nargs="+", choices=names, default=names, metavar="NAME")
    args = options.parse_args()
    mode = "quick check" if args.quick else f"median (min–max) of {args.rounds} rounds"
    if "engine" in args.only:
        workers = ("--workers", str(args.workers))
        dask = measure("engine", args, "--framework", "dask", *workers)
        batched = measure("engine", args, "--framework", "dask-batched", *workers)
        provtask = measure("engine", args, "--framework", "provtask", *workers)
        print(f"\nTasks on a LocalCluster of {args.workers} single-threaded workers, {mode}")
        print(engine_table(dask, provtask))
        print(
            "\nProvenance on vs off: provtask, and plain dask running the same batches and "
            "chains (dask-batched)\n"
            "(ms per hop: on/off > 1 is slower; the ≥ 0.95 target is for throughput and "
            "efficiency)"
        )
        print(provenance_table(batched, provtask))
    if "noop_100k" in args.only:
        print(f"\n{BIG_RUN}, {args.workers} workers, warm cluster, one round per framework")
        print(big_run_table(args))
    results = {module: measure(module, args) for module in STORE if module in args.only}
    if results:
        print(f"\nStore and DAG ({QUICK_SIZES if args.quick else SIZES}), {mode}")
        print(store_table(results))
    if "mpi_packing" in args.only:
        packing = measure("mpi_packing", args)
        if packing:
            print(f"\n8 two-node MPI tasks holding their nodes, on 4 fake SLURM nodes, {mode}")
            print(packing_table(packing))


if __name__ == "__main__":
    main()
