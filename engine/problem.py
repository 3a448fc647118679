"""The integer problem that solver backends and the pre-check work on.

Built once per solve from a validated model and its travel matrices. Times are whole seconds
from ``global_start_time``; every rounding follows :mod:`engine.units` so that an integer
solution is feasible for the exact input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine.model import ShipmentModel, TimeWindow
from engine.transitions import TransitionTables, build_tables
from engine.travel import Stops, TravelMatrices
from engine.units import ceil_int, floor_int

__all__ = ["Problem", "Window"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Window = tuple[int, int]
"""A hard time window ``(earliest, latest)`` in integer seconds from the horizon start."""


@dataclass(eq=False)
class Problem:
    model: ShipmentModel
    stops: Stops
    travel: TravelMatrices
    horizon: int
    """Length of the horizon in seconds; all times are in ``[0, horizon]``."""
    service_s: IntArray
    """Visit duration per stop (0 for vehicle starts and ends)."""
    windows: tuple[tuple[Window, ...], ...]
    """Hard windows per stop: visit windows, vehicle start and end windows. An empty tuple
    means no start time can satisfy the windows at one-second resolution."""
    routable: list[bool] = field(default_factory=list)
    """Per shipment: False when the pre-check proved no vehicle can serve it."""
    allowed_vehicles: list[tuple[int, ...]] = field(default_factory=list)
    """Per shipment: vehicles that passed the pre-check."""
    _travel_cache: dict[tuple[int, float], IntArray] = field(default_factory=dict)
    _distance_cache: dict[int, IntArray] = field(default_factory=dict)
    _service_cache: dict[tuple[tuple[str, float], ...], IntArray] = field(default_factory=dict)
    transitions: TransitionTables | None = None
    """The model's ``transition_attributes`` over the stops (issue 15; None without any)."""
    _delay_cache: list[IntArray] = field(default_factory=list)
    _transition_cost_cache: dict[int, FloatArray] = field(default_factory=dict)

    @classmethod
    def build(cls, model: ShipmentModel, stops: Stops, travel: TravelMatrices) -> Problem:
        g0 = model.global_start_time
        horizon = floor_int(model.global_end_time - g0)
        service = np.zeros(stops.size, dtype=np.int64)
        windows: list[tuple[Window, ...]] = []
        for i in range(stops.num_visits):
            visit = stops.visit_request(model, i)
            service[i] = ceil_int(visit.duration_s)
            windows.append(_quantize(visit.time_windows, g0, horizon))
        for vehicle in model.vehicles:
            windows.append(_quantize(vehicle.start_time_windows, g0, horizon))
            windows.append(_quantize(vehicle.end_time_windows, g0, horizon))
        n = len(model.shipments)
        return cls(
            model=model,
            stops=stops,
            travel=travel,
            horizon=horizon,
            service_s=service,
            windows=tuple(windows),
            routable=[True] * n,
            allowed_vehicles=[tuple(range(len(model.vehicles)))] * n,
            transitions=build_tables(model, stops),
        )

    @property
    def unreachable_s(self) -> int:
        """Integer travel time standing for "unreachable": longer than the horizon, so no
        schedule can use such a leg."""
        return self.horizon + 1

    def travel_s(self, vehicle: int) -> IntArray:
        """Integer travel durations for ``vehicle`` (multiple applied, rounded up); unreachable
        legs (infinite travel) become :attr:`unreachable_s`."""
        k = self.travel.vehicle_matrix[vehicle]
        multiple = self.model.vehicles[vehicle].travel_duration_multiple
        key = (k, multiple)
        if key not in self._travel_cache:
            scaled = self.travel.durations_s[k] * multiple
            capped = np.minimum(scaled, float(self.unreachable_s))
            self._travel_cache[key] = np.ceil(capped - 1e-9).astype(np.int64)
        return self._travel_cache[key]

    def service_for(self, vehicle: int) -> IntArray:
        """Integer visit duration per stop for ``vehicle``: :attr:`service_s` plus the
        vehicle's ``extra_visit_duration_for_visit_type`` of each visit type (issue 15), the
        sum rounded up once."""
        v = self.model.vehicles[vehicle]
        if not v.extra_visit_duration_for_visit_type:
            return self.service_s
        key = tuple(sorted(v.extra_visit_duration_for_visit_type.items()))
        cached = self._service_cache.get(key)
        if cached is None:
            cached = self.service_s.copy()
            for i in range(self.stops.num_visits):
                request = self.stops.visit_request(self.model, i)
                if request.visit_types:
                    cached[i] = ceil_int(v.visit_duration_s(request))
            self._service_cache[key] = cached
        return cached

    @property
    def delay_s(self) -> IntArray | None:
        """Integer transition delay between stops (``transition_attributes``' delays, issue
        15; rounded up, capped at :attr:`unreachable_s`), None when no transition has one."""
        tables = self.transitions
        if tables is None or tables.delay_s is None:
            return None
        if not self._delay_cache:
            capped = np.minimum(tables.delay_s, float(self.unreachable_s))
            self._delay_cache.append(np.ceil(capped - 1e-9).astype(np.int64))
        return self._delay_cache[0]

    def delay(self, a: int, b: int) -> int:
        """Integer transition delay from stop ``a`` to stop ``b`` (0 without one)."""
        delays = self.delay_s
        return 0 if delays is None else int(delays[a, b])

    def distance_m(self, vehicle: int) -> IntArray:
        """Integer distances for ``vehicle`` (rounded up); unreachable legs get a distance
        larger than any route could use."""
        k = self.travel.vehicle_matrix[vehicle]
        if k not in self._distance_cache:
            distances = self.travel.distances_m[k]
            finite = distances[np.isfinite(distances)]
            cap = (float(finite.max(initial=0.0)) + 1.0) * (self.stops.size + 1)
            capped = np.minimum(distances, cap)
            self._distance_cache[k] = np.ceil(capped - 1e-9).astype(np.int64)
        return self._distance_cache[k]

    @property
    def free_of_costs(self) -> bool:
        """No vehicle has any cost: the backends then minimise travel time, so that routes
        stay sensible."""
        return all(
            v.cost_per_kilometer == 0
            and v.cost_per_traveled_hour == 0
            and v.cost_per_hour == 0
            and not v.load_costs_per_kilometer  # issue 15: load-dependent costs
            and not v.load_costs_per_traveled_hour
            for v in self.model.vehicles
        ) and (self.transitions is None or not self.transitions.has_costs)

    def arc_cost(self, vehicle: int) -> FloatArray:
        """Travel cost of each leg for ``vehicle`` in currency (``cost_per_kilometer`` and
        ``cost_per_traveled_hour``, and the transition attributes' costs, issue 15).
        Unreachable legs are capped at :attr:`unreachable_s` of travel (and as many
        kilometers) first: 0 × inf would be NaN."""
        k = self.travel.vehicle_matrix[vehicle]
        v = self.model.vehicles[vehicle]
        cap = float(self.unreachable_s)
        seconds = np.minimum(self.travel.durations_s[k] * v.travel_duration_multiple, cap)
        meters = np.minimum(self.travel.distances_m[k], cap * 1000.0)
        cost: FloatArray = (
            v.cost_per_kilometer * meters / 1000.0 + v.cost_per_traveled_hour * seconds / 3600.0
        )
        if self.transitions is not None and self.transitions.has_costs:
            if k not in self._transition_cost_cache:
                self._transition_cost_cache[k] = self.transitions.costs(meters)
            cost = cost + self._transition_cost_cache[k]
        return cost

    def reachable(self, vehicle: int, a: int, b: int) -> bool:
        """Whether stop ``b`` can be reached from stop ``a`` by ``vehicle``."""
        k = self.travel.vehicle_matrix[vehicle]
        return bool(np.isfinite(self.travel.durations_s[k][a, b]))


def _quantize(windows: tuple[TimeWindow, ...], g0: float, horizon: int) -> tuple[Window, ...]:
    if not windows:
        return ((0, horizon),)
    out = []
    for w in windows:
        lo = 0 if w.start_time is None else max(0, ceil_int(w.start_time - g0))
        hi = horizon if w.end_time is None else min(horizon, floor_int(w.end_time - g0))
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)
