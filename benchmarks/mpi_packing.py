"""Packed MPI jobs vs one MPI task per job, on the local SLURM's 4 fake nodes (``mpi``).

    python -m benchmarks.mpi_packing [--program hold|lammps] [--rounds 3] [--quick] [--json]

Each round runs 8 two-node MPI tasks (two ranks per node: whole nodes of 2 CPUs) in four
layouts of partition ``mpi`` (node5-8, see .ci/start-slurm.sh):

- ``packed``: ``mpi-packing: {nodes-per-job: 4}``, ``max-jobs: 1``: one 4-node job runs
  two tasks at a time;
- ``per-task x1``: provtask's default, a job per MPI shape (2 nodes), under the same cap
  of one job;
- ``per-task x2``: the default with ``max-jobs: 2``, the same 4 nodes;
- ``per-task x8``: the default with no cap that matters (``max-jobs: 8``): a job per task.

The tasks (``--program``): ``hold`` (default) keeps its nodes for 4 s (1 s with
``--quick``) and uses no CPU, as a node of a real machine has CPUs of its own while the 8
fake nodes here share 2 real cores (CPU-bound tasks cannot run faster side by side here,
packed or not); ``lammps`` runs a 256-atom LAMMPS melt (``lmp``, Debian's ``lammps``).

Figures of each layout: batch jobs submitted; makespan (s, the ``dag.run`` call, batch
queueing and worker start included); node-seconds idle, i.e. nodes x time of the workers'
jobs minus nodes x time of the MPI attempts (what the allocation paid for and did not use);
and ``provtask efficiency``'s ``idle`` (s) and ``efficiency``, which count worker threads, not
nodes (see docs/mpi.md). Without SLURM's ``mpi`` partition it prints why and measures
nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provtask import DAG, MPICommand, Store, mpi_task
from provtask.analysis.efficiency import efficiency
from provtask.clusters import parse_clusters

from .common import Figures, parser, report, rounds_of

TASKS = 8
LAYOUTS = {  # name: (mpi-packing, max-jobs, nodes per job)
    "packed": ({"nodes-per-job": 4}, 1, 4),
    "per-task x1": (None, 1, 2),
    "per-task x2": (None, 2, 2),
    "per-task x8": (None, 8, 2),
}
UNITS = {"makespan": "s", "node-s idle": "node-s", "efficiency idle": "s"}
MELT = """units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 box
mass 1 1.0
velocity all create {temperature} 87287 loop geom
pair_style lj/cut 2.5
pair_coeff 1 1 1.0 1.0 2.5
neighbor 0.3 bin
fix 1 all nve
thermo 100
run {steps}
"""


@mpi_task(partition="mpi", nodes=2, ntasks_per_node=2)
def melt(workdir: str, temperature: float, steps: int) -> MPICommand:
    folder = Path(workdir) / f"t{temperature:g}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "in.melt").write_text(MELT.format(temperature=temperature, steps=steps))
    return MPICommand("lmp", ["-in", "in.melt", "-log", "none"], cwd=folder)


@mpi_task(partition="mpi", nodes=2, ntasks_per_node=2)
def hold(index: int, seconds: float) -> MPICommand:
    return MPICommand("sleep", [str(seconds)])


def ensemble(workdir: str, program: str, quick: bool) -> DAG:
    with DAG("mpi-packing-bench") as dag:
        for i in range(TASKS):
            if program == "lammps":
                melt(workdir, 1.0 + i / 4, 200 if quick else 2000)
            else:
                hold(i, 1.0 if quick else 4.0)
    return dag


def clusters(layout: str, logs: Path):
    packing, max_jobs, _ = LAYOUTS[layout]
    partition = {
        "scheduler": "slurm",
        "queue": "mpi",
        "cores": 2,
        "memory": "1GB",
        "walltime": "00:20:00",
        "max-jobs": max_jobs,
        "idle-timeout": "5s",
        "log-directory": str(logs),
        "mpi-env": {"OMPI_MCA_mpi_yield_when_idle": 1},
        "mpi-packing": packing,
    }
    return parse_clusters({"default": "mpi", "partitions": {"mpi": partition}})


def one_run(layout: str, root: Path, program: str, quick: bool) -> dict[str, float]:
    """Run the ensemble once in this layout; its figures."""
    store_dir = root / layout.replace(" ", "-")
    dag = ensemble(str(store_dir / "work"), program, quick)
    started = time.perf_counter()
    result = dag.run(store=store_dir / "store", clusters=clusters(layout, root / "logs"))
    makespan = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"the {layout} run failed: {result.errors}")
    store = Store(store_dir / "store")
    jobs = store.jobs(result.run_id)
    workers = store.workers(result.run_id)
    attempts = store.attempts(result.run_id)
    nodes_per_job = LAYOUTS[layout][2]
    worker_s = (workers["disconnected_at"] - workers["connected_at"]).dt.total_seconds()
    attempt_s = (attempts["ended_at"] - attempts["started_at"]).dt.total_seconds()
    whole = efficiency(store, result.run_id).set_index("partition").loc["all"]
    return {
        "jobs submitted": float(jobs["job_id"].notna().sum()),
        "makespan": makespan,
        "node-s idle": float(
            worker_s.sum() * nodes_per_job - (attempt_s * attempts["mpi_nodes"]).sum()
        ),
        "efficiency idle": float(whole["idle"]),
        "efficiency": float(whole["efficiency"]),
    }


def slurm_missing(program: str) -> str | None:
    """Why the benchmark cannot run here, or None."""
    if program == "lammps" and shutil.which("lmp") is None:
        return "lmp (LAMMPS) is not installed"
    try:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo cannot be run: {exc}"
    if "mpi" not in done.stdout.split():
        return "the local SLURM with partition 'mpi' is not running (bash .ci/start-slurm.sh)"
    return None


def main() -> None:
    options = parser(__doc__, rounds=3)
    options.add_argument("--program", choices=("hold", "lammps"), default="hold")
    args = options.parse_args()
    problem = slurm_missing(args.program)
    if problem is not None:
        print(f"mpi_packing skipped: {problem}", file=sys.stderr)
        if args.json:
            report("packed MPI jobs", {}, UNITS, True)
        return
    figures: Figures = {}
    with tempfile.TemporaryDirectory(prefix="provtask-bench-mpi-") as tmp:
        for round_ in range(rounds_of(args)):
            for layout in LAYOUTS:
                measured = one_run(layout, Path(tmp) / f"round{round_}", args.program, args.quick)
                for name, value in measured.items():
                    figures.setdefault(f"{layout}: {name}", []).append(value)
    what = "LAMMPS melts" if args.program == "lammps" else "MPI tasks holding their nodes"
    title = f"{TASKS} two-node {what} on 4 fake SLURM nodes"
    units = {f"{layout}: {name}": unit for layout in LAYOUTS for name, unit in UNITS.items()}
    report(title, figures, units, args.json)


if __name__ == "__main__":
    main()
