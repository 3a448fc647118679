"""How solves run: executors (local worker processes, Dask) behind one protocol.

:class:`Executor` and :class:`Job` (:mod:`runtime.base`) are the protocol;
:class:`SolveExecutor` (:mod:`runtime.local`) runs solves in local worker processes.
:class:`runtime.dask_executor.DaskExecutor` runs them on a Dask cluster: import it from its
module (only that module imports ``distributed``); ``runtime.DaskExecutor`` imports it lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.base import Executor, Job, ProgressCallback
from runtime.local import SolveExecutor, SolveJob

if TYPE_CHECKING:
    from runtime.dask_executor import DaskExecutor

__all__ = ["DaskExecutor", "Executor", "Job", "ProgressCallback", "SolveExecutor", "SolveJob"]


def __getattr__(name: str) -> Any:
    """``DaskExecutor``, imported on first use (it imports ``distributed``)."""
    if name == "DaskExecutor":
        from runtime.dask_executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
