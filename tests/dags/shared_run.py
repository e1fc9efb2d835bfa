"""A run to share (tests/test_sharing*.py): a ``.map`` on the gpu partition with one failing
element, an MPI task, and a task that reads a file it is given as a ``Path``."""

from pathlib import Path

from provtask import DAG, mpi_task, task


@task
def make_inputs(n: int) -> list[int]:
    return list(range(n))


@task(partition="gpu", gpus=1)
def square(x: int) -> int:
    if x == 2:
        raise ValueError(f"element {x} is refused")
    return x * x


@mpi_task(partition="cpu", ntasks_per_node=2, launcher="mpirun")
def count_ranks(comm) -> int:
    return comm.allreduce(1)


@task
def locate(name: str) -> Path:
    return Path(name).absolute()


@task
def measure(path: Path) -> int:
    return len(path.read_bytes())


@task
def write_report(size: int, ranks: int, folder: str) -> Path:
    target = Path(folder) / "report.txt"
    target.write_text(f"{size} bytes, {ranks} ranks\n")
    return target


with DAG("shared_run", params={"n": 4, "data": "data.txt", "folder": "."}) as dag:
    square.map(make_inputs(dag.param("n")))
    size = measure(locate(dag.param("data")))
    write_report(size, count_ranks(), dag.param("folder"))
