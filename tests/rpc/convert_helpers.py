"""Shared builders of the rpc.convert tests: well-known types, the two small valid requests and
the conversion call with the server's default geodesic speed."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2
from google.type import latlng_pb2

from engine.model import ShipmentModel
from rpc.convert import RequestSettings, request_to_engine
from rpc.pb import route_optimization_service_pb2 as pb

T0 = 1_748_851_200  # 2025-06-02T08:00:00Z
DEFAULT_SPEED = 10.0


def ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def dur(seconds: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def latlng(lat: float, lng: float) -> latlng_pb2.LatLng:
    return latlng_pb2.LatLng(latitude=lat, longitude=lng)


def convert(
    request: pb.OptimizeToursRequest,
) -> tuple[ShipmentModel, RequestSettings]:
    return request_to_engine(request, default_geodesic_meters_per_second=DEFAULT_SPEED)


def base_request() -> pb.OptimizeToursRequest:
    """A small valid request with geodesic travel: one shipment, one vehicle with a break."""
    return pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            global_start_time=ts(T0),
            global_end_time=ts(T0 + 12 * 3600),
            shipments=[
                pb.Shipment(
                    deliveries=[
                        pb.Shipment.VisitRequest(
                            arrival_location=latlng(38.71, -9.13),
                            duration=dur(300),
                            time_windows=[pb.TimeWindow(start_time=ts(T0), end_time=ts(T0 + 3600))],
                        )
                    ],
                    load_demands={"kg": pb.Shipment.Load(amount=5)},
                )
            ],
            vehicles=[
                pb.Vehicle(
                    start_location=latlng(38.74, -9.16),
                    end_location=latlng(38.74, -9.16),
                    start_time_windows=[pb.TimeWindow(start_time=ts(T0), end_time=ts(T0 + 60))],
                    load_limits={"kg": pb.Vehicle.LoadLimit(max_load=10)},
                    cost_per_kilometer=1.0,
                    break_rule=pb.BreakRule(
                        break_requests=[
                            pb.BreakRule.BreakRequest(
                                earliest_start_time=ts(T0 + 4 * 3600),
                                latest_start_time=ts(T0 + 5 * 3600),
                                min_duration=dur(1800),
                            )
                        ]
                    ),
                )
            ],
        )
    )


def matrix_request() -> pb.OptimizeToursRequest:
    """A small valid request with a 2×2 client matrix (tags "depot" and "a")."""
    row = pb.ShipmentModel.DurationDistanceMatrix.Row
    return pb.OptimizeToursRequest(
        model=pb.ShipmentModel(
            shipments=[
                pb.Shipment(deliveries=[pb.Shipment.VisitRequest(tags=["a"], duration=dur(60))])
            ],
            vehicles=[pb.Vehicle(start_tags=["depot"], end_tags=["depot"])],
            duration_distance_matrix_src_tags=["depot", "a"],
            duration_distance_matrix_dst_tags=["depot", "a"],
            duration_distance_matrices=[
                pb.ShipmentModel.DurationDistanceMatrix(
                    rows=[
                        row(durations=[dur(0), dur(100, 500_000_000)], meters=[0.0, 1000.0]),
                        row(durations=[dur(90), dur(0)], meters=[950.0, 0.0]),
                    ]
                )
            ],
        )
    )
