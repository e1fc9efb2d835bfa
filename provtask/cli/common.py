"""Options, error handling and table printing shared by the ``provtask`` commands."""

from __future__ import annotations

import functools
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ProvtaskError

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store


class PathWithoutNul(click.Path):
    """A path option that refuses a NUL byte cleanly (``os.stat`` would raise ValueError)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if "\0" in str(value):
            self.fail(f"{str(value)!r} contains a NUL byte", param, ctx)
        return super().convert(value, param, ctx)


store_option = click.option(
    "--store",
    "store_path",
    type=PathWithoutNul(file_okay=False, path_type=Path),
    envvar="PROVTASK_STORE",
    default="store",
    show_default=True,
    help="Provenance store folder (env PROVTASK_STORE).",
)
# Commands about one run take it as an optional first argument: the latest run by default.
run_argument = click.argument("run_ref", metavar="[RUN]", default="latest", required=False)
progress_interval_option = click.option(
    "--progress-interval",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Seconds between progress lines when stderr is not a terminal "
    "(env PROVTASK_PROGRESS_INTERVAL) [30].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
clusters_option = click.option(
    "--clusters",
    "clusters_path",
    type=PathWithoutNul(dir_okay=False, path_type=Path),
    envvar="PROVTASK_CLUSTERS",
    help="Clusters file (env PROVTASK_CLUSTERS) [else ./clusters.yaml, then "
    "~/.config/provtask/clusters.yaml; none: the embedded LocalCluster].",
)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn provtask errors into one-line messages with the error's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ProvtaskError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None
        except sqlite3.DatabaseError as exc:  # damage found by a query, not at opening
            raise click.ClickException(
                f"the store database is damaged ({exc}); check it with 'provtask doctor'"
            ) from None

    return wrapper


def open_store(store_path: Path) -> Store:
    """An existing store (never creates one: a typo in --store is an error)."""
    from ..store import Store

    return Store(store_path, create=False)


def echo_frame(frame: pd.DataFrame, as_json: bool, columns: list[str]) -> None:
    """A DataFrame as a rich table, or as JSON records."""
    frame = frame[[c for c in columns if c in frame]]
    if as_json:
        from .jsonout import echo_json, records

        echo_json(records(frame))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*frame.columns, box=None, header_style="bold")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(value) for value in row))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timedelta):
        return f"{value.total_seconds():.3f}s"
    if isinstance(value, pd.Timestamp):
        return value.tz_convert(None).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
