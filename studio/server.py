"""The studio's HTTP server: the page, its assets and a small JSON API (standard library only).

Routes (``ID`` a study id):

- ``GET /``, ``/static/…``, ``/leaflet/…``: the page (vanilla JS/CSS of ``studio/static``) and
  Leaflet from the installed ``django-js-lib-leaflet`` package: nothing from a CDN.
- ``GET /api/config``: map tiles (none by default: layers on a blank background), limits.
- ``GET /api/studies``: every study; ``GET /api/studies/ID``: its state (progress, best so far,
  violations), its inputs and, once finished, its results (table rows, layouts).
- ``POST /api/studies``: a new study, JSON ``{"name", "files": [{"name", "content"}]}`` (CSV files
  or one ``.xlsx``, content base64) or ``{"name", "request": {…}}`` (an
  ``EvaluateDepotLayoutsRequest`` in protobuf JSON); ``POST /api/studies/example``: the template
  study of ``routeopt layouts template``.
- ``POST /api/studies/ID/cancel``, ``/rerun``, ``/variant`` (``{"close": ["Kallio"]}``: the same
  study with those depots closed).
- ``POST /api/session``: sign in with an API key (when the studio uses the server's keys).
- ``GET /api/studies/ID/files/NAME``: downloads (``comparison.csv``, ``comparison.json``,
  ``response.json``, ``layouts/NNN.geojson``).

Security: uploads are data, never executed (read by :mod:`rpc.sheets` or parsed as protobuf
JSON), at most ``max_upload_bytes``; POST bodies must be JSON (a cross-site form cannot send
them); on a loopback address the ``Host`` header must name the loopback (no DNS rebinding);
with a token, every request must carry it (``X-Studio-Token`` header or the ``studio_token``
cookie that ``/?token=…`` sets), compared in constant time. With the server's API keys
(``StudioConfig.keys``, the ``keys.sqlite3`` of :mod:`rpc.keys`), every API request carries a key
of a tenant — ``x-goog-api-key: KEY`` or ``Authorization: Bearer KEY`` as on the gRPC server, or
the ``studio_session`` cookie that ``POST /api/session`` (``{"key": KEY}``, the page's sign-in)
sets — checked on every request (a revoked key stops at once); a tenant sees and acts on its own
studies only (another's is 404). Without keys or token the page is for whoever can reach the
loopback address (one user, this machine). The page escapes everything it
shows (it builds the DOM with ``textContent``); responses carry a strict Content-Security-Policy.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import logging
import mimetypes
import re
import secrets
import socket
import tempfile
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from google.protobuf import json_format

from engine.errors import InvalidModelError
from rpc.keys import KeyStore
from rpc.pb import route_optimization_service_pb2 as pb
from rpc.sheets import write_template
from studio.jobs import STUDY_ID, StudyManager, close_depots

__all__ = ["StudioConfig", "StudioServer", "is_loopback"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
TOKEN_HEADER = "X-Studio-Token"
TOKEN_COOKIE = "studio_token"
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
KEY_HEADER = "x-goog-api-key"
SESSION_COOKIE = "studio_session"
_OPEN_PATHS = {"/", "/index.html", "/api/config", "/api/session"}
"""What answers without a key when the studio uses API keys: the page (it signs in), its assets
and the configuration; no study data."""
_STATIC_FILES = {"index.html", "app.js", "app.css"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class StudioConfig:
    """How the page is served."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    tiles: str | None = None
    """A tile URL template (``https://tile.openstreetmap.org/{z}/{x}/{y}.png``); None: no
    background, nothing fetched."""
    tiles_attribution: str = ""
    max_upload_bytes: int = 20 * 1024 * 1024
    keys: KeyStore | None = None
    """The server's API keys: every request carries a tenant's key and each tenant sees its own
    studies only (module docstring). None: no keys (the token, or loopback only)."""


def _leaflet_folder() -> Any:
    return resources.files("js_lib_leaflet") / "static" / "js_lib_leaflet"


def _example_request() -> pb.EvaluateDepotLayoutsRequest:
    """The template study (``routeopt layouts template``), as uploaded CSV files."""
    request = pb.EvaluateDepotLayoutsRequest()
    with tempfile.TemporaryDirectory(prefix="routeopt-example-") as tmp:
        for path in write_template(Path(tmp), workbook=False):
            if path.suffix == ".csv":
                request.sheets.files.add(name=path.name, content=path.read_bytes())
    return request


class BadUploadError(ValueError):
    """An upload the server refuses before reading it as a study (HTTP 400)."""


def upload_to_request(body: dict[str, Any]) -> tuple[pb.EvaluateDepotLayoutsRequest, str]:
    """The request and a description of where it came from, of a ``POST /api/studies`` body."""
    request = pb.EvaluateDepotLayoutsRequest()
    if "request" in body:
        if not isinstance(body["request"], dict):
            raise BadUploadError("request: an EvaluateDepotLayoutsRequest in protobuf JSON")
        try:
            json_format.ParseDict(body["request"], request)
        except json_format.ParseError as exc:
            raise BadUploadError(f"request: {exc}") from None
        return request, "JSON request"
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise BadUploadError("files: the study's CSV files or one .xlsx workbook")
    names = []
    for k, f in enumerate(files):
        if not (isinstance(f, dict) and isinstance(f.get("name"), str)):
            raise BadUploadError(f"files[{k}]: name and content expected")
        name = Path(f["name"]).name
        try:
            content = base64.b64decode(str(f.get("content", "")), validate=True)
        except (binascii.Error, ValueError):
            raise BadUploadError(f"files[{k}] ({name}): content is not base64") from None
        if name.lower().endswith(".json") and len(files) == 1:
            try:
                json_format.Parse(content.decode("utf-8"), request)
            except (json_format.ParseError, UnicodeDecodeError) as exc:
                raise BadUploadError(f"{name}: not an EvaluateDepotLayoutsRequest: {exc}") from None
            return request, name
        request.sheets.files.add(name=name, content=content)
        names.append(name)
    return request, ", ".join(names)


class StudioServer(ThreadingHTTPServer):
    """The HTTP server of the page (module docstring)."""

    daemon_threads = True

    def __init__(self, config: StudioConfig, manager: StudyManager) -> None:
        if not is_loopback(config.host) and not (config.token or config.keys):
            raise ValueError(
                f"{config.host} is not a loopback address: API keys or a token are required"
            )
        if config.token and config.keys:
            raise ValueError("API keys or a token, not both")
        if config.token is not None and not TOKEN_CHARS.fullmatch(config.token):
            raise ValueError(
                "the token may hold only letters, digits and . _ ~ - (URL and cookie safe)"
            )
        self.config = config
        self.manager = manager
        self._sessions: dict[str, str] = {}
        self._sessions_lock = threading.Lock()
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        super().__init__((config.host.strip("[]"), config.port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that went away mid-answer is not an error of the studio."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("%s: connection closed by the client", client_address)
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def open_session(self, key: str) -> str:
        """A new session (the cookie's value) holding ``key``."""
        session = secrets.token_urlsafe(32)
        with self._sessions_lock:
            self._sessions[session] = key
        return session

    def session_key(self, session: str) -> str:
        """The key of a session ("" when there is no such session)."""
        with self._sessions_lock:
            return self._sessions.get(session, "")

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="studio-http", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: StudioServer
    protocol_version = "HTTP/1.1"
    tenant: str | None = None
    """The tenant of the request's API key (None without keys)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Debug log of each request, without its query (``?token=`` stays out of logs)."""
        log.debug("%s %s %s", self.address_string(), self.command, urlsplit(self.path).path)

    # -- responses -----------------------------------------------------------------------
    def _headers(self, status: int, ctype: str, length: int, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cache-Control", "no-store")
        tiles = self.server.config.tiles
        origin = urlsplit(tiles or "")
        netloc = re.sub(r"\{[a-z]\}", "*", origin.netloc)  # {s}.tile.example.org
        img = "'self' data:" + (f" {origin.scheme}://{netloc}" if tiles else "")
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'self'; img-src {img}; style-src 'self'; script-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self._headers(status, ctype, len(body), extra or {})
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: int, message: str) -> None:
        if self.command == "POST":  # its body may be unread: do not take it for a next request
            self.close_connection = True
        self._json(status, {"error": message})

    # -- checks --------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        """On a loopback address, the Host header must name the loopback (DNS rebinding)."""
        if not is_loopback(self.server.config.host):
            return True
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return is_loopback(name)

    def _token_ok(self, query: dict[str, list[str]]) -> tuple[bool, bool]:
        """(authorised, set the cookie): the header, the cookie, or ``?token=`` on the page."""
        expected = self.server.config.token
        if not expected:
            return True, False
        given = [self.headers.get(TOKEN_HEADER, "")]
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            if TOKEN_COOKIE in cookie:
                given.append(cookie[TOKEN_COOKIE].value)
        except CookieError:
            pass
        from_query = query.get("token", [""])[0]
        ok = [hmac.compare_digest(g.encode(), expected.encode()) for g in [*given, from_query]]
        return any(ok), ok[-1]

    def _given_key(self) -> str:
        """The API key of the request: the header, a bearer token or the session cookie."""
        key = self.headers.get(KEY_HEADER, "").strip()
        auth = self.headers.get("Authorization", "")
        if not key and auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
        if not key:
            try:
                cookie = SimpleCookie(self.headers.get("Cookie", ""))
            except CookieError:
                return ""
            if SESSION_COOKIE in cookie:
                key = self.server.session_key(cookie[SESSION_COOKIE].value)
        return key

    def _key_tenant(self, key: str) -> str | None:
        keys = self.server.config.keys
        found = keys.verify(key) if keys is not None and key else None
        return found[0] if found is not None else None

    def _gate(self) -> tuple[str, dict[str, list[str]], bool] | None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
            return None
        if self.server.config.keys is not None:
            self.tenant = self._key_tenant(self._given_key())
            asset = parts.path.startswith(("/static/", "/leaflet/"))
            if self.tenant is None and not (asset or parts.path in _OPEN_PATHS):
                self._error(
                    HTTPStatus.UNAUTHORIZED,
                    f"API key required ({KEY_HEADER} or Authorization: Bearer; the page signs in)",
                )
                return None
            return parts.path, query, False
        ok, set_cookie = self._token_ok(query)
        if not ok:
            self._error(HTTPStatus.UNAUTHORIZED, f"token required ({TOKEN_HEADER})")
            return None
        return parts.path, query, set_cookie

    def _visible(self, study: dict[str, Any]) -> bool:
        """Whether the caller may see ``study`` (its tenant's, when there are keys)."""
        return self.server.config.keys is None or study.get("tenant") == self.tenant

    def _own(self, study_id: str) -> dict[str, Any]:
        """The state of the caller's study ``study_id`` (KeyError: none, or another's)."""
        if not STUDY_ID.match(study_id):
            raise KeyError(study_id)
        state = self.server.manager.get(study_id)
        if not self._visible(state):
            raise KeyError(study_id)
        return state

    # -- GET -----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        gate = self._gate()
        if gate is None:
            return
        path, _, set_cookie = gate
        try:
            self._get(path, set_cookie)
        except KeyError:
            self._error(HTTPStatus.NOT_FOUND, "no such study or file")

    def _get(self, path: str, set_cookie: bool) -> None:
        manager = self.server.manager
        if path in ("/", "/index.html"):
            extra = {}
            if set_cookie and self.server.config.token:
                extra["Set-Cookie"] = (
                    f"{TOKEN_COOKIE}={self.server.config.token}; HttpOnly; SameSite=Strict; Path=/"
                )
            body = (STATIC / "index.html").read_bytes()
            self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", extra)
        elif path.startswith("/static/") and path[8:] in _STATIC_FILES:
            name = path[8:]
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self._send(HTTPStatus.OK, (STATIC / name).read_bytes(), f"{ctype}; charset=utf-8")
        elif path in ("/leaflet/leaflet.js", "/leaflet/leaflet.css") or (
            path.startswith("/leaflet/images/") and path.endswith(".png") and "/" not in path[16:]
        ):
            asset = _leaflet_folder().joinpath(*path[9:].split("/"))
            if not asset.is_file() or ".." in path:
                raise KeyError(path)
            ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
            self._send(HTTPStatus.OK, asset.read_bytes(), ctype)
        elif path == "/api/config":
            cfg = self.server.config
            self._json(
                HTTPStatus.OK,
                {
                    "tiles": cfg.tiles,
                    "tiles_attribution": cfg.tiles_attribution,
                    "max_upload_bytes": cfg.max_upload_bytes,
                    "roads": manager.settings.osm is not None,
                    "keys": cfg.keys is not None,
                    "tenant": self.tenant,
                },
            )
        elif path == "/api/studies":
            studies = [s for s in manager.studies() if self._visible(s)]
            self._json(HTTPStatus.OK, {"studies": studies})
        elif path.startswith("/api/studies/"):
            self._get_study(path[len("/api/studies/") :])
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def _get_study(self, rest: str) -> None:
        manager = self.server.manager
        study_id, _, tail = rest.partition("/")
        state = self._own(study_id)
        if not tail:
            state["inputs"] = manager.inputs(study_id)
            state["results"] = manager.summary(study_id)
            self._json(HTTPStatus.OK, state)
            return
        if not tail.startswith("files/"):
            raise KeyError(tail)
        name = tail[len("files/") :]
        found = manager.file(study_id, name)
        if found is None:
            raise KeyError(name)
        ctype = {
            ".csv": "text/csv; charset=utf-8",
            ".json": "application/json",
            ".geojson": "application/geo+json",
        }[found.suffix]
        download = f"{study_id}-{name.replace('/', '-')}"
        self._send(
            HTTPStatus.OK,
            found.read_bytes(),
            ctype,
            {"Content-Disposition": f'attachment; filename="{download}"'},
        )

    # -- POST ----------------------------------------------------------------------------
    def _body(self) -> dict[str, Any] | None:
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return None
        limit = self.server.config.max_upload_bytes
        if length > limit * 4 // 3 + 64 * 1024:  # base64 of the limit, and the JSON around it
            self.close_connection = True
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"upload larger than {limit // (1024 * 1024)} MB",
            )
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError):
            self._error(HTTPStatus.BAD_REQUEST, "the body is not JSON")
            return None
        if not isinstance(body, dict):
            self._error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return None
        return body

    def do_POST(self) -> None:
        gate = self._gate()
        if gate is None:
            return
        path = gate[0]
        body = self._body()
        if body is None:
            return
        manager = self.server.manager
        name = str(body.get("name") or "").strip()[:200]
        try:
            if path == "/api/session":
                self._sign_in(body)
            elif path == "/api/studies":
                request, source = upload_to_request(body)
                if sum(len(f.content) for f in request.sheets.files) > (
                    self.server.config.max_upload_bytes
                ):
                    raise BadUploadError("upload too large")
                self._json(
                    HTTPStatus.CREATED,
                    manager.submit(request, name=name or source, source=source, tenant=self.tenant),
                )
            elif path == "/api/studies/example":
                self._json(
                    HTTPStatus.CREATED,
                    manager.submit(
                        _example_request(),
                        name=name or "Example: central Helsinki",
                        source="the template study (routeopt layouts template)",
                        tenant=self.tenant,
                    ),
                )
            elif path.startswith("/api/studies/"):
                self._post_study(path[len("/api/studies/") :], name, body)
            else:
                self._error(HTTPStatus.NOT_FOUND, "not found")
        except BadUploadError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except KeyError:
            self._error(HTTPStatus.NOT_FOUND, "no such study")

    def _post_study(self, rest: str, name: str, body: dict[str, Any]) -> None:
        manager = self.server.manager
        study_id, _, action = rest.partition("/")
        state = self._own(study_id)
        if action == "cancel":
            self._json(HTTPStatus.OK, manager.cancel(study_id))
        elif action == "rerun":
            self._json(
                HTTPStatus.CREATED,
                manager.submit(
                    manager.request(study_id),
                    name=name or state["name"],
                    source=f"run again: {state['name']}",
                    parent=study_id,
                    tenant=self.tenant,
                ),
            )
        elif action == "variant":
            closed = body.get("close")
            if not (isinstance(closed, list) and all(isinstance(c, str) for c in closed)):
                raise BadUploadError("close: a list of depot ids")
            try:
                request = close_depots(manager.request(study_id), set(closed))
            except InvalidModelError as exc:
                raise BadUploadError("; ".join(v.description for v in exc.violations)) from None
            what = f"{state['name']}: without {', '.join(sorted(closed))}"
            self._json(
                HTTPStatus.CREATED,
                manager.submit(
                    request,
                    name=name or what,
                    source=f"what if: {state['name']} without {', '.join(sorted(closed))}",
                    parent=study_id,
                    closed=sorted(closed),
                    tenant=self.tenant,
                ),
            )
        else:
            raise KeyError(action)

    def _sign_in(self, body: dict[str, Any]) -> None:
        """``POST /api/session``: a session cookie for a valid API key."""
        if self.server.config.keys is None:
            raise KeyError("session")  # nothing to sign in to
        key = body.get("key")
        tenant = self._key_tenant(key.strip()) if isinstance(key, str) else None
        if tenant is None or not isinstance(key, str):
            self._error(HTTPStatus.UNAUTHORIZED, "unknown or revoked API key")
            return
        session = self.server.open_session(key.strip())
        cookie = f"{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"
        self._send(
            HTTPStatus.OK, json.dumps({"tenant": tenant}).encode(), extra={"Set-Cookie": cookie}
        )
