"""One attempt of an MPI task on a worker: launch, wait, collect, and report its provenance.

The engine ships an :class:`MPICall` in place of the task's function. The attempt's files
(rank notes, output streams, an mpi4py call and its result) live in a folder of the store,
``<store>/mpi/<attempt key>/``, which every node of a partition sees, and are removed once
the attempt is recorded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from ..errors import IntegrityError, MPIError, TaskTimeout
from ..gpu_devices import Binding
from ..resources import format_walltime
from ..store.artifacts import ArtifactFiles, digest, make_artifact
from .allocation import job_ledger
from .command import MPICommand, MPIRun
from .launch import LaunchSpec, launch_env, launch_line
from .process import Outcome, run_streamed
from .ranks import binding_devices, nodes_by_rank, noting_node
from .streams import bounded_text, tail_of

ERROR_TAIL = 2000  # characters of the program's output quoted in a failure message


@dataclass(frozen=True)
class MPICall:
    """An MPI task as its workers run it: the function and how to launch it."""

    fn: Callable
    spec: LaunchSpec
    takes_comm: bool
    task: str
    gpus: Binding | None = None  # the attempt's devices, one per rank (see .ranks)

    def with_gpus(self, binding: Binding) -> MPICall:
        """This launch on the devices of one attempt."""
        return dataclasses.replace(self, gpus=binding)

    def run(
        self, args: tuple, kwargs: dict, report: dict[str, Any], files: ArtifactFiles, key: str
    ) -> Any:
        """Run the attempt; fills ``report`` (MPI columns, output tails and artifacts) and
        returns the task's value, or raises :class:`MPIError` / :class:`TaskTimeout`."""
        folder = files.root / "mpi" / key
        (folder / "nodes").mkdir(parents=True, exist_ok=True)
        try:
            program, cwd, command_env = self._program(args, kwargs, folder)
            if self.gpus is not None:  # the launch sees all the attempt's devices
                command_env = {**self.gpus.env(), **command_env}
            with self._nodes() as hosts:
                argv = launch_line(self.spec, program, command_env, hosts)
                env = launch_env(self.spec, command_env)
                _check_installed(self.task, argv[0], env, None)
                if not self.takes_comm:
                    _check_installed(self.task, program[0], env, cwd)
                outcome = run_streamed(
                    launch_line(self.spec, self._wrapped(program, folder), command_env, hosts),
                    env=env,
                    cwd=cwd,
                    stdout=folder / "stdout",
                    stderr=folder / "stderr",
                    timeout=self.spec.walltime,
                )
            streams = {name: bounded_text(folder / name) for name in ("stdout", "stderr")}
            nodes = nodes_by_rank(folder / "nodes")
            _report(report, self.spec, argv, outcome, nodes, streams, files)
            self._check(outcome, streams)
            if self.takes_comm:
                return _result(self.task, folder / "result.pkl")
            return MPIRun(
                command=argv,
                cwd=cwd,
                exit_code=0,
                ranks=self.spec.ranks,
                nodes=nodes,
                wall_time=outcome.wall_time,
                stdout=streams["stdout"],
                stderr=streams["stderr"],
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _wrapped(self, program: list[str], folder: Path) -> list[str]:
        """What each rank starts: notes its node, picks its own device, runs ``program``."""
        if self.gpus is not None:
            program = binding_devices(self.gpus, program)
        return noting_node(folder / "nodes", program)

    def _nodes(self) -> AbstractContextManager[list[str] | None]:
        """In a packed job, nodes of the allocation held while the launcher runs."""
        if not self.spec.packed:
            return nullcontext(None)
        return job_ledger(self.task).hold(self.spec.nodes, self.task)

    def _program(
        self, args: tuple, kwargs: dict, folder: Path
    ) -> tuple[list[str], str | None, dict[str, str]]:
        """What every rank runs, in which folder, with which added variables."""
        if self.takes_comm:
            call = cloudpickle.dumps((self.fn, tuple(args), kwargs))
            (folder / "call.pkl").write_bytes(call)
            # The ranks import what the worker imports (e.g. the module of the function).
            path = os.pathsep.join(p for p in sys.path if p)
            program = [sys.executable, "-m", "provtask.mpi.runner", str(folder), digest(call)]
            return program, None, {"PYTHONPATH": path}
        command = self.fn(*args, **kwargs)
        if not isinstance(command, MPICommand):
            raise MPIError(
                f"MPI task {self.task!r} returned {type(command).__name__}, not an MPICommand; "
                "return MPICommand(executable, args) to launch a program, or name the first "
                "parameter 'comm' to run the function itself on every rank with mpi4py"
            )
        return command.argv, command.cwd, dict(command.env)

    def _check(self, outcome: Outcome, streams: dict[str, str]) -> None:
        launched = f"MPI task {self.task!r} ({self.spec.ranks} ranks via {self.spec.launcher})"
        if outcome.timed_out:
            assert self.spec.walltime is not None
            raise TaskTimeout(
                f"{launched} ran past its walltime of {format_walltime(self.spec.walltime)} "
                "and was killed with all its ranks; raise walltime=... or make the run shorter"
            )
        if outcome.exit_code != 0:
            said = streams["stderr"].strip() or streams["stdout"].strip()
            raise MPIError(
                f"{launched} exited with code {outcome.exit_code}; its output ends with:\n"
                f"{said[-ERROR_TAIL:]}"
            )


def _result(task: str, path: Path) -> Any:
    """Rank 0's return value, unpickled only if its bytes match the digest it wrote last."""
    expected = path.with_suffix(".digest")
    if not expected.is_file():
        raise MPIError(
            f"MPI task {task!r}: every rank exited with code 0 but rank 0 left no result; "
            "does the function exit the process (sys.exit, MPI.Finalize)?"
        )
    data = path.read_bytes()
    if digest(data) != expected.read_text().strip():
        raise IntegrityError(
            f"MPI task {task!r}: rank 0's result in {path} does not match its digest; "
            "it was not loaded"
        )
    return cloudpickle.loads(data)


def _check_installed(task: str, program: str, env: dict[str, str], cwd: str | None) -> None:
    """Refuse a launcher or executable that is not there, before anything starts."""
    if "/" in program:
        path = Path(cwd or ".") / program
        found = path.is_file() and os.access(path, os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH")) is not None
    if not found:
        where = f" (relative to {cwd})" if "/" in program and cwd else " on PATH"
        raise MPIError(
            f"MPI task {task!r}: {program!r} is not found{where} on {os.uname().nodename}; "
            "install it, load its module in the partition's job-script-prologue, or give "
            "its full path"
        )


def _report(
    report: dict[str, Any],
    spec: LaunchSpec,
    argv: list[str],
    outcome: Outcome,
    nodes: list[str],
    streams: dict[str, str],
    files: ArtifactFiles,
) -> None:
    """The attempt's MPI provenance: columns of its attempts row, and its output artifacts."""
    artifacts = {name: make_artifact(text, files) for name, text in streams.items()}
    report["streams"] = list(artifacts.values())
    report["stdout"] = tail_of(streams["stdout"])
    report["stderr"] = tail_of(streams["stderr"])
    report["mpi"] = {
        "mpi_command": shlex.join(argv),
        "mpi_launcher": spec.launcher,
        "mpi_ranks": spec.ranks,
        "mpi_nodes": spec.nodes,
        "mpi_node_list": json.dumps(nodes),
        "exit_code": outcome.exit_code,
        "mpi_wall_time": outcome.wall_time,
        "stdout_hash": artifacts["stdout"].hash,
        "stderr_hash": artifacts["stderr"].hash,
    }
