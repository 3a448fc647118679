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

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

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
    digest = hashlib.sha256()
    for arr in csr:
        digest.update(str(arr.dtype).encode())
        digest.update(np.ascontiguousarray(arr).data)
    return {"format": PREPARED_FORMAT_VERSION, "network_sha256": digest.hexdigest()}


def save_prepared(prepared: PreparedGraph, csr: Csr, path: Path) -> None:
    """Write ``prepared`` (built from ``csr``) to the directory ``path``, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "weight.npy", prepared.graph.weight, allow_pickle=False)
    for name in _CHAINS:
        np.save(tmp / f"{name}.npy", getattr(prepared.chains, name), allow_pickle=False)
    (tmp / "meta.json").write_text(json.dumps({**_key(csr), "time_bits": prepared.time_bits}))
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


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
    try:
        meta = json.loads((path / "meta.json").read_text())
        if any(meta.get(k) != v for k, v in _key(csr).items()):
            logger.info("prepared graph %s does not match the network: rebuilding", path)
            return None
        arrays = {
            name: np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in _DTYPES
        }
        indptr, indices, _, length = csr
        _check(arrays, indptr.shape[0] - 1, indices.shape[0])
        time_bits = meta["time_bits"]
        graph = validate_graph(indptr, indices, arrays["weight"], length)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # MatrixInputError is a ValueError
        logger.info("prepared graph %s unreadable (%s): rebuilding", path, exc)
        return None
    chains = Chains(**{name: arrays[name] for name in _CHAINS})
    return PreparedGraph(graph, chains, time_bits=None if time_bits is None else int(time_bits))


def prepared_for(csr: Csr, cache: Path | None) -> PreparedGraph:
    """The prepared graph of ``csr`` (exact grid) from the directory ``cache``, or built (and
    saved there)."""
    started = time.perf_counter()
    if cache is not None:
        loaded = load_prepared(csr, cache)
        if loaded is not None:
            logger.info(
                "prepared graph loaded from %s in %.2f s", cache, time.perf_counter() - started
            )
            return loaded
    prepared = prepare_graph(*csr, exact_grid=True)
    if cache is not None:
        try:
            save_prepared(prepared, csr, cache)
        except OSError as exc:  # a read-only cache directory still serves the built graph
            logger.warning("prepared graph not saved to %s: %s", cache, exc)
    return prepared
