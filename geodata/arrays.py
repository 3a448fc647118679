"""Checks and conversions of the arrays handed to the matrix and path functions.

Each check appends a readable problem to a list instead of raising, so that a
:class:`geodata.errors.MatrixInputError` can report every violated precondition at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "F64",
    "I32",
    "I64",
    "MAX_NODES",
    "Mask",
    "as_float_array",
    "as_int_array",
    "check_costs",
    "check_node_ids",
    "read_only",
    "read_only_view",
]

F64 = npt.NDArray[np.float64]
"""float64 array (the alias every geodata module uses)."""
I64 = npt.NDArray[np.int64]
"""int64 array."""
I32 = npt.NDArray[np.int32]
"""int32 array (node ids inside the kernels)."""
Mask = npt.NDArray[np.bool_]
"""Boolean array."""

MAX_NODES = int(np.iinfo(np.int32).max)
"""Node ids are stored as int32 inside the kernels (half the memory traffic of int64)."""


def read_only(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A read-only copy (seed arrays are small; the copy makes validation stick)."""
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


def read_only_view(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A read-only view without copying.

    numba compiles a separate specialisation for read-only arrays (``RoadNetwork`` freezes its
    arrays); passing every input array read-only keeps a single compiled signature per kernel, the
    one :func:`geodata.matrix.warm_up` compiles.
    """
    out = arr.view()
    out.flags.writeable = False
    return out


def _one_d(values: npt.ArrayLike, name: str, problems: list[str]) -> npt.NDArray[Any] | None:
    """``values`` as an array if 1-D and not empty, else ``None`` (a problem unless 1-D)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        problems.append(f"{name} must be 1-D, got shape {arr.shape}")
        return None
    return arr if arr.size else None


def as_int_array(values: npt.ArrayLike, name: str, problems: list[str]) -> npt.NDArray[Any]:
    """A contiguous 1-D integer array, in its own dtype (no copy when already contiguous).

    On a problem (appended to ``problems``) or for empty input, an empty int64 array.
    """
    arr = _one_d(values, name, problems)
    if arr is None:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        problems.append(f"{name} must have an integer dtype, got {arr.dtype}")
        return np.zeros(0, dtype=np.int64)
    return np.ascontiguousarray(arr)


def as_float_array(values: npt.ArrayLike, name: str, problems: list[str]) -> F64:
    """A contiguous 1-D float64 array of real (integer or float) values.

    On a problem (appended to ``problems``) or for empty input, an empty float64 array.
    """
    arr = _one_d(values, name, problems)
    if arr is None:
        return np.zeros(0)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        problems.append(f"{name} must have a real numeric dtype, got {arr.dtype}")
        return np.zeros(0)
    return np.ascontiguousarray(arr, dtype=np.float64)


def check_costs(values: F64, name: str, problems: list[str]) -> None:
    """Append a problem unless every entry of ``values`` is finite and ``>= 0``."""
    if values.size == 0:
        return
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        problems.append(f"{name} must be finite, {name}[{bad}] = {values[bad]}")
    elif values.min() < 0:
        bad = int(np.argmin(values))
        problems.append(f"{name} must be >= 0, {name}[{bad}] = {values[bad]}")


def check_node_ids(node: npt.NDArray[Any], name: str, n_nodes: int, problems: list[str]) -> None:
    """Append a problem unless every id of ``node`` (called ``name``) lies in ``[0, n_nodes)``."""
    if node.size and (int(node.min()) < 0 or int(node.max()) >= n_nodes):
        bad = int(np.flatnonzero((node < 0) | (node >= n_nodes))[0])
        problems.append(f"{name} must be node ids in [0, {n_nodes}), {name}[{bad}] = {node[bad]}")
