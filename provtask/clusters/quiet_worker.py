"""Preload of the embedded cluster's worker processes: they ignore SIGINT.

Ctrl-C in a terminal signals the whole process group, workers included; each worker would
print its own KeyboardInterrupt traceback. The driver alone handles it: it records the
interruption and closes the cluster, which stops the workers.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
