"""A network's contraction hierarchy kept on disk beside the network cache, memory-mapped on load.

The hierarchy lives in a directory of ``.npy`` files (one per array) plus ``meta.json``: the
format version (:data:`geodata.ch.CH_FORMAT_VERSION`), the witness-search settings, the time grid
and a SHA-256 fingerprint of the prepared graph it was built from (CSR arrays, grid times,
lengths). A directory whose meta does not match the graph is rebuilt; arrays are opened with
``mmap_mode="r"``, so processes that load the same file share its pages instead of holding a
copy each. Writes go to a temporary directory renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from geodata.ch import (
    CH_FORMAT_VERSION,
    SIMULATION_LIMIT,
    WITNESS_LIMIT,
    ContractionHierarchy,
    build_ch,
)
from geodata.prepared import PreparedGraph

__all__ = ["fingerprint", "hierarchy_for", "load_hierarchy", "save_hierarchy"]

logger = logging.getLogger(__name__)


def fingerprint(prepared: PreparedGraph) -> str:
    """SHA-256 of the graph a hierarchy is built from (structure, grid times, lengths)."""
    digest = hashlib.sha256()
    for arr in prepared.graph.arrays():
        digest.update(str(arr.dtype).encode())
        digest.update(np.ascontiguousarray(arr).data)
    return digest.hexdigest()


def _meta(prepared: PreparedGraph) -> dict[str, object]:
    return {
        "format": CH_FORMAT_VERSION,
        "witness_limit": WITNESS_LIMIT,
        "simulation_limit": SIMULATION_LIMIT,
        "time_bits": prepared.time_bits,
        "graph_sha256": fingerprint(prepared),
    }


def save_hierarchy(ch: ContractionHierarchy, prepared: PreparedGraph, path: Path) -> None:
    """Write ``ch`` (built from ``prepared``) to the directory ``path``, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, arr in ch.arrays().items():
        np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
    meta = {
        **_meta(prepared),
        "quantum_bits": ch.quantum_bits,
        "total_time": ch.total_time,
        "build_time_s": ch.build_time_s,
    }
    (tmp / "meta.json").write_text(json.dumps(meta))
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def load_hierarchy(prepared: PreparedGraph, path: Path) -> ContractionHierarchy | None:
    """The hierarchy in ``path`` if it was built from ``prepared`` by this format, else ``None``."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        expected = _meta(prepared)
        if any(meta.get(k) != v for k, v in expected.items()):
            logger.info("contraction hierarchy %s does not match the graph: rebuilding", path)
            return None
        arrays = {
            name: np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in ContractionHierarchy.array_names()
        }
        ch = ContractionHierarchy(
            **arrays,
            quantum_bits=int(meta["quantum_bits"]),
            total_time=float(meta["total_time"]),
            build_time_s=float(meta["build_time_s"]),
        )
        ch.check(prepared.n_nodes)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.info("contraction hierarchy %s unreadable (%s): rebuilding", path, exc)
        return None
    return ch


def hierarchy_for(prepared: PreparedGraph, cache: Path | None) -> ContractionHierarchy:
    """Load the hierarchy of ``prepared`` from the directory ``cache``, or build (and save) it."""
    started = time.perf_counter()
    if cache is not None:
        loaded = load_hierarchy(prepared, cache)
        if loaded is not None:
            logger.info(
                "contraction hierarchy loaded from %s in %.2f s (built in %.1f s)",
                cache, time.perf_counter() - started, loaded.build_time_s,
            )  # fmt: skip
            return loaded
    ch = build_ch(prepared.graph)
    if cache is not None:
        try:
            save_hierarchy(ch, prepared, cache)
        except OSError as exc:  # a read-only cache directory still serves the built hierarchy
            logger.warning("contraction hierarchy not saved to %s: %s", cache, exc)
        else:
            logger.info("contraction hierarchy saved to %s", cache)
    return ch
