"""The one numba decorator of the geodata kernels, typed so that mypy keeps each kernel's signature.

Every kernel is compiled with ``cache=True`` (JIT code kept on disk after the first process) and
``nogil=True`` (the server runs concurrent calls from a thread pool). Importing this module pins
numba's threading layer (:mod:`geodata.kernels.config`) before any ``prange`` runs.

Caveat for development: numba's on-disk cache of a kernel is invalidated only when the kernel's
own file changes, yet a cached kernel embeds the code it inlines or calls from other modules
(``heap.py`` into ``search.py``, ``search.py`` into ``many_to_many.py`` and ``path.py``). After
editing one of those, delete ``geodata/kernels/__pycache__/*.nbi`` / ``*.nbc`` (or touch the
dependent files) before measuring or testing. Installed releases are not affected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

from geodata.kernels import config as _numba_config  # noqa: F401  (pins the threading layer before any prange runs)

__all__ = ["Arrays", "kernel"]

Arrays = tuple[Any, ...]
"""A tuple of arrays (and counts) handed to a kernel as one argument; each kernel documents its
layout. numba compiles one signature per tuple type, and unpacking one costs nothing."""

_F = TypeVar("_F", bound=Callable[..., Any])


def kernel(*, parallel: bool = False, inline: str = "never") -> Callable[[_F], _F]:
    """``njit(cache=True, nogil=True, parallel=parallel[, inline=inline])`` keeping the signature.

    ``inline="always"`` inlines at numba-IR level: LLVM does not inline the heap's sift functions
    on its own, and the call per heap pop (arrays are passed as exploded structs) cost ~15 % on
    Monaco.
    """
    options: dict[str, Any] = {"cache": True, "nogil": True, "parallel": parallel}
    if inline != "never":
        options["inline"] = inline
    return cast("Callable[[_F], _F]", njit(**options))
