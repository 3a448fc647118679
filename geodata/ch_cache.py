"""A network's contraction hierarchy kept on disk beside the network cache, memory-mapped on load.

The hierarchy lives in a directory of ``.npy`` files (one per array) plus ``meta.json``: the
format version (:data:`geodata.ch.CH_FORMAT_VERSION`), the witness-search settings, the time grid
and a SHA-256 fingerprint of the prepared graph it was built from (CSR arrays, grid times,
lengths). A directory whose meta does not match the graph is rebuilt; arrays are opened with
``mmap_mode="r"``, so processes that load the same file share its pages instead of holding a
copy each. Writes go to a temporary directory renamed into place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from geodata.array_dir import cached, read_array_dir, sha256_of, write_array_dir
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
    return sha256_of(prepared.graph.arrays())


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
    meta = {
        **_meta(prepared),
        "quantum_bits": ch.quantum_bits,
        "total_time": ch.total_time,
        "build_time_s": ch.build_time_s,
    }
    write_array_dir(path, ch.arrays(), meta)


def load_hierarchy(prepared: PreparedGraph, path: Path) -> ContractionHierarchy | None:
    """The hierarchy in ``path`` if it was built from ``prepared`` by this format, else ``None``."""

    def make(arrays: dict[str, Any], meta: dict[str, Any]) -> ContractionHierarchy:
        ch = ContractionHierarchy(
            **arrays,
            quantum_bits=int(meta["quantum_bits"]),
            total_time=float(meta["total_time"]),
            build_time_s=float(meta["build_time_s"]),
        )
        ch.check(prepared.n_nodes)
        return ch

    return read_array_dir(
        path,
        _meta(prepared),
        ContractionHierarchy.array_names(),
        make,
        what="contraction hierarchy",
        source="graph",
        log=logger,
    )


def hierarchy_for(prepared: PreparedGraph, cache: Path | None) -> ContractionHierarchy:
    """Load the hierarchy of ``prepared`` from the directory ``cache``, or build (and save) it."""
    return cached(
        cache,
        lambda path: load_hierarchy(prepared, path),
        lambda: build_ch(prepared.graph),
        lambda ch, path: save_hierarchy(ch, prepared, path),
        what="contraction hierarchy",
        log=logger,
        built_in=lambda ch: ch.build_time_s,
    )
