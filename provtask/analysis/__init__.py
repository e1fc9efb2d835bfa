"""Analyses of the provenance store: what a run did with the time it was given.

Every analysis is importable from here: ``provtask.analysis.efficiency(store, run)``.
"""

from .efficiency import efficiency
from .export import export_parquet
from .lineage import lineage
from .logs import attempt_log
from .report import write_html, write_pngs
from .sacct import job_accounting
from .why import why

__all__ = [
    "attempt_log",
    "efficiency",
    "export_parquet",
    "job_accounting",
    "lineage",
    "why",
    "write_html",
    "write_pngs",
]
