"""A study's budget in every loop: the MIP interrupted by the stop flag and held to the time
left, the screening and the evaluation stopping, with what was complete kept.

The MIP instance below is hard on purpose (SCIP does not prove it optimal in 40 s on this
machine): the tests check that the solve came back *unproven* long before its own time limit,
so they cannot pass because the instance happened to be easy.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.connection import Connection

import numpy as np
import pytest

from engine.model import LatLng
from planning import (
    CandidateDepot,
    Day,
    Layout,
    LayoutSearch,
    LayoutStudy,
    Order,
    VehicleType,
    evaluate_layouts,
    search_layouts,
)
from planning.backends.ortools_mip import FacilityDay, solve_facility_location
from planning.budget import Budget, StoppedError
from planning.search import _screening
from tests.planning.test_layouts import options, small_study

MIP_LIMIT_S = 300.0
"""The MIP's own time limit in these tests: far beyond what they wait."""
WAIT_S = 60.0
"""Generous: what a stopped MIP may take to come back on a loaded machine."""


def hard_instance(seed: int = 5) -> tuple[list[float], np.ndarray, FacilityDay]:
    rng = np.random.default_rng(seed)
    m, n = 30, 150
    depots = rng.uniform(0, 100, (m, 2))
    orders = rng.uniform(0, 100, (n, 2))
    costs = np.linalg.norm(orders[:, None, :] - depots[None, :, :], axis=2)
    demand = rng.integers(5, 35, (n, 1)).astype(float)
    caps = rng.integers(80, 160, (m, 1)).astype(float)
    opening = rng.uniform(100, 400, m).tolist()
    return opening, caps, FacilityDay(demand, costs, np.full(n, np.nan))


def hard_study() -> LayoutStudy:
    """The hard instance as a study (geodesic travel around Helsinki)."""
    rng = np.random.default_rng(5)

    def at(x: float, y: float) -> LatLng:
        return LatLng(60.1 + y / 1000, 24.8 + x / 500)

    depots = tuple(
        CandidateDepot(
            f"D{j}",
            at(*rng.uniform(0, 100, 2)),
            capacity={"parcels": int(rng.integers(80, 160))},
            opening_cost=float(rng.uniform(100, 400)),
        )
        for j in range(30)
    )
    orders = tuple(
        Order(f"o{i}", at(*rng.uniform(0, 100, 2)), demands={"parcels": int(rng.integers(5, 35))})
        for i in range(150)
    )
    van = VehicleType("van", capacities={"parcels": 100}, fixed_cost=50.0, cost_per_kilometer=1.0)
    return LayoutStudy(
        days=(Day("monday", orders),), depots=depots, fleet=(van,), search=LayoutSearch("min_cost")
    )


def set_after(event: threading.Event, seconds: float) -> None:
    threading.Timer(seconds, event.set).start()


def test_the_stop_flag_interrupts_a_running_mip() -> None:
    opening, caps, day = hard_instance()
    stop = threading.Event()
    set_after(stop, 1.0)
    started = time.monotonic()
    result = solve_facility_location(
        opening, caps, [day], time_limit_s=MIP_LIMIT_S, should_stop=stop.is_set
    )
    took = time.monotonic() - started
    assert stop.is_set()
    assert took < WAIT_S
    assert result is None or not result.optimal  # interrupted, not solved


def test_a_mip_that_is_stopped_before_it_starts_does_not_run() -> None:
    opening, caps, day = hard_instance()
    result = solve_facility_location(
        opening, caps, [day], time_limit_s=MIP_LIMIT_S, should_stop=lambda: True
    )
    assert result is None


def test_the_screening_mip_gets_the_time_left_of_the_deadline() -> None:
    study = hard_study()
    assert study.search is not None
    budget = Budget.of(time_budget_s=2.0)
    opts = options(screening_time_limit_s=MIP_LIMIT_S, use_geodesic_distances=True)
    screening = _screening(study, study.search, None, opts, budget)
    started = time.monotonic()
    try:
        result = screening.solve(1.0)
    except StoppedError:
        result = None  # no layout found in the time left
    assert time.monotonic() - started < WAIT_S
    assert result is None or not result.optimal
    with pytest.raises(StoppedError):  # the budget is spent: no further MIP starts
        screening.solve(0.5)


def test_a_search_stopped_during_its_screening_returns_at_once() -> None:
    study = hard_study()
    stop = threading.Event()
    set_after(stop, 1.0)
    opts = options(screening_time_limit_s=MIP_LIMIT_S, use_geodesic_distances=True)
    started = time.monotonic()
    result = search_layouts(study, opts, should_stop=stop.is_set)
    assert time.monotonic() - started < WAIT_S
    assert result.evaluations == ()  # nothing was routed: the first MIP was interrupted


def test_the_evaluation_stops_inside_a_solve_and_leaves_the_incomplete_layout_out() -> None:
    """Layouts of 4 s each; a stop one second into the second one interrupts its solve: the
    result is the first layout only (the second would be complete, and kept, had its solve
    run on)."""
    layouts = tuple(Layout(f"L{j}", (f"D{j}",)) for j in range(4))
    study = small_study(orders=12, layouts=layouts)
    stop = threading.Event()
    done: list[str] = []

    def on_done(ev: object) -> None:
        done.append(ev.layout.label)  # type: ignore[attr-defined]
        set_after(stop, 1.0)

    got = evaluate_layouts(study, layouts, options(time_limit_s=4.0), on_done=on_done,
                           should_stop=stop.is_set)  # fmt: skip
    assert [ev.layout.label for ev in got] == done == ["L0"]


def test_a_deadline_ends_the_evaluation_with_the_layouts_complete() -> None:
    layouts = tuple(Layout(f"L{j}", (f"D{j}",)) for j in range(4))
    study = small_study(orders=12, layouts=layouts)
    got = evaluate_layouts(
        study, layouts, options(time_limit_s=1.0), deadline=time.monotonic() + 1.5
    )
    assert 1 <= len(got) < 4  # the deadline cut the second layout's solves short


def test_budget() -> None:
    assert not Budget().stopped()
    assert Budget().remaining(5.0) == 5.0
    late = Budget.of(time_budget_s=-1.0)
    assert late.stopped()
    assert late.remaining(5.0) == 0.0
    with pytest.raises(StoppedError):
        late.check()
    flagged = Budget(lambda: True)
    assert flagged.stopped()
    assert flagged.interrupted()
    assert not late.interrupted()
    assert Budget.of(time_budget_s=10.0, deadline=time.monotonic() + 1.0).remaining(5.0) <= 1.0


def _evaluate_in_a_daemon(conn: Connection, stop_after_first: bool) -> None:
    layouts = tuple(Layout(f"L{j}", (f"D{j}",)) for j in range(3))
    study = small_study(orders=8, layouts=layouts)
    stop = threading.Event()
    got = evaluate_layouts(
        study, layouts, options(time_limit_s=2.0 if stop_after_first else 0.5, workers=2),
        on_done=lambda ev: stop.set() if stop_after_first else None, should_stop=stop.is_set,
    )  # fmt: skip
    conn.send([ev.layout.label for ev in got])


@pytest.mark.parametrize("stop_after_first", [False, True])
def test_a_daemonic_process_evaluates_layouts_in_waves(stop_after_first: bool) -> None:
    """A server's worker is daemonic: multiprocessing forbids it a pool, so its layouts run in
    waves of forked children (two at once here); a stop after the first wave ends it."""
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_evaluate_in_a_daemon, args=(writer, stop_after_first), daemon=True
    )
    process.start()
    assert reader.poll(120), "no answer from the daemonic process"
    labels = reader.recv()
    process.join(30)
    assert process.exitcode == 0
    assert labels == (["L0", "L1"] if stop_after_first else ["L0", "L1", "L2"])
