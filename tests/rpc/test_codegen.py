"""rpc.codegen: the checked-in generated code in rpc/pb matches proto/."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpc import codegen


@pytest.fixture(scope="module")
def generated() -> dict[str, bytes]:
    return codegen.generate()


def test_generated_code_is_up_to_date(generated: dict[str, bytes]) -> None:
    problems = codegen.check(files=generated)
    assert not problems, "rpc/pb is stale; run `python -m rpc.codegen`:\n" + "\n".join(problems)


def test_generation_is_deterministic(generated: dict[str, bytes]) -> None:
    assert codegen.generate() == generated


def test_expected_files_and_imports(generated: dict[str, bytes]) -> None:
    assert sorted(generated) == [
        "__init__.py",
        "route_optimization_service_pb2.py",
        "route_optimization_service_pb2.pyi",
        "route_optimization_service_pb2_grpc.py",
        "route_optimization_service_pb2_grpc.pyi",
    ]
    for name, content in generated.items():
        assert b"from routeopt" not in content, name
        assert b"import routeopt" not in content, name


def test_registered_names() -> None:
    from rpc.pb import route_optimization_service_pb2 as pb
    from rpc.pb import route_optimization_service_pb2_grpc as pb_grpc

    assert pb.DESCRIPTOR.name == "routeopt/v1/route_optimization_service.proto"
    assert pb.DESCRIPTOR.package == "routeopt.v1"
    assert pb.DESCRIPTOR.services_by_name["RouteOptimization"].full_name == (
        "routeopt.v1.RouteOptimization"
    )
    assert pb.OptimizeToursRequest.__module__ == "rpc.pb.route_optimization_service_pb2"
    assert hasattr(pb_grpc, "add_RouteOptimizationServicer_to_server")


def test_check_reports_every_difference(generated: dict[str, bytes], tmp_path: Path) -> None:
    codegen.write(generated, tmp_path)
    assert codegen.check(tmp_path, files=generated) == []
    (tmp_path / "route_optimization_service_pb2.pyi").write_bytes(b"edited\n")
    (tmp_path / "route_optimization_service_pb2_grpc.py").unlink()
    (tmp_path / "stale_pb2.py").write_bytes(b"")
    (tmp_path / "__pycache__").mkdir()
    problems = codegen.check(tmp_path, files=generated)
    assert [p.splitlines()[0] for p in problems] == [
        "missing: route_optimization_service_pb2_grpc.py",
        "unexpected: stale_pb2.py",
        "changed: route_optimization_service_pb2.pyi",
    ]
    codegen.write(generated, tmp_path)
    assert codegen.check(tmp_path, files=generated) == []
    assert (tmp_path / "__pycache__").is_dir()


def test_main_check_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert codegen.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out
