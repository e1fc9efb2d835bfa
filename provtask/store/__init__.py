"""The provenance store: SQLite database plus content-addressed artifacts."""

from .store import Store, default_store_path, task_summary
from .writer import StoreWriter

__all__ = ["Store", "StoreWriter", "default_store_path", "task_summary"]
