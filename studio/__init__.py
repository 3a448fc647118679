"""``routeopt studio``: depot-layout studies on a local web page.

A planner uploads a study (the CSV files or the workbook of ``routeopt layouts template``, or an
``EvaluateDepotLayoutsRequest`` in JSON) or picks one already run, watches it route, and reads
the comparison table, the map, the cost chart and the downloads; what-if variants ("close
Kallio") are compared side by side. An application on top of :mod:`rpc` and :mod:`planning`,
like :mod:`cli`: :mod:`studio.jobs` (studies, queue, processes, the data folder),
:mod:`studio.worker` (one study's process), :mod:`studio.server` (the HTTP server and its JSON
API), ``studio/static`` (the page: vanilla JS and CSS, Leaflet from the installed
``django-js-lib-leaflet`` package; nothing from a CDN).
"""

from __future__ import annotations

from studio.jobs import StudyManager, default_data_dir
from studio.server import StudioConfig, StudioServer, is_loopback
from studio.worker import WorkerSettings

__all__ = [
    "StudioConfig",
    "StudioServer",
    "StudyManager",
    "WorkerSettings",
    "default_data_dir",
    "is_loopback",
]
