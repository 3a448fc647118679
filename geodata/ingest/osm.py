"""Reading OpenStreetMap files (``.osm.pbf``, ``.osm``/``.osm.xml``, gzip/bzip2 XML) with pyosmium.

One pass over the file: pyosmium keeps every node location in memory (its ``flex_mem`` index) and
hands us only the ways with a ``highway`` or ``route`` tag (ferries are ``route=ferry``), with their
node coordinates filled in. Every node of
a drivable way becomes a graph node (full resolution, no simplification).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import cast

import osmium

from geodata.errors import RoadDataNotFoundError, RoadNetworkError, UnsupportedFormatError
from geodata.ingest.build import WayChains, build_network
from geodata.ingest.profiles import CAR, Profile
from geodata.ingest.tags import evaluate_way, road_class
from geodata.network import BuildReport, RoadNetwork

__all__ = ["OSM_SUFFIXES", "is_osm_path", "read_osm"]

OSM_SUFFIXES = (".pbf", ".osm", ".xml", ".osm.gz", ".osm.bz2", ".xml.gz", ".xml.bz2", ".o5m")
"""File name endings read as OSM data (lower-case)."""


def is_osm_path(path: str | os.PathLike[str]) -> bool:
    """Whether the file name says it is OSM data that :func:`read_osm` reads."""
    return str(path).lower().endswith(OSM_SUFFIXES)


def read_osm(
    path: str | os.PathLike[str], profile: Profile = CAR
) -> tuple[RoadNetwork, BuildReport]:
    """Build the road network of an OSM file for ``profile``: the largest strongly connected part.

    Raises:
        RoadDataNotFoundError: the file does not exist.
        UnsupportedFormatError: the name does not end in one of :data:`OSM_SUFFIXES`.
        RoadNetworkError: pyosmium cannot read the file.
        EmptyNetworkError: no drivable road is left for the profile.
    """
    started = time.perf_counter()
    file = Path(path).expanduser()
    if not is_osm_path(file):
        raise UnsupportedFormatError(
            f"{file}: not an OSM file name (expected one of {', '.join(OSM_SUFFIXES)}); "
            "road layers (GeoPackage, GeoJSON, Shapefile) are read by read_road_layer"
        )
    if not file.is_file():
        raise RoadDataNotFoundError(f"OSM file not found: {file}")
    try:
        chains = _read_chains(file, profile)
    except RuntimeError as exc:  # pyosmium reports bad files as RuntimeError
        raise RoadNetworkError(f"cannot read OSM file {file}: {exc}") from exc
    return build_network(chains, profile, str(file), started=started)


def _read_chains(file: Path, profile: Profile) -> WayChains:
    chains = WayChains()
    key_append, lat_append, lon_append = chains.key.append, chains.lat.append, chains.lon.append
    drivable = profile.speeds_kph
    processor = (
        osmium.FileProcessor(str(file), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway", "route"))
    )
    for entity in processor:
        way = cast(osmium.osm.Way, entity)  # the entity filter lets only ways through
        tags = dict(way.tags)
        cls = road_class(tags)
        if cls is None:
            continue  # a route=* way that is not a ferry: not a road
        if cls not in drivable:
            chains.ways_rejected += 1
            continue
        rule = evaluate_way(tags, profile)
        if rule is None:
            chains.ways_rejected += 1
            continue
        chains.ways_used += 1
        way_id = way.id
        for node in way.nodes:
            location = node.location
            if location.valid():
                key_append(node.ref)
                lat_append(location.lat)
                lon_append(location.lon)
            else:
                chains.missing_node_refs += 1
                chains.end_chain(rule, way_id)
        chains.end_chain(rule, way_id)
    return chains
