"""What an executable-style ``@mpi_task`` returns, and what its attempt gives downstream."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ResourceError


@dataclass(frozen=True)
class MPICommand:
    """An MPI program to launch on the task's ranks: ``MPICommand("lmp", ["-in", "in.melt"])``.

    ``cwd`` is the directory the ranks start in (default: the worker's); ``env`` adds
    variables to the ranks' environment.
    """

    executable: str
    args: list[str] | tuple[str, ...] = ()
    cwd: str | os.PathLike | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.executable, str | os.PathLike) or not str(self.executable):
            raise ResourceError(
                f"MPICommand: executable must be a program name or path, got {self.executable!r}"
            )
        args = self.args
        readable = (str, os.PathLike, int, float)
        if isinstance(args, str) or not all(isinstance(a, readable) for a in args):
            raise ResourceError(
                f"MPICommand: args must be a list of strings (one per argument), got {args!r}"
            )
        object.__setattr__(self, "executable", str(self.executable))
        object.__setattr__(self, "args", tuple(str(a) for a in args))
        if self.cwd is not None:
            object.__setattr__(self, "cwd", str(self.cwd))
        if not isinstance(self.env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise ResourceError(f"MPICommand: env must map names to strings, got {self.env!r}")

    @property
    def argv(self) -> list[str]:
        return [self.executable, *self.args]


@dataclass(frozen=True)
class MPIRun:
    """The value of an executable-style MPI task: how its program ran, and what it printed.

    ``stdout`` and ``stderr`` are bounded (see ``provtask.mpi.streams.STREAM_LIMIT``);
    ``nodes`` holds the node each rank ran on, by rank.
    """

    command: list[str]
    cwd: str | None
    exit_code: int
    ranks: int
    nodes: list[str]
    wall_time: float
    stdout: str
    stderr: str

    def path(self, name: str) -> Path:
        """A file the program wrote in its working directory."""
        return Path(self.cwd or ".") / name
