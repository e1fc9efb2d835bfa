"""Elements that wait until the file named by the param ``gate`` exists: a test decides when
the run may end, so what it sees while the run goes on does not depend on timing."""

from pathlib import Path

from provtask import DAG, task


@task
def wait_for(i: int, gate: str) -> int:
    import time

    Path(gate).with_name(f"started-{i}").touch()  # for tests that wait until it runs
    while not Path(gate).exists():
        time.sleep(0.05)
    return i


with DAG("gated", params={"gate": "", "n": 3}) as dag:
    wait_for.map(list(range(3)), gate=dag.param("gate"))
