"""``@task`` and ``@mpi_task``: a Python function plus the resources it asks for.

Called outside a DAG, a task is the plain function (handy in tests and notebooks). Called
inside ``with DAG(...)``, it records a node and returns a :class:`~provtask.dag.Ref`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import re
from collections.abc import Callable
from typing import Any, Literal, overload

from .code_identity import CodeIdentity, code_identity
from .context import current_dag
from .errors import DAGError, ResourceError
from .escalation import ESCALATION_OPTIONS, Escalation, make_escalation
from .labels import check_template
from .resources import Resources, make_resources

TaskKind = Literal["python", "mpi"]
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
CACHE_OPTIONS = ("cache", "cache_version", "cache_key")
# Options of how a task is shown and fed, not of what it asks from a cluster.
TASK_OPTIONS = ("label", "allow_failed")


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    """How a task takes part in caching (docs/caching.md).

    ``enabled``: None caches when every argument has a stable hash, True also insists (an
    argument with no stable hash is an error), False never looks results up. ``version`` is
    part of the key; ``key`` replaces the arguments' hashes by the hash of what it returns.
    """

    enabled: bool | None = None
    version: str | None = None
    key: Callable[..., Any] | None = None


def make_cache_settings(
    cache: Any = None, cache_version: Any = None, cache_key: Any = None
) -> CacheSettings:
    """Validate the ``cache``, ``cache_version`` and ``cache_key`` options of a task."""
    if cache is not None and not isinstance(cache, bool):
        raise ResourceError(f"cache: expected True or False, got {cache!r}")
    if cache_version is not None and not isinstance(cache_version, str):
        raise ResourceError(f"cache_version: expected a string such as '2', got {cache_version!r}")
    if cache_key is not None and not callable(cache_key):
        raise ResourceError(
            f"cache_key: expected a function of the task's arguments, got {cache_key!r}"
        )
    return CacheSettings(cache, cache_version, cache_key)


class TaskDef:
    """A decorated function: its name, resources, kind and code identity."""

    def __init__(
        self,
        fn: Callable,
        *,
        name: str | None,
        resources: Resources,
        kind: TaskKind,
        node_id: str | None = None,
        cache: CacheSettings | None = None,
        escalation: Escalation | None = None,
        label: str | None = None,
        allow_failed: bool = False,
    ) -> None:
        if not callable(fn):
            raise ResourceError(f"@task must decorate a function, got {fn!r}")
        self.fn = fn
        self.name = name or fn.__name__
        if not _NAME_RE.match(self.name):
            raise ResourceError(
                f"name: {self.name!r} is not a valid task name; use letters, digits, '_', '-', '.'"
            )
        if kind == "python" and (resources.nodes > 1 or resources.ntasks_per_node > 1):
            raise ResourceError(
                "nodes/ntasks_per_node: a @task runs one Python process; use @mpi_task for MPI"
            )
        if kind == "python" and resources.launcher is not None:
            raise ResourceError("launcher: only @mpi_task takes an MPI launcher")
        self.resources = resources
        self.kind = kind
        self.node_id = node_id
        signature = inspect.signature(fn)
        parameters = list(signature.parameters.values())
        # An mpi4py task receives its communicator first; callers never pass it.
        self.takes_comm = kind == "mpi" and bool(parameters) and parameters[0].name == "comm"
        self.signature = (
            signature.replace(parameters=parameters[1:]) if self.takes_comm else signature
        )
        self._arity = _positional_arity(self.signature)
        self.function = f"{fn.__module__}:{fn.__qualname__}"
        self.cache = cache or CacheSettings()
        self.escalation = escalation or Escalation()
        self.label = check_template(label)
        if not isinstance(allow_failed, bool):
            raise ResourceError(f"allow_failed: expected True or False, got {allow_failed!r}")
        self.allow_failed = allow_failed
        self._code_identity: CodeIdentity | None = None
        self.resources_json = json.dumps(resources.to_record(), sort_keys=True)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<{self.kind} task {self.name!r}>"

    @property
    def code_identity(self) -> CodeIdentity:
        """The identity of the task's code, computed on first use (when a run starts), so
        that helpers defined below the task in its module are found."""
        if self._code_identity is None:
            self._code_identity = code_identity(self.fn)
        return self._code_identity

    @property
    def code_hash(self) -> str:
        return self.code_identity.hash

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        dag = current_dag.get()
        if dag is None:
            return self.fn(*args, **kwargs)
        return dag.add_call(self, args, kwargs)

    def map(self, *iterables: Any, **constants: Any) -> Any:
        """Fan out over one or more iterables (zipped), known now or only at run time.

        Each iterable may be a list, a reference to an upstream task returning a list, or the
        result of another ``.map`` (element-wise chaining). Keyword arguments are passed
        unchanged to every element.
        """
        dag = current_dag.get()
        if dag is None:
            return [self.fn(*items, **constants) for items in zip(*iterables, strict=True)]
        return dag.add_map(self, iterables, constants)

    def options(self, *, id: str | None = None, **overrides: Any) -> TaskDef:
        """A copy with a fixed node id, other resources, cache or escalation options:
        ``t.options(memory="8GB")``, ``t.options(cache=False)``."""
        if "name" in overrides:
            raise ResourceError("name: set it in the decorator; use options(id=...) per call")
        cache = {
            "cache": self.cache.enabled,
            "cache_version": self.cache.version,
            "cache_key": self.cache.key,
        }
        cache.update({k: overrides.pop(k) for k in CACHE_OPTIONS if k in overrides})
        escalation = {k: self.escalation.option(k) for k in ESCALATION_OPTIONS}
        escalation.update({k: overrides.pop(k) for k in ESCALATION_OPTIONS if k in overrides})
        shown = {k: overrides.pop(k, getattr(self, k)) for k in TASK_OPTIONS}
        fields = {f.name: getattr(self.resources, f.name) for f in dataclasses.fields(Resources)}
        fields.update(overrides)
        resources = make_resources(**fields)
        clone = TaskDef(
            self.fn,
            name=self.name,
            resources=resources,
            kind=self.kind,
            node_id=id,
            cache=make_cache_settings(**cache),
            escalation=make_escalation(resources, self.kind, **escalation),
            **shown,
        )
        clone._code_identity = self._code_identity
        if id is not None and not _NAME_RE.match(id):
            raise DAGError(f"id {id!r} is not valid; use letters, digits, '_', '-', '.'")
        return clone

    def bind_call(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """A call's ``(args, kwargs)`` as :meth:`bind_arguments` binds them; a call with
        positional arguments only, of a function without ``*``/keyword-only parameters,
        binds to itself (a DAG of 100,000 calls skips 100,000 ``Signature.bind``)."""
        if not kwargs and self._arity is not None and self._arity[0] <= len(args) <= self._arity[1]:
            return args, {}
        bound = self.bind_arguments(args, kwargs)
        return bound.args, bound.kwargs

    def bind_arguments(self, args: tuple, kwargs: dict) -> inspect.BoundArguments:
        """Bind a call's arguments to the signature; a bad call fails while the DAG is built."""
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise DAGError(
                f"bad call of task {self.name!r}: {self._unknown(kwargs) or exc}"
            ) from None

    def _unknown(self, kwargs: dict) -> str | None:
        """Keywords the function does not take, with the closest names: a typo (``step=``) is
        named, not only the argument it leaves missing."""
        parameters = self.signature.parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return None
        unknown = [name for name in kwargs if name not in parameters]
        if not unknown:
            return None
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(parameters), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"unexpected keyword argument {', '.join(hints)}; it takes {', '.join(parameters)}"


def _positional_arity(signature: inspect.Signature) -> tuple[int, int] | None:
    """(required, total) positional parameters, or None if any parameter is ``*args``,
    ``**kwargs`` or keyword-only."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = list(signature.parameters.values())
    if any(p.kind not in positional for p in parameters):
        return None
    required = sum(p.default is inspect.Parameter.empty for p in parameters)
    return required, len(parameters)


def _decorate(fn: Callable | None, kind: TaskKind, name: str | None, given: dict) -> Any:
    cache = make_cache_settings(**{k: given.pop(k) for k in CACHE_OPTIONS if k in given})
    escalation = {k: given.pop(k) for k in ESCALATION_OPTIONS if k in given}
    shown = {k: given.pop(k) for k in TASK_OPTIONS if k in given}
    resources = make_resources(**given)
    escalate = make_escalation(resources, kind, **escalation)

    def wrap(function: Callable) -> TaskDef:
        return TaskDef(
            function,
            name=name,
            resources=resources,
            kind=kind,
            cache=cache,
            escalation=escalate,
            **shown,
        )

    return wrap if fn is None else wrap(fn)


@overload
def task(fn: Callable) -> TaskDef: ...
@overload
def task(*, name: str | None = None, **resources: Any) -> Callable[[Callable], TaskDef]: ...
def task(fn: Callable | None = None, *, name: str | None = None, **resources: Any) -> Any:
    """Declare a serial Python task.

    Resources: ``partition``, ``cpus_per_task``, ``gpus``, ``memory`` ("4GB"), ``walltime``
    ("HH:MM:SS" or "1h"), ``retries``. Escalating retries: ``on_oom``, ``on_timeout``,
    ``on_node_failure`` (``{"memory": "x2"}``; docs/restart.md). Caching: ``cache`` (False
    never reuses results), ``cache_version`` (a string in the key), ``cache_key`` (a function
    of the arguments whose result replaces their hashes). Display and feeding: ``label``
    (a format string over the arguments naming each element, e.g. ``"T={T} seed={seed}"``),
    ``allow_failed`` (run even if some upstream map elements failed; their values arrive as
    :class:`~provtask.partial.Failed`). Bad values raise
    :class:`ResourceError` here.
    """
    return _decorate(fn, "python", name, resources)


@overload
def mpi_task(fn: Callable) -> TaskDef: ...
@overload
def mpi_task(*, name: str | None = None, **resources: Any) -> Callable[[Callable], TaskDef]: ...
def mpi_task(fn: Callable | None = None, *, name: str | None = None, **resources: Any) -> Any:
    """Declare an MPI task: ``nodes``, ``ntasks_per_node``, ``cpus_per_task``, ``launcher``
    (srun / mpirun / mpiexec) on top of the :func:`task` resources."""
    return _decorate(fn, "mpi", name, resources)
