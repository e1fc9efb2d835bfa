"""Loading DAG files: a Python file that builds one or more ``DAG`` objects at module level."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path

import cloudpickle

from .dag import DAG
from .errors import DAGFileError


def load_dag_file(path: str | Path, name: str | None = None) -> DAG:
    """Import ``path`` and return its DAG (the one called ``name`` if it defines several).

    The module is registered for pickling by value, so workers that cannot import the file
    still receive its task functions.
    """
    path = Path(path)
    if not path.is_file():
        raise DAGFileError(f"DAG file {str(path)!r} does not exist")
    if path.suffix != ".py":
        raise DAGFileError(f"DAG file {str(path)!r} is not a Python (.py) file")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    module_name = f"provtask_dagfile_{_identifier(path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise DAGFileError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        frames = traceback.extract_tb(exc.__traceback__)
        where = next((f for f in reversed(frames) if Path(f.filename) == resolved), None)
        line = f" (line {where.lineno}: {where.line})" if where else ""
        raise DAGFileError(
            f"DAG file {str(path)!r} failed to load{line}: {type(exc).__name__}: {exc}"
        ) from exc
    cloudpickle.register_pickle_by_value(module)
    dags = {obj.name: obj for obj in vars(module).values() if isinstance(obj, DAG)}
    if not dags:
        raise DAGFileError(
            f"DAG file {str(path)!r} defines no DAG; build one at module level with "
            "'with DAG(\"name\") as dag: ...'"
        )
    if name is None:
        if len(dags) > 1:
            raise DAGFileError(
                f"DAG file {str(path)!r} defines several DAGs ({', '.join(sorted(dags))}); "
                "choose one with --dag NAME"
            )
        dag = next(iter(dags.values()))
    elif name in dags:
        dag = dags[name]
    else:
        raise DAGFileError(
            f"DAG file {str(path)!r} has no DAG named {name!r} (it has: {', '.join(sorted(dags))})"
        )
    dag.source_file = resolved
    return dag


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)
