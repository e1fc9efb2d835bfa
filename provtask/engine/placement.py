"""Data placement: an upstream output as a future on the cluster where its consumer runs.

An output already on that cluster is passed as its future (or its place in a batch); a
cached output is loaded from the store by a worker there; an output made on another
partition's cluster is read from the store's artifact files by a worker of the consumer's
partition (the store is on a filesystem every partition sees).
"""

from __future__ import annotations

from typing import Any

from ..clusters.pool import Pool
from ..states import TaskState
from .batching import Picked
from .cache import Cache, load_on_worker
from .instance import Instance
from .recorder import RunRecorder


class Placement:
    """Futures of upstream outputs, per consumer pool; a moved output is loaded once per
    cluster and kept with its instance."""

    def __init__(self, run_id: str, cache: Cache, recorder: RunRecorder, store_root: str):
        self.run_id = run_id
        self.cache = cache
        self.recorder = recorder
        self.store_root = store_root
        self.store_is_current = False  # whether the store has every output reported so far

    def outputs_reported(self) -> None:
        """New outputs may have been reported since the last move: flush before the next."""
        self.store_is_current = False

    def input_future(self, inst: Instance, pool: Pool) -> Any:
        """The future of ``inst``'s output on ``pool``'s cluster."""
        future = inst.attempts.future
        if future is not None and future.client is pool.client:
            if inst.attempts.batch_index is not None:
                return Picked(future, inst.attempts.batch_index)
            return future
        if inst.state is TaskState.CACHED and future is None:
            return self.cache.load(inst, pool.client)
        return self._move(inst, pool)

    def _move(self, inst: Instance, pool: Pool) -> Any:
        future = inst.caching.loaders.get(id(pool.client))
        if future is None:
            if not self.store_is_current:  # the output's artifact row must be committed
                self.recorder.writer.flush()
                self.store_is_current = True
            path, data = self.cache.stored_artifact(inst.output_hash)
            future = pool.client.submit(
                load_on_worker,
                inst.output_hash,
                data,
                self.store_root,
                path,
                key=f"moved-{inst.task.name}-{self.run_id}-{inst.node.seq}-{pool.name}",
                pure=False,
            )
            inst.caching.loaders[id(pool.client)] = future
        return future
