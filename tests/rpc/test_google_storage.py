"""The Cloud Storage contract on a local directory (rpc.google.storage): gs://BUCKET/PATH under
the storage root, JSON / PROTO_TEXT / binary by format, paths confined to the root."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import json_format, text_format

from engine.errors import InvalidModelError
from rpc.errors import StorageNotConfiguredError, status_of
from rpc.google.storage import BINARY, Storage, format_of_name
from rpc.pb import route_optimization_service_pb2 as pb


def _request() -> pb.OptimizeToursRequest:
    request = pb.OptimizeToursRequest(label="x", parent="projects/p")
    request.model.shipments.add(label="s").deliveries.add(tags=["a"])
    return request


@pytest.mark.parametrize("fmt", [pb.JSON, pb.PROTO_TEXT, BINARY])
def test_write_then_read_each_format(tmp_path: Path, fmt: int) -> None:
    storage = Storage(tmp_path)
    storage.write("gs://bucket/deep/dir/r", fmt, _request(), "f")
    assert (tmp_path / "bucket" / "deep" / "dir" / "r").is_file()
    assert storage.read("gs://bucket/deep/dir/r", fmt, pb.OptimizeToursRequest, "f") == _request()


def test_files_are_google_formats(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "r.json").write_text('{"label": "x", "model": {"shipments": [{}]}}')
    (tmp_path / "b" / "r.txtpb").write_text('label: "x" model { shipments {} }')
    for name, fmt in (("r.json", pb.JSON), ("r.txtpb", pb.PROTO_TEXT)):
        got = storage.read(f"gs://b/{name}", fmt, pb.OptimizeToursRequest, "f")
        assert got.label == "x"
        assert len(got.model.shipments) == 1
    storage.write("gs://b/out.json", pb.JSON, _request(), "f")
    assert json_format.Parse((tmp_path / "b" / "out.json").read_text(), pb.OptimizeToursRequest())
    storage.write("gs://b/out.txtpb", pb.PROTO_TEXT, _request(), "f")
    text_format.Parse((tmp_path / "b" / "out.txtpb").read_text(), pb.OptimizeToursRequest())


def test_format_of_name() -> None:
    assert format_of_name("gs://b/x.JSON") == pb.JSON
    assert format_of_name("gs://b/x.textproto") == pb.PROTO_TEXT
    assert format_of_name("gs://b/x.bin") == BINARY


def _field_error(call: object) -> tuple[str, str]:
    with pytest.raises(InvalidModelError) as caught:
        call()  # type: ignore[operator]
    (violation,) = caught.value.violations
    return violation.field, violation.description


@pytest.mark.parametrize(
    "uri",
    [
        "gs://bucket/../outside",
        "gs://../x",
        "gs://bucket/a//b",
        "gs://bucket/./a",
        "gs://bucket",
        "s3://bucket/a",
        "/etc/passwd",
        "gs://bucket/a\\..\\b",
    ],
)
def test_paths_are_confined(tmp_path: Path, uri: str) -> None:
    storage = Storage(tmp_path / "root")
    field, _ = _field_error(lambda: storage.path(uri, "input.uri"))
    assert field == "input.uri"


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bucket").mkdir(parents=True)
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    (root / "bucket" / "link.json").symlink_to(secret)
    (root / "out").symlink_to(tmp_path)
    storage = Storage(root)
    field, description = _field_error(
        lambda: storage.read("gs://bucket/link.json", pb.JSON, pb.OptimizeToursRequest, "in")
    )
    assert (field, "leaves the storage root" in description) == ("in", True)
    field, _ = _field_error(lambda: storage.write("gs://out/x.json", pb.JSON, _request(), "o"))
    assert field == "o"
    assert not (tmp_path / "x.json").exists()


def test_a_symlink_inside_the_root_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real")
    storage = Storage(root)
    storage.write("gs://alias/x.json", pb.JSON, _request(), "o")
    assert (root / "real" / "x.json").is_file()


def test_missing_and_invalid_files_name_the_field(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    _, description = _field_error(
        lambda: storage.read("gs://b/none.json", pb.JSON, pb.OptimizeToursRequest, "f")
    )
    assert "no such object" in description
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bad.json").write_text('{"model": {"shipments": [{"cost": 1}]}}')
    _, description = _field_error(
        lambda: storage.read("gs://b/bad.json", pb.JSON, pb.OptimizeToursRequest, "f")
    )
    assert "cost" in description
    _, description = _field_error(
        lambda: storage.read("gs://b/bad.json", 0, pb.OptimizeToursRequest, "f")
    )
    assert "JSON or PROTO_TEXT" in description


def test_no_storage_root_is_failed_precondition() -> None:
    with pytest.raises(StorageNotConfiguredError) as caught:
        Storage(None).path("gs://b/x", "input.uri")
    assert status_of(caught.value, action="test").code == 9  # FAILED_PRECONDITION


def test_unwritable_output_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "b" / "taken").mkdir(parents=True)  # a directory where the file should go
    storage = Storage(tmp_path)
    field, description = _field_error(
        lambda: storage.write("gs://b/taken", pb.JSON, _request(), "output.uri")
    )
    assert field == "output.uri"
    assert "cannot write" in description
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["taken"]  # no temporary file left
