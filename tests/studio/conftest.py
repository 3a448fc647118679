"""A studio on a free loopback port, studies run on geodesic travel or the embedded roads."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studio import StudioConfig, StudioServer, StudyManager, WorkerSettings


class Studio:
    def __init__(self, server: StudioServer, manager: StudyManager) -> None:
        self.server = server
        self.manager = manager
        self.url = server.url

    def request(
        self,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        method: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url.rstrip("/") + path, data, hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        status, _, data = self.request(path, body, **kwargs)
        return status, json.loads(data)


def start_studio(
    data_dir: Path, settings: WorkerSettings, config: StudioConfig | None = None
) -> Studio:
    manager = StudyManager(data_dir, settings, grace_s=10)
    server = StudioServer(config or StudioConfig(port=0), manager)
    server.serve_in_thread()
    return Studio(server, manager)


def stop_studio(studio: Studio) -> None:
    studio.server.shutdown()
    studio.server.server_close()
    studio.manager.close()


@pytest.fixture(scope="module")
def geodesic_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """Geodesic travel, one second per layout: the fastest real runs."""
    studio = start_studio(
        tmp_path_factory.mktemp("studio") / "data",
        WorkerSettings(osm=None, layout_timeout_s=1.0),
    )
    yield studio
    stop_studio(studio)
