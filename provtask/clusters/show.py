"""A clusters config as people read it (YAML with comments) and as programs read it (JSON)."""

from __future__ import annotations

from typing import Any

from ..resources import format_walltime
from .config import ClustersConfig, PartitionConfig, format_size
from .jobqueue import CLUSTER_CLASSES, cluster_kwargs
from .locate import search_order

_SIZES = ("memory", "disk")


def no_config_text() -> str:
    """What runs when no clusters file is found, and where one was looked for."""
    lines = ["no clusters file: tasks run on the embedded LocalCluster", "looked for, in order:"]
    lines.append("  --clusters FILE (not given)")
    for origin, path in search_order():
        lines.append(f"  {path if path is not None else '(not set)'}  [{origin}]")
    return "\n".join(lines)


def config_text(config: ClustersConfig) -> str:
    """The resolved config as a clusters file (every setting, defaults included)."""
    import yaml

    lines = [
        f"# clusters file: {config.source or '(given in Python)'}",
        "# every setting, with the defaults provtask applied; a partition's batch script:",
        "#   provtask clusters --job-script PARTITION",
        f"default: {config.default}",
        "partitions:",
    ]
    for name, partition in config.partitions.items():
        lines.append(f"  {name}:  # {_summary(partition)}")
        record = _readable(partition.to_record())
        dumped = yaml.safe_dump(record, sort_keys=False, default_flow_style=None, width=200)
        lines += [f"    {line}" for line in dumped.splitlines()]
    return "\n".join(lines)


def config_json(config: ClustersConfig) -> dict[str, Any]:
    """The resolved config for ``--json``: sizes in bytes, times in seconds."""
    return {
        "source": str(config.source) if config.source else None,
        "default": config.default,
        "partitions": {
            name: {
                **part.to_record(),
                "worker-resources": part.worker_resources(),
                "cluster-class": CLUSTER_CLASSES.get(part.scheduler, "LocalCluster"),
                "cluster-kwargs": cluster_kwargs(part),
            }
            for name, part in config.partitions.items()
        },
    }


def _summary(part: PartitionConfig) -> str:
    kind = CLUSTER_CLASSES.get(part.scheduler, "LocalCluster")
    unit = "job" if part.scheduler != "local" else "local job"
    workers = "1 worker" if part.processes == 1 else f"{part.processes} workers"
    text = f"{kind}; each {unit}: {workers} of {part.threads_per_worker} thread(s)"
    resources = part.worker_resources()
    if resources:
        text += ", worker resources " + ", ".join(f"{k}={v:g}" for k, v in resources.items())
    return text


def _readable(record: dict[str, Any]) -> dict[str, Any]:
    """Sizes and walltime as strings a clusters file accepts."""
    readable = dict(record)
    for key in _SIZES:
        if readable.get(key) is not None:
            readable[key] = format_size(readable[key])
    if readable.get("walltime") is not None:
        readable["walltime"] = format_walltime(readable["walltime"])
    return readable
