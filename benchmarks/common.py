"""What the benchmarks share: options, a local cluster, statistics, peak memory, output.

Every benchmark prints a human-readable summary, or one JSON object with ``--json`` (what
``python -m benchmarks`` collects from the process it starts for each framework).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

Figures = dict[str, list[float]]


def parser(doc: str, rounds: int) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    parsed = argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parsed.add_argument("--rounds", type=int, default=rounds, help=f"default {rounds}")
    parsed.add_argument(
        "--quick", action="store_true", help="small sizes and one round: checks it runs"
    )
    parsed.add_argument("--json", action="store_true", help="print one JSON object of figures")
    return parsed


def rounds_of(args: argparse.Namespace) -> int:
    return 1 if args.quick else args.rounds


@contextlib.contextmanager
def local_client(workers: int = 2) -> Iterator[Any]:
    """A ``Client`` on a ``LocalCluster`` of single-threaded worker processes."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    """The largest resident set size this process has had so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def describe(values: list[float], digits: int = 0) -> str:
    """``median … min … max …`` of the rounds' values."""
    med, low, high = statistics.median(values), min(values), max(values)
    return f"median {med:10.{digits}f}  min {low:10.{digits}f}  max {high:10.{digits}f}"


def report(title: str, figures: Figures, units: dict[str, str], as_json: bool) -> None:
    """Print the figures of one benchmark, as text or as JSON (``{name: [per round]}``)."""
    if as_json:
        json.dump(figures, sys.stdout)
        print()
        return
    print(title)
    width = max(len(name) for name in figures)
    for name, values in figures.items():
        unit = units.get(name, "")
        digits = 0 if max(values) >= 100 else 3
        print(f"  {name:<{width}}  {describe(values, digits)}  {unit}")
