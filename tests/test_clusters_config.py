"""Clusters files: reading, every kind of mistake, where the file is found, what fits where,
and ``provtask clusters``. No scheduler is needed."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from provtask.cli import main
from provtask.clusters import (
    ClustersConfig,
    PartitionConfig,
    find_clusters_file,
    job_script,
    load_clusters,
    parse_clusters,
)
from provtask.errors import ConfigError, ResourceError
from provtask.resources import make_resources

CONFIGS = Path(__file__).parent / "configs"
HPC = CONFIGS / "hpc.yaml"


def write(tmp_path: Path, text: str, name: str = "clusters.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def slurm_file(tmp_path: Path, **cpu: object) -> Path:
    """A one-partition SLURM file, with ``cpu`` keys added to (or replacing) the basics."""
    settings = {"scheduler": "slurm", "cores": 4, "memory": "8GB", **cpu}
    return write(tmp_path, yaml.safe_dump({"default": "cpu", "partitions": {"cpu": settings}}))


def test_the_documented_example_is_read_into_bytes_seconds_and_defaults():
    config = load_clusters(HPC)
    assert config is not None and config.default == "cpu" and config.source == HPC
    cpu, gpu = config.partitions["cpu"], config.partitions["gpu"]
    assert (cpu.scheduler, cpu.queue, cpu.account, cpu.cores) == ("slurm", "batch", "chem42", 24)
    assert cpu.memory == 90 * 10**9 and cpu.walltime == 2 * 3600
    assert cpu.job_script_prologue == ("module load Python", "source ~/venvs/md/bin/activate")
    assert (cpu.min_jobs, cpu.max_jobs, cpu.processes, cpu.gpus_per_node) == (0, 20, 1, 0)
    # What provtask fills in is on the config itself, so `provtask clusters` can show it.
    assert cpu.job_name == "provtask-cpu" and cpu.python == sys.executable
    assert cpu.shebang == "#!/usr/bin/env bash" and cpu.death_timeout == 60
    assert cpu.idle_timeout == 60 and cpu.pending_timeout == 60
    assert gpu.walltime == 86400 and gpu.gpus_per_node == 4 and gpu.processes == 2


def test_worker_resources_split_the_gpus_of_a_job_between_its_worker_processes():
    config = load_clusters(HPC)
    assert config.partitions["gpu"].worker_resources() == {"GPU": 2}  # 4 GPUs, 2 processes
    assert config.partitions["cpu"].worker_resources() == {}


def test_durations_accept_numbers_and_the_strings_task_walltimes_take(tmp_path):
    path = slurm_file(tmp_path, **{"idle-timeout": "5s", "pending-timeout": 0, "walltime": 90})
    cpu = load_clusters(path).partitions["cpu"]
    assert (cpu.idle_timeout, cpu.pending_timeout, cpu.walltime) == (5, 0, 90)


def test_a_local_partition_needs_no_batch_settings(tmp_path):
    path = write(tmp_path, "default: here\npartitions:\n  here: {scheduler: local}\n")
    here = load_clusters(path).partitions["here"]
    assert (here.cores, here.max_jobs, here.memory, here.python) == (1, 1, None, None)


# Each mistake, and the words its message must hold besides the file name.
MISTAKES = {
    "unknown key": ({"max_jobs": 3}, ["partition 'cpu'", "unknown key 'max_jobs'", "'max-jobs'?"]),
    "misspelled scheduler": (
        {"scheduler": "slrum"},
        ["partition 'cpu'", "scheduler", "'slrum'", "did you mean 'slurm'?"],
    ),
    "no scheduler": (
        {"scheduler": None},
        ["partition 'cpu'", "no scheduler", "'scheduler: slurm'"],
    ),
    "bad memory": (
        {"memory": "90 gigs"},
        ["partition 'cpu'", "memory: cannot read '90 gigs' as a size", "'4GB'"],
    ),
    "bad walltime": (
        {"walltime": "2 hours"},
        ["partition 'cpu'", "walltime: cannot read '2 hours' as a duration", "'HH:MM:SS'"],
    ),
    "min above max": (
        {"min-jobs": 3, "max-jobs": 2},
        ["partition 'cpu'", "min-jobs: 3 is more than max-jobs: 2"],
    ),
    "cores as a string": ({"cores": "24"}, ["cores: expected an integer >= 1, got '24'"]),
    "prologue as one string": (
        {"job-script-prologue": "module load X"},
        ["job-script-prologue: expected a list of strings", "['module load X']"],
    ),
    "key of another scheduler": (
        {"resource-spec": "select=1"},
        ["resource-spec does not apply to scheduler 'slurm'", "pbs, sge"],
    ),
    "no memory": ({"memory": None}, ["a slurm partition needs memory", "'memory: 90GB'"]),
    "processes not dividing cores": (
        {"processes": 3},
        ["processes: 3 does not divide cores: 4"],
    ),
    "gpus not dividing between processes": (
        {"processes": 2, "gpus-per-node": 3},
        ["processes: 2 does not divide gpus-per-node: 3"],
    ),
    "own worker resources": (
        {"worker-extra-args": ["--resources", "GPU=1"]},
        ["worker-extra-args: do not pass --resources", "gpus-per-node"],
    ),
    "bad launcher": ({"launcher": "aprun"}, ["launcher: expected one of srun, mpirun, mpiexec"]),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_mistake_in_a_partition_is_a_clear_error(tmp_path, mistake):
    settings, words = MISTAKES[mistake]
    path = slurm_file(tmp_path, **settings)
    with pytest.raises(ConfigError) as caught:
        load_clusters(path)
    assert str(caught.value).startswith(f"{path}: ")
    for word in words:
        assert word in str(caught.value)
    assert caught.value.exit_code == 2


FILE_MISTAKES = {
    "no default": ("partitions: {cpu: {scheduler: local}}", ["no 'default' partition", "cpu"]),
    "default not a partition": (
        "default: cpus\npartitions: {cpu: {scheduler: local}, gpu: {scheduler: local}}",
        ["default: 'cpus' is not a partition", "did you mean 'cpu'?", "cpu, gpu"],
    ),
    "top-level typo": (
        "default: cpu\npartition: {cpu: {scheduler: local}}",
        ["unknown key 'partition'", "did you mean 'partitions'?"],
    ),
    "no partitions": ("default: cpu", ["'partitions' must map partition names"]),
    "not a mapping": ("- cpu\n- gpu", ["expected a mapping with 'default' and 'partitions'"]),
    "empty": ("", ["the file is empty"]),
    "partition not a mapping": (
        "default: cpu\npartitions: {cpu: slurm}",
        ["partition 'cpu': expected a mapping of settings, got 'slurm'"],
    ),
    "bad partition name": (
        "default: cpu\npartitions: {'cpu nodes': {scheduler: local}}",
        ["partition name 'cpu nodes'"],
    ),
    "batch key on local": (
        "default: cpu\npartitions: {cpu: {scheduler: local, queue: batch}}",
        ["queue does not apply to scheduler 'local'", "slurm, pbs, sge, lsf"],
    ),
    "htcondor without disk": (
        "default: c\npartitions: {c: {scheduler: htcondor, cores: 1, memory: 1GB}}",
        ["a htcondor partition needs disk"],
    ),
}


@pytest.mark.parametrize("mistake", FILE_MISTAKES)
def test_each_mistake_in_the_file_is_a_clear_error(tmp_path, mistake):
    text, words = FILE_MISTAKES[mistake]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_clusters(path)
    assert str(caught.value).startswith(f"{path}")
    for word in words:
        assert word in str(caught.value)


def test_yaml_syntax_errors_give_the_line():
    path = CONFIGS / "syntax_error.yaml"
    with pytest.raises(ConfigError, match=rf"^{path}, line 6: not valid YAML: expected ','"):
        load_clusters(path)


def test_parse_clusters_names_no_file_when_given_data():
    with pytest.raises(ConfigError, match=r"^clusters config: no 'default' partition"):
        parse_clusters({"partitions": {"cpu": {"scheduler": "local"}}})


# -- where the file is found ---------------------------------------------------------------


@pytest.fixture
def places(tmp_path, monkeypatch):
    """An empty working directory and user config home, and no PROVTASK_CLUSTERS."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("PROVTASK_CLUSTERS", raising=False)
    return work, home


def test_search_order_explicit_then_env_then_cwd_then_user_config(places, tmp_path, monkeypatch):
    work, home = places
    assert find_clusters_file(None) is None and load_clusters() is None
    (home / ".config" / "provtask").mkdir(parents=True)
    user = write(home / ".config" / "provtask", "")
    assert find_clusters_file(None) == user
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert find_clusters_file(None) is None  # XDG_CONFIG_HOME replaces ~/.config
    (xdg / "provtask").mkdir(parents=True)
    xdg_file = write(xdg / "provtask", "")
    assert find_clusters_file(None) == xdg_file
    here = write(work, "")
    assert find_clusters_file(None).resolve() == here
    env_file = write(tmp_path, "", name="env.yaml")
    monkeypatch.setenv("PROVTASK_CLUSTERS", str(env_file))
    assert find_clusters_file(None) == env_file
    explicit = write(tmp_path, "", name="explicit.yaml")
    assert find_clusters_file(explicit) == explicit


def test_a_named_file_that_does_not_exist_is_an_error_not_a_fallback(places, monkeypatch):
    work, _ = places
    write(work, "")  # would be found next; must not be used instead
    with pytest.raises(ConfigError, match=r"clusters file nope.yaml does not exist.*--clusters"):
        find_clusters_file(Path("nope.yaml"))
    monkeypatch.setenv("PROVTASK_CLUSTERS", "/no/such.yaml")
    with pytest.raises(ConfigError, match=r"/no/such.yaml does not exist \(named by \$PROVTASK"):
        find_clusters_file(None)


# -- partitions of tasks, and what fits -----------------------------------------------------


def test_tasks_without_a_partition_go_to_the_default_and_unknown_names_get_a_hint():
    config = load_clusters(HPC)
    assert config.partition_for(None, "prepare").name == "cpu"
    assert config.partition_for("gpu", "score").name == "gpu"
    with pytest.raises(ResourceError) as caught:
        config.partition_for("gpus", "score")
    message = str(caught.value)
    assert "task 'score' asks for partition 'gpus'" in message and str(HPC) in message
    assert "did you mean 'gpu'?" in message and "its partitions are: cpu, gpu" in message


# (task resources, words of the refusal) against the gpu partition: 24 cores, 2 processes,
# 180GB, 4 GPUs, 1 day; so one worker has 12 threads, 90GB and 2 GPUs.
TOO_BIG = [
    ({"gpus": 3}, ["task 'big' asks for gpus=3", "at most 2", "gpus-per-node 4 / processes 2"]),
    (
        {"memory": "100GB"},
        ["memory=100GB", "at most 90GB", "memory 180GB / processes 2"],
    ),
    ({"walltime": "1-00:00:01"}, ["walltime=24:00:01", "at most 24:00:00 (walltime 24:00:00,"]),
    ({"cpus_per_task": 13}, ["cpus_per_task=13", "at most 12", "cores 24 / processes 2"]),
]


@pytest.mark.parametrize(("asked", "words"), TOO_BIG)
def test_a_task_asking_more_than_a_worker_can_ever_give_is_refused(asked, words):
    gpu = load_clusters(HPC).partitions["gpu"]
    with pytest.raises(ResourceError) as caught:
        gpu.check_fits("big", make_resources(**asked))
    for word in [*words, "partition 'gpu'", str(HPC)]:
        assert word in str(caught.value)


def test_a_task_at_the_limits_fits():
    gpu = load_clusters(HPC).partitions["gpu"]
    gpu.check_fits("ok", make_resources(gpus=2, memory="90GB", walltime="24:00:00"))
    gpu.check_fits("ok", make_resources(cpus_per_task=12, nodes=4))  # MPI shape: issue 4
    with pytest.raises(ResourceError, match=r"gpus=1 .* at most 0"):
        load_clusters(HPC).partitions["cpu"].check_fits("score", make_resources(gpus=1))


def test_partitions_built_in_python_get_the_same_defaults():
    part = PartitionConfig(name="p", scheduler="slurm", cores=2, memory=10**9)
    assert part.job_name == "provtask-p" and part.python == sys.executable
    config = ClustersConfig(default="p", partitions={"p": part})
    assert config.partition_for(None, "t") is part


# -- provtask clusters ----------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["clusters", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_provtask_clusters_without_a_file_says_so_and_where_it_looked(places):
    _, home = places
    code, output = invoke()
    assert code == 0
    assert output.startswith("no clusters file: tasks run on the embedded LocalCluster")
    assert str(home / ".config/provtask/clusters.yaml") in output and "$PROVTASK_CLUSTERS" in output


def test_provtask_clusters_prints_a_file_that_reads_back_as_the_same_config(tmp_path):
    code, output = invoke("--clusters", str(HPC))
    assert code == 0 and output.startswith(f"# clusters file: {HPC}\n")
    assert "memory: 90GB" in output and "walltime: 02:00:00" in output
    assert "worker resources GPU=2" in output and f"python: {sys.executable}" in output
    printed = parse_clusters(yaml.safe_load(output), source=HPC)
    assert printed == load_clusters(HPC)


def test_provtask_clusters_json_has_raw_units_and_the_cluster_arguments():
    code, output = invoke("--clusters", str(HPC), "--json")
    data = json.loads(output)
    gpu = data["partitions"]["gpu"]
    assert code == 0 and data["default"] == "cpu" and data["source"] == str(HPC)
    assert gpu["memory"] == 180 * 10**9 and gpu["walltime"] == 86400
    assert gpu["worker-resources"] == {"GPU": 2} and gpu["cluster-class"] == "SLURMCluster"
    assert gpu["cluster-kwargs"]["job_extra_directives"] == ["--constraint=a100", "--gres=gpu:4"]


def test_provtask_clusters_job_script_prints_the_batch_script():
    code, output = invoke("--clusters", str(HPC), "--job-script", "gpu")
    assert code == 0 and output == job_script(load_clusters(HPC).partitions["gpu"])
    code, output = invoke("--clusters", str(HPC), "--job-script", "gpus")
    assert code == 2
    assert "no partition 'gpus'" in output and "did you mean 'gpu'?" in output


def test_provtask_clusters_reports_bad_files_in_one_line(tmp_path, monkeypatch):
    path = slurm_file(tmp_path, max_jobs=2)
    code, output = invoke("--clusters", str(path))
    assert code == 2 and output.startswith(f"Error: {path}: partition 'cpu': unknown key")
    monkeypatch.setenv("PROVTASK_CLUSTERS", str(path))  # the option's environment variable
    code, output = invoke()
    assert code == 2 and "did you mean 'max-jobs'?" in output


# -- docs/configuration.md says what the code does ------------------------------------------


def doc_blocks(kind: str) -> list[str]:
    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    return re.findall(rf"^```{kind}\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def test_the_documented_clusters_files_are_valid_and_their_outputs_are_real():
    examples = [yaml.safe_load(block) for block in doc_blocks("yaml")]
    configs = [parse_clusters(data, source=Path("clusters.yaml")) for data in examples]
    assert len(configs) == 2
    texts = doc_blocks("text")
    script = job_script(configs[0].partitions["gpu"])
    assert script.rstrip("\n") + "\n" in texts
    with pytest.raises(ResourceError) as refused:
        configs[0].partition_for("gpu", "score").check_fits("score", make_resources(gpus=2))
    with pytest.raises(ResourceError) as unknown:
        configs[0].partition_for("gpus", "score")
    shown = "".join(texts)
    assert f"{refused.value}\n" in shown and f"{unknown.value}\n" in shown
