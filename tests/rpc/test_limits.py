"""Request-size limits (:mod:`rpc.limits`): each limit exceeded is INVALID_ARGUMENT naming the
field and the limit, found before anything proportional to the claimed size is allocated."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import FieldViolation, InvalidModelError
from rpc.config import parse_args
from rpc.convert import convert_or_validate, request_to_engine
from rpc.limits import Limits, parse_limit, request_size_violations
from rpc.pb import route_optimization_service_pb2 as pb

SPEED = 10.0


def small_request() -> pb.OptimizeToursRequest:
    request = pb.OptimizeToursRequest()
    for i in range(3):
        visit = request.model.shipments.add().deliveries.add()
        visit.arrival_location.latitude = 60.17 + 0.01 * i
        visit.arrival_location.longitude = 24.94
    vehicle = request.model.vehicles.add()
    vehicle.start_location.latitude = 60.17
    vehicle.start_location.longitude = 24.93
    return request


def violations(
    request: pb.OptimizeToursRequest, limits: Limits, *, synchronous: bool = True
) -> list[FieldViolation]:
    with pytest.raises(InvalidModelError) as caught:
        request_to_engine(
            request,
            default_geodesic_meters_per_second=SPEED,
            limits=limits,
            synchronous=synchronous,
        )
    return list(caught.value.violations)


def only(found: list[FieldViolation], field: str, *words: str) -> None:
    assert [v.field for v in found] == [field], found
    for word in words:
        assert word in found[0].description, found[0]


def add_windows(request: pb.OptimizeToursRequest, n: int) -> None:
    visit = request.model.shipments[1].deliveries[0]
    for _ in range(n):
        visit.time_windows.add()


def add_breaks(request: pb.OptimizeToursRequest, n: int) -> None:
    for _ in range(n):
        request.model.vehicles[0].break_rule.break_requests.add()


def add_visits(request: pb.OptimizeToursRequest, n: int) -> None:
    shipment = request.model.shipments[2]
    for _ in range(n):
        shipment.deliveries.add().CopyFrom(shipment.deliveries[0])


CASES: list[tuple[str, Limits, Callable[[pb.OptimizeToursRequest], None], str]] = [
    ("shipments", Limits(shipments=2), lambda r: None, "model.shipments"),
    (
        "vehicles",
        Limits(vehicles=1),
        lambda r: r.model.vehicles.add().CopyFrom(r.model.vehicles[0]),
        "model.vehicles",
    ),
    (
        "visit_requests",
        Limits(visit_requests=2),
        lambda r: add_visits(r, 2),
        "model.shipments[2].deliveries",
    ),
    ("visits", Limits(visits=4), lambda r: add_visits(r, 2), "model.shipments"),
    (
        "time_windows",
        Limits(time_windows=2),
        lambda r: add_windows(r, 3),
        "model.shipments[1].deliveries[0].time_windows",
    ),
    (
        "break_requests",
        Limits(break_requests=1),
        lambda r: add_breaks(r, 2),
        "model.vehicles[0].break_rule.break_requests",
    ),
    (
        "transition_attributes",
        Limits(transition_attributes=1),
        lambda r: r.model.transition_attributes.extend(
            [pb.TransitionAttributes(src_tag="a", dst_tag="b")] * 2
        ),
        "model.transition_attributes",
    ),
    (
        "matrix_tags",
        Limits(matrix_tags=5),
        lambda r: r.model.duration_distance_matrix_dst_tags.extend(str(k) for k in range(6)),
        "model.duration_distance_matrix_dst_tags",
    ),
]


@pytest.mark.parametrize(("name", "limits", "grow", "field"), CASES, ids=[c[0] for c in CASES])
def test_each_size_limit_names_the_field_and_the_limit(
    name: str, limits: Limits, grow: Callable[[pb.OptimizeToursRequest], None], field: str
) -> None:
    request = small_request()
    grow(request)
    only(violations(request, limits), field, f"--limit {name}=N")


def test_a_request_within_the_limits_converts() -> None:
    model, _ = request_to_engine(
        small_request(), default_geodesic_meters_per_second=SPEED, limits=Limits(shipments=3)
    )
    assert len(model.shipments) == 3


def test_matrix_cells_count_every_matrix() -> None:
    request = small_request()
    m = request.model
    m.duration_distance_matrix_src_tags.extend(["a", "b", "c"])
    m.duration_distance_matrix_dst_tags.extend(["a", "b", "c"])
    for tag in ("x", "y"):
        m.duration_distance_matrices.add(vehicle_start_tag=tag)
    only(
        violations(request, Limits(matrix_cells=17)),
        "model.duration_distance_matrices",
        "--limit matrix_cells=N",
        "2 matrices",
    )


@pytest.mark.parametrize(("synchronous", "flag"), [(True, "sync"), (False, "long_running")])
def test_timeout_caps_differ_for_synchronous_and_long_running_calls(
    synchronous: bool, flag: str
) -> None:
    limits = Limits(sync_timeout_s=10, long_running_timeout_s=100)
    request = small_request()
    request.timeout.seconds = 50
    if synchronous:
        only(violations(request, limits, synchronous=True), "timeout", f"{flag}_timeout_s")
    else:
        request_to_engine(
            request, default_geodesic_meters_per_second=SPEED, limits=limits, synchronous=False
        )
        request.timeout.seconds = 101
        only(violations(request, limits, synchronous=False), "timeout", f"{flag}_timeout_s")


def test_a_timeout_beyond_what_threading_can_wait_is_invalid() -> None:
    request = small_request()
    request.timeout.seconds = 10**10  # above threading.TIMEOUT_MAX: used to be INTERNAL
    only(violations(request, Limits()), "timeout", "at most 3600 s")


def test_validate_only_does_not_bypass_the_size_limits() -> None:
    request = small_request()
    request.solving_mode = pb.OptimizeToursRequest.VALIDATE_ONLY
    with pytest.raises(InvalidModelError) as caught:
        convert_or_validate(
            request, default_geodesic_meters_per_second=SPEED, limits=Limits(shipments=1)
        )
    assert caught.value.violations[0].field == "model.shipments"


def test_a_million_tags_are_refused_without_allocating_their_matrices() -> None:
    """1M empty tags each way used to allocate two 1M × 1M matrices before the shape check."""
    request = small_request()
    m = request.model
    m.duration_distance_matrix_src_tags.extend([""] * 1_000_000)
    m.duration_distance_matrix_dst_tags.extend([""] * 1_000_000)
    m.duration_distance_matrices.add()
    tracemalloc.start()
    try:
        found = violations(request, Limits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert {v.field for v in found} == {
        "model.duration_distance_matrix_src_tags",
        "model.duration_distance_matrix_dst_tags",
    }
    assert peak < 1_000_000, peak  # bytes: nothing sized by the tags


def test_tags_within_the_limit_but_no_rows_allocate_nothing() -> None:
    """Within the tag limits, a matrix whose rows do not match the tags is not allocated."""
    request = small_request()
    m = request.model
    m.duration_distance_matrix_src_tags.extend(str(k) for k in range(5000))
    m.duration_distance_matrix_dst_tags.extend(str(k) for k in range(5000))
    m.duration_distance_matrices.add()
    tracemalloc.start()
    try:
        found = violations(request, Limits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "model.duration_distance_matrices[0].rows" in {v.field for v in found}
    assert peak < 20_000_000, peak  # a 5000 × 5000 matrix pair would be 400 MB


def test_a_million_shipments_are_refused_on_their_count_alone() -> None:
    request = pb.OptimizeToursRequest()
    request.model.shipments.extend([pb.Shipment()] * 100_000)
    found = request_size_violations(request, Limits(), synchronous=True)
    assert [v.field for v in found] == ["model.shipments"]
    assert "100,000" in found[0].description


def test_limit_flags() -> None:
    config = parse_args(
        ["--limit", "shipments=20", "--limit", "sync-timeout-s=10.5", "--default-timeout", "5"]
    )
    assert config.limits.shipments == 20
    assert config.limits.sync_timeout_s == 10.5
    assert config.limits.vehicles == Limits().vehicles
    for bad in ("nothing=1", "shipments", "shipments=0", "shipments=x", "streams=-1"):
        with pytest.raises(ValueError, match=r"shipments|streams|NAME=VALUE"):
            parse_limit(bad)


def test_compute_matrix_cap_fits_the_message_size() -> None:
    limits = Limits(compute_matrix_cells=10**9)
    mib = 1024 * 1024
    rows = limits.compute_matrix_cap(pb.ComputeMatrixRequest.ROWS, 64 * mib, points=2000)
    packed = limits.compute_matrix_cap(pb.ComputeMatrixRequest.PACKED, 64 * mib, points=2000)
    assert rows * 24 + 2000 * 48 <= 64 * mib
    assert packed * 16 + 2000 * 48 <= 64 * mib
    assert packed > rows > 2_000_000
    assert Limits().compute_matrix_cap(pb.ComputeMatrixRequest.PACKED, 1024 * mib) == 4_000_000


def test_layout_study_numbers_are_bounded() -> None:
    from rpc.layouts import request_to_study
    from tests.rpc.test_layouts import study_request

    request = study_request()
    study = request.study
    study.fleet[0].count = 10**9  # a billion vehicles in every day's model
    study.fleet[0].fixed_cost = 1e300
    study.depots[1].opening_cost = float("nan")
    study.depots[2].capacity["parcels"] = 2**62
    with pytest.raises(InvalidModelError) as caught:
        request_to_study(request, default_geodesic_meters_per_second=SPEED)
    fields = {v.field for v in caught.value.violations}
    assert {
        "study.fleet[0].count",
        "study.fleet[0].fixed_cost",
        "study.depots[1].opening_cost",
        "study.depots[2].capacity.parcels",
    } <= fields, fields
    request_to_study(study_request(), default_geodesic_meters_per_second=SPEED)  # valid


def test_compute_matrix_refuses_too_many_cells_before_reading_the_points() -> None:
    from engine.roads import RoadContext
    from rpc.matrix import compute_matrix

    request = pb.ComputeMatrixRequest()
    request.sources.extend([pb.ComputeMatrixRequest().sources.add()] * 3000)
    request.destinations.extend(list(request.sources))
    tracemalloc.start()
    try:
        with pytest.raises(InvalidModelError) as caught:
            compute_matrix(request, RoadContext.__new__(RoadContext), max_cells=4_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    only(list(caught.value.violations), "destinations", "3,000 × 3,000", "4,000,000")
    assert peak < 100_000, peak  # no coordinate array, no road lookup


def test_the_default_timeout_fits_the_synchronous_cap() -> None:
    assert parse_args(["--default-timeout", "60", "--limit", "sync_timeout_s=60"])
    with pytest.raises(SystemExit):
        parse_args(["--default-timeout", "61", "--limit", "sync_timeout_s=60"])


def test_batch_limits_count_requests_and_the_bytes_read_from_model_configs(
    tmp_path: Path,
) -> None:
    from google.protobuf import json_format

    from rpc.google.storage import Storage
    from rpc.operations.manager import JobManager
    from rpc.operations.store import JobStore
    from tests.rpc.secured import NoExecutor

    root = tmp_path / "gcs"
    (root / "bucket").mkdir(parents=True)
    item = small_request()
    item.label = "x" * 700_000  # 0.7 MiB a file
    for name in ("a", "b"):
        (root / "bucket" / f"{name}.json").write_text(json_format.MessageToJson(item))
    store = JobStore(str(tmp_path / "data"))
    jobs = JobManager(
        store,
        NoExecutor(),  # type: ignore[arg-type]
        default_timeout_s=5.0,
        default_geodesic_meters_per_second=SPEED,
        storage=Storage(str(root)),
        limits=Limits(batch_requests=3, batch_mb=1),
    )
    try:
        batch = pb.BatchOptimizeToursRequest()
        for name in ("a", "b"):
            config = batch.model_configs.add()
            config.input_config.gcs_source.uri = f"gs://bucket/{name}.json"
            config.input_config.data_format = pb.JSON
            config.output_config.gcs_destination.uri = f"gs://bucket/{name}-out.json"
            config.output_config.data_format = pb.JSON
        with pytest.raises(InvalidModelError) as caught:
            jobs.submit_batch(batch)
        only(list(caught.value.violations), "model_configs[1]", "--limit batch_mb=N")
        del batch.model_configs[1]
        assert jobs.submit_batch(batch).name  # one file fits
        many = pb.BatchOptimizeToursRequest()
        many.requests.extend([small_request()] * 4)
        with pytest.raises(InvalidModelError) as caught:
            jobs.submit_batch(many)
        only(list(caught.value.violations), "requests", "--limit batch_requests=N")
    finally:
        store.close()


def test_layout_study_sizes_are_limited(tmp_path: Path) -> None:
    from rpc.operations.manager import JobManager
    from rpc.operations.store import JobStore
    from tests.rpc.secured import NoExecutor
    from tests.rpc.test_layouts import study_request

    store = JobStore(str(tmp_path / "data"))
    jobs = JobManager(
        store,
        NoExecutor(),  # type: ignore[arg-type]
        default_timeout_s=5.0,
        default_geodesic_meters_per_second=SPEED,
        limits=Limits(layout_depots=2, shipments=9, layout_days=1, layouts=1),
    )
    try:
        request = study_request(orders=10)  # 3 depots, 1 day of 10 orders, 2 layouts
        request.study.days.add().CopyFrom(request.study.days[0])
        with pytest.raises(InvalidModelError) as caught:
            jobs.submit_layouts(request)
        assert {v.field for v in caught.value.violations} == {
            "study.depots",
            "study.days",
            "study.layouts",
        }
        del request.study.days[1]
        with pytest.raises(InvalidModelError) as caught:
            jobs.submit_layouts(request)
        assert "study.days[0].orders" in {v.field for v in caught.value.violations}
    finally:
        store.close()
