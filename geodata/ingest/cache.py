"""Build a road network once, then load it from a ``.npz`` cache on later starts.

The cache key covers everything the network depends on: the data file's content (SHA-256 of the
whole file, with Shapefile sidecars; for files over :data:`FULL_HASH_LIMIT_BYTES`, of the first MiB
plus size and modification time), the profile's every setting, the layer name,
:data:`CACHE_FORMAT_VERSION` and a hash of the ``geodata`` modules that build networks (so a code
change never serves a stale network).
Files are written atomically (temporary file, then rename); an unreadable cache file is rebuilt.
A cached network's arrays are memory-mapped from the file (:func:`geodata.npz.load_npz`), so the
processes that load it share one copy. A loaded network keeps its contraction hierarchy in a
directory beside the file (:func:`hierarchy_path`, built on first use by
:meth:`geodata.network.RoadNetwork.hierarchy`), and its snap index in another
(:func:`snap_index_path`, see :mod:`geodata.snap_index`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import time
import zipfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from geodata.errors import RoadDataNotFoundError, UnsupportedFormatError
from geodata.ingest.layer import LAYER_SUFFIXES, is_layer_path, read_road_layer
from geodata.ingest.osm import OSM_SUFFIXES, is_osm_path, read_osm
from geodata.ingest.profiles import CAR, Profile
from geodata.network import BuildReport, RoadNetwork
from geodata.npz import load_npz

__all__ = [
    "CACHE_FORMAT_VERSION",
    "DEFAULT_CACHE_DIR",
    "FULL_HASH_LIMIT_BYTES",
    "hierarchy_path",
    "load_network",
    "snap_index_path",
]

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 2
"""Bump when the cache layout or the meaning of its arrays changes."""

DEFAULT_CACHE_DIR = Path("~/.cache/routeopt")
"""Where :func:`load_network` keeps its cache when no ``cache_dir`` is given."""

FULL_HASH_LIMIT_BYTES = 256 * 1024 * 1024
"""Files up to this size are hashed whole; larger ones by their first MiB, size and mtime."""

_HEAD_BYTES = 1024 * 1024
_BUILD_MODULES = (
    "ingest/build.py",
    "geo.py",
    "ingest/layer.py",
    "network.py",
    "ingest/osm.py",
    "ingest/profiles.py",
    "ingest/tags.py",
)
"""The modules whose code shapes a built network, relative to the geodata package: a change to any
of them invalidates the cache."""
_SHAPEFILE_SIDECARS = (".shx", ".dbf", ".prj", ".cpg")


def load_network(
    path: str | os.PathLike[str],
    profile: Profile = CAR,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    layer: str | None = None,
    refresh: bool = False,
) -> tuple[RoadNetwork, BuildReport]:
    """The road network of an OSM file or road layer, from the cache when it has it.

    The format follows the file name (:data:`geodata.ingest.osm.OSM_SUFFIXES` are read by
    :func:`read_osm`, :data:`geodata.ingest.layer.LAYER_SUFFIXES` by :func:`read_road_layer`).
    The report says whether the cache served it (``from_cache``), the cache file, this call's time
    and the original build's time. ``refresh=True`` rebuilds and rewrites the cache entry.
    """
    started = time.perf_counter()
    file = Path(path).expanduser()
    if not (is_osm_path(file) or is_layer_path(file)):
        raise UnsupportedFormatError(
            f"{file}: unsupported road data format (expected an OSM file "
            f"{', '.join(OSM_SUFFIXES)} or a road layer {', '.join(LAYER_SUFFIXES)})"
        )
    if not file.is_file():
        raise RoadDataNotFoundError(f"road data file not found: {file}")
    directory = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    key = _cache_key(file, profile, layer)
    cache_file = directory / f"{_safe(file.name)}-{profile.name}-{key[:20]}.npz"

    if not refresh and cache_file.is_file():
        try:
            network, meta = _read_cache(cache_file, key)
        # RoadNetworkError is a ValueError; a damaged archive raises BadZipFile or EOFError
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            logger.warning(
                "ignoring unreadable road network cache %s (%s: %s): rebuilding it",
                cache_file,
                type(exc).__name__,
                exc,
            )
        else:
            elapsed = time.perf_counter() - started
            report = BuildReport(
                **{**meta["report"], "source": str(file)},
                load_time_s=elapsed,
                from_cache=True,
                cache_path=str(cache_file),
            )
            logger.info("loaded road network %s", report.summary())
            network.use_hierarchy_cache(hierarchy_path(cache_file))
            return network, report

    if is_osm_path(file):
        network, report = read_osm(file, profile)
    else:
        network, report = read_road_layer(file, profile, layer=layer)
    written = _write_cache(cache_file, key, network, report)
    if written:
        network.use_hierarchy_cache(hierarchy_path(cache_file))
    report = replace(
        report,
        load_time_s=time.perf_counter() - started,
        cache_path=str(cache_file) if written else None,
    )
    return network, report


def hierarchy_path(cache_file: Path) -> Path:
    """Where the contraction hierarchy of the network cached in ``cache_file`` is kept: a
    directory beside it (:mod:`geodata.ch_cache`, checked against the graph on load)."""
    return cache_file.with_suffix(".ch")


def snap_index_path(cache_file: Path) -> Path:
    """Where the snap index of the network cached in ``cache_file`` is kept: a directory beside
    it (:mod:`geodata.snap_index`, checked against the network on load)."""
    return cache_file.with_suffix(".snap")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


@functools.cache
def _code_fingerprint() -> str:
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parents[1]
    for name in _BUILD_MODULES:
        digest.update(name.encode())
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def _file_digest(file: Path) -> dict[str, Any]:
    stat = file.stat()
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        if stat.st_size <= FULL_HASH_LIMIT_BYTES:
            for block in iter(lambda: handle.read(_HEAD_BYTES), b""):
                digest.update(block)
            return {"size": stat.st_size, "sha256": digest.hexdigest()}
        digest.update(handle.read(_HEAD_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_head": digest.hexdigest()}


def _cache_key(file: Path, profile: Profile, layer: str | None) -> str:
    parts: dict[str, Any] = {
        "format": CACHE_FORMAT_VERSION,
        "code": _code_fingerprint(),
        "profile": profile.fingerprint(),
        "layer": layer,
        "data": _file_digest(file),
    }
    if file.suffix.lower() == ".shp":
        for suffix in _SHAPEFILE_SIDECARS:
            for sidecar in (file.with_suffix(suffix), file.with_suffix(suffix.upper())):
                if sidecar.is_file():
                    parts[suffix] = _file_digest(sidecar)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _read_cache(cache_file: Path, key: str) -> tuple[RoadNetwork, dict[str, Any]]:
    arrays = load_npz(cache_file)  # memory-mapped: processes loading one file share its pages
    meta: dict[str, Any] = json.loads(str(arrays.pop("meta")))
    if meta.get("key") != key:
        raise ValueError("cache key mismatch")
    return RoadNetwork(**arrays, profile=meta["profile"]), meta


def _write_cache(cache_file: Path, key: str, network: RoadNetwork, report: BuildReport) -> bool:
    recorded = {
        k: v
        for k, v in asdict(report).items()
        if k not in {"load_time_s", "from_cache", "cache_path"}
    }
    meta = {"key": key, "profile": network.profile, "report": recorded}
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        contents: dict[str, Any] = {"meta": np.array(json.dumps(meta)), **network.arrays()}
        with tmp.open("wb") as handle:
            np.savez(handle, **contents)
        os.replace(tmp, cache_file)
    except OSError as exc:
        logger.warning("could not write road network cache %s: %s", cache_file, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False
    logger.debug("wrote road network cache %s", cache_file)
    return True
