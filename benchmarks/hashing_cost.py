"""Cost of the identities behind cache keys: value_hash and code_identity.

Prints µs per value_hash of small task arguments, MB/s for a 100 MB numpy array and a
1 M-row DataFrame, the path memo's effect on a 200 MB file (first vs second hash), and µs per
code_identity of a task function that reaches 5 helpers. Run: python -m benchmarks.hashing_cost
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from provtask.code_identity import code_identity
from provtask.hashing import PathMemo, value_hash


def best_of(fn: Callable[[], object], repeat: int = 5, number: int = 1) -> float:
    """Best wall-clock seconds per call over ``repeat`` rounds of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def small_arguments() -> None:
    cases = {
        "int": 42,
        "float": 3.14,
        "str (20 chars)": "a" * 20,
        "dict of 5 params": {"temperature": 300.0, "seed": 7, "steps": 1000, "dt": 0.5, "x": "y"},
        "list of 100 floats": [float(i) for i in range(100)],
        "numpy array (10 floats)": np.arange(10.0),
    }
    print("value_hash of small arguments")
    for name, value in cases.items():
        seconds = best_of(lambda value=value: value_hash(value), number=2000)
        print(f"  {name:<26} {seconds * 1e6:8.1f} µs")


def throughput() -> None:
    array = np.random.default_rng(0).random(100 * 2**20 // 8)  # 100 MiB of float64
    rows = 1_000_000
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "energy": rng.random(rows),
            "step": np.arange(rows),
            "phase": pd.Categorical(rng.choice(["solid", "liquid", "gas"], rows)),
            "when": pd.date_range("2024-01-01", periods=rows, freq="s", tz="UTC"),
        }
    )
    text = frame.assign(label=[f"run-{i % 1000}" for i in range(rows)])
    print("value_hash throughput")
    for name, value, nbytes in [
        ("numpy float64, 100 MiB", array, array.nbytes),
        ("DataFrame 1 M rows, 4 numeric/categorical/datetime columns", frame, _size(frame)),
        ("same + 1 string column", text, _size(text)),
    ]:
        seconds = best_of(lambda value=value: value_hash(value), repeat=3)
        print(f"  {name:<58} {nbytes / 2**20 / seconds:8.0f} MB/s ({seconds * 1e3:.0f} ms)")


def _size(frame: pd.DataFrame) -> int:
    return int(frame.memory_usage(index=True, deep=True).sum())


def memo_effect(directory: Path) -> None:
    path = directory / "big.bin"
    with open(path, "wb") as file:
        for _ in range(200):
            file.write(os.urandom(2**20))
    # The memo never trusts a file modified in the last 2 s (it may still change within its
    # mtime tick); date this one a minute back, as an input file written earlier would be.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60 * 10**9))
    memo = PathMemo(directory / "pathmemo.sqlite")
    start = time.perf_counter()
    first = value_hash(path, memo=memo)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    second = value_hash(path, memo=PathMemo(directory / "pathmemo.sqlite"))
    warm = time.perf_counter() - start
    assert first == second
    print("Path to a 200 MiB file (page cache warm)")
    print(f"  first hash (reads the file)   {cold * 1e3:8.1f} ms  ({200 / cold:.0f} MB/s)")
    print(f"  second hash (memo hit)        {warm * 1e3:8.2f} ms")


HELPERS = """
import math

SCALE = 2.5
OFFSET = (1, 2, 3)


def normalise(x):
    return x / SCALE


def clip(x, low=0.0, high=1.0):
    return min(max(x, low), high)


def energy(x):
    return math.exp(-normalise(x)) + OFFSET[0]


def force(x):
    return -energy(x) * clip(x)


class Integrator:
    def step(self, x, dt):
        return x + force(x) * dt
"""

TASKS = """
import helpers_bench
from helpers_bench import Integrator

STEPS = 100


def simulate(x0, dt=0.01):
    x = x0
    for _ in range(STEPS):
        x = Integrator().step(x, dt)
    return helpers_bench.energy(x)
"""


def code_identity_cost(directory: Path) -> None:
    (directory / "helpers_bench.py").write_text(textwrap.dedent(HELPERS))
    (directory / "tasks_bench.py").write_text(textwrap.dedent(TASKS))
    sys.path.insert(0, str(directory))
    simulate = importlib.import_module("tasks_bench").simulate
    start = time.perf_counter()
    identity = code_identity(simulate)
    first = time.perf_counter() - start
    again = best_of(lambda: code_identity(simulate), number=200)
    helpers = sum(k.startswith(("helper:", "class:")) for k in identity.components)
    print(f"code_identity of a task reaching {helpers} helpers/classes")
    print(f"  first in the process (reads and parses sources) {first * 1e6:8.0f} µs")
    print(f"  again (sources remembered per code object)      {again * 1e6:8.0f} µs")


def main() -> None:
    small_arguments()
    throughput()
    with tempfile.TemporaryDirectory() as directory:
        memo_effect(Path(directory))
        code_identity_cost(Path(directory))


if __name__ == "__main__":
    main()
