"""The road network of the solve workers, loaded once in the process they are forked from.

:class:`runtime.local.SolveExecutor` puts the server's :class:`~engine.roads.RoadSpec` into
the environment (:data:`engine.roads.ROADS_ENV_VAR`) and has its forkserver import this module:
the network is loaded (from the build cache) and its kernels compiled once, and every forked
worker shares them copy-on-write instead of loading its own. Workers run the serial kernels
only (one solve per process), so no thread pool exists in the forkserver when it forks.
"""

from __future__ import annotations

from engine.roads import RoadContext, roads_from_env

__all__ = ["CONTEXT"]


def _load() -> RoadContext | None:
    context = roads_from_env()
    if context is not None:
        lat, lon = float(context.network.lat[0]), float(context.network.lon[0])
        snaps = context.snap([lat, lat], [lon, lon])
        context.matrix(snaps, threads=1)  # compiles the serial matrix kernel

        from geodata.paths import route_paths

        route_paths(context.network, snaps)  # compiles the path kernel
    return context


CONTEXT: RoadContext | None = _load()
"""The workers' road network, or None when the server runs without one."""
