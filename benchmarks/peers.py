"""The peers of the quality benchmark: PyVRP and VROOM, fed the same ``VrpData``.

Both are optional, benchmark-only dependencies (the ``bench`` extra); they are imported inside
the functions, never by the engine. Each returns routes as ``(vehicle group, [client nodes])``
for :func:`benchmarks.instances.verify_routes`, which recomputes the cost and checks them.
"""

from __future__ import annotations

import numpy as np

from benchmarks.instances import BIG_ARC, VrpData

Routes = list[tuple[int, list[int]]]

PEER_KINDS: dict[str, frozenset[str]] = {
    "pyvrp": frozenset({"CVRP", "VRPTW", "HFVRP", "MDVRPTW", "PCVRPTW", "VRPB"}),
    # VROOM: no prizes, no per-distance vehicle costs over a custom matrix, no shift-duration
    # limit (only travel time), no linehaul-first rule: CVRP and VRPTW only.
    "vroom": frozenset({"CVRP", "VRPTW"}),
}


def _int_matrix(data: VrpData) -> np.ndarray:
    dist = data.dist.astype(np.int64)
    if data.backhaul_last:
        back = data.pickup > 0
        line = (data.delivery > 0) & ~back
        dist = dist.copy()
        dist[np.ix_(back, line)] = BIG_ARC
    return dist


def solve_pyvrp(data: VrpData, time_limit_s: float, seed: int = 1) -> Routes:
    """PyVRP's default ILS, ``MaxRuntime(time_limit_s)``, one thread."""
    import pyvrp
    from pyvrp.stop import MaxRuntime

    # PyVRP costs are integers: scale the whole objective (distance and fixed costs).
    factor = 100 if any(g.unit_cost != round(g.unit_cost) for g in data.fleet) else 1
    dist = _int_matrix(data)
    n = len(data.coords)
    tw = data.time_windows
    st = data.service
    big = np.iinfo(np.int64).max
    locations = [pyvrp.Location(x=float(x), y=float(y)) for x, y in data.coords]
    depots = [
        pyvrp.Depot(
            location=d,
            tw_early=0 if tw is None else int(tw[d, 0]),
            tw_late=big if tw is None else int(tw[d, 1]),
        )
        for d in data.depots
    ]
    clients = []
    for i in data.clients:
        prize = 0 if data.prize is None else int(data.prize[i]) * factor
        clients.append(
            pyvrp.Client(
                location=i,
                delivery=[int(data.delivery[i])],
                pickup=[int(data.pickup[i])],
                service_duration=0 if st is None else int(st[i]),
                tw_early=0 if tw is None else int(tw[i, 0]),
                tw_late=big if tw is None else int(tw[i, 1]),
                prize=prize,
                required=prize == 0,
            )
        )
    depot_index = {d: k for k, d in enumerate(data.depots)}
    vehicle_types = [
        pyvrp.VehicleType(
            num_available=g.count,
            capacity=[g.capacity],
            start_depot=depot_index[g.depot],
            end_depot=depot_index[g.depot],
            fixed_cost=round(g.fixed_cost * factor),
            tw_early=0 if tw is None else int(tw[g.depot, 0]),
            tw_late=big if tw is None else int(tw[g.depot, 1]),
            shift_duration=big if g.max_duration is None else int(g.max_duration),
            unit_distance_cost=round(g.unit_cost * factor),
        )
        for g in data.fleet
    ]
    durations = dist if tw is not None else np.zeros((n, n), dtype=np.int64)
    problem = pyvrp.ProblemData(
        locations=locations,
        clients=clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=[dist],
        duration_matrices=[durations],
    )
    # Scaling the costs by ``factor`` must scale PyVRP's penalty range alike, or the penalties
    # for excess load cannot outweigh the (scaled) distances and the search ends infeasible.
    default = pyvrp.PenaltyParams()
    penalty = pyvrp.PenaltyParams(
        min_penalty=default.min_penalty * factor, max_penalty=default.max_penalty * factor
    )
    result = pyvrp.solve(
        problem,
        stop=MaxRuntime(time_limit_s),
        seed=seed,
        display=False,
        params=pyvrp.SolveParams(penalty=penalty),
    )
    if not result.best.is_feasible():
        raise RuntimeError(f"PyVRP found no feasible solution in {time_limit_s:g} s")
    routes: Routes = []
    clients_ = data.clients
    for route in result.best.routes():
        # ActivityType CLIENT ``idx`` counts clients from 0 (depots are not clients).
        nodes = [clients_[act.idx] for act in route if act.is_client()]
        routes.append((int(route.vehicle_type()), nodes))
    return routes


def solve_vroom(data: VrpData, time_limit_s: float, exploration_level: int = 5) -> Routes:
    """VROOM (pyvroom) over the instance's matrix (as durations and costs), ``exploration_level``
    5 (its maximum, VROOM's documented default is 5 for the CLI ``-x``), one thread. VROOM stops
    on its own; ``time_limit_s`` is passed as its ``timeout`` so it never runs longer."""
    from datetime import timedelta

    import vroom

    dist = _int_matrix(data)
    tw = data.time_windows
    st = data.service
    problem = vroom.Input()
    problem.set_durations_matrix("car", dist)
    problem.set_costs_matrix("car", dist)
    vehicle_group = []
    for g, group in enumerate(data.fleet):
        for _ in range(group.count):
            window = None if tw is None else vroom.TimeWindow(int(tw[0, 0]), int(tw[0, 1]))
            kwargs = {} if window is None else {"time_window": window}
            problem.add_vehicle(
                vroom.Vehicle(
                    id=len(vehicle_group),
                    start=group.depot,
                    end=group.depot,
                    capacity=[group.capacity],
                    **kwargs,
                )
            )
            vehicle_group.append(g)
    for i in data.clients:
        kwargs2: dict[str, object] = {}
        if tw is not None:
            kwargs2["time_windows"] = [vroom.TimeWindow(int(tw[i, 0]), int(tw[i, 1]))]
        if st is not None:
            kwargs2["default_service"] = int(st[i])
        problem.add_job(
            vroom.Job(
                id=i,
                location=i,
                delivery=[int(data.delivery[i])],
                pickup=[int(data.pickup[i])],
                **kwargs2,
            )
        )
    solution = problem.solve(
        exploration_level=exploration_level,
        nb_threads=1,
        timeout=timedelta(seconds=time_limit_s),
    )
    out = solution.to_dict()
    routes: Routes = []
    for route in out.get("routes", []):
        nodes = [int(step["id"]) for step in route["steps"] if step["type"] == "job"]
        routes.append((vehicle_group[int(route["vehicle"])], nodes))
    return routes
