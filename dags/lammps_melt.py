"""A LAMMPS ensemble: one 2-rank Lennard-Jones melt per temperature, then a summary table.

    provtask run dags/lammps_melt.py                                  # on this machine
    provtask run dags/lammps_melt.py --clusters dags/lammps_melt.yaml # on the local SLURM
    provtask run dags/lammps_melt.py --param temperatures='[1.0, 2.0, 3.0, 4.0]'

Each run is small (4x4x4 fcc, 256 atoms, 100 steps) and writes into its own folder under
``workdir``. ``melt`` asks for 2 nodes with one rank each: on SLURM its batch job spans two
nodes and ``srun`` starts a rank on each; on the embedded default ``mpirun`` starts both
ranks here. Needs LAMMPS (``lmp``, Debian package ``lammps``) and an MPI launcher.
"""

from pathlib import Path

from provtask import DAG, mpi_task, task
from provtask.mpi import MPICommand, MPIRun

MELT = """\
# 3d Lennard-Jones melt at temperature ${T}: 4x4x4 fcc = 256 atoms, 100 steps
units           lj
atom_style      atomic
lattice         fcc 0.8442
region          box block 0 4 0 4 0 4
create_box      1 box
create_atoms    1 box
mass            1 1.0
velocity        all create ${T} 87287 loop geom
pair_style      lj/cut 2.5
pair_coeff      1 1 1.0 1.0 2.5
neighbor        0.3 bin
neigh_modify    every 20 delay 0 check no
fix             1 all nve
thermo          50
run             100
"""


@task
def make_input(temperature: float, workdir: str) -> str:
    """The run folder of one temperature, holding its LAMMPS input."""
    folder = Path(workdir).resolve() / f"T{temperature:g}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "in.melt").write_text(MELT)
    return str(folder)


@mpi_task(nodes=2, ntasks_per_node=1, walltime="00:05:00", launcher="srun")
def melt(folder: str, temperature: float) -> MPICommand:
    return MPICommand("lmp", ["-in", "in.melt", "-var", "T", f"{temperature:g}"], cwd=folder)


@task
def parse_thermo(run: MPIRun, temperature: float) -> dict:
    """The last thermo line (step, temperature, energies, pressure) and the run's size."""
    lines = run.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "Temp"])
    loop = next(i for i in range(header, len(lines)) if lines[i].startswith("Loop time of"))
    values = dict(zip(lines[header].split(), map(float, lines[loop - 1].split()), strict=True))
    words = lines[loop].split()  # Loop time of 0.01 on 2 procs for 100 steps with 256 atoms
    return {
        "temperature": temperature,
        "final_temp": values["Temp"],
        "total_energy": values["TotEng"],
        "pressure": values["Press"],
        "steps": int(values["Step"]),
        "atoms": int(words[-2]),
        "ranks": int(words[5]),
        "nodes": run.nodes,
        "loop_seconds": float(words[3]),
    }


@task
def summarise(rows: list[dict]) -> list[dict]:
    """The table, one row per temperature (also printed to the attempt's stdout)."""
    print(f"{'T':>6} {'final T':>8} {'TotEng':>9} {'Press':>8} {'ranks':>5}  nodes")
    for row in rows:
        print(
            f"{row['temperature']:6g} {row['final_temp']:8.4f} {row['total_energy']:9.4f} "
            f"{row['pressure']:8.4f} {row['ranks']:5d}  {','.join(row['nodes'])}"
        )
    return rows


with DAG("lammps_melt", params={"temperatures": [1.0, 2.0, 3.0], "workdir": "lammps_runs"}) as dag:
    temperatures = dag.param("temperatures")
    folders = make_input.map(temperatures, workdir=dag.param("workdir"))
    runs = melt.map(folders, temperatures)
    summarise(parse_thermo.map(runs, temperatures))
