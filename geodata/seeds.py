"""Ragged groups of (node, time, distance) rows: the sources and targets of seeded matrices.

A snapped point reaches the endpoints of its edge with partial costs, so a matrix row or column is
a small group of nodes with initial (source) or extra (target) costs; see
:func:`geodata.matrix.many_to_many_seeded`. Also importable from :mod:`geodata.matrix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from geodata.arrays import (
    F64,
    I32,
    I64,
    MAX_NODES,
    as_float_array,
    as_int_array,
    check_costs,
    check_node_ids,
    read_only,
)
from geodata.errors import MatrixInputError

__all__ = ["Seeds"]


@dataclass(frozen=True, eq=False)
class Seeds:
    """Ragged groups of (node, time, distance) rows: source seeds or target entries.

    Group ``g`` owns rows ``ptr[g]:ptr[g + 1]``. For a *source*, a row is a seed: the search starts
    at ``node`` with ``time_s`` already spent and ``dist_m`` already driven. For a *target*, a row
    is an entry point: reaching ``node`` and then spending ``time_s`` / ``dist_m`` more arrives at
    the target; the best entry (by time) wins. A group may be empty (its row or column is then all
    ``inf``). The arrays are validated and stored as read-only copies in the kernels' dtypes.

    Attributes
    ----------
    ptr : ndarray of int64, shape (n_groups + 1,)
        Group boundaries, ``ptr[0] == 0``, non-decreasing, ``ptr[-1] == len(node)``.
    node : ndarray of int32, shape (n_rows,)
        Node ids.
    time_s : ndarray of float64, shape (n_rows,)
        Initial (seed) or extra (entry) time, finite and ``>= 0``.
    dist_m : ndarray of float64, shape (n_rows,)
        Initial (seed) or extra (entry) distance, finite and ``>= 0``.

    Examples
    --------
    A point two thirds along edge ``3 -> 7`` (60 s, 900 m) reaches node 7 after 20 s and 300 m:

    >>> s = Seeds.from_groups([[(7, 20.0, 300.0)], [(1, 0.0, 0.0), (2, 5.0, 40.0)]])
    >>> len(s), s.ptr.tolist()
    (2, [0, 1, 3])
    """

    ptr: I64
    node: I32
    time_s: F64
    dist_m: F64

    def __post_init__(self) -> None:
        problems: list[str] = []
        ptr = as_int_array(self.ptr, "ptr", problems).astype(np.int64, copy=False)
        node = as_int_array(self.node, "node", problems)
        time_s = as_float_array(self.time_s, "time_s", problems)
        dist_m = as_float_array(self.dist_m, "dist_m", problems)
        if problems:
            raise MatrixInputError(problems)
        n_rows = node.shape[0]
        if time_s.shape[0] != n_rows or dist_m.shape[0] != n_rows:
            problems.append(
                f"node, time_s and dist_m must have the same length, got {n_rows}, "
                f"{time_s.shape[0]} and {dist_m.shape[0]}"
            )
        if ptr.shape[0] < 1:
            problems.append("ptr must have at least one entry (n_groups + 1)")
        else:
            if ptr[0] != 0:
                problems.append(f"ptr[0] must be 0, got {ptr[0]}")
            if ptr[-1] != n_rows:
                problems.append(f"ptr[-1] must equal the number of rows {n_rows}, got {ptr[-1]}")
            if np.any(np.diff(ptr) < 0):
                problems.append("ptr must be non-decreasing")
        if n_rows and (node.min() < 0 or node.max() > MAX_NODES):
            problems.append(f"node ids must be in [0, {MAX_NODES}]")
        check_costs(time_s, "time_s", problems)
        check_costs(dist_m, "dist_m", problems)
        if problems:
            raise MatrixInputError(problems)
        object.__setattr__(self, "ptr", read_only(ptr))
        object.__setattr__(self, "node", read_only(node.astype(np.int32, copy=False)))
        object.__setattr__(self, "time_s", read_only(time_s))
        object.__setattr__(self, "dist_m", read_only(dist_m))

    def check_nodes(self, name: str, n_nodes: int, problems: list[str]) -> None:
        """Append a problem (naming them ``name``) unless every node is in ``[0, n_nodes)``."""
        check_node_ids(self.node, f"{name}.node", n_nodes, problems)

    def kernel_arrays(self) -> tuple[I64, I32, F64, F64]:
        """``(ptr, node, time_s, dist_m)``, the tuple the matrix kernels take."""
        return self.ptr, self.node, self.time_s, self.dist_m

    def __len__(self) -> int:
        """Number of groups."""
        return int(self.ptr.shape[0] - 1)

    @classmethod
    def from_nodes(cls, nodes: npt.ArrayLike) -> Seeds:
        """One group per node, with zero time and distance (plain node-to-node matrices)."""
        problems: list[str] = []
        node = as_int_array(nodes, "nodes", problems)
        if problems:
            raise MatrixInputError(problems)
        n = node.shape[0]
        zeros = np.zeros(n, dtype=np.float64)
        return cls(np.arange(n + 1, dtype=np.int64), cast(I32, node), zeros, zeros)

    @classmethod
    def from_groups(cls, groups: Sequence[Sequence[tuple[int, float, float]]]) -> Seeds:
        """Build from a list of groups, each a list of ``(node, time_s, dist_m)`` tuples."""
        ptr = np.zeros(len(groups) + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(g) for g in groups])
        rows = [row for g in groups for row in g]
        node = np.array([r[0] for r in rows], dtype=np.int64)
        time_s = np.array([r[1] for r in rows], dtype=np.float64)
        dist_m = np.array([r[2] for r in rows], dtype=np.float64)
        return cls(ptr, cast(I32, node), time_s, dist_m)
