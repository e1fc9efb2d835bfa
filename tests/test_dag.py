"""Building DAGs: nodes, data and order edges, ids, validation and parameters (no cluster)."""

from __future__ import annotations

import networkx as nx
import pytest

from provtask import DAG, DAGError, ParamError, mpi_task, task
from provtask.dag import MapRef, ParamRef, Ref


@task
def source() -> int:
    return 1


@task
def simulate(x: int) -> int:
    return x


@task
def combine(first, second=None, *, extra=None):
    return first


@task
def gather(items):
    return items


def data_edges(dag: DAG) -> set[tuple[str, str]]:
    return {(u, v) for u, v, kind in dag.graph.edges(data="kind") if kind == "data"}


def order_edges(dag: DAG) -> set[tuple[str, str]]:
    return {(u, v) for u, v, kind in dag.graph.edges(data="kind") if kind == "order"}


# -- nodes and data edges ----------------------------------------------------------------------
def test_calls_record_nodes_and_data_edges():
    with DAG("chain") as dag:
        a = source()
        b = simulate(a)
        c = combine(a, b)
    assert isinstance(dag.graph, nx.DiGraph)
    assert isinstance(a, Ref) and (a.node_id, b.node_id, c.node_id) == (
        "source",
        "simulate",
        "combine",
    )
    assert set(dag.graph.nodes) == {"source", "simulate", "combine"}
    assert data_edges(dag) == {
        ("source", "simulate"),
        ("source", "combine"),
        ("simulate", "combine"),
    }
    node = dag.graph.nodes["combine"]
    assert node["kind"] == "call"
    assert node["task"] is combine
    assert node["args"] == (a, b)
    dag.validate()


def test_refs_nested_in_lists_dicts_and_keywords_become_edges():
    with DAG("nested") as dag:
        a = source()
        b = simulate(1)
        c = simulate(2)
        d = simulate(3)
        gather([a, (b, 3)])
        combine({"x": c, "y": [1, 2]}, extra={"deep": [[d]]})
    assert data_edges(dag) == {
        ("source", "gather"),
        ("simulate", "gather"),
        ("simulate-1", "combine"),
        ("simulate-2", "combine"),
    }


@pytest.mark.parametrize(
    ("wrap", "where"),
    [
        (lambda a, b: {a, b}, "inside a set"),
        (lambda a, b: [frozenset([a]), b], "inside a set"),
        (lambda a, b: {"key": {a}}, "inside a set"),
        (lambda a, b: ({b, 3},), "inside a set"),
        (lambda a, b: {a: 1}, "as a dict key"),
        (lambda a, b: [{"x": 1, (b, 2): 3}], "as a dict key"),
    ],
)
def test_refs_in_a_set_or_a_dict_key_are_refused_while_building(wrap, where):
    with DAG("sets") as dag:
        a = source()
        b = simulate(1)
        with pytest.raises(DAGError, match=rf"{where}.*pass it as a dict value or in a list"):
            gather(wrap(a, b))
        with pytest.raises(DAGError, match=r"param 'n' is used as a dict key"):
            gather({ParamRef("n"): 1})
        assert set(dag.graph.nodes) == {"source", "simulate"}
        plain = gather({1, 2})  # a set of plain values is fine
        keyed = gather({"a": a, "bs": [b]})  # outputs as dict values are fine
    assert dag.graph.nodes[plain.node_id]["args"] == ({1, 2},)
    assert data_edges(dag) == {("source", keyed.node_id), ("simulate", keyed.node_id)}


def test_a_refused_call_does_not_use_up_an_id():
    with DAG("other"):
        foreign = source()
    with DAG("ids"):
        a = source()
        with pytest.raises(DAGError):
            gather({a})
        with pytest.raises(DAGError):
            gather([foreign])
        assert gather([a]).node_id == "gather"


def test_constants_and_defaults_are_kept_on_the_node():
    with DAG("constants") as dag:
        combine(1, second=[1, 2], extra="e")
    node = dag.graph.nodes["combine"]
    assert node["args"] == (1, [1, 2])
    assert node["kwargs"] == {"extra": "e"}
    assert list(dag.graph.predecessors("combine")) == []


def test_static_fan_out_gets_auto_ids():
    with DAG("fan") as dag:
        runs = [simulate(i) for i in range(4)]
        gather(runs)
    assert [r.node_id for r in runs] == ["simulate", "simulate-1", "simulate-2", "simulate-3"]
    assert set(dag.graph.predecessors("gather")) == {r.node_id for r in runs}
    assert [dag.graph.nodes[r.node_id]["args"] for r in runs] == [(0,), (1,), (2,), (3,)]


def test_explicit_ids_and_auto_ids_do_not_collide():
    with DAG("ids") as dag:
        explicit = simulate.options(id="simulate-1")(0)
        first = simulate(1)
        second = simulate(2)
    assert explicit.node_id == "simulate-1"
    assert first.node_id == "simulate"
    assert second.node_id == "simulate-2"  # skips the id taken explicitly
    assert dag.graph.number_of_nodes() == 3


def test_duplicate_explicit_id_is_an_error():
    with DAG("dup") as dag:
        simulate.options(id="run-a")(1)
        with pytest.raises(DAGError, match="duplicate task id 'run-a'"):
            simulate.options(id="run-a")(2)
        auto = simulate(3)
        with pytest.raises(DAGError, match="duplicate task id 'simulate'"):
            simulate.options(id=auto.node_id)(4)
    assert dag.graph.number_of_nodes() == 2


# -- order edges -------------------------------------------------------------------------------
def test_rshift_adds_order_edges():
    with DAG("order") as dag:
        a = source()
        b = simulate(1)
        c = simulate(2)
        d = simulate(3)
        result = a >> b
        [b, c] >> d
        a >> [c]
    assert result is b  # so that a >> b >> c chains
    assert order_edges(dag) == {
        ("source", "simulate"),
        ("simulate", "simulate-2"),
        ("simulate-1", "simulate-2"),
        ("source", "simulate-1"),
    }
    assert data_edges(dag) == set()


def test_rshift_chains():
    with DAG("chain") as dag:
        a, b, c = simulate(1), simulate(2), simulate(3)
        a >> b >> c
    assert order_edges(dag) == {("simulate", "simulate-1"), ("simulate-1", "simulate-2")}


def test_rshift_keeps_an_existing_data_edge():
    with DAG("both") as dag:
        a = source()
        b = simulate(a)
        a >> b
    assert dag.graph.edges["source", "simulate"]["kind"] == "data"


def test_rshift_rejects_non_refs_and_refs_of_other_dags():
    with DAG("one"):
        foreign = source()
    with DAG("two"):
        local = source()
        with pytest.raises(DAGError, match="links task outputs"):
            local >> 3
        with pytest.raises(DAGError, match="not a task of DAG 'two'"):
            local >> foreign


def test_passing_a_ref_of_another_dag_is_an_error():
    with DAG("one"):
        foreign = source()
    with DAG("two") as two, pytest.raises(DAGError, match="same DAG"):
        simulate(foreign)
    assert "simulate" not in two.graph


def test_dag_contexts_cannot_be_nested():
    with DAG("outer"), pytest.raises(DAGError, match="nested"), DAG("inner"):
        pass


def test_dag_needs_a_name():
    with pytest.raises(DAGError, match="name"):
        DAG("")


# -- validation --------------------------------------------------------------------------------
def test_cycle_is_reported_with_its_path():
    with DAG("loop") as dag:
        a = source()
        b = simulate(a)
        c = simulate(b)
        c >> a
    with pytest.raises(DAGError, match="cycle") as info:
        dag.validate()
    message = str(info.value)
    assert "source >> simulate >> simulate-1 >> source" in message
    assert "'loop'" in message


def test_self_cycle_is_reported():
    with DAG("self") as dag:
        a = source()
        a >> a
    with pytest.raises(DAGError, match="source >> source"):
        dag.validate()


def test_empty_dag_is_rejected():
    dag = DAG("nothing")
    with pytest.raises(DAGError, match="has no tasks"):
        dag.validate()


def test_bad_call_fails_while_building():
    with DAG("bad") as dag:
        with pytest.raises(DAGError, match=r"bad call of task 'simulate'.*argument"):
            simulate(1, 2)
        with pytest.raises(DAGError, match="bad call of task 'simulate'"):
            simulate()
        with pytest.raises(DAGError, match="bad call of task 'combine'"):
            combine(1, nope=3)
        with pytest.raises(DAGError, match="bad call of task 'simulate'"):
            simulate.map([1, 2], other=3)
    assert dag.graph.number_of_nodes() == 0


def test_mpi_task_comm_parameter_is_not_passed_by_callers():
    @mpi_task(nodes=1, ntasks_per_node=2)
    def solve(comm, x, steps=10):
        return x

    @task
    def python_comm(comm):
        return comm

    with DAG("mpi") as dag:
        ref = solve(1, steps=5)
        with pytest.raises(DAGError, match="bad call of task 'solve'"):
            solve(1, 2, 3)
        with pytest.raises(DAGError, match="bad call of task 'python_comm'"):
            python_comm()  # only @mpi_task gets a communicator
    assert dag.graph.nodes[ref.node_id]["args"] == (1, 5)


# -- refs used as values -----------------------------------------------------------------------
def test_iterating_over_a_ref_is_a_helpful_error():
    with DAG("iter"):
        ref = source()
        with pytest.raises(DAGError, match=r"cannot iterate over the output of 'source'.*\.map"):
            for _ in ref:
                pass
        with pytest.raises(DAGError, match="cannot iterate"):
            _first, _second = ref
        with pytest.raises(DAGError, match="cannot iterate"):
            list(ref)


def test_truth_testing_a_ref_is_a_helpful_error():
    with DAG("truth"):
        ref = source()
        with pytest.raises(DAGError, match="'source' has no truth value"):
            if ref:
                pass
        with pytest.raises(DAGError, match="no truth value"):
            _ = ref and 1


# -- map ---------------------------------------------------------------------------------------
def test_map_creates_a_map_node():
    with DAG("map") as dag:
        inputs = source()
        runs = simulate.map(inputs)
        total = gather(runs)
        squares = simulate.map(range(3))
    assert isinstance(runs, MapRef) and not isinstance(total, MapRef)
    assert dag.graph.nodes["simulate"]["kind"] == "map"
    assert dag.graph.nodes["simulate"]["args"] == (inputs,)
    assert dag.graph.nodes["simulate-1"]["args"] == ([0, 1, 2],)  # ranges become lists
    assert squares.node_id == "simulate-1"
    assert data_edges(dag) == {("source", "simulate"), ("simulate", "gather")}


def test_map_keyword_constants_and_param_iterables():
    with DAG("map", params={"temps": [300, 310]}) as dag:
        mapped = combine.map(dag.param("temps"), extra="x")
    node = dag.graph.nodes[mapped.node_id]
    assert node["args"] == (ParamRef("temps"),)
    assert node["kwargs"] == {"extra": "x"}


@pytest.mark.parametrize("iterable", [{1, 2}, 5, "abc", (x for x in range(2))])
def test_map_rejects_what_it_cannot_fan_out_over(iterable):
    with DAG("bad-map") as dag, pytest.raises(DAGError, match="fans out over"):
        simulate.map(iterable)
    assert dag.graph.number_of_nodes() == 0


def test_map_needs_an_iterable():
    with DAG("bad-map"), pytest.raises(DAGError, match="at least one iterable"):
        simulate.map()


# -- params ------------------------------------------------------------------------------------
def test_param_creates_a_param_ref():
    with DAG("p", params={"n": 8}) as dag:
        ref = dag.param("n")
        simulate(ref)
    assert ref == ParamRef("n")
    assert dag.graph.nodes["simulate"]["args"] == (ParamRef("n"),)


def test_unknown_param_is_an_error_listing_known_ones():
    with DAG("p", params={"n": 8, "seed": 1}) as dag:
        with pytest.raises(ParamError, match=r"no param 'm' \(known: n, seed\)"):
            dag.param("m")
        with pytest.raises(ParamError, match="no param 'ghost'"):
            simulate(ParamRef("ghost"))


def test_a_param_error_is_caught_as_a_dag_error():
    with DAG("p", params={"n": 8}) as dag:
        simulate(dag.param("n"))
    with pytest.raises(DAGError, match="unknown param 'm'"):
        dag.resolve_params({"m": 1})


@pytest.mark.parametrize(
    ("default", "text", "expected"),
    [
        (8, "16", 16),
        (8, " 16 ", 16),
        (1.5, "2.25", 2.25),
        (1.5, "3", 3.0),
        (False, "true", True),
        (False, "YES", True),
        (True, "0", False),
        (True, "off", False),
        ("a", "hello world", "hello world"),
        ([1, 2], "[3, 4, 5]", [3, 4, 5]),
        ({"a": 1}, '{"b": [1, 2]}', {"b": [1, 2]}),
        (None, "null", None),
    ],
)
def test_params_parsed_from_cli_text(default, text, expected):
    dag = DAG("p", params={"value": default, "other": 1})
    resolved = dag.resolve_params({"value": text}, from_text=True)
    assert resolved == {"value": expected, "other": 1}
    assert type(resolved["value"]) is type(expected)


def test_resolve_params_without_text_keeps_values_and_defaults():
    dag = DAG("p", params={"n": 8, "names": ["a"]})
    assert dag.resolve_params() == {"n": 8, "names": ["a"]}
    assert dag.resolve_params({"n": "16"}) == {"n": "16", "names": ["a"]}  # passed through
    assert dag.params == {"n": 8, "names": ["a"]}  # defaults are not modified


def test_resolve_params_rejects_unknown_names():
    dag = DAG("p", params={"n": 8})
    with pytest.raises(ParamError, match=r"unknown param 'm' for DAG 'p' \(known: n\)"):
        dag.resolve_params({"m": "1"}, from_text=True)
    with pytest.raises(ParamError, match=r"known: none"):
        DAG("q").resolve_params({"m": 1})


@pytest.mark.parametrize(
    ("default", "text", "kind"),
    [
        (8, "sixteen", "int"),
        (8, "16.5", "int"),
        (1.5, "fast", "float"),
        (False, "maybe", "bool"),
        ([1], "[1, 2", "list"),
        (None, "not json", "JSON"),
    ],
)
def test_unconvertible_param_text_is_an_error(default, text, kind):
    dag = DAG("p", params={"n": default})
    with pytest.raises(ParamError, match=rf"param 'n': cannot read '.*' as {kind}"):
        dag.resolve_params({"n": text}, from_text=True)
