"""What a run was made of, recorded at its start so that it can be told and replayed later.

The DAG file's source and hash (with the git commit and dirty flag of its repository), the
clusters configuration used (its YAML text, or ``embedded default``), the params in a typed
encoding (:mod:`provtask.params_codec`), the command line, the installed package versions
and the environment variables asked for (``record-env`` in the clusters file, or
``record_env=[...]`` / ``--record-env NAME``). Long texts go to the ``texts`` table once,
by hash; each run has one ``run_context`` row (docs/schema.md).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DAGError
from .params_codec import encode_params

if TYPE_CHECKING:
    from .clusters.config import ClustersConfig
    from .dag import DAG
    from .store.writer import StoreWriter

EMBEDDED_DEFAULT = "embedded default"
CLIENT = "distributed client"
GIVEN_IN_PYTHON = "given in Python"


@dataclass(frozen=True)
class RunContext:
    """A run's context, collected (and checked) before the run starts."""

    dag_file: str | None
    dag_source: str | None
    git_commit: str | None
    git_dirty: bool | None
    clusters_config: str | None  # YAML text
    clusters_origin: str  # a file path, "embedded default", ...
    params: str  # typed JSON (params_codec)
    command_line: tuple[str, ...]
    cwd: str
    versions: dict[str, str]
    env: dict[str, str | None]
    keep: tuple[str, ...]

    def record(self, writer: StoreWriter, run_id: str) -> None:
        """Queue the ``run_context`` row of ``run_id`` and the texts it refers to."""
        hashes = {}
        versions = json.dumps(self.versions, sort_keys=True)
        for name, text in (
            ("dag_hash", self.dag_source),
            ("clusters_hash", self.clusters_config),
            ("versions_hash", versions),
        ):
            hashes[name] = text_hash(text) if text is not None else None
            if text is not None:
                writer.insert("texts", {"hash": hashes[name], "text": text}, ignore=True)
        writer.insert(
            "run_context",
            {
                "run_id": run_id,
                **hashes,
                "git_commit": self.git_commit,
                "git_dirty": self.git_dirty,
                "clusters_origin": self.clusters_origin,
                "params": self.params,
                "command_line": json.dumps(list(self.command_line)),
                "cwd": self.cwd,
                "env": json.dumps(self.env, sort_keys=True),
                "keep": json.dumps(list(self.keep)),
            },
        )


def collect_context(
    dag: DAG,
    params: dict[str, Any],
    config: ClustersConfig | None,
    *,
    client_given: bool = False,
    record_env: list[str] | tuple[str, ...] = (),
    keep: tuple[str, ...] = (),
) -> RunContext:
    """The context of a run of ``dag`` about to start; raises :class:`ParamError` for params
    that could not be given back exactly, :class:`DAGError` for a bad ``record_env``."""
    names = _env_names([*(config.record_env if config is not None else ()), *record_env])
    source = dag.source_file
    text = source.read_bytes().decode("utf-8", errors="replace") if source else None
    commit, dirty = git_state(source.parent) if source else (None, None)
    if client_given:
        clusters, origin = None, CLIENT
    elif config is None:
        clusters, origin = None, EMBEDDED_DEFAULT
    else:
        clusters, origin = clusters_text(config)
    return RunContext(
        dag_file=str(source) if source else None,
        dag_source=text,
        git_commit=commit,
        git_dirty=dirty,
        clusters_config=clusters,
        clusters_origin=origin,
        params=encode_params(params),
        command_line=tuple(sys.argv),
        cwd=os.getcwd(),
        versions=installed_versions(),
        env={name: os.environ.get(name) for name in names},
        keep=keep,
    )


def clusters_text(config: ClustersConfig) -> tuple[str, str]:
    """The YAML text and origin of a clusters config: the file's text as read, else the
    config written out (one built in Python)."""
    if config.text is not None:
        return config.text, config.origin or str(config.source)
    import yaml

    record: dict[str, Any] = {
        "default": config.default,
        "partitions": {name: p.to_record() for name, p in config.partitions.items()},
    }
    if config.record_env:
        record["record-env"] = list(config.record_env)
    return yaml.safe_dump(record, sort_keys=False), config.origin or GIVEN_IN_PYTHON


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def git_state(directory: Path) -> tuple[str | None, bool | None]:
    """The HEAD commit of the git repository holding ``directory`` and whether its tracked
    files have uncommitted changes; ``(None, None)`` outside a repository (or without git)."""
    commit = _git(directory, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def installed_versions() -> dict[str, str]:
    """Python's version and every installed distribution's, by name (read once a process)."""
    versions = {
        (d.metadata["Name"] or "").lower(): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    return {"python": platform.python_version(), **dict(sorted(versions.items()))}


def _env_names(names: list[str]) -> list[str]:
    for name in names:
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise DAGError(
                f"record_env: {name!r} is not an environment variable name; give names "
                "such as 'OMP_NUM_THREADS' (not NAME=VALUE)"
            )
    return list(dict.fromkeys(names))
