"""A clusters file: the partitions tasks run on, one Dask cluster each.

``load_clusters`` finds and reads the file; every problem in it is a :class:`ConfigError`
naming the file, the partition and the key, raised before anything is submitted.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ResourceError
from ..gpu_devices import DEFAULT_GPU_ENV
from ..resources import Resources, format_walltime
from ..suggest import did_you_mean
from .fields import KEYS, REQUIRED, SCHEDULERS
from .locate import find_clusters_file

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+")
# What batch jobs get when the file leaves these out (dask-jobqueue's own defaults).
DEFAULT_SHEBANG = "#!/usr/bin/env bash"
DEFAULT_DEATH_TIMEOUT = 60.0
# The Dask resource a packed MPI job's worker offers: its nodes (an MPI task takes its own).
MPI_NODES = "MPI_NODES"
DEFAULT_SUBMIT_RATE = 30.0  # batch jobs submitted per minute at most
# A worker stops taking tasks this long before its job's walltime, unless lifetime-margin
# says otherwise: a tenth of the walltime, at most 5 minutes.
MARGIN_SHARE, MAX_DEFAULT_MARGIN = 0.1, 300.0
EXAMPLES = {"cores": "'cores: 24'", "memory": "'memory: 90GB'", "disk": "'disk: 10GB'"}


@dataclass(frozen=True)
class PartitionConfig:
    """One partition: the batch jobs (or local processes) whose workers run its tasks.

    Sizes are bytes and times seconds. ``None`` means the key was not given and nothing is
    sent to the batch system for it.
    """

    name: str
    scheduler: str
    cores: int
    processes: int = 1
    memory: int | None = None
    walltime: int | None = None
    gpus_per_node: int = 0
    gpu_env: tuple[str, ...] = DEFAULT_GPU_ENV  # variables naming a GPU attempt's devices
    queue: str | None = None
    account: str | None = None
    job_name: str | None = None
    job_script_prologue: tuple[str, ...] = ()
    job_extra_directives: tuple[str, ...] = ()
    job_directives_skip: tuple[str, ...] = ()
    worker_extra_args: tuple[str, ...] = ()
    interface: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    python: str | None = None
    shebang: str | None = None
    death_timeout: float | None = None
    job_cpu: int | None = None
    job_mem: str | None = None
    resource_spec: str | None = None
    disk: int | None = None
    min_jobs: int = 0
    max_jobs: int = 1
    idle_timeout: float = 60.0
    pending_timeout: float = 60.0
    lifetime_margin: float | None = None
    max_submit_rate: float = DEFAULT_SUBMIT_RATE
    launcher: str | None = None
    launcher_args: tuple[str, ...] = ()
    mpi_env: tuple[tuple[str, str], ...] = ()
    mpi_packing: int | None = None  # nodes per packed MPI job (None: one job per MPI task)
    packed_job: bool = False  # these are the settings of the partition's packed MPI jobs
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        """Fill in what provtask passes for batch jobs when the file leaves it out."""
        if self.scheduler == "local":
            return
        defaults = {
            "job_name": f"provtask-{self.name}",
            "python": sys.executable,
            "shebang": DEFAULT_SHEBANG,
            "death_timeout": DEFAULT_DEATH_TIMEOUT,
        }
        if self.walltime is not None:
            defaults["lifetime_margin"] = min(MAX_DEFAULT_MARGIN, MARGIN_SHARE * self.walltime)
        for attr, value in defaults.items():
            if getattr(self, attr) is None:
                object.__setattr__(self, attr, value)

    @property
    def threads_per_worker(self) -> int:
        return self.cores // self.processes

    @property
    def memory_per_worker(self) -> int | None:
        return None if self.memory is None else self.memory // self.processes

    @property
    def gpus_per_worker(self) -> int:
        return self.gpus_per_node // self.processes

    @property
    def retire_margin(self) -> float | None:
        """Seconds before its job's walltime a worker stops taking tasks (None: no walltime)."""
        return None if self.walltime is None else self.lifetime_margin

    def worker_resources(self) -> dict[str, float]:
        """Dask worker resources each worker of this partition declares, e.g. ``{"GPU": 2}``
        (a packed MPI job's worker also declares its nodes, ``MPI_NODES``)."""
        resources: dict[str, float] = {"GPU": self.gpus_per_worker} if self.gpus_per_worker else {}
        if self.packed_job and self.mpi_packing:
            resources[MPI_NODES] = self.mpi_packing
        return resources

    def check_fits(self, task_label: str, resources: Resources) -> None:
        """Refuse a task that asks more than one worker of this partition can ever give."""
        limits = [
            ("gpus", resources.gpus, self.gpus_per_worker, "gpus-per-node"),
            ("cpus_per_task", resources.cpus_per_task, self.threads_per_worker, "cores"),
            ("memory", resources.memory, self.memory_per_worker, "memory"),
            ("walltime", resources.walltime, self.walltime, "walltime"),
        ]
        for name, asked, limit, key in limits:
            if asked is None or limit is None or asked <= limit:
                continue
            split = self.processes > 1 and name != "walltime"
            per_worker = f" / processes {self.processes}" if split else ""
            raise ResourceError(
                f"task {task_label!r} asks for {name}={_show(name, asked)} but a worker of "
                f"partition {self.name!r} has at most {_show(name, limit)} "
                f"({key} {_show(name, getattr(self, KEYS[key].attr))}{per_worker}"
                f"{_where(self.source)}); ask for less, or raise {key} of the partition"
            )

    def to_record(self) -> dict[str, Any]:
        """Every setting under its clusters-file key (kebab-case), for display and JSON."""
        record: dict[str, Any] = {"scheduler": self.scheduler}
        for key, spec in KEYS.items():
            if self.scheduler in spec.schedulers:
                value = getattr(self, spec.attr)
                if key == "mpi-env":
                    value = dict(value)
                elif key == "mpi-packing" and value is not None:
                    value = {"nodes-per-job": value}
                record[key] = list(value) if isinstance(value, tuple) else value
        return record


def _show(name: str, value: int | float) -> str:
    if name == "memory":
        return format_size(int(value))
    if name == "walltime":
        return format_walltime(int(value))
    return str(value)


# Largest first, decimal before binary at each magnitude.
_SIZE_UNITS = [
    ("TB", 1000**4),
    ("TiB", 1024**4),
    ("GB", 1000**3),
    ("GiB", 1024**3),
    ("MB", 1000**2),
    ("MiB", 1024**2),
    ("KB", 1000),
    ("KiB", 1024),
]


def format_size(size: int) -> str:
    """``"90GB"`` for 90e9: the largest unit that gives a whole number (else plain bytes)."""
    for unit, factor in _SIZE_UNITS:
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _where(source: Path | None) -> str:
    return f", in {source}" if source is not None else ""


@dataclass(frozen=True)
class ClustersConfig:
    """The partitions of a clusters file, and the one for tasks that name none."""

    default: str
    partitions: dict[str, PartitionConfig]
    source: Path | None = None
    # Environment variables each run records (``record-env``), and, for the run's context,
    # the YAML text the config was read from and where it came from (default: ``source``).
    record_env: tuple[str, ...] = ()
    text: str | None = field(default=None, compare=False)
    origin: str | None = field(default=None, compare=False)

    def partition_for(self, name: str | None, task_label: str) -> PartitionConfig:
        """The partition a task runs on (``None``: the default one)."""
        if name is None:
            return self.partitions[self.default]
        if name in self.partitions:
            return self.partitions[name]
        raise ResourceError(
            f"task {task_label!r} asks for partition {name!r}, which is not in "
            f"{self.source or 'the clusters config'}{did_you_mean(name, self.partitions)}; "
            f"its partitions are: {', '.join(self.partitions)}"
        )


def load_clusters(explicit: Path | None = None) -> ClustersConfig | None:
    """The clusters config found as :func:`find_clusters_file` says; ``None`` if there is no
    file (tasks then run on the embedded LocalCluster)."""
    import yaml

    path = find_clusters_file(explicit)
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read clusters file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    return dataclasses.replace(parse_clusters(data, source=path), text=text)


def parse_clusters(data: Any, source: Path | None = None) -> ClustersConfig:
    """A :class:`ClustersConfig` from parsed YAML (``{"default": ..., "partitions": ...}``)."""
    where = str(source) if source is not None else "clusters config"
    if data is None:
        raise ConfigError(f"{where}: the file is empty; it needs 'default' and 'partitions'")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: expected a mapping with 'default' and 'partitions', got "
            f"{type(data).__name__}"
        )
    _refuse_unknown(where, data, ("default", "partitions", "record-env"))
    partitions = data.get("partitions")
    if not isinstance(partitions, dict) or not partitions:
        raise ConfigError(
            f"{where}: 'partitions' must map partition names to their settings, e.g. "
            "partitions: {cpu: {scheduler: slurm, cores: 24, memory: 90GB}}"
        )
    parsed = {}
    for name, settings in partitions.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ConfigError(
                f"{where}: partition name {name!r}: use letters, digits, '_', '-' or '.'"
            )
        parsed[name] = _parse_partition(f"{where}: partition {name!r}", name, settings, source)
    default = data.get("default")
    if default is None:
        raise ConfigError(
            f"{where}: no 'default' partition; add e.g. 'default: {next(iter(parsed))}' "
            "(it runs the tasks that name no partition)"
        )
    if not isinstance(default, str) or default not in parsed:
        raise ConfigError(
            f"{where}: default: {default!r} is not a partition of this file"
            f"{did_you_mean(str(default), parsed)}; its partitions are: {', '.join(parsed)}"
        )
    return ClustersConfig(default, parsed, source, _record_env(where, data.get("record-env")))


def _record_env(where: str, names: Any) -> tuple[str, ...]:
    """``record-env``: names of environment variables each run records."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(
        isinstance(n, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names
    ):
        raise ConfigError(
            f"{where}: record-env: expected a list of environment variable names, e.g. "
            f"record-env: [OMP_NUM_THREADS, SLURM_ACCOUNT], got {names!r}"
        )
    return tuple(names)


def _refuse_unknown(where: str, keys: Any, known: Any) -> None:
    for key in keys:
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key {key!r}{did_you_mean(str(key), known)}; known keys: "
                f"{', '.join(known)}"
            )


def _parse_partition(where: str, name: str, settings: Any, source: Path | None) -> PartitionConfig:
    if not isinstance(settings, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {settings!r}")
    scheduler = settings.get("scheduler")
    if scheduler is None:
        raise ConfigError(
            f"{where}: no scheduler; add e.g. 'scheduler: slurm' (one of {', '.join(SCHEDULERS)})"
        )
    if scheduler not in SCHEDULERS:
        hint = did_you_mean(str(scheduler), SCHEDULERS)
        raise ConfigError(
            f"{where}: scheduler: expected one of {', '.join(SCHEDULERS)}, got {scheduler!r}{hint}"
        )
    values: dict[str, Any] = {}
    for key, value in settings.items():
        _refuse_unknown(where, [key], ["scheduler", *KEYS])
        if key == "scheduler" or value is None:
            continue
        spec = KEYS[key]
        if scheduler not in spec.schedulers:
            raise ConfigError(
                f"{where}: {key} does not apply to scheduler {scheduler!r} (it applies to: "
                f"{', '.join(s for s in SCHEDULERS if s in spec.schedulers)})"
            )
        try:
            values[spec.attr] = spec.read(value, key)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    missing = [key for key in REQUIRED.get(scheduler, ()) if KEYS[key].attr not in values]
    if missing:
        raise ConfigError(
            f"{where}: a {scheduler} partition needs {' and '.join(missing)} (per batch job), "
            f"e.g. {' and '.join(EXAMPLES[key] for key in missing)}"
        )
    values.setdefault("cores", 1)
    partition = PartitionConfig(name=name, scheduler=scheduler, source=source, **values)
    _check_consistent(where, partition)
    return partition


def _check_consistent(where: str, part: PartitionConfig) -> None:
    """Settings that are valid alone but not together."""
    if part.cores % part.processes:
        raise ConfigError(
            f"{where}: processes: {part.processes} does not divide cores: {part.cores}; each "
            "worker process gets cores / processes threads"
        )
    if part.gpus_per_node % part.processes:
        raise ConfigError(
            f"{where}: processes: {part.processes} does not divide gpus-per-node: "
            f"{part.gpus_per_node}; each worker process gets gpus-per-node / processes GPUs"
        )
    if part.gpu_env != DEFAULT_GPU_ENV and not part.gpus_per_node:
        raise ConfigError(
            f"{where}: gpu-env names the variables of a worker's GPUs, but the partition has "
            "none; give gpus-per-node too, or leave gpu-env out"
        )
    if part.min_jobs > part.max_jobs:
        raise ConfigError(
            f"{where}: min-jobs: {part.min_jobs} is more than max-jobs: {part.max_jobs}"
        )
    if part.lifetime_margin is not None and (
        part.walltime is None or part.lifetime_margin >= part.walltime
    ):
        raise ConfigError(
            f"{where}: lifetime-margin: {part.lifetime_margin:g} s needs a walltime longer than "
            "it (workers stop taking tasks that long before their job's walltime)"
        )
    if "--resources" in part.worker_extra_args:
        raise ConfigError(
            f"{where}: worker-extra-args: do not pass --resources; provtask declares the "
            "workers' resources from gpus-per-node"
        )
