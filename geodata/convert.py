"""A :class:`RoadNetwork` as a networkx graph or as GeoDataFrames, with osmnx's attribute names.

Nodes keep the network's numbering (``0 .. n_nodes-1``) as their key, so results map back to the
CSR arrays directly; the OSM id is the ``osmid`` attribute. Units are in the names osmnx uses:
``length`` metres, ``travel_time`` seconds, ``speed_kph``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import shapely

from geodata.network import RoadNetwork

if TYPE_CHECKING:
    import geopandas as gpd
    import networkx as nx

__all__ = ["to_geodataframes", "to_networkx"]

CRS = "EPSG:4326"


def to_networkx(network: RoadNetwork) -> nx.MultiDiGraph:
    """The network as a ``MultiDiGraph`` (one edge per ordered pair, key 0).

    Node attributes: ``x`` (lon), ``y`` (lat), ``osmid``. Edge attributes: ``length``,
    ``travel_time``, ``speed_kph``, ``highway`` (class name), ``osmid`` (way id).
    Graph attributes: ``crs`` and ``profile``.
    """
    import networkx as nx  # lazily, like geopandas below

    graph = nx.MultiDiGraph(crs=CRS, profile=network.profile)
    graph.add_nodes_from(
        (i, {"x": x, "y": y, "osmid": osmid})
        for i, (x, y, osmid) in enumerate(
            zip(network.lon.tolist(), network.lat.tolist(), network.osm_id.tolist(), strict=True)
        )
    )
    columns = zip(
        network.sources().tolist(),
        network.indices.tolist(),
        network.length_m.tolist(),
        network.travel_time_s.tolist(),
        network.speed_kph.tolist(),
        network.highway_names().tolist(),
        network.way_id.tolist(),
        strict=True,
    )
    graph.add_edges_from(
        (u, v, 0, {"length": ln, "travel_time": tt, "speed_kph": sp, "highway": hw, "osmid": w})
        for u, v, ln, tt, sp, hw, w in columns
    )
    return graph


def to_geodataframes(network: RoadNetwork) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """``(nodes, edges)`` GeoDataFrames in EPSG:4326.

    ``nodes`` is indexed by node number, with ``osmid``, ``x``, ``y`` and Point geometry.
    ``edges`` has a ``(u, v, key)`` index like osmnx's, columns ``osmid`` (way id), ``highway``,
    ``length``, ``travel_time``, ``speed_kph`` and a two-point LineString geometry per edge.
    """
    import geopandas as gpd  # lazily: importing geopandas takes ~0.4 s

    nodes = gpd.GeoDataFrame(
        {"osmid": network.osm_id, "x": network.lon, "y": network.lat},
        geometry=shapely.points(network.lon, network.lat),
        crs=CRS,
    )
    nodes.index.name = "node"
    u = network.sources().astype(np.int64)
    v = network.indices.astype(np.int64)
    segments = np.stack(
        [
            np.column_stack([network.lon[u], network.lat[u]]),
            np.column_stack([network.lon[v], network.lat[v]]),
        ],
        axis=1,
    )
    edges = gpd.GeoDataFrame(
        {
            "u": u,
            "v": v,
            "key": np.zeros(network.n_edges, dtype=np.int64),
            "osmid": network.way_id,
            "highway": network.highway_names(),
            "length": network.length_m,
            "travel_time": network.travel_time_s,
            "speed_kph": network.speed_kph,
        },
        geometry=shapely.linestrings(segments),
        crs=CRS,
    ).set_index(["u", "v", "key"])
    return nodes, edges
