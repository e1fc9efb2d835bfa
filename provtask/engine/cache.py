"""Caching in the engine: each ready task's key, one store lookup per batch, cached outputs.

A task's key combines the hash scheme, its code identity, its inputs' identities (constants by
value, upstream outputs by their hashes, so a DAG is keyed Merkle-style) and its
``cache_version``. Before a batch of ready tasks is submitted, all their keys are looked up at
once; a task whose key has an intact output in the store becomes ``cached`` and never runs.
Its value is loaded, on a worker, only when a downstream task needs it.
"""

from __future__ import annotations

import fnmatch
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DAGError, NotFoundError
from ..hashing import HASH_SCHEME, PathMemo, combine, value_hash
from ..refs import MapRef, Ref
from ..states import TaskState
from ..store.artifacts import ArtifactFiles, load_verified
from ..store.cache_lookup import Source, check_source, discard_corrupted, find_sources
from ..store.connection import connect
from ..store.keep_lookup import Wanted, changed_components, find_kept
from ..templates import iter_refs
from .instance import CacheOutcome, Instance
from .recorder import RunRecorder
from .rungraph import RunGraph

PATH_MEMO = "pathmemo.sqlite"  # in the store: digests of input files and artifact files


@dataclass(frozen=True)
class CachePolicy:
    """A run's caching switches: ``enabled=False`` looks nothing up (``--no-cache``);
    tasks matching a ``refresh`` pattern, and everything downstream of them, are recomputed."""

    enabled: bool = True
    refresh: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()  # tasks whose recorded outputs stand although their code changed

    @classmethod
    def make(
        cls,
        cache: Any = True,
        refresh: str | Iterable[str] | None = None,
        keep: str | Iterable[str] | None = None,
    ) -> CachePolicy:
        if not isinstance(cache, bool):
            raise DAGError(f"cache: expected True or False, got {cache!r}")
        return cls(cache, _patterns("refresh", refresh), _patterns("keep", keep))

    def matches(self, inst: Instance, patterns: tuple[str, ...] | None = None) -> str | None:
        """The refresh pattern (or one of ``patterns``) matching the task's name or id."""
        for pattern in self.refresh if patterns is None else patterns:
            for text in (inst.task_id, inst.task.name):
                if text == pattern or fnmatch.fnmatchcase(text, pattern):
                    return pattern
        return None


def _patterns(option: str, given: str | Iterable[str] | None) -> tuple[str, ...]:
    patterns = (given,) if isinstance(given, str) else tuple(given or ())
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise DAGError(
                f"{option}: expected task names, ids or patterns such as 'simulate*', "
                f"got {pattern!r}"
            )
    return patterns


def cache_key(code_hash: str, inputs: str, version: str | None) -> str:
    """The cache key of one task instance (resources, partition and retries are not in it)."""
    return combine([f"provtask-cache-v{HASH_SCHEME}", code_hash, inputs, version or ""])


class Cache:
    """The caching side of one run: keys, bulk lookups, and loaders of cached outputs."""

    def __init__(
        self,
        graph: RunGraph,
        recorder: RunRecorder,
        store_root: str | Path,
        policy: CachePolicy | None = None,
    ) -> None:
        self.graph = graph
        self.recorder = recorder
        self.policy = policy or CachePolicy()
        self.store_root = str(store_root)
        self.files = ArtifactFiles(Path(store_root))
        self.memo = PathMemo(Path(store_root) / PATH_MEMO)
        graph.memo = self.memo  # Path arguments are hashed through the same memo
        self.conn: sqlite3.Connection | None = None
        self.sources: dict[int, Source] = {}  # by instance seq: where a cached output is
        self._key_inputs: dict[int, str] = {}  # by seq: the inputs part of the key (for keep)
        self._refreshed: dict[tuple[int, bool], str | None] = {}

    def close(self) -> None:
        self.memo.close()
        if self.conn is not None:
            self.conn.close()

    # -- before submission ------------------------------------------------------------------
    def take_hits(self, batch: list[Instance]) -> list[Instance]:
        """Key the first attempts of ``batch``, reuse what the store has, and return the
        tasks that must run."""
        lookups: list[Instance] = []
        to_run: list[Instance] = []
        for inst in batch:
            # a retry, or held back after keying
            if inst.attempts.number > 0 or inst.caching.outcome is not None:
                to_run.append(inst)
                continue
            inst.caching.inputs, inst.caching.input_hash = self.graph.describe_inputs(inst)
            if not self._key(inst):
                continue  # its cache_key function failed: the task failed
            if inst.caching.outcome is None:
                lookups.append(inst)
            else:
                to_run.append(inst)
        if not lookups:
            return to_run
        found = find_sources(self._connection(), [inst.caching.key for inst in lookups])
        missed = []
        for inst in lookups:
            source = found.get(inst.caching.key)
            problem = check_source(source, self.files, self.memo) if source else None
            if source is None or problem is not None:
                inst.caching.outcome = "miss"
                if problem is not None:
                    inst.caching.note = f"{problem}; it was not loaded and the task was recomputed"
                    discard_corrupted(self._connection(), self.files, source)
                missed.append(inst)
            else:
                self._reuse(inst, source)
        return to_run + self._keep(missed)

    # -- keep: outputs declared still valid although the task's code changed ---------------
    def _keep(self, missed: list[Instance]) -> list[Instance]:
        """Reuse the outputs of missed tasks matching ``keep`` that were recorded with other
        code and the same inputs; return the tasks that must still run."""
        matched = [(i, p) for i in missed if (p := self.policy.matches(i, self.policy.keep))]
        if not matched:
            return missed
        wanted = [Wanted(i.task.name, i.task.code_hash, self._key_function(i)) for i, _ in matched]
        found = find_kept(self._connection(), wanted)
        kept = set()
        for index, (inst, pattern) in enumerate(matched):
            candidate = found.get(index)
            if candidate is None or check_source(candidate.source, self.files, self.memo):
                continue
            changed = changed_components(
                self._connection(), candidate.code_hash, inst.task.code_identity.components
            )
            inst.caching.note = (
                f"kept (matches keep {pattern!r}): the output of run {candidate.source.run_id}, "
                f"task {candidate.source.task_id}, reused although its code changed "
                f"({', '.join(changed) or 'code hash'})"
            )
            self._reuse(inst, candidate.source, "kept")
            kept.add(inst.node.seq)
        return [inst for inst in missed if inst.node.seq not in kept]

    def _key_function(self, inst: Instance) -> Callable[[str], str]:
        inputs, version = self._key_inputs.pop(inst.node.seq), inst.task.cache.version
        return lambda code_hash: cache_key(code_hash, inputs, version)

    def _key(self, inst: Instance) -> bool:
        """Set the instance's key and, unless it should be looked up, its cache status."""
        settings = inst.task.cache
        if settings.enabled is False:
            inst.caching.outcome, inst.caching.note = "off", "cache=False on the task"
            return True
        inputs = inst.caching.input_hash
        if settings.key is not None:
            try:
                inputs = "key:" + value_hash(settings.key(**self.graph.arguments(inst)))
            except Exception as exc:
                message = f"its cache_key function failed: {type(exc).__name__}: {exc}"
                self.graph.fail(inst, TaskState.FAILED, message)
                return False
        if inputs is None:
            inst.caching.outcome = "uncacheable"
            described = inst.caching.inputs or ()
            inst.caching.note = next(e["unhashable"] for e in described if "unhashable" in e)
            return True
        inst.caching.key = cache_key(inst.task.code_hash, inputs, settings.version)
        if self.policy.keep and self.policy.matches(inst, self.policy.keep):
            self._key_inputs[inst.node.seq] = inputs
        if not self.policy.enabled:
            inst.caching.outcome = "off"
            inst.caching.note = "caching switched off for the run (--no-cache)"
        elif (why := self._refresh_reason(inst, output=False)) is not None:
            inst.caching.outcome, inst.caching.note = "refresh", why
        return True

    def _reuse(self, inst: Instance, source: Source, status: CacheOutcome = "hit") -> None:
        inst.caching.outcome = status
        inst.output_hash = source.output_hash
        inst.n_items = source.n_items
        self.sources[inst.node.seq] = source
        self.recorder.task_cached(inst, source)
        self.graph.succeed(inst, TaskState.CACHED)

    def stored_artifact(self, output_hash: str) -> tuple[str | None, bytes | None]:
        """Where an output is in the store: its file path, or its inline bytes (for a worker
        to read; the driver does not unpickle them)."""
        row = (
            self._connection()
            .execute("SELECT path, data FROM artifacts WHERE hash = ?", (output_hash,))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"no artifact {output_hash[:12]}… in {self.store_root}")
        return row[0], row[1]

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn = connect(Path(self.store_root), create=False)
        return self.conn

    # -- refresh: matched tasks and everything downstream -------------------------------------
    def _refresh_reason(self, inst: Instance, output: bool) -> str | None:
        """Why the instance is recomputed by ``refresh``, or None. ``output``: for a map node,
        also when one of its elements was (what a consumer of the whole map sees)."""
        if not self.policy.refresh:
            return None
        memo_key = (inst.node.seq, output)
        if memo_key not in self._refreshed:
            self._refreshed[memo_key] = self._find_refresh_reason(inst, output)
        return self._refreshed[memo_key]

    def _find_refresh_reason(self, inst: Instance, output: bool) -> str | None:
        pattern = self.policy.matches(inst)
        if pattern is not None:
            return f"matches --refresh {pattern!r}"
        upstream = [
            self.graph.instances[r.node_id]
            for r in iter_refs((inst.node.args, inst.node.kwargs))
            if isinstance(r, Ref) and not (inst.kind == "map" and isinstance(r, MapRef))
        ]  # a map's element-wise sources count for each element alone
        if inst.node.parent is not None:
            upstream.append(inst.node.parent)
        else:
            order = self.graph.dag.graph.pred[inst.task_id].items()
            upstream += [self.graph.instances[n] for n, e in order if e["kind"] == "order"]
        for source in upstream:
            if self._refresh_reason(source, output=source is not inst.node.parent) is not None:
                return f"downstream of refreshed task {source.task_id!r}"
        if output and inst.kind == "map":
            for child in inst.children:
                if self._refresh_reason(child, output=False) is not None:
                    return f"downstream of refreshed task {child.task_id!r}"
        return None

    # -- cached values on the workers ---------------------------------------------------------
    def load(self, inst: Instance, client: Any) -> Any:
        """The future of an upstream output; for a cached output, a small task on ``client``'s
        cluster that reads the artifact on a worker and checks its hash before unpickling (the
        driver never does)."""
        if inst.state is not TaskState.CACHED or inst.attempts.future is not None:
            return inst.attempts.future
        future = inst.caching.loaders.get(id(client))
        if future is None:
            source = self.sources[inst.node.seq]
            future = client.submit(
                load_on_worker,
                source.output_hash,
                source.data,
                self.store_root,
                source.path,
                key=f"cached-{inst.task.name}-{self.recorder.run_id}-{inst.node.seq}",
                pure=False,
            )
            inst.caching.loaders[id(client)] = future
        return future


def load_on_worker(hash_: str, data: bytes | None, store_root: str, path: str | None) -> Any:
    """Runs on a worker: the cached value, after its bytes are checked against ``hash_``."""
    if data is None:
        data = ArtifactFiles(store_root).read(path or "")
    return load_verified(data, hash_)
