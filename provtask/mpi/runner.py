"""Runs an mpi4py task's function on one rank: ``python -m provtask.mpi.runner FOLDER``.

``FOLDER/call.pkl`` holds ``(function, args, kwargs)``; its BLAKE2b digest is the second
argument, and a rank loads it only if the bytes match. Every rank calls
``function(MPI.COMM_WORLD, *args, **kwargs)``; rank 0 writes its pickled return value to
``FOLDER/result.pkl`` and then the digest of those bytes to ``FOLDER/result.digest``, which
the worker checks before unpickling. A rank that raises prints its traceback and aborts the
whole job, so no rank is left waiting in a collective.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import cloudpickle

from ..errors import IntegrityError
from ..store.artifacts import digest


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m provtask.mpi.runner FOLDER DIGEST", file=sys.stderr)
        return 2
    folder, call_digest = Path(argv[1]), argv[2]
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
        call = (folder / "call.pkl").read_bytes()
        if digest(call) != call_digest:
            raise IntegrityError(f"{folder / 'call.pkl'} changed after it was written")
        function, args, kwargs = cloudpickle.loads(call)
        value = function(comm, *args, **kwargs)
        if comm.rank == 0:
            data = cloudpickle.dumps(value)
            _write_atomically(folder / "result.pkl", data)
            _write_atomically(folder / "result.digest", digest(data).encode())
    except BaseException:
        print(f"provtask: rank {comm.rank} failed:\n{traceback.format_exc()}", file=sys.stderr)
        sys.stderr.flush()
        comm.Abort(1)
    return 0


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}-{os.getpid()}")
    partial.write_bytes(data)
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
