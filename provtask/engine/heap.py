"""Keeping Python's garbage collector from pausing a run's driver.

A full collection walks every object of the process: in a session that holds a Dask client,
pandas and a few big DAGs, that is 50–150 ms with the driver thread stopped, several times
per run. While runs are active, the objects that existed before the first one started are
frozen (``gc.freeze``): collections skip them, and still collect everything the runs
create. They are unfrozen when the last run ends, and collected normally from then on.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_active = 0


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the objects that exist now for as long as any run is inside this block."""
    global _active
    with _lock:
        if _active == 0:
            gc.freeze()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.unfreeze()
