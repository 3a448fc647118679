"""Smoke run of the quality benchmark: two tiny instances, 1 s each, routeopt only, inline
(no Dask). The peers (pyvrp, pyvroom) are optional benchmark dependencies and not needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from benchmarks import quality
from benchmarks.instances import (
    instance_to_request,
    read_vrp,
    to_instance,
    verify_routes,
)
from rpc.convert import request_to_engine

if TYPE_CHECKING:
    from benchmarks.variant_check import Schedule

pytest.importorskip("vrplib")

CVRP = """NAME : tiny-n6-k2
TYPE : CVRP
DIMENSION : 7
EDGE_WEIGHT_TYPE : EUC_2D
CAPACITY : 10
NODE_COORD_SECTION
1 50 50
2 10 10
3 12 14
4 15 9
5 90 90
6 85 88
7 88 95
DEMAND_SECTION
1 0
2 3
3 4
4 3
5 5
6 2
7 3
DEPOT_SECTION
1
-1
EOF
"""

SOLOMON = """NAME : TINY1
TYPE : VRPTW
DIMENSION : 6
VEHICLES : 3
CAPACITY : 20
SERVICE_TIME : 5
EDGE_WEIGHT_TYPE : EUC_2D
NODE_COORD_SECTION
1 40 50
2 45 68
3 45 70
4 42 66
5 20 30
6 25 35
DEMAND_SECTION
1 0
2 10
3 5
4 5
5 10
6 10
TIME_WINDOW_SECTION
1 0 1000
2 0 200
3 20 220
4 0 300
5 100 400
6 0 500
DEPOT_SECTION
1
-1
EOF
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "vrplib" / "CVRP").mkdir(parents=True)
    (tmp_path / "vrplib" / "CVRP" / "tiny-n6-k2.vrp").write_text(CVRP)
    (tmp_path / "vrplib" / "CVRP" / "tiny-n6-k2.sol").write_text(
        "Route #1: 1 2 3\nRoute #2: 4 5 6\nCost 250\n"
    )
    (tmp_path / "solomon").mkdir()
    (tmp_path / "solomon" / "TINY1.vrp").write_text(SOLOMON)
    (tmp_path / "solomon" / "bks.csv").write_text("instance,vehicles,distance\nTINY1,2,100.0\n")
    return tmp_path


@pytest.mark.parametrize(("set_name", "name"), [("CVRP", "tiny-n6-k2"), ("SOLOMON", "TINY1")])
def test_quality_smoke(data_dir: Path, tmp_path: Path, set_name: str, name: str) -> None:
    out = tmp_path / f"out-{set_name}"
    argv = [
        "--set",
        set_name,
        "--time-limit",
        "1",
        "--solvers",
        "routeopt",
        "--workers",
        "0",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
    ]
    assert quality.main(argv) == 0
    for f in ("results.csv", "results.json", "results.md", "gap.png"):
        assert (out / f).stat().st_size > 0, f
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["instance"] for r in rows] == [name]
    (row,) = rows
    assert row["status"] == "ok", row["problems"]
    assert row["feasible"] is True
    assert row["checked_by"] == "tests.checker+verify_routes"
    assert row["gap_pct"] is not None


def test_reader_conventions_and_request(data_dir: Path) -> None:
    data = read_vrp(data_dir / "vrplib" / "CVRP" / "tiny-n6-k2.vrp", "CVRP")
    assert data.dist[1, 2] == 4  # sqrt(4 + 16) = 4.47 -> nearest integer 4
    verified = verify_routes(data, [(0, [1, 2, 3]), (0, [4, 5, 6])])
    assert verified.feasible
    assert verified.cost == data.bks == 250
    bad = verify_routes(data, [(0, [1, 2, 3, 4])])
    assert not bad.feasible  # capacity exceeded and clients missing
    tw = read_vrp(data_dir / "solomon" / "TINY1.vrp", "SOLOMON")
    assert tw.dist[0, 1] == 186  # sqrt(25 + 324) = 18.68 -> DIMACS 18.6, scaled by 10
    instance = to_instance(tw)
    req = instance_to_request(instance, timeout_s=1)
    model, _ = request_to_engine(req, default_geodesic_meters_per_second=10)  # type: ignore[arg-type]
    assert model.shipments == instance.model.shipments
    assert model.vehicles == instance.model.vehicles
    original = instance.model.duration_distance_matrices[0]
    assert (model.duration_distance_matrices[0].distances_m == original.distances_m).all()
    assert (model.duration_distance_matrices[0].durations_s == original.durations_s).all()


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SOL_BKS_SETS = ("CVRP", "GH1000", "HFVRP", "MDVRPTW", "PCVRPTW", "VRPB")


@pytest.mark.parametrize("set_name", SOL_BKS_SETS)
def test_best_known_costs_are_reproduced_by_their_routes(set_name: str) -> None:
    """For the sets whose best-known cost comes from the ``.sol`` file, the published routes,
    verified under the reader's convention, cost what the reader says the BKS is (to the cent):
    a gap then means what the literature means. (Solomon and GH200 take their BKS from bks.csv,
    distance-only, while their .sol routes are the vehicles-first SINTEF ones.)"""
    from benchmarks.instances import SETS, bks_check

    folder = SHARED / SETS[set_name].folder
    if not folder.is_dir():
        pytest.skip(f"{folder} not present (the shared benchmark data is not on this machine)")
    checked = 0
    for path in sorted(folder.glob("*.vrp")):
        if not path.with_suffix(".sol").exists():
            continue
        bks, verified = bks_check(path, set_name)
        assert bks is not None, path.name
        assert verified is not None, path.name
        assert verified.feasible, (path.name, verified)
        assert verified.cost == pytest.approx(bks, rel=2e-6), path.name
        checked += 1
    assert checked > 0


def test_load_requests_on_roads_stay_on_the_servers_network() -> None:
    """The load benchmark draws stops from the network the server loads (the embedded extract
    here), so none is rejected as off-road; the requests convert cleanly."""
    import random

    import numpy as np

    from benchmarks.load import Sites, make_request
    from engine.roads import RoadSpec, embedded_extract, load_roads

    sites = Sites.from_roads("embedded", jitter_m=30.0)
    roads = load_roads(RoadSpec(str(embedded_extract())))
    rng = random.Random(5)
    req = make_request(rng, 150, 1.0, sites)
    lat = [v.arrival_location.latitude for s in req.model.shipments for v in s.deliveries]
    lng = [v.arrival_location.longitude for s in req.model.shipments for v in s.deliveries]
    lat.append(req.model.vehicles[0].start_location.latitude)
    lng.append(req.model.vehicles[0].start_location.longitude)
    snaps = roads.snap(np.array(lat), np.array(lng))
    assert not snaps.too_far.any()
    assert float(np.max(snaps.distance_m)) <= 30.0 * 1.5
    model, _ = request_to_engine(req, default_geodesic_meters_per_second=10)  # type: ignore[arg-type]
    assert len(model.shipments) == 150


def test_variant_benchmark_verifies_schedules(tmp_path: Path) -> None:
    """benchmarks.variants: a tiny Li & Lim file read as pickup-and-delivery shipments, every
    variant rule applied, routeopt's answer accepted by the benchmark's own verifier, and the
    verifier catching a visit moved before it can be reached, a missing break, a vehicle the
    shipment may not use and a delivery before its pickup."""
    import dataclasses

    from benchmarks.variant_check import verify
    from benchmarks.variant_rules import VARIANTS, variant_model
    from benchmarks.variants import read_lilim, solve_routeopt, solve_vroom

    instance = tmp_path / "lc999.txt"
    instance.write_text(
        "3 50 1\n"
        "0 0 0 0 0 1000 0 0 0\n"
        "1 10 0 10 0 400 5 0 2\n"
        "2 20 0 -10 0 600 5 1 0\n"
        "3 0 10 15 0 400 5 0 4\n"
        "4 0 20 -15 0 600 5 3 0\n"
        "5 -10 0 5 0 500 5 0 6\n"
        "6 -10 -10 -5 0 700 5 5 0\n"
    )
    case = read_lilim(instance)
    assert len(case.model.shipments) == 3
    for variant in VARIANTS:
        variant_model(case.model, variant)  # every rule applies to pairs too
    model = variant_model(case.model, "breaks")
    schedules = solve_routeopt(model, "routeopt-ortools-p1", 1.0)
    checked = verify(model, schedules)
    assert checked.problems == []
    assert checked.served == 3
    import importlib.util

    if importlib.util.find_spec("vroom") is not None:  # the bench extra's peer
        vroom_checked = verify(model, solve_vroom(model, 1.0, case.scale), slack=case.scale * 1e-3)
        assert vroom_checked.problems == []
        assert vroom_checked.served == 3
    first = schedules[0]
    visit = next(e for e in first.events if e.kind == "visit")
    shift = 50 * case.scale
    early = dataclasses.replace(first, events=[
        dataclasses.replace(e, start=e.start - shift) if e is visit else e for e in first.events
    ])  # fmt: skip
    assert any("before it can be reached" in p for p in verify(model, [early]).problems)
    no_break = dataclasses.replace(first, events=[e for e in first.events if e.kind != "break"])
    assert any("breaks taken" in p for p in verify(model, [no_break]).problems)
    barred = dataclasses.replace(
        model,
        shipments=tuple(
            dataclasses.replace(s, allowed_vehicle_indices=(first.vehicle + 1,))
            for s in model.shipments
        ),
    )
    assert any("not allowed" in p for p in verify(barred, [first]).problems)
    swapped = dataclasses.replace(
        first,
        events=[
            dataclasses.replace(e, is_pickup=not e.is_pickup) if e.kind == "visit" else e
            for e in first.events
        ],
    )
    assert verify(model, [swapped]).problems


TWO_PAIRS = (
    "3 50 1\n"
    "0 0 0 0 0 1000 0 0 0\n"
    "1 10 0 10 0 900 5 0 2\n"
    "2 20 0 -10 0 900 5 1 0\n"
    "3 0 10 15 0 900 5 0 4\n"
    "4 0 20 -15 0 900 5 3 0\n"
)
"""A Li & Lim file's header, depot and first two pairs (wide windows); tests add a third."""


def _break_moved(schedule: Schedule, start: float) -> Schedule:
    """``schedule`` with its breaks starting at ``start``."""
    import dataclasses

    return dataclasses.replace(
        schedule,
        events=[
            dataclasses.replace(e, start=start) if e.kind == "break" else e for e in schedule.events
        ],
    )


def test_variant_benchmark_shifts_puts_every_second_vehicle_on_an_earlier_break(
    tmp_path: Path,
) -> None:
    """The ``shifts`` variant: odd vehicles' break windows end where the others' begin;
    routeopt's answer on an odd vehicle passes the verifier, which catches its break taken in
    the even vehicles' window instead."""
    import dataclasses

    from benchmarks.variant_check import verify
    from benchmarks.variant_rules import variant_model
    from benchmarks.variants import read_lilim, solve_routeopt

    instance = tmp_path / "lc997.txt"
    instance.write_text(TWO_PAIRS)
    case = read_lilim(instance)
    breaks = variant_model(case.model, "breaks")
    model = variant_model(case.model, "shifts")
    (even,) = breaks.vehicles[1].break_requests
    (odd,) = model.vehicles[1].break_requests
    assert model.vehicles[0].break_requests == breaks.vehicles[0].break_requests
    assert odd.latest_start_time == even.earliest_start_time
    width = even.latest_start_time - even.earliest_start_time
    assert odd.earliest_start_time == pytest.approx(even.earliest_start_time - width)
    assert odd.min_duration_s == even.min_duration_s
    on_odd = dataclasses.replace(
        model,
        shipments=tuple(
            dataclasses.replace(s, allowed_vehicle_indices=(1,)) for s in model.shipments
        ),
    )
    schedules = solve_routeopt(on_odd, "routeopt-p1", 1.0)
    checked = verify(on_odd, schedules)
    assert checked.problems == []
    assert checked.served == 2
    (route,) = [s for s in schedules if s.events]
    assert route.vehicle == 1
    late = _break_moved(route, even.latest_start_time)
    assert any("outside its start window" in p for p in verify(on_odd, [late]).problems)


def test_variant_benchmark_verifies_driver_hours_and_types(tmp_path: Path) -> None:
    """The ``hours`` and ``types`` variants: routeopt's answer passes the benchmark's verifier,
    which catches a route without its break (a stretch longer than the frequency rule allows)
    and a route performing two incompatible types; VROOM is said not to express either."""
    import dataclasses

    from benchmarks.variant_check import verify
    from benchmarks.variant_rules import variant_model
    from benchmarks.variants import UnsupportedError, read_lilim, solve_routeopt, solve_vroom

    instance = tmp_path / "lc998.txt"
    instance.write_text(TWO_PAIRS + "5 -10 0 5 0 100 5 0 6\n6 -10 -10 -5 900 990 5 5 0\n")
    case = read_lilim(instance)
    hours = variant_model(case.model, "hours")
    rule = hours.vehicles[0].break_frequency_constraints[0]
    assert rule.max_inter_break_duration_s == 0.5 * case.model.global_end_time
    schedules = solve_routeopt(hours, "routeopt-p1", 1.0)
    assert verify(hours, schedules).problems == []
    (late,) = [s for s in schedules if any(e.shipment == 2 for e in s.events)]
    assert late.end - late.start > rule.max_inter_break_duration_s  # the rule binds
    no_break = dataclasses.replace(late, events=[e for e in late.events if e.kind != "break"])
    assert any("without a break" in p for p in verify(hours, [no_break]).problems)
    moved = _break_moved(late, late.start)
    assert any("without a break" in p for p in verify(hours, [moved]).problems)

    types = variant_model(case.model, "types")
    assert [s.shipment_type for s in types.shipments] == ["chilled", "", ""]
    typed = dataclasses.replace(
        types,
        shipments=(
            types.shipments[0],
            dataclasses.replace(types.shipments[1], shipment_type="hazmat"),
            types.shipments[2],
        ),
    )
    schedules = solve_routeopt(typed, "routeopt-p1", 1.0)
    checked = verify(typed, schedules)
    assert checked.problems == []
    assert checked.served == 3
    assert not any({0, 1} <= {e.shipment for e in s.events} for s in schedules)
    together = dataclasses.replace(
        schedules[0], events=[e for s in schedules for e in s.events if e.kind == "visit"]
    )
    assert any("incompatible types" in p for p in verify(typed, [together]).problems)
    import importlib.util

    if importlib.util.find_spec("vroom") is not None:  # the bench extra's peer
        for model in (hours, typed):
            with pytest.raises(UnsupportedError):
                solve_vroom(model, 1.0, case.scale)


def test_variant_benchmark_verifies_committed_stops(tmp_path: Path) -> None:
    """The ``committed`` variant: a deterministic morning plan injected with the first third of
    each route committed; routeopt's answer keeps those visits first, in order, on their
    vehicle (the benchmark's verifier agrees), the verifier catches a committed visit moved
    behind another, and VROOM is said not to express it."""
    import dataclasses

    from benchmarks.variant_check import verify
    from benchmarks.variant_rules import committed_visits, variant_model
    from benchmarks.variants import UnsupportedError, read_lilim, solve_routeopt, solve_vroom

    instance = tmp_path / "lc997.txt"
    instance.write_text(TWO_PAIRS + "5 -10 0 5 0 900 5 0 6\n6 -10 -10 -5 0 900 5 5 0\n")
    case = read_lilim(instance)
    model = variant_model(case.model, "committed")
    again = variant_model(case.model, "committed")
    assert model.injected_solution_constraint == again.injected_solution_constraint  # same plan
    kept = committed_visits(model)
    assert [len(v) for v in kept.values()] == [2]  # one route of 6 visits: 2 kept
    schedules = solve_routeopt(model, "routeopt-p1", 1.0)
    checked = verify(model, schedules)
    assert checked.problems == []
    assert checked.served == 3
    (vehicle, first) = next(iter(kept.items()))
    (sched,) = [s for s in schedules if s.vehicle == vehicle]
    visits = [e for e in sched.events if e.kind == "visit"]
    assert [(e.shipment, e.is_pickup, e.request) for e in visits[: len(first)]] == first
    # The same visits with the first committed one moved behind the next: times kept, so
    # only the committed order is wrong.
    a, b = visits[0], visits[1]
    moved = dataclasses.replace(
        sched,
        events=[
            dataclasses.replace(b, start=a.start)
            if e is a
            else dataclasses.replace(a, start=b.start)
            if e is b
            else e
            for e in sched.events
        ],
    )
    assert any("committed to" in p for p in verify(model, [moved]).problems)
    free = dataclasses.replace(model, injected_solution_constraint=None)
    assert not any("committed to" in p for p in verify(free, [moved]).problems)
    import importlib.util

    if importlib.util.find_spec("vroom") is not None:  # the bench extra's peer
        with pytest.raises(UnsupportedError):
            solve_vroom(model, 1.0, case.scale)
