"""While runs are active the garbage collector skips older objects, and nothing leaks."""

from __future__ import annotations

import gc
import weakref

from provtask import DAG, task
from provtask.engine.heap import frozen_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_older_garbage_waits_until_the_last_run_ends_then_is_collected():
    old = Node()
    gone = weakref.ref(old)
    with frozen_heap():
        with frozen_heap():  # two runs at once
            assert gc.get_freeze_count() > 0
            del old
            gc.collect()
            assert gone() is not None  # frozen: not even looked at
        assert gc.get_freeze_count() > 0  # the other run is still active
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None


def test_garbage_made_during_a_run_is_collected_during_it():
    with frozen_heap():
        new = Node()
        gone = weakref.ref(new)
        del new
        gc.collect()
        assert gone() is None


@task
def identity(x: int) -> int:
    return x


def test_a_run_leaves_nothing_frozen(client, store_dir):
    with DAG("heap") as dag:
        identity.map(list(range(20)))
    assert dag.run(client=client, store=store_dir).ok
    assert gc.get_freeze_count() == 0
