"""The keys a partition of a clusters file may have: how each is read, and where it applies.

Keys are dask-jobqueue's own parameter names in kebab-case. Each reader turns a YAML value
into the value stored on :class:`~provtask.clusters.config.PartitionConfig`, or raises
``ValueError`` (``ResourceError`` is one) with a message that starts with the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..gpu_devices import GPU_ENV_CHOICES
from ..resources import LAUNCHERS, parse_memory, parse_walltime

SCHEDULERS = ("slurm", "pbs", "sge", "lsf", "htcondor", "local")
BATCH = frozenset(SCHEDULERS) - {"local"}
EVERY = frozenset(SCHEDULERS)
WITH_QUEUE = frozenset({"slurm", "pbs", "sge", "lsf"})


def _integer(minimum: int) -> Callable[[Any, str], int]:
    def read(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{key}: expected an integer >= {minimum}, got {value!r}")
        return value

    return read


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _lines(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError(f"{key}: expected a list of strings, e.g. [{value!r}], got a string")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key}: expected a list of strings, got {value!r}")
    return tuple(value)


def _size(value: Any, key: str) -> int:
    return parse_memory(value, field=key)


def _duration(value: Any, key: str) -> float:
    """Seconds, from a number (0 allowed) or a duration string as task walltimes take."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return float(parse_walltime(value, field=key))


def _rate(value: Any, key: str) -> float:
    """Jobs per minute: a number above 0."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError(f"{key}: expected a number of jobs per minute above 0, e.g. 30, got {value!r}")


def _walltime(value: Any, key: str) -> int:
    return parse_walltime(value, field=key)


def _launcher(value: Any, key: str) -> str:
    if value not in LAUNCHERS:
        raise ValueError(f"{key}: expected one of {', '.join(LAUNCHERS)}, got {value!r}")
    return str(value)


def _variables(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    """Environment variables, e.g. ``{OMP_PROC_BIND: "true"}``, as sorted pairs."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str | int | float) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise ValueError(
            f"{key}: expected a mapping of variable names to values, e.g. "
            f"{{UCX_TLS: 'self,sm'}}, got {value!r}"
        )
    return tuple(sorted((k, str(v)) for k, v in value.items()))


def _gpu_env(value: Any, key: str) -> tuple[str, ...]:
    """The variables that name a GPU attempt's devices, e.g. ``[CUDA_VISIBLE_DEVICES]``."""
    names = [value] if isinstance(value, str) else value
    if (
        not isinstance(names, list)
        or not names
        or not all(name in GPU_ENV_CHOICES for name in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError(
            f"{key}: expected a list of distinct names out of {', '.join(GPU_ENV_CHOICES)}, "
            f"e.g. [CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES], got {value!r}"
        )
    return tuple(names)


def _packing(value: Any, key: str) -> int:
    """``{nodes-per-job: N}``: MPI tasks of any shape share batch jobs of N nodes."""
    example = "e.g. mpi-packing: {nodes-per-job: 4}"
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected a mapping with nodes-per-job, {example}; got {value!r}")
    unknown = [name for name in value if name != "nodes-per-job"]
    if unknown:
        raise ValueError(
            f"{key}: unknown key {unknown[0]!r}; the only key is nodes-per-job ({example})"
        )
    if "nodes-per-job" not in value:
        raise ValueError(f"{key}: nodes-per-job is missing ({example})")
    nodes = value["nodes-per-job"]
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"{key}: nodes-per-job: expected an integer >= 1, got {nodes!r}")
    return nodes


@dataclass(frozen=True)
class Key:
    """One partition key: the attribute it sets, its reader, the schedulers it applies to."""

    attr: str
    read: Callable[[Any, str], Any]
    schedulers: frozenset[str]


KEYS: dict[str, Key] = {
    "cores": Key("cores", _integer(1), EVERY),
    "processes": Key("processes", _integer(1), EVERY),
    "memory": Key("memory", _size, EVERY),
    "walltime": Key("walltime", _walltime, WITH_QUEUE),
    "gpus-per-node": Key("gpus_per_node", _integer(0), EVERY),
    "gpu-env": Key("gpu_env", _gpu_env, EVERY),
    "queue": Key("queue", _text, WITH_QUEUE),
    "account": Key("account", _text, WITH_QUEUE),
    "job-name": Key("job_name", _text, BATCH),
    "job-script-prologue": Key("job_script_prologue", _lines, BATCH),
    "job-extra-directives": Key("job_extra_directives", _lines, BATCH),
    "job-directives-skip": Key("job_directives_skip", _lines, WITH_QUEUE),
    "worker-extra-args": Key("worker_extra_args", _lines, BATCH),
    "interface": Key("interface", _text, BATCH),
    "local-directory": Key("local_directory", _text, EVERY),
    "log-directory": Key("log_directory", _text, BATCH),
    "python": Key("python", _text, BATCH),
    "shebang": Key("shebang", _text, BATCH),
    "death-timeout": Key("death_timeout", _duration, BATCH),
    "job-cpu": Key("job_cpu", _integer(1), frozenset({"slurm"})),
    "job-mem": Key("job_mem", _text, frozenset({"slurm"})),
    "resource-spec": Key("resource_spec", _text, frozenset({"pbs", "sge"})),
    "disk": Key("disk", _size, frozenset({"htcondor"})),
    "min-jobs": Key("min_jobs", _integer(0), BATCH),
    "max-jobs": Key("max_jobs", _integer(1), EVERY),
    "idle-timeout": Key("idle_timeout", _duration, BATCH),
    "pending-timeout": Key("pending_timeout", _duration, frozenset({"slurm"})),
    "lifetime-margin": Key("lifetime_margin", _duration, WITH_QUEUE),
    "max-submit-rate": Key("max_submit_rate", _rate, BATCH),
    "launcher": Key("launcher", _launcher, EVERY),
    "launcher-args": Key("launcher_args", _lines, EVERY),
    "mpi-env": Key("mpi_env", _variables, EVERY),
    "mpi-packing": Key("mpi_packing", _packing, frozenset({"slurm"})),
}
# Keys a partition of this scheduler cannot do without.
REQUIRED = {name: ("cores", "memory") for name in BATCH} | {"htcondor": ("cores", "memory", "disk")}
