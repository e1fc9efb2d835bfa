"""GPU devices on workers: each worker process's own share, one set of ids per GPU attempt.

A worker process finds the devices of its batch job (or, on a local partition, the ones its
clusters file gives) once, keeps the share that is its own (a job of ``processes`` P and
``gpus-per-node`` N hands process i devices ``i*N/P .. (i+1)*N/P - 1``), and sets the
partition's ``gpu-env`` variables to that share. Each GPU attempt then takes distinct ids
out of the share and gives them back when it ends, however it ends:

- an MPI task's ids go into the environment of the launched ranks only (one device per
  rank, see :mod:`provtask.mpi.ranks`), so MPI attempts on one process run side by side;
- a Python task runs in a worker thread, and ``os.environ`` belongs to the whole process:
  a Python GPU attempt holds the process's environment for its duration (its ids set, the
  share restored after), so Python GPU attempts of one process run one at a time. Give a
  GPU partition ``processes`` equal to ``gpus-per-node`` to run one Python GPU task per
  device at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

# Variables provtask sets on a partition's workers (see clusters/jobqueue.py).
GPU_ENV_VARIABLE = "PROVTASK_GPU_ENV"  # comma list: the variables each attempt gets
DEVICES_VARIABLE = "PROVTASK_GPU_DEVICES"  # a local partition's devices, from its config
DEFAULT_GPU_ENV = ("CUDA_VISIBLE_DEVICES",)
# What a partition's gpu-env may name: the device lists of CUDA, ROCm/HIP and oneAPI.
GPU_ENV_CHOICES = (
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
)
# Where a batch job's devices are named when none of the gpu-env variables is set.
_JOB_SOURCES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


class GPUError(RuntimeError):
    """A GPU attempt cannot get its devices (the worker sees fewer than it declares)."""


@dataclass(frozen=True)
class GPUTask:
    """What workers run for a task with ``gpus``: its function (or MPI launch) and the count."""

    fn: Callable
    gpus: int


class Binding(NamedTuple):
    """The devices of one attempt and the variables that name them."""

    ids: tuple[str, ...]
    variables: tuple[str, ...]

    def env(self) -> dict[str, str]:
        return dict.fromkeys(self.variables, ",".join(self.ids))


def parse_devices(text: str | None) -> tuple[str, ...]:
    """``"0,1"`` -> ``("0", "1")``; nothing for an empty or missing list."""
    return tuple(d.strip() for d in (text or "").split(",") if d.strip())


def job_devices(environ: Mapping[str, str], variables: tuple[str, ...]) -> tuple[str, ...]:
    """The devices of this worker's job: a local partition's list, else the first of the
    ``gpu-env`` variables that is set, else SLURM's ``SLURM_STEP_GPUS`` / ``SLURM_JOB_GPUS``."""
    for name in (DEVICES_VARIABLE, *variables, *_JOB_SOURCES):
        devices = parse_devices(environ.get(name))
        if devices:
            return devices
    return ()


def process_share(devices: tuple[str, ...], per_process: int, worker_name: Any) -> tuple[str, ...]:
    """The ``per_process`` devices of one worker process of a job.

    The process's index is the number ending its Dask name (dask-jobqueue names the P
    processes of a job ``<job>-0`` .. ``<job>-<P-1>``; a LocalCluster names its workers
    0, 1, ...), taken modulo the number of shares the job's devices hold.
    """
    shares = len(devices) // per_process
    if shares == 0:
        raise GPUError(
            f"worker {worker_name} declares {per_process} GPUs but its job names "
            f"{len(devices)} ({','.join(devices) or 'none'}); check that the batch job asks "
            "for its GPUs (gpus-per-node, or --gres in job-extra-directives)"
        )
    tail = str(worker_name).rsplit("-", 1)[-1]
    index = int(tail) % shares if tail.isdigit() else 0
    return devices[index * per_process : (index + 1) * per_process]


class DeviceAllocator:
    """A worker process's devices, lent to attempts: distinct ids to attempts running at
    once, lowest free ids first, given back when the attempt ends."""

    def __init__(self, devices: tuple[str, ...], variables: tuple[str, ...]) -> None:
        self.devices = devices
        self.variables = variables
        self._free = list(devices)
        self._lock = threading.Lock()
        # Held by the Python GPU attempt whose ids are in os.environ.
        self.environ_lock = threading.Lock()

    def take(self, n: int) -> Binding:
        with self._lock:
            if n > len(self._free):
                raise GPUError(
                    f"an attempt asks for {n} GPUs but this worker process has "
                    f"{len(self._free)} free of its {len(self.devices)} "
                    f"({','.join(self.devices) or 'none'})"
                )
            ids = tuple(self._free[:n])
            del self._free[:n]
        return Binding(ids, self.variables)

    def give_back(self, binding: Binding) -> None:
        with self._lock:
            free = set(self._free) | set(binding.ids)
            self._free = [d for d in self.devices if d in free]

    def bind(self, task: GPUTask, report: dict[str, Any]) -> _Bound:
        """The attempt's devices for a ``with`` block, which gives the callable to run: the
        task's function (its ids in ``os.environ`` meanwhile) or its MPI launch with the ids."""
        return _Bound(self, task, report)


class _Bound:
    """One attempt's hold on its devices (see :meth:`DeviceAllocator.bind`)."""

    __slots__ = ("allocator", "binding", "in_process", "report", "task")

    def __init__(self, allocator: DeviceAllocator, task: GPUTask, report: dict[str, Any]):
        self.allocator = allocator
        self.task = task
        self.report = report
        # An MPI launch (provtask.mpi.attempt.MPICall) takes its ids through with_gpus.
        self.in_process = not hasattr(task.fn, "with_gpus")
        self.binding: Binding | None = None

    def __enter__(self) -> Callable:
        allocator = self.allocator
        if self.in_process:
            allocator.environ_lock.acquire()
        try:
            self.binding = allocator.take(self.task.gpus)
        except BaseException:
            if self.in_process:
                allocator.environ_lock.release()
            raise
        self.report["gpu_ids"] = ",".join(self.binding.ids)
        if not self.in_process:
            return self.task.fn.with_gpus(self.binding)
        os.environ.update(self.binding.env())
        return self.task.fn

    def __exit__(self, *exc: object) -> None:
        assert self.binding is not None
        allocator = self.allocator
        if self.in_process:
            os.environ.update(Binding(allocator.devices, allocator.variables).env())
            allocator.environ_lock.release()
        allocator.give_back(self.binding)


class _Unbound:
    """The ``with`` block of an attempt that uses no GPU: gives its callable unchanged."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __enter__(self) -> Callable:
        return self.fn

    def __exit__(self, *exc: object) -> None:
        return None


_PROCESS: DeviceAllocator | None = None
_PROCESS_ERROR: GPUError | None = None


def setup_process(worker_name: Any, gpu_slots: float, environ: Any = os.environ) -> None:
    """Find this worker process's devices once (later runs reuse them) and set the gpu-env
    variables to them, so code outside GPU attempts sees only the process's own devices."""
    global _PROCESS, _PROCESS_ERROR
    if _PROCESS is not None or _PROCESS_ERROR is not None or not gpu_slots:
        return
    variables = parse_devices(environ.get(GPU_ENV_VARIABLE)) or DEFAULT_GPU_ENV
    try:
        share = process_share(job_devices(environ, variables), int(gpu_slots), worker_name)
    except GPUError as exc:
        _PROCESS_ERROR = exc
        return
    environ.update(dict.fromkeys(variables, ",".join(share)))
    _PROCESS = DeviceAllocator(share, variables)


def attempt_devices(function: Callable, report: dict[str, Any]) -> _Bound | _Unbound:
    """The ``with`` block an attempt runs its function in (see the module docstring)."""
    if not isinstance(function, GPUTask):
        return _Unbound(function)
    if _PROCESS is None:
        raise _PROCESS_ERROR or GPUError(
            f"a task asks for {function.gpus} GPUs but this worker declares none; give its "
            "partition gpus-per-node"
        )
    return _PROCESS.bind(function, report)
