"""``provtask clusters``: the resolved clusters config, and the batch script of a partition."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError
from .common import clusters_option, friendly_errors, json_option


@click.command()
@clusters_option
@click.option(
    "--job-script",
    "job_script_of",
    metavar="PARTITION",
    help="Print the batch script a job of this partition is submitted with.",
)
@json_option
@friendly_errors
def clusters(clusters_path: Path | None, job_script_of: str | None, as_json: bool) -> None:
    """Show the clusters file in use and every partition's settings.

    Settings provtask applies by default are shown too; nothing else reaches the batch
    jobs (dask-jobqueue's own config files are not read).
    """
    from ..clusters import job_script, load_clusters
    from ..clusters.config import did_you_mean
    from ..clusters.show import config_json, config_text, no_config_text

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
        script = job_script(partition)
        click.echo(
            json.dumps({"partition": partition.name, "job-script": script}, indent=2)
            if as_json
            else script.rstrip("\n")
        )
    elif config is None:
        click.echo(json.dumps({"source": None}) if as_json else no_config_text())
    else:
        click.echo(json.dumps(config_json(config), indent=2) if as_json else config_text(config))
