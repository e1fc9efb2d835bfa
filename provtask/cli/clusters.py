"""``provtask clusters``: the resolved clusters config, and the batch script of a partition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..clusters.config import PartitionConfig
from .common import clusters_option, friendly_errors, json_option


@click.command()
@clusters_option
@click.option(
    "--job-script",
    "job_script_of",
    metavar="PARTITION",
    help="Print the batch script a job of this partition is submitted with.",
)
@click.option(
    "--mpi",
    "mpi_shape",
    metavar="NODESxRANKSxCPUS",
    help="With --job-script: the script of an MPI task's job of this shape, e.g. 2x4x1 "
    "(nodes, ranks per node, cpus per rank).",
)
@json_option
@friendly_errors
def clusters(
    clusters_path: Path | None, job_script_of: str | None, mpi_shape: str | None, as_json: bool
) -> None:
    """Show the clusters file in use and every partition's settings.

    Settings provtask applies by default are shown too; nothing else reaches the batch
    jobs (dask-jobqueue's own config files are not read).
    """
    from ..clusters import job_script, load_clusters
    from ..clusters.show import config_json, config_text, no_config_text
    from ..suggest import did_you_mean

    config = load_clusters(clusters_path)
    if job_script_of is not None:
        if config is None:
            raise ConfigError(f"no clusters file, so no partitions to show\n{no_config_text()}")
        if job_script_of not in config.partitions:
            raise ConfigError(
                f"no partition {job_script_of!r} in {config.source}"
                f"{did_you_mean(job_script_of, config.partitions)}; its partitions are: "
                f"{', '.join(config.partitions)}"
            )
        partition = config.partitions[job_script_of]
        if mpi_shape is not None:
            partition = _shaped(partition, mpi_shape)
        script = job_script(partition)
        click.echo(
            json.dumps({"partition": partition.name, "job-script": script}, indent=2)
            if as_json
            else script.rstrip("\n")
        )
    elif mpi_shape is not None:
        raise click.UsageError("--mpi goes with --job-script PARTITION")
    elif config is None:
        click.echo(json.dumps({"source": None}) if as_json else no_config_text())
    else:
        click.echo(json.dumps(config_json(config), indent=2) if as_json else config_text(config))


def _shaped(partition: PartitionConfig, shape: str) -> PartitionConfig:
    """The partition as a job of one MPI shape sees it (``2x4x1``): a job of that shape, or
    on a partition with mpi-packing the packed job every shape shares."""
    from ..mpi.shape import job_partition
    from ..resources import make_resources

    parts = shape.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(
            f"expected NODESxRANKSxCPUS such as 2x4x1, got {shape!r}", param_hint="--mpi"
        )
    if partition.scheduler != "slurm":
        raise ConfigError(
            f"partition {partition.name!r}: MPI jobs are shaped for SLURM partitions only "
            f"(this one is {partition.scheduler})"
        )
    nodes, ranks, cpus = (int(p) for p in parts)
    return job_partition(
        partition, make_resources(nodes=nodes, ntasks_per_node=ranks, cpus_per_task=cpus)
    )
