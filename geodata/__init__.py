"""Road networks from OpenStreetMap (or other road layers): graph building, speeds and caching.

Data flows one way: ``geodata`` never imports ``engine``.

>>> network, report = load_network("monaco.osm.pbf", TRUCK)  # doctest: +SKIP
>>> network.n_nodes, report.from_cache  # doctest: +SKIP
(14360, False)

Networks built from OSM data are derived databases of OpenStreetMap: credit
"© OpenStreetMap contributors" and keep them under the ODbL.
"""

from geodata.cache import DEFAULT_CACHE_DIR, load_network
from geodata.convert import to_geodataframes, to_networkx
from geodata.errors import (
    EmptyNetworkError,
    RoadDataNotFoundError,
    RoadNetworkError,
    UnsupportedFormatError,
)
from geodata.geo import EARTH_RADIUS_M, haversine_m
from geodata.layer import read_road_layer
from geodata.network import BuildReport, RoadNetwork
from geodata.osm import read_osm
from geodata.profiles import CAR, HIGHWAY_CLASSES, PROFILES, TRUCK, Profile
from geodata.tags import parse_maxspeed

__all__ = [
    "CAR",
    "DEFAULT_CACHE_DIR",
    "EARTH_RADIUS_M",
    "HIGHWAY_CLASSES",
    "PROFILES",
    "TRUCK",
    "BuildReport",
    "EmptyNetworkError",
    "Profile",
    "RoadDataNotFoundError",
    "RoadNetwork",
    "RoadNetworkError",
    "UnsupportedFormatError",
    "haversine_m",
    "load_network",
    "parse_maxspeed",
    "read_osm",
    "read_road_layer",
    "to_geodataframes",
    "to_networkx",
]
