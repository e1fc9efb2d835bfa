"""Every run records its context: DAG source and git state, clusters config, typed params,
command line, versions and chosen environment variables (``Store.run_context``)."""

from __future__ import annotations

import datetime as dt
import subprocess
from decimal import Decimal
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import sqlite_utils

import provtask
from provtask import DAG, ConfigError, ParamError, Store, task
from provtask.clusters.config import load_clusters
from provtask.params_codec import decode_params, encode_params
from provtask.store.schema import MIGRATIONS, SCHEMA_VERSION

DAG_FILE = """
from provtask import DAG, task


@task
def scale(x: int, factor: int) -> int:
    return x * factor


with DAG("ctx", params={"factor": 3}) as dag:
    scale.map([1, 2], factor=dag.param("factor"))
"""

CLUSTERS = """\
default: here
record-env: [PROVTASK_CTX_FROM_FILE]
partitions:
  here: {scheduler: local, max-jobs: 1}
"""

VALUES = {
    "tuple": (1, (2.5, "x")),
    "path": Path("inputs/a.csv"),
    "pure": PurePosixPath("/data/b"),
    "dict_of_lists": {"a": [1, 2], "b": []},
    "int_keys": {1: "one", (2, 3): "pair"},
    "tagged_key": {"__type__": "not a tag"},
    "np_int": np.int64(7),
    "np_float": np.float32(0.1),
    "array": np.arange(6, dtype=np.int16).reshape(2, 3),
    "utc": dt.datetime(2026, 12, 2, 18, 14, 0, 123456, tzinfo=dt.timezone.utc),
    "naive": dt.datetime(2026, 1, 1, 0, 0),
    "date": dt.date(2026, 2, 28),
    "delta": dt.timedelta(hours=3, microseconds=5),
    "sets": {frozenset({1, 2}), "a"},
    "decimal": Decimal("0.10"),
    "bytes": b"\x00\xff",
    "nan": float("inf"),
    "complex": 1 + 2j,
    "flag": True,
}


@task
def echo(p: object) -> object:
    return p


def same(a: object, b: object) -> bool:
    """Equal with the same types all the way down (1 == 1.0 == True would not do)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", list(VALUES))
def test_params_round_trip_with_their_exact_types(name):
    value = VALUES[name]
    assert same(decode_params(encode_params({name: value}))[name], value)


@pytest.mark.parametrize(
    ("value", "told"),
    [
        (object(), "object"),
        (lambda: 1, "function"),
        ({"ok": [1, open]}, "param 'p': p['ok'][1] is a builtin_function_or_method"),
        (dt.datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Paris")), "zone"),
        (np.array(["a"]), "numpy dtype <U1"),
    ],
)
def test_a_param_that_cannot_round_trip_is_refused_before_the_run(value, told, store_dir):
    with DAG("refused", params={"p": 1}) as dag:
        echo(dag.param("p"))
    with pytest.raises(ParamError, match="create the object inside a task") as caught:
        provtask.submit(dag, params={"p": value}, store=store_dir)
    assert told in str(caught.value)
    assert not (store_dir / "provtask.db").exists()  # nothing started


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_run_records_its_source_git_state_clusters_params_and_environment(
    tmp_path, store_dir, monkeypatch
):
    dag_file = tmp_path / "ctx.py"
    dag_file.write_text(DAG_FILE)
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(CLUSTERS)
    git("init", "-q", cwd=tmp_path)
    git("add", "ctx.py", cwd=tmp_path)
    git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "dag", cwd=tmp_path)
    monkeypatch.setenv("PROVTASK_CTX_FROM_FILE", "from-file")
    monkeypatch.setenv("PROVTASK_CTX_ASKED", "asked")
    dag = provtask.load_dag_file(dag_file)
    result = provtask.run(
        dag,
        params={"factor": 5},
        store=store_dir,
        clusters=clusters,
        record_env=["PROVTASK_CTX_ASKED", "PROVTASK_CTX_UNSET"],
    )
    assert result.ok
    context = Store(store_dir).run_context("latest")
    assert context["dag_file"] == str(dag_file)
    assert context["dag_source"] == DAG_FILE
    assert context["git_commit"] == git("rev-parse", "HEAD", cwd=tmp_path)
    assert context["git_dirty"] is False
    assert context["clusters_config"] == CLUSTERS
    assert context["clusters_origin"] == str(clusters)
    assert context["params"] == {"factor": 5}
    assert context["env"] == {
        "PROVTASK_CTX_FROM_FILE": "from-file",
        "PROVTASK_CTX_ASKED": "asked",
        "PROVTASK_CTX_UNSET": None,
    }
    assert context["versions"]["provtask"] == provtask.__version__
    assert context["versions"]["numpy"] == np.__version__
    assert context["host"] and context["user"]

    dag_file.write_text(DAG_FILE.replace("x * factor", "factor * x"))
    provtask.run(provtask.load_dag_file(dag_file), store=store_dir)
    edited = Store(store_dir).run_context("latest")
    assert edited["git_dirty"] is True and edited["dag_source"] != DAG_FILE
    assert edited["clusters_origin"] == "embedded default" and edited["clusters_config"] is None
    frame = Store(store_dir).run_contexts(dag="ctx")
    assert list(frame["run_id"]) == [edited["run_id"], context["run_id"]]
    assert frame["dag_hash"].nunique() == 2 and frame["versions_hash"].nunique() == 1


def test_record_env_must_name_variables(tmp_path, store_dir):
    bad = tmp_path / "clusters.yaml"
    bad.write_text(CLUSTERS.replace("[PROVTASK_CTX_FROM_FILE]", "[A=1]"))
    with pytest.raises(ConfigError, match=r"record-env: expected a list of environment"):
        load_clusters(bad)
    with DAG("env") as dag:
        echo(1)
    with pytest.raises(provtask.DAGError, match="not NAME=VALUE"):
        provtask.submit(dag, store=store_dir, record_env=["A=1"])


def test_a_store_of_schema_8_is_migrated_and_its_runs_say_they_have_no_context(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    db = sqlite_utils.Database(root / "provtask.db")
    for migration in MIGRATIONS[:8]:
        migration(db)
    db.execute("PRAGMA user_version = 8")
    db["runs"].insert({"run_id": "20260101-000000-aaaaaa", "dag_name": "old", "params": "{}"})
    db["code"].insert({"code_hash": "c", "components": "{}"})
    db.conn.commit()
    db.close()

    store = Store(root)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.conn.execute("SELECT sources FROM code").fetchone() == (None,)
    with pytest.raises(provtask.NotFoundError, match="no recorded context"):
        store.run_context("latest")
    assert store.run_contexts().empty
