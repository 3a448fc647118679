"""EvaluateDepotLayouts end to end: a real server subprocess (geodesic travel), the
long-running operation, validation with field paths, cancellation, and the CLI.

Every route of every layout in a response is rebuilt as its engine model and verified by the
independent checker (tests/checker.py); depot loads are recomputed against the capacities.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.longrunning import operations_pb2
from google.protobuf import json_format

import cli
from planning import build_day_model
from rpc.layouts import request_to_study
from rpc.pb import route_optimization_service_pb2 as pb
from tests.checker import check_solution
from tests.rpc.test_jobs_e2e import Client as JobsClient
from tests.rpc.test_server_e2e import ServerProcess, bad_request_fields, response_to_solution

SPEED = 8.0


def study_request(
    *, orders: int = 10, layout_timeout_s: float = 0.5, search: bool = True, seed: int = 3
) -> pb.EvaluateDepotLayoutsRequest:
    rng = np.random.default_rng(seed)
    request = pb.EvaluateDepotLayoutsRequest(label="rpc-study", geodesic_meters_per_second=SPEED)
    request.layout_timeout.FromNanoseconds(int(layout_timeout_s * 1e9))
    study = request.study
    for j, (lat, lng, cap, cost) in enumerate(
        [(60.17, 24.93, 12, 20.0), (60.19, 24.96, 30, 35.0), (60.16, 24.97, 30, 25.0)]
    ):
        depot = study.depots.add(label=f"D{j}", opening_cost=cost)
        depot.location.latitude, depot.location.longitude = lat, lng
        depot.capacity["parcels"] = cap
        depot.opens_at.FromSeconds(6 * 3600)
        depot.closes_at.FromSeconds(20 * 3600)
    van = study.fleet.add(label="van", fixed_cost=30.0, cost_per_kilometer=1.0, count=4)
    van.capacities["parcels"] = 8
    day = study.days.add(label="monday")
    day.start_time.FromSeconds(1_750_000_000 - 1_750_000_000 % 86400)
    for i in range(orders):
        order = day.orders.add(label=f"o{i}")
        order.location.latitude = 60.16 + rng.uniform(0, 0.03)
        order.location.longitude = 24.93 + rng.uniform(0, 0.04)
        order.demands["parcels"] = int(rng.integers(1, 4))
        order.service_duration.FromSeconds(120)
    study.layouts.add(label="west", depots=["D0"])
    study.layouts.add(label="west+north", depots=["D0", "D1"])
    if search:
        study.search.mode = pb.LayoutSearch.AT_MOST
        study.search.k = 2
    request.candidates = 2
    return request


def check_layouts_response(
    request: pb.EvaluateDepotLayoutsRequest, response: pb.EvaluateDepotLayoutsResponse
) -> None:
    """Rebuild every routed model, check its solution, recompute loads and costs."""
    req = request_to_study(request, default_geodesic_meters_per_second=SPEED)
    study = req.study
    index = study.depot_index()
    costs = [r.kpis.total_cost for r in response.layouts]
    feasible = [r for r in response.layouts if r.capacity_respected]
    assert [r.kpis.total_cost for r in feasible] == sorted(r.kpis.total_cost for r in feasible)
    assert costs
    for result in response.layouts:
        opened = set(result.layout.depots)
        routing = 0.0
        loads: dict[str, int] = {}
        for part in result.routes:
            day = study.days[part.day]
            model, vehicle_depot = build_day_model(
                study, day, [index[d] for d in part.depots], list(part.order_indices)
            )
            solution = response_to_solution(part.response)
            check_solution(model, solution, geodesic_meters_per_second=SPEED)
            routing += solution.metrics.total_cost
            for route in solution.routes:
                assert vehicle_depot[route.vehicle_index] in opened
                for visit in route.visits:
                    order = day.orders[part.order_indices[visit.shipment_index]]
                    depot = vehicle_depot[route.vehicle_index]
                    loads[depot] = loads.get(depot, 0) + order.demands["parcels"]
        within = all(
            load <= study.depots[index[depot]].capacity["parcels"] for depot, load in loads.items()
        )
        assert result.capacity_respected == within
        opening = sum(study.depots[index[d]].opening_cost for d in opened)
        assert result.kpis.total_cost == pytest.approx(opening + routing)
        assert result.kpis.orders_unserved == 0


class Client(JobsClient):
    """The job-test client, with a longer default wait (a layout study routes several layouts)."""

    def wait(self, name: str, timeout_s: float = 60.0) -> operations_pb2.Operation:
        return super().wait(name, timeout_s)

    def metadata(self, name: str) -> pb.EvaluateDepotLayoutsMetadata:
        operation = self.ops.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=5)
        md = pb.EvaluateDepotLayoutsMetadata()
        assert operation.metadata.Unpack(md)
        return md


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    log = tmp_path_factory.mktemp("layouts") / "server.log"
    srv = ServerProcess(log, "--osm", "none", "--workers", "2")
    yield Client(srv)
    assert srv.terminate() == 0, srv.log()


def test_layouts_operation_compares_and_searches(server: Client) -> None:
    request = study_request()
    operation = server.stub.EvaluateDepotLayouts(request, timeout=10)
    assert operation.name.startswith("operations/")
    done = server.wait(operation.name)
    assert done.WhichOneof("result") == "response", done
    response = pb.EvaluateDepotLayoutsResponse()
    assert done.response.Unpack(response)
    labels = {r.layout.label for r in response.layouts}
    assert {"west", "west+north"} <= labels
    assert len(response.screened) >= 1
    assert response.request_label == "rpc-study"
    check_layouts_response(request, response)
    # D0 alone cannot ship the day's parcels (capacity 12 < demand): reported, not hidden.
    west = next(r for r in response.layouts if r.layout.label == "west")
    demand = sum(o.demands["parcels"] for o in request.study.days[0].orders)
    assert west.capacity_respected == (demand <= 12)
    md = pb.EvaluateDepotLayoutsMetadata()
    assert done.metadata.Unpack(md)
    assert md.state == pb.SUCCEEDED
    assert md.layouts_done == len(response.layouts)
    assert md.best_layout == response.layouts[0].layout.label
    assert md.best_cost == pytest.approx(response.layouts[0].kpis.total_cost)
    listed = server.ops.ListOperations(
        operations_pb2.ListOperationsRequest(filter="kind=layouts"), timeout=5
    )
    assert operation.name in {op.name for op in listed.operations}


def test_invalid_study_names_every_field(server: Client) -> None:
    request = study_request(search=False)
    request.study.days[0].orders[2].location.latitude = 91.0
    request.study.layouts.add(label="ghost", depots=["D7"])
    request.study.depots[1].capacity["parcels"] = -3
    request.layout_timeout.FromSeconds(-1)
    with pytest.raises(grpc.RpcError) as info:
        server.stub.EvaluateDepotLayouts(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_request_fields(info.value)) == {
        "study.days[0].orders[2].location.latitude",
        "study.layouts[2].depots[0]",
        "study.depots[1].capacity.parcels",
        "layout_timeout",
    }


def test_a_study_sent_as_spreadsheets(server: Client, tmp_path: Path) -> None:
    """The template's CSV files as the request's sheets: routed like the same study in
    protobuf, every routed model's solution checked; a bad cell names its file, row, column."""
    from rpc.sheets import write_template

    write_template(tmp_path, workbook=False)
    request = pb.EvaluateDepotLayoutsRequest()
    for path in sorted(tmp_path.glob("*.csv")):
        request.sheets.files.add(name=path.name, content=path.read_bytes())
    request.layout_timeout.FromSeconds(1)
    request.geodesic_meters_per_second = SPEED
    done = server.wait(server.stub.EvaluateDepotLayouts(request, timeout=10).name)
    assert done.WhichOneof("result") == "response", done
    response = pb.EvaluateDepotLayoutsResponse()
    assert done.response.Unpack(response)
    assert response.request_label == "central Helsinki"  # from search.csv
    study = request_to_study(request, default_geodesic_meters_per_second=SPEED).study
    assert {r.layout.label for r in response.layouts} == {x.label for x in study.layouts}
    index = study.depot_index()
    for result in response.layouts:
        for part in result.routes:
            model, _ = build_day_model(
                study,
                study.days[part.day],
                [index[d] for d in part.depots],
                list(part.order_indices),
            )
            check_solution(
                model, response_to_solution(part.response), geodesic_meters_per_second=SPEED
            )
    orders = next(f for f in request.sheets.files if f.name == "orders.csv")
    orders.content = orders.content.replace(b"60.173829", b"north")
    with pytest.raises(grpc.RpcError) as info:
        server.stub.EvaluateDepotLayouts(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(info.value) == ["orders.csv:3:lat"]


def test_cancel_keeps_the_layouts_routed_so_far(server: Client) -> None:
    request = study_request(orders=14, layout_timeout_s=2.0, search=False)
    for k in range(6):
        request.study.layouts.add(label=f"extra{k}", depots=["D1", "D2"][: 1 + k % 2])
    name = server.stub.EvaluateDepotLayouts(request, timeout=10).name
    deadline = time.monotonic() + 30
    while server.metadata(name).layouts_done < 1:
        assert time.monotonic() < deadline, "no layout routed in time"
        time.sleep(0.1)
    server.ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)
    done = server.wait(name, timeout_s=20)
    md = pb.EvaluateDepotLayoutsMetadata()
    assert done.metadata.Unpack(md)
    assert md.state == pb.CANCELLED
    assert md.layouts_total == 8
    response = pb.EvaluateDepotLayoutsResponse()
    assert done.response.Unpack(response)
    assert 1 <= len(response.layouts) < 8
    check_layouts_response(request, response)


def test_cli_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = study_request(orders=8, search=True)
    study_file = tmp_path / "study.json"
    study_file.write_text(json_format.MessageToJson(request))
    out = tmp_path / "out"
    code = cli.main(
        ["layouts", str(study_file), "--osm", "none", "--out", str(out), "--quiet",
         "--layout-timeout", "0.4", "--workers", "2"]
    )  # fmt: skip
    assert code == 0
    rows = json.loads((out / "comparison.json").read_text())
    assert rows[0]["layout"] in capsys.readouterr().out
    assert (out / "comparison.csv").read_text().splitlines()[0].startswith("layout,depots,")
    assert (out / "comparison.md").read_text().startswith("| layout |")
    assert (out / "costs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<html" in (out / "map.html").read_text().lower()
    geojson = sorted((out / "layouts").glob("*.geojson"))
    assert len(geojson) == len(rows)
    response = json_format.Parse(
        (out / "response.json").read_text(), pb.EvaluateDepotLayoutsResponse()
    )
    check_layouts_response(request, response)


def test_cli_reports_an_invalid_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = study_request(search=False)
    request.study.depots[0].label = ""
    study_file = tmp_path / "bad.json"
    study_file.write_text(json_format.MessageToJson(request))
    code = cli.main(["layouts", str(study_file), "--osm", "none", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "study.depots[0].label: required" in err
    assert "study.layouts[0].depots[0]" in err


def test_the_example_study_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "depot_layouts_study.json"
    request = json_format.Parse(path.read_text(), pb.EvaluateDepotLayoutsRequest())
    req = request_to_study(request)
    assert req.study.search is not None
    assert len(req.study.layouts) == 3
    assert len(req.study.days) == 2


def test_a_study_survives_kill_9(tmp_path: Path) -> None:
    """The operation was stored before its name came back: after a crash mid-study, the next
    start runs it again (attempt 2) to a complete, checked result."""
    args = ("--osm", "none", "--workers", "1", "--data-dir", str(tmp_path / "data"))
    request = study_request(orders=10, layout_timeout_s=1.0, search=False)
    request.study.layouts.add(label="east", depots=["D2"])
    request.study.layouts.add(label="north+east", depots=["D1", "D2"])
    srv = ServerProcess(tmp_path / "server.log", *args)
    try:
        client = Client(srv)
        name = client.stub.EvaluateDepotLayouts(request, timeout=10).name
        deadline = time.monotonic() + 30
        while client.metadata(name).layouts_done < 1:
            assert time.monotonic() < deadline, "no layout routed in time"
            time.sleep(0.05)
    finally:
        srv.kill9()
    srv = ServerProcess(tmp_path / "server.log", *args)
    try:
        client = Client(srv)
        done = client.wait(name)
        md = pb.EvaluateDepotLayoutsMetadata()
        assert done.metadata.Unpack(md)
        assert md.state == pb.SUCCEEDED
        assert md.attempt == 2
        response = pb.EvaluateDepotLayoutsResponse()
        assert done.response.Unpack(response)
        assert len(response.layouts) == 4
        check_layouts_response(request, response)
    finally:
        assert srv.terminate() == 0, srv.log()
    assert "running it again" in srv.log()


def test_cli_reports_an_unreadable_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_file = tmp_path / "typo.json"
    study_file.write_text('{"study": {"depotz": []}}')
    assert cli.main(["layouts", str(study_file), "--osm", "none"]) == 2
    assert "depotz" in capsys.readouterr().err
    assert cli.main(["layouts", str(tmp_path / "absent.json"), "--osm", "none"]) == 2


def test_candidates_are_bounded() -> None:
    from engine.errors import InvalidModelError
    from rpc.layouts import MAX_CANDIDATES

    request = study_request()
    request.candidates = MAX_CANDIDATES
    request_to_study(request, default_geodesic_meters_per_second=SPEED)
    request.candidates = 2**31 - 1
    with pytest.raises(InvalidModelError) as info:
        request_to_study(request, default_geodesic_meters_per_second=SPEED)
    assert [v.field for v in info.value.violations] == ["candidates"]
    assert str(MAX_CANDIDATES) in info.value.violations[0].description
