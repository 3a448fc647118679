"""A network's prepared graph kept on disk beside its contraction hierarchy, memory-mapped on load.

:meth:`geodata.network.RoadNetwork.prepared` builds the graph the searches run on (the travel times
on the exact grid and the chain layout, :mod:`geodata.prepared`): O(edges), but on a 1M-node
network ~95 MiB of arrays that every process (server, forkserver) held privately and rebuilt at each
start. When the network names a cache (:meth:`~geodata.network.RoadNetwork.use_hierarchy_cache`),
the arrays are kept in a directory beside the hierarchy (``NAME.prep/``, one ``.npy`` per array and
``meta.json``: :data:`PREPARED_FORMAT_VERSION` and a SHA-256 of the CSR structure, travel times
and lengths) and opened with ``mmap_mode="r"``, so every process shares one copy. A directory that
does not match is rebuilt; loaded arrays are range-checked before any kernel reads them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from geodata.array_dir import cached, read_array_dir, sha256_of, write_array_dir
from geodata.prepared import Chains, PreparedGraph, prepare_graph, validate_graph

__all__ = ["PREPARED_FORMAT_VERSION", "load_prepared", "prepared_for", "save_prepared"]

logger = logging.getLogger(__name__)

PREPARED_FORMAT_VERSION = 1
"""Bump when the layout or meaning of the prepared arrays changes."""

_CHAINS = ("is_core", "head", "walk_node", "walk_time", "walk_len", "origin_a", "origin_b")
_DTYPES = {
    "weight": np.float64,
    "is_core": np.bool_,
    "head": np.int32,
    "walk_node": np.int32,
    "walk_time": np.float64,
    "walk_len": np.float64,
    "origin_a": np.int32,
    "origin_b": np.int32,
}

Csr = tuple[Any, Any, Any, Any]
"""``(indptr, indices, travel_time_s, length_m)`` of a network."""


def _key(csr: Csr) -> dict[str, object]:
    return {"format": PREPARED_FORMAT_VERSION, "network_sha256": sha256_of(csr)}


def save_prepared(prepared: PreparedGraph, csr: Csr, path: Path) -> None:
    """Write ``prepared`` (built from ``csr``) to the directory ``path``, atomically."""
    arrays = {"weight": prepared.graph.weight}
    arrays.update((name, getattr(prepared.chains, name)) for name in _CHAINS)
    write_array_dir(path, arrays, {**_key(csr), "time_bits": prepared.time_bits})


def _check(arrays: dict[str, Any], n: int, m: int) -> None:
    """Raise ``ValueError`` unless each array has its dtype and size and each index is in range."""
    for name, dtype in _DTYPES.items():
        arr = arrays[name]
        size = n if name in ("is_core", "origin_a", "origin_b") else m
        if arr.dtype != dtype or arr.shape != (size,):
            raise ValueError(f"prepared array {name} must be {dtype.__name__}[{size}]")
    for name in ("weight", "walk_time", "walk_len"):
        arr = arrays[name]
        if not np.all(np.isfinite(arr) & (arr >= 0)):
            raise ValueError(f"prepared {name} must be finite and >= 0")
    if m:
        head, walk = arrays["head"], arrays["walk_node"]
        # head: ~v for a core node v, else a walk slot; walk_node: ~node or node
        if int(head.min()) < -n or int(head.max()) >= m:
            raise ValueError("prepared head out of range")
        if int(walk.min()) < -n or int(walk.max()) >= n:
            raise ValueError("prepared walk_node out of range")
    for name in ("origin_a", "origin_b"):
        arr = arrays[name]
        if n and (int(arr.min()) < -1 or int(arr.max()) >= n):
            raise ValueError(f"prepared {name} out of range")


def load_prepared(csr: Csr, path: Path) -> PreparedGraph | None:
    """The prepared graph in ``path``, memory-mapped, if it was built from ``csr`` by this
    format, else ``None``."""
    indptr, indices, _, length = csr

    def make(arrays: dict[str, Any], meta: dict[str, Any]) -> PreparedGraph:
        _check(arrays, indptr.shape[0] - 1, indices.shape[0])
        time_bits = meta["time_bits"]
        # a MatrixInputError is a ValueError: read_array_dir takes it as unreadable
        graph = validate_graph(indptr, indices, arrays["weight"], length)
        chains = Chains(**{name: arrays[name] for name in _CHAINS})
        return PreparedGraph(graph, chains, time_bits=None if time_bits is None else int(time_bits))

    return read_array_dir(
        path, _key(csr), _DTYPES, make, what="prepared graph", source="network", log=logger
    )


def prepared_for(csr: Csr, cache: Path | None) -> PreparedGraph:
    """The prepared graph of ``csr`` (exact grid) from the directory ``cache``, or built (and
    saved there)."""
    return cached(
        cache,
        lambda path: load_prepared(csr, path),
        lambda: prepare_graph(*csr, exact_grid=True),
        lambda prepared, path: save_prepared(prepared, csr, path),
        what="prepared graph",
        log=logger,
    )
