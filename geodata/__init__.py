"""Road networks from OpenStreetMap (or other road layers): graph building, speeds and caching.

Data flows one way: ``geodata`` never imports ``engine``.

>>> network, report = load_network("monaco.osm.pbf", TRUCK)  # doctest: +SKIP
>>> network.n_nodes, report.from_cache  # doctest: +SKIP
(14360, False)

Networks built from OSM data are derived databases of OpenStreetMap: credit
"© OpenStreetMap contributors" and keep them under the ODbL.
"""

from geodata.convert import to_geodataframes, to_networkx
from geodata.errors import (
    EmptyNetworkError,
    RoadDataNotFoundError,
    RoadNetworkError,
    UnsupportedFormatError,
)
from geodata.geo import EARTH_RADIUS_M, haversine_m, haversine_matrix_m
from geodata.ingest.cache import DEFAULT_CACHE_DIR, load_network
from geodata.ingest.layer import read_road_layer
from geodata.ingest.osm import read_osm
from geodata.ingest.profiles import CAR, FOOT, HIGHWAY_CLASSES, PROFILES, TRUCK, Profile
from geodata.ingest.tags import parse_maxspeed
from geodata.matrix import (
    MatrixInputError,
    MatrixResult,
    Seeds,
    many_to_many,
    many_to_many_seeded,
    unreachable_pairs,
)
from geodata.network import BuildReport, RoadNetwork
from geodata.paths import LegPath, leg_path, route_paths
from geodata.polyline import PolylineError, decode_polyline, encode_polyline
from geodata.road_matrix import road_matrix
from geodata.snap import (
    DEFAULT_MAX_SNAP_M,
    SnapError,
    SnappedPoint,
    Snapper,
    SnapResult,
    SnapTooFarError,
)

__all__ = [
    "CAR",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_MAX_SNAP_M",
    "EARTH_RADIUS_M",
    "FOOT",
    "HIGHWAY_CLASSES",
    "PROFILES",
    "TRUCK",
    "BuildReport",
    "EmptyNetworkError",
    "LegPath",
    "MatrixInputError",
    "MatrixResult",
    "PolylineError",
    "Profile",
    "RoadDataNotFoundError",
    "RoadNetwork",
    "RoadNetworkError",
    "Seeds",
    "SnapError",
    "SnapResult",
    "SnapTooFarError",
    "SnappedPoint",
    "Snapper",
    "UnsupportedFormatError",
    "decode_polyline",
    "encode_polyline",
    "haversine_m",
    "haversine_matrix_m",
    "leg_path",
    "load_network",
    "many_to_many",
    "many_to_many_seeded",
    "parse_maxspeed",
    "read_osm",
    "read_road_layer",
    "road_matrix",
    "route_paths",
    "to_geodataframes",
    "to_networkx",
    "unreachable_pairs",
]
