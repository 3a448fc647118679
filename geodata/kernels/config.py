"""The one place where numba's threading layer is chosen (import before any parallel kernel runs).

Why this exists
---------------
The gRPC server calls ``parallel=True`` kernels from several Python threads at once. numba's
default ``workqueue`` layer is *not* thread-safe for concurrent parallel regions started from
different Python threads (it terminates the process: "Concurrent access has been detected").
The ``omp`` and ``tbb`` layers are. numba picks its layer once, at the first parallel
run in the process, from ``numba.config.THREADING_LAYER`` (seeded from the environment variable
``NUMBA_THREADING_LAYER`` when numba is imported). Unless the operator chose a layer with that
variable, this module pins the first loadable thread-safe layer, ``tbb`` then ``omp`` (numba's own
order of preference; on the reference Linux machine tbb is not installed, so ``omp`` with GNU
libgomp), and records whether a thread-safe layer is in force.

If no thread-safe layer is in force (``PARALLEL_THREADSAFE`` is False), :mod:`geodata.matrix`
runs its serial kernel even when more threads are requested, so a server never starts
``workqueue`` from two threads.

Caveat: GNU OpenMP (the ``omp`` layer on Linux with GCC's libgomp) is not fork-safe. A process
that has run a parallel kernel must not ``fork()`` and run one in the child (numba terminates
the child). Use the ``spawn`` or ``forkserver`` start method for worker processes.

Import this module before the first parallel kernel runs; importing it later is harmless but can
no longer change the layer (a warning is logged).
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, cast

from numba.core import config as _config
from numba.np.ufunc import parallel as _parallel

# numba sets these attributes dynamically; its stubs (where shipped) do not declare them.
_numba_config: Any = cast(Any, _config)
_numba_parallel: Any = cast(Any, _parallel)

__all__ = ["PARALLEL_THREADSAFE", "THREADING_LAYER", "available_threadsafe_layers"]

logger = logging.getLogger(__name__)

_THREADSAFE_LAYERS = ("tbb", "omp")


def available_threadsafe_layers() -> tuple[str, ...]:
    """Return the thread-safe numba threading layers that can be loaded in this environment.

    Returns
    -------
    tuple of str
        A subset of ``("tbb", "omp")`` in numba's order of preference.
    """
    found = []
    for name in _THREADSAFE_LAYERS:
        try:
            importlib.import_module(f"numba.np.ufunc.{name}pool")
        except Exception:  # ImportError, or tbb's version check raising something else
            continue
        found.append(name)
    return tuple(found)


def _layer_already_launched() -> bool:
    return bool(getattr(_numba_parallel, "_is_initialized", False))


def _configure() -> tuple[str, bool]:
    if _layer_already_launched():
        layer = str(_numba_parallel.threading_layer())
        safe = layer in _THREADSAFE_LAYERS
        if not safe:
            logger.warning(
                "numba threading layer %r was started before geodata could pin it; geodata "
                "runs its kernels serially",
                layer,
            )
        return layer, safe
    available = available_threadsafe_layers()
    requested = os.environ.get("NUMBA_THREADING_LAYER", "").strip().lower()
    if requested and requested != "default":  # the operator decides; we only judge it
        safe = {
            "tbb": "tbb" in available,
            "omp": "omp" in available,
            "safe": "tbb" in available,
            "threadsafe": bool(available),
        }.get(requested, False)
        if not safe:
            logger.warning(
                "NUMBA_THREADING_LAYER=%r is not a loadable thread-safe layer; geodata runs its "
                "kernels serially",
                requested,
            )
        return requested, safe
    if not available:
        logger.warning(
            "neither the 'tbb' nor the 'omp' numba threading layer can be loaded; geodata runs "
            "its kernels serially (install tbb or an OpenMP runtime to enable threads)"
        )
        return "default", False
    _numba_config.THREADING_LAYER = available[0]
    return available[0], True


THREADING_LAYER, PARALLEL_THREADSAFE = _configure()
"""The layer setting in force (``"omp"`` or ``"tbb"`` unless overridden) and whether parallel
kernels may be started from several Python threads at once."""
