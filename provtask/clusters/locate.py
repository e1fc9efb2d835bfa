"""Where a clusters file is found: named explicitly, by ``$PROVTASK_CLUSTERS``, in the
current directory, or in the user's config folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

ENV_VAR = "PROVTASK_CLUSTERS"
FILE_NAME = "clusters.yaml"


def search_order() -> list[tuple[str, Path | None]]:
    """Where a clusters file is looked for, first to last (``None``: variable not set)."""
    env = os.environ.get(ENV_VAR)
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [
        (f"${ENV_VAR}", Path(env) if env else None),
        ("current directory", Path(FILE_NAME)),
        ("user config", config_home / "provtask" / FILE_NAME),
    ]


def find_clusters_file(explicit: Path | None) -> Path | None:
    """The clusters file to use: ``explicit``, then ``$PROVTASK_CLUSTERS``, then
    ``./clusters.yaml``, then ``$XDG_CONFIG_HOME/provtask/clusters.yaml`` (default
    ``~/.config``). A file named explicitly or by the variable must exist."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise ConfigError(
                f"clusters file {explicit} does not exist; give an existing file with "
                f"--clusters (or ${ENV_VAR}), or leave both out to search the usual places"
            )
        return Path(explicit)
    for origin, path in search_order():
        if origin.startswith("$") and path is not None and not path.is_file():
            raise ConfigError(
                f"clusters file {path} does not exist (named by ${ENV_VAR}); fix or unset "
                "the variable"
            )
        if path is not None and path.is_file():
            return path
    return None
