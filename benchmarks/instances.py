"""VRPLIB instances (CVRPLIB X, Solomon) as engine models, with their distance conventions.

- CVRP (Uchoa X): Euclidean distance rounded to the nearest integer; cost = total distance.
- VRPTW (Solomon, DIMACS convention): each arc's distance and travel time truncated to one
  decimal. Everything is scaled by 10 so the engine sees integers (1 unit = 0.1); costs are
  divided back.

The engine's cost is ``cost_per_kilometer × km``; with ``cost_per_kilometer = 1000`` a matrix
"meter" costs 1, so the reported cost equals the instance's distance (times 10 for VRPTW).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import (
    DurationDistanceMatrix,
    Shipment,
    ShipmentModel,
    TimeWindow,
    Vehicle,
    VisitRequest,
)

DEFAULT_DATA_DIR = Path(
    os.environ.get("ROUTEOPT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@dataclass(frozen=True)
class Instance:
    name: str
    model: ShipmentModel
    bks: float | None
    cost_divisor: float
    """Reported engine cost / cost_divisor = the instance's objective value."""


def _euclid(coords: np.ndarray) -> np.ndarray:
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt((diff**2).sum(axis=2))


def _bks_from_sol(path: Path) -> float | None:
    if not path.exists():
        return None
    match = re.search(r"Cost\s+([0-9.]+)", path.read_text())
    return float(match.group(1)) if match else None


def read_cvrp(path: Path, *, vehicle_slack: float = 1.2) -> Instance:
    import vrplib

    raw = vrplib.read_instance(str(path), compute_edge_weights=False)
    coords = np.asarray(raw["node_coord"], dtype=np.float64)
    dist = np.floor(_euclid(coords) + 0.5)
    demand = np.asarray(raw["demand"], dtype=np.int64)
    depot = int(np.asarray(raw["depot"]).ravel()[0])
    n = len(coords)
    tags = tuple(f"n{i}" for i in range(n))
    k_min = (
        int(re.search(r"-k(\d+)", path.stem).group(1))
        if "-k" in path.stem
        else max(1, math.ceil(demand.sum() / raw["capacity"]))
    )
    n_vehicles = max(k_min + 1, math.ceil(k_min * vehicle_slack))
    shipments = tuple(
        Shipment(
            deliveries=(VisitRequest(tags=(tags[i],)),), load_demands={"demand": int(demand[i])}
        )
        for i in range(n)
        if i != depot
    )
    vehicle = Vehicle(
        start_tags=(tags[depot],),
        end_tags=(tags[depot],),
        load_limits={"demand": int(raw["capacity"])},
        cost_per_kilometer=1000.0,
    )
    model = ShipmentModel(
        shipments=shipments,
        vehicles=(vehicle,) * n_vehicles,
        duration_distance_matrices=(DurationDistanceMatrix(dist, dist),),
        duration_distance_matrix_src_tags=tags,
        duration_distance_matrix_dst_tags=tags,
    )
    return Instance(path.stem, model, _bks_from_sol(path.with_suffix(".sol")), 1.0)


def read_solomon(path: Path, *, bks: float | None = None) -> Instance:
    import vrplib

    raw = vrplib.read_instance(str(path), compute_edge_weights=False)
    coords = np.asarray(raw["node_coord"], dtype=np.float64)
    dist = np.floor(10 * _euclid(coords) + 1e-9)  # DIMACS: truncated to 0.1, scaled by 10
    demand = np.asarray(raw["demand"], dtype=np.int64)
    tw = np.asarray(raw["time_window"], dtype=np.float64) * 10
    service = np.broadcast_to(
        np.asarray(raw["service_time"], dtype=np.float64) * 10, (len(coords),)
    )
    depot = int(np.asarray(raw["depot"]).ravel()[0])
    tags = tuple(f"n{i}" for i in range(len(coords)))
    horizon = float(tw[depot, 1])
    shipments = tuple(
        Shipment(
            deliveries=(
                VisitRequest(
                    tags=(tags[i],),
                    time_windows=(TimeWindow(float(tw[i, 0]), float(tw[i, 1])),),
                    duration_s=float(service[i]),
                ),
            ),
            load_demands={"demand": int(demand[i])},
        )
        for i in range(len(coords))
        if i != depot
    )
    vehicle = Vehicle(
        start_tags=(tags[depot],),
        end_tags=(tags[depot],),
        load_limits={"demand": int(raw["capacity"])},
        cost_per_kilometer=1000.0,
        end_time_windows=(TimeWindow(0.0, horizon),),
    )
    model = ShipmentModel(
        shipments=shipments,
        vehicles=(vehicle,) * int(raw["vehicles"]),
        global_start_time=0.0,
        global_end_time=horizon,
        duration_distance_matrices=(DurationDistanceMatrix(dist, dist),),
        duration_distance_matrix_src_tags=tags,
        duration_distance_matrix_dst_tags=tags,
    )
    return Instance(path.stem, model, bks, 10.0)


def solomon_bks(data_dir: Path) -> dict[str, float]:
    import csv

    with open(data_dir / "solomon" / "bks.csv") as f:
        return {row["instance"]: float(row["distance"]) for row in csv.DictReader(f)}


def random_pdp(seed: int, *, pairs: int = 40, vehicles: int = 10) -> Instance:
    """A random pickup-and-delivery instance (no best-known solution): ``pairs`` pairs in a
    100 x 100 square, depot in the centre, capacity 10, demands 1-3, rounded Euclidean travel."""
    rng = np.random.default_rng(seed)
    coords = np.vstack([[50.0, 50.0], rng.uniform(0, 100, size=(2 * pairs, 2))])
    dist = np.floor(_euclid(coords) + 0.5)
    tags = tuple(f"n{i}" for i in range(len(coords)))
    shipments = tuple(
        Shipment(
            pickups=(VisitRequest(tags=(tags[1 + 2 * k],)),),
            deliveries=(VisitRequest(tags=(tags[2 + 2 * k],)),),
            load_demands={"demand": int(rng.integers(1, 4))},
        )
        for k in range(pairs)
    )
    vehicle = Vehicle(
        start_tags=(tags[0],),
        end_tags=(tags[0],),
        load_limits={"demand": 10},
        cost_per_kilometer=1000.0,
    )
    model = ShipmentModel(
        shipments=shipments,
        vehicles=(vehicle,) * vehicles,
        duration_distance_matrices=(DurationDistanceMatrix(dist, dist),),
        duration_distance_matrix_src_tags=tags,
        duration_distance_matrix_dst_tags=tags,
    )
    return Instance(f"pdp-{pairs}-{seed}", model, None, 1.0)
