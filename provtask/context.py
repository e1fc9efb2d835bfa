"""The DAG currently being defined (``with DAG(...) as dag:``), shared by tasks and dag."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dag import DAG

current_dag: ContextVar[DAG | None] = ContextVar("provtask_current_dag", default=None)
