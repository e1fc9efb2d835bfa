"""Runs an mpi4py task's function on one rank: ``python -m provtask.mpi.runner FOLDER``.

``FOLDER/call.pkl`` holds ``(function, args, kwargs)``. Every rank calls
``function(MPI.COMM_WORLD, *args, **kwargs)``; rank 0 writes its return value to
``FOLDER/result.pkl``. A rank that raises prints its traceback and aborts the whole job, so
no rank is left waiting in a collective.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import cloudpickle


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m provtask.mpi.runner FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[1])
    try:
        from mpi4py import MPI
    except ImportError as exc:
        print(
            f"provtask: mpi4py cannot be imported by {sys.executable} ({exc}); install it "
            "with 'pip install mpi4py' in the environment the workers use",
            file=sys.stderr,
        )
        return 3
    comm = MPI.COMM_WORLD
    try:
        function, args, kwargs = cloudpickle.loads((folder / "call.pkl").read_bytes())
        value = function(comm, *args, **kwargs)
        if comm.rank == 0:
            partial = folder / f".result-{os.getpid()}"
            partial.write_bytes(cloudpickle.dumps(value))
            partial.replace(folder / "result.pkl")
    except BaseException:
        print(f"provtask: rank {comm.rank} failed:\n{traceback.format_exc()}", file=sys.stderr)
        sys.stderr.flush()
        comm.Abort(1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
