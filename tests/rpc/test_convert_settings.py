"""rpc.convert.settings: request-level settings (timeout, search mode, label, solver)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidModelError
from engine.options import SearchMode
from rpc.convert import RequestSettings
from rpc.pb import route_optimization_service_pb2 as pb
from tests.rpc.convert_helpers import DEFAULT_SPEED, convert, dur


def test_settings_defaults() -> None:
    _, settings = convert(pb.OptimizeToursRequest())
    assert settings == RequestSettings(
        timeout_s=None,
        search_mode=SearchMode.RETURN_FAST,
        validate_only=False,
        label="",
        geodesic_meters_per_second=DEFAULT_SPEED,
        populate_polylines=False,
    )


def test_settings_set() -> None:
    request = pb.OptimizeToursRequest(
        timeout=dur(7, 250_000_000),
        search_mode=pb.OptimizeToursRequest.CONSUME_ALL_AVAILABLE_TIME,
        solving_mode=pb.OptimizeToursRequest.VALIDATE_ONLY,
        label="run-42",
        geodesic_meters_per_second=12.5,
        populate_polylines=True,
        use_geodesic_distances=True,
        solver=pb.SolverSettings(
            backend="pyvrp", solver_processes=2, random_seed=9, iteration_limit=500
        ),
    )
    _, settings = convert(request)
    assert settings == RequestSettings(
        timeout_s=7.25,
        search_mode=SearchMode.CONSUME_ALL_AVAILABLE_TIME,
        validate_only=True,
        label="run-42",
        solving_mode=pb.OptimizeToursRequest.VALIDATE_ONLY,
        geodesic_meters_per_second=12.5,
        populate_polylines=True,
        use_geodesic_distances=True,
        backend="pyvrp",
        solver_processes=2,
        random_seed=9,
        iteration_limit=500,
    )
    options = settings.solve_options(3.0, default_solver_processes=1)
    assert (options.backend, options.solver_processes, options.seed, options.iteration_limit) == (
        "pyvrp",
        2,
        9,
        500,
    )
    assert settings.solve_options(3.0, 1).time_limit_s == 3.0


def test_solver_settings_default_to_the_server() -> None:
    _, settings = convert(pb.OptimizeToursRequest())
    options = settings.solve_options(5.0, default_solver_processes=3)
    assert (options.backend, options.solver_processes, options.iteration_limit) == ("auto", 3, None)


@pytest.mark.parametrize(
    ("solver", "path"),
    [
        (pb.SolverSettings(backend="gurobi"), "solver.backend"),
        (pb.SolverSettings(solver_processes=-1), "solver.solver_processes"),
        (pb.SolverSettings(random_seed=-5), "solver.random_seed"),
        (pb.SolverSettings(iteration_limit=-1), "solver.iteration_limit"),
    ],
)
def test_bad_solver_settings_name_the_field(solver: pb.SolverSettings, path: str) -> None:
    with pytest.raises(InvalidModelError) as info:
        convert(pb.OptimizeToursRequest(solver=solver))
    assert [v.field for v in info.value.violations] == [path]


def test_zero_timeout_is_rejected() -> None:
    with pytest.raises(InvalidModelError) as info:
        convert(pb.OptimizeToursRequest(timeout=dur(0)))
    assert [v.field for v in info.value.violations] == ["timeout"]


def test_transition_polylines_draw_the_routes() -> None:
    _, settings = convert(pb.OptimizeToursRequest(populate_transition_polylines=True))
    assert settings.populate_polylines
