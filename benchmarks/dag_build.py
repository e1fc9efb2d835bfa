"""Building and validating a 100,000-node DAG: time of each step and peak memory.

    python -m benchmarks.dag_build [--nodes 100000] [--rounds 3] [--quick] [--json]

Each round defines a DAG of ``--nodes`` task calls inside ``with DAG(...)``: 1 % are
``prepare(i)`` calls with constant arguments, and each other call is ``simulate(p, i)``,
taking the output of one of them (so ~99 % of the nodes have an incoming data edge). It
then times ``dag.validate()`` (no cycle), all the checks ``dag.run`` does before submitting
anything (``provtask.checks.check_runnable``: validate, picklable arguments,
cacheability), and building the run-time graph the engine starts from. Peak RSS is the
process's peak growth over its size before the first round.
"""

from __future__ import annotations

from provtask import DAG, task
from provtask.checks import check_runnable
from provtask.engine.rungraph import RunGraph

from .common import Figures, parser, peak_rss_mb, report, rounds_of, timed


@task
def prepare(i: int) -> dict:
    return {"seed": i}


@task
def simulate(inputs: dict, i: int) -> float:
    return float(i)


def build(n: int) -> DAG:
    with DAG("dag-build-bench") as dag:
        prepared = [prepare(i) for i in range(max(1, n // 100))]
        for i in range(n - len(prepared)):
            simulate(prepared[i % len(prepared)], i)
    return dag


def main() -> None:
    options = parser(__doc__, rounds=3)
    options.add_argument("--nodes", type=int, default=100_000)
    args = options.parse_args()
    n = 10_000 if args.quick else args.nodes
    figures: Figures = {
        "build s": [],
        "validate s": [],
        "build + validate s": [],
        "checks before submit s": [],
        "run graph s": [],
        "peak RSS MB": [],
    }
    before = peak_rss_mb()
    for _ in range(rounds_of(args)):
        dag: DAG | None = None

        def define() -> None:
            nonlocal dag
            dag = build(n)

        figures["build s"].append(timed(define))
        assert dag is not None and dag.graph.number_of_nodes() == n
        figures["validate s"].append(timed(dag.validate))
        figures["build + validate s"].append(figures["build s"][-1] + figures["validate s"][-1])
        figures["checks before submit s"].append(timed(lambda dag=dag: check_runnable(dag)))
        figures["run graph s"].append(timed(lambda dag=dag: RunGraph(dag, {})))
        figures["peak RSS MB"].append(peak_rss_mb() - before)
        del dag
    report(f"a DAG of {n} task calls: define, check, run graph", figures, {}, args.json)


if __name__ == "__main__":
    main()
