"""A partition as a Dask cluster: dask-jobqueue's keyword arguments, its job script, the cluster.

dask-jobqueue fills every keyword left out from the ``jobqueue.<scheduler>`` section of the
Dask configuration (``~/.config/dask/jobqueue.yaml``, ``DASK_JOBQUEUE__*``). provtask points
its clusters at a section of its own, ``jobqueue.provtask-<scheduler>``, that sets nothing,
so the job script holds only what the clusters file says plus what :func:`cluster_kwargs`
adds, all of which ``provtask clusters`` shows.
"""

from __future__ import annotations

import logging
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..gpu_devices import DEFAULT_GPU_ENV, DEVICES_VARIABLE, GPU_ENV_VARIABLE
from .config import PartitionConfig

# dask-jobqueue's cluster class of each scheduler (its Job class is the cluster's job_cls).
CLUSTER_CLASSES = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
}
WORKER_COMMAND = "distributed.cli.dask_worker"
# Stand-ins in the job script shown before any scheduler runs.
PLACEHOLDER_SCHEDULER = "tcp://<scheduler-address>:8786"
PLACEHOLDER_WORKER = "<worker-name>"


def cluster_class(partition: PartitionConfig) -> type:
    """The dask-jobqueue cluster class for a batch partition."""
    import dask_jobqueue

    if partition.scheduler not in CLUSTER_CLASSES:
        raise ConfigError(
            f"partition {partition.name!r} has scheduler {partition.scheduler!r}: it runs on a "
            "LocalCluster, not through dask-jobqueue"
        )
    return getattr(dask_jobqueue, CLUSTER_CLASSES[partition.scheduler])


def job_class(partition: PartitionConfig) -> type:
    """The dask-jobqueue Job class that submits one batch job of this partition."""
    return cluster_class(partition).job_cls


def cluster_kwargs(partition: PartitionConfig) -> dict[str, Any]:
    """The exact keyword arguments :func:`make_cluster` gives the cluster class."""
    if partition.scheduler == "local":
        return _local_kwargs(partition)
    p = partition
    kwargs: dict[str, Any] = {
        "config_name": _blank_config_section(p.scheduler),
        "scheduler_options": {"dashboard_address": ":0"},
        "cores": p.cores,
        "processes": p.processes,
        "memory": p.memory,
        "job_name": p.job_name,
        "python": p.python,
        "shebang": p.shebang,
        "death_timeout": p.death_timeout,
        "worker_command": WORKER_COMMAND,
        "nanny": True,
        "worker_extra_args": [*p.worker_extra_args, *_resources_args(p)],
        "job_script_prologue": [*p.job_script_prologue, *_gpu_env_lines(p)],
        "job_extra_directives": _extra_directives(p),
        "job_directives_skip": list(p.job_directives_skip),
    }
    account_key = "project" if p.scheduler in ("sge", "lsf") else "account"
    optional = {
        "queue": p.queue,
        account_key: p.account,
        "walltime": _walltime(p),
        "interface": p.interface,
        "local_directory": p.local_directory,
        "log_directory": p.log_directory,
        "job_cpu": p.job_cpu,
        "job_mem": p.job_mem,
        "resource_spec": p.resource_spec,
        "disk": p.disk,
    }
    kwargs.update({key: value for key, value in optional.items() if value is not None})
    return kwargs


def _local_kwargs(p: PartitionConfig) -> dict[str, Any]:
    """A LocalCluster of max-jobs "jobs", each ``processes`` workers of cores / processes
    threads."""
    kwargs: dict[str, Any] = {
        "n_workers": p.max_jobs * p.processes,
        "threads_per_worker": p.threads_per_worker,
        "processes": True,
        "dashboard_address": ":0",
        "silence_logs": logging.ERROR,
    }
    if p.memory_per_worker is not None:
        kwargs["memory_limit"] = p.memory_per_worker
    if p.worker_resources():
        kwargs["resources"] = p.worker_resources()
    if p.local_directory is not None:
        kwargs["local_directory"] = p.local_directory
    if p.gpus_per_node:  # the machine's devices, from the config (see provtask.gpu_devices)
        devices = ",".join(str(i) for i in range(p.gpus_per_node))
        kwargs["env"] = {DEVICES_VARIABLE: devices, GPU_ENV_VARIABLE: ",".join(p.gpu_env)}
    return kwargs


def _gpu_env_lines(p: PartitionConfig) -> list[str]:
    """Tells the workers which variables name a GPU attempt's devices, when not the default."""
    if not p.gpus_per_node or p.gpu_env == DEFAULT_GPU_ENV:
        return []
    return [f"export {GPU_ENV_VARIABLE}={','.join(p.gpu_env)}"]


def _resources_args(p: PartitionConfig) -> list[str]:
    resources = ",".join(f"{name}={value:g}" for name, value in p.worker_resources().items())
    return ["--resources", resources] if resources else []


def _extra_directives(p: PartitionConfig) -> Any:
    directives = list(p.job_extra_directives)
    if p.scheduler == "slurm" and p.gpus_per_node:
        directives.append(f"--gres=gpu:{p.gpus_per_node}")
    if p.scheduler == "htcondor":  # HTCondor takes submit-file "Key = value" pairs
        pairs = (line.partition("=") for line in directives)
        return {key.strip(): value.strip() for key, _, value in pairs}
    return directives


def _walltime(p: PartitionConfig) -> str | None:
    if p.walltime is None:
        return None
    hours, rest = divmod(p.walltime, 3600)
    if p.scheduler == "lsf":  # bsub -W takes [HH:]MM
        return f"{hours:02d}:{-(-rest // 60):02d}"
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@cache
def _blank_config_section(scheduler: str) -> str:
    """Register ``jobqueue.provtask-<scheduler>``: dask-jobqueue's keys, none of them set."""
    import dask
    import dask_jobqueue
    import yaml

    shipped = Path(dask_jobqueue.__file__).with_name("jobqueue.yaml")
    keys = yaml.safe_load(shipped.read_text())["jobqueue"][scheduler]
    blank = {
        key: type(value)() if isinstance(value, list | dict) else None
        for key, value in keys.items()
    }
    name = f"provtask-{scheduler}"
    dask.config.update_defaults({"jobqueue": {name: blank}})
    return name


def job_script(partition: PartitionConfig) -> str:
    """The batch script a job of this partition is submitted with (scheduler address and
    worker name are placeholders: the real ones exist only once the cluster runs).

    Nothing is created: dask-jobqueue makes the log directory when a Job is built, so the
    script is rendered with a temporary stand-in for it.
    """
    job_cls = job_class(partition)
    kwargs = cluster_kwargs(partition)
    kwargs.pop("scheduler_options")  # the scheduler's, not the job's
    log_directory = kwargs.pop("log_directory", None)
    with tempfile.TemporaryDirectory() as stand_in:
        if log_directory is not None:
            kwargs["log_directory"] = stand_in
        job = job_cls(scheduler=PLACEHOLDER_SCHEDULER, name=PLACEHOLDER_WORKER, **kwargs)
        script = job.job_script()
    return script if log_directory is None else script.replace(stand_in, log_directory)


def make_cluster(partition: PartitionConfig, *, job_cls: type | None = None) -> Any:
    """The partition's Dask cluster, with no workers yet for batch schedulers (scale it), or
    its max-jobs worker processes for ``scheduler: local``. ``job_cls`` replaces the
    scheduler's Job class (e.g. a subclass that observes submissions)."""
    kwargs = cluster_kwargs(partition)
    if partition.scheduler == "local":
        if job_cls is not None:
            raise TypeError("job_cls applies to batch schedulers only")
        from distributed import LocalCluster

        return LocalCluster(**kwargs)
    if job_cls is not None:
        kwargs["job_cls"] = job_cls
    return cluster_class(partition)(**kwargs)
