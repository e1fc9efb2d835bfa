"""Parquet export read back with pandas and pyarrow gives the store's rows."""

from __future__ import annotations

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from provtask import NotFoundError, Store, StoreError
from provtask.analysis.export import export_parquet


def test_export_round_trip_partitions_and_idempotence(client, store_dir, load_dag, tmp_path):
    first = load_dag("failing").run(client=client, store=store_dir).run_id
    second = load_dag("edge_cases", "big_output").run(client=client, store=store_dir).run_id
    store = Store(store_dir)
    out = tmp_path / "parquet"

    counts = export_parquet(store, [first, "latest"], out)
    assert counts["tasks"] == len(store.tasks(first)) + len(store.tasks(second))
    assert {p.name for p in (out / "tasks").iterdir()} == {f"run_id={first}", f"run_id={second}"}

    tasks = pd.read_parquet(out / "tasks").query("run_id == @first").set_index("task_id")
    stored = store.tasks(first).set_index("task_id")
    assert tasks["state"].astype(str).to_dict() == stored["state"].astype(str).to_dict()
    started = stored["started_at"].dropna()
    assert (tasks.loc[started.index, "started_at"] - started).abs().max() < pd.Timedelta("1us")

    attempts = ds.dataset(out / "attempts", partitioning="hive").to_table()
    assert attempts.num_rows == len(store.attempts(first)) + len(store.attempts(second))
    assert "data" not in pq.read_schema(next((out / "artifacts").rglob("*.parquet"))).names

    again = export_parquet(store, [first, second], out)
    assert again == counts
    assert len(pd.read_parquet(out / "tasks")) == counts["tasks"]  # replaced, not appended


def test_export_of_an_unknown_run_is_a_clear_error(store_dir, tmp_path):
    with pytest.raises(NotFoundError, match=r"no run '\.\./etc'"):
        export_parquet(Store(store_dir), ["../etc"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_refuses_the_store_folder_and_forged_run_ids(store_dir, tmp_path):
    store = Store(store_dir)
    with pytest.raises(StoreError, match="outside the store"):
        export_parquet(store, ["latest"], store_dir / "artifacts")
    store.db["runs"].insert({"run_id": "../../escape", "dag_name": "x", "started_at": 1.0})
    with pytest.raises(StoreError, match="not one provtask made"):
        export_parquet(store, ["../../escape"], tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_duckdb_reads_the_export_as_the_store_has_it(client, store_dir, load_dag, tmp_path):
    import duckdb

    run_id = load_dag("failing").run(client=client, store=store_dir).run_id
    store = Store(store_dir)
    out = tmp_path / "parquet"
    export_parquet(store, [run_id], out)

    con = duckdb.connect()
    query = f"SELECT * FROM read_parquet('{out}/attempts/*/*.parquet', hive_partitioning=true)"
    exported = con.execute(f"{query} ORDER BY task_id, attempt").df()
    stored = store.attempts(run_id).sort_values(["task_id", "attempt"]).reset_index(drop=True)
    assert list(exported["run_id"].unique()) == [run_id]
    assert exported[["task_id", "attempt"]].values.tolist() == (
        stored[["task_id", "attempt"]].values.tolist()
    )
    assert exported["status"].astype(str).tolist() == stored["status"].astype(str).tolist()
    by_state = dict(
        con.execute(
            f"SELECT state, count(*) FROM read_parquet('{out}/tasks/*/*.parquet') GROUP BY state"
        ).fetchall()
    )
    assert by_state == store.tasks(run_id)["state"].astype(str).value_counts().to_dict()
