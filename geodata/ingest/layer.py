"""Road layers that do not come from OSM: GeoPackage, GeoJSON, Shapefile, FlatGeobuf (geopandas).

Column mapping (every column but the geometry is optional; names are OSM tag keys):

- ``geometry``: ``LineString`` or ``MultiLineString``; each part is a piece of road, and pieces join
  where they share a vertex (compared at 1e-7 degrees). Any CRS is reprojected to EPSG:4326; a
  layer without a CRS must be in degrees.
- ``highway``: road class (OSM values, :data:`geodata.HIGHWAY_CLASSES`); missing or empty means
  ``road``; a class the profile does not drive (``footway``...) drops the feature.
- ``oneway``: ``yes``/``true``/``1``/``True`` along the drawing direction, ``-1``/``reverse``
  against it, ``no``/``false``/``0``/``False`` both ways; missing: two-way, except OSM's implied
  one-ways (``highway=motorway``, ``junction=roundabout``).
- ``speed_kph``: speed in km/h for both directions (a number); wins over ``maxspeed``.
- ``maxspeed``: an OSM ``maxspeed`` value, a number (km/h) or any form
  :func:`geodata.parse_maxspeed` reads (``"30 mph"``, ``"DE:urban"``...).
- ``toll``, ``route`` (``ferry``) and ``indoor`` set the edge flags that route modifiers read.
- ``junction``, ``service``, ``access`` and the profile's other access and speed tags
  (``motor_vehicle``, ``hgv``, ``maxspeed:hgv``...) are read as in OSM when present (Shapefile
  truncates column names to 10 characters).

Every speed is capped at the profile's ``max_speed_kph``. A node's ``osm_id`` is synthetic
(``-1, -2, ...`` in node order) and an edge's ``way_id`` is the feature's row number (0-based).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geodata.errors import RoadDataNotFoundError, RoadNetworkError, UnsupportedFormatError
from geodata.ingest.build import WayChains, build_network
from geodata.ingest.profiles import CAR, Profile
from geodata.ingest.tags import WayRule, evaluate_way
from geodata.network import BuildReport, RoadNetwork

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["LAYER_SUFFIXES", "is_layer_path", "read_road_layer"]

logger = logging.getLogger(__name__)

LAYER_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")
"""File name endings read as road layers (lower-case)."""

_LINE_TYPES = frozenset({"LineString", "MultiLineString"})
_COORD_SCALE = 1e7  # node identity: coordinates rounded to 1e-7 degrees, OSM's own precision


def is_layer_path(path: str | os.PathLike[str]) -> bool:
    """Whether the file name says it is a road layer that :func:`read_road_layer` reads."""
    return str(path).lower().endswith(LAYER_SUFFIXES)


def read_road_layer(
    source: str | os.PathLike[str] | gpd.GeoDataFrame,
    profile: Profile = CAR,
    *,
    layer: str | None = None,
) -> tuple[RoadNetwork, BuildReport]:
    """Build the road network of a line layer (file or GeoDataFrame), largest SCC only.

    ``layer`` names the layer of a multi-layer file (GeoPackage). See the module docstring for the
    column mapping.

    Raises:
        RoadDataNotFoundError: the file does not exist.
        UnsupportedFormatError: the name does not end in one of :data:`LAYER_SUFFIXES`.
        RoadNetworkError: the file cannot be read, or its geometries are not lines in degrees.
        EmptyNetworkError: no drivable road is left for the profile.
    """
    started = time.perf_counter()
    import geopandas as gpd  # lazily: importing geopandas takes ~0.4 s

    if isinstance(source, gpd.GeoDataFrame):
        frame, name = source, "<GeoDataFrame>"
    else:
        file = Path(source).expanduser()
        name = str(file)
        if not is_layer_path(file):
            raise UnsupportedFormatError(
                f"{file}: not a road layer file name "
                f"(expected one of {', '.join(LAYER_SUFFIXES)}); OSM files are read by read_osm"
            )
        if not file.is_file():
            raise RoadDataNotFoundError(f"road layer not found: {file}")
        try:
            frame = gpd.read_file(file, layer=layer) if layer else gpd.read_file(file)
        except Exception as exc:  # pyogrio/GDAL errors have no common public base class
            raise RoadNetworkError(f"cannot read road layer {file}: {exc}") from exc
    chains = _layer_chains(_in_degrees(frame, name), profile, name)
    return build_network(chains, profile, name, started=started, synthetic_ids=True)


def _in_degrees(frame: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    geoms = frame.geometry.to_numpy()
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    kinds = {str(k) for k in frame.geometry[present].geom_type.unique()}
    if not kinds <= _LINE_TYPES:
        raise RoadNetworkError(
            f"{name}: road geometries must be LineString or MultiLineString, found "
            f"{', '.join(sorted(kinds - _LINE_TYPES))}"
        )
    xmin, ymin, xmax, ymax = (float(x) for x in shapely.total_bounds(geoms[present]))
    if present.any() and (xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90):
        raise RoadNetworkError(
            f"{name}: coordinates are not longitude/latitude degrees (bounds {xmin:.6g}, "
            f"{ymin:.6g}, {xmax:.6g}, {ymax:.6g}); set the layer's CRS so it can be reprojected"
        )
    return frame


def _tag_columns(frame: gpd.GeoDataFrame, profile: Profile) -> dict[str, list[Any]]:
    keys = {"highway", "oneway", "junction", "service", "area", "impassable", "toll", "toll:hgv"}
    keys.update(("route", "indoor", *profile.access_keys))
    for key in profile.maxspeed_keys:
        keys.update((key, f"{key}:forward", f"{key}:backward"))
    columns: dict[str, list[Any]] = {}
    for key in sorted(keys & set(frame.columns)):
        series = frame[key]
        columns[key] = series.astype(object).where(series.notna(), None).tolist()
    return columns


def _tag_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else str(float(value))
    text = str(value).strip()
    return text or None


def _layer_chains(frame: gpd.GeoDataFrame, profile: Profile, name: str) -> WayChains:
    chains = WayChains()
    columns = _tag_columns(frame, profile)
    if "speed_kph" in frame.columns:
        speed_col = np.asarray(frame["speed_kph"].to_numpy(dtype=float, na_value=math.nan))
    else:
        speed_col = np.full(len(frame), math.nan)

    parts, part_row = shapely.get_parts(frame.geometry.to_numpy(), return_index=True)
    coords, coord_part = shapely.get_coordinates(parts, return_index=True)
    lat = np.ascontiguousarray(coords[:, 1])
    lon = np.ascontiguousarray(coords[:, 0])
    ilat = np.rint(lat * _COORD_SCALE).astype(np.int64) + 900_000_000
    ilon = np.rint(lon * _COORD_SCALE).astype(np.int64) + 1_800_000_000
    keys = ilat * 3_600_000_001 + ilon
    part_end = np.cumsum(np.bincount(coord_part, minlength=parts.shape[0]))
    parts_of_row = np.bincount(part_row, minlength=len(frame))
    row_part_end = np.cumsum(parts_of_row)

    bad_speed = 0
    for row in range(len(frame)):
        if parts_of_row[row] == 0:
            chains.ways_rejected += 1  # missing or empty geometry
            continue
        tags = {k: t for k, values in columns.items() if (t := _tag_text(values[row])) is not None}
        tags.setdefault("highway", "road")
        rule = evaluate_way(tags, profile)
        if rule is None:
            chains.ways_rejected += 1
            continue
        speed = float(speed_col[row])
        if not math.isnan(speed):
            if math.isfinite(speed) and speed > 0:
                capped = min(speed, profile.max_speed_kph)
                rule = WayRule(
                    rule.forward, rule.backward, capped, capped, rule.highway, rule.flags
                )
            else:
                bad_speed += 1
        chains.ways_used += 1
        first_part = int(row_part_end[row] - parts_of_row[row])
        for part in range(first_part, int(row_part_end[row])):
            start = int(part_end[part - 1]) if part else 0
            stop = int(part_end[part])
            chains.key.frombytes(keys[start:stop].tobytes())
            chains.lat.frombytes(lat[start:stop].tobytes())
            chains.lon.frombytes(lon[start:stop].tobytes())
            chains.end_chain(rule, row)
    if bad_speed:
        logger.warning("%s: %d features have a speed_kph that is not > 0; ignored", name, bad_speed)
    return chains
