"""The Quart-Trio application: assembly, authentication, CORS, logs and metrics, problems.

The routes live in blueprints, one per resource (``_jobs``, ``_runs``,
``_events``, ``_sources``, ``_kv``, ``_ops``). Their handlers hold no state of their
own: they read the request, ask the engine (the :class:`AppState` on the app)
and render the answer. What every request goes through is here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from quart import Response, g, has_websocket_context, request, websocket
from quart_cors import cors
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, WebsocketMismatch

from flwd.engine import Engine
from flwd.errors import FlwdError

from . import _events, _hooks, _jobs, _kv, _runs, _schedules, _session, _sources, _ui
from ._asgi import MAX_BODY, log_request, request_id
from ._auth import LOCAL_PRINCIPAL, Authenticator, Principal, Refusal
from ._command_line import CommandLines
from ._fast import FastPath
from ._local_socket import PEER_SCOPE_KEY
from ._metrics import Metrics
from ._ops import ops_blueprint
from ._origins import DEV_ORIGIN, is_dev_origin
from ._params import quote
from ._problems import PROBLEM_JSON, HttpProblem, domain_problem, forbidden, unauthorized
from ._scopes import OPEN_ENDPOINTS, ROUTE_SCOPES
from ._state import EXTENSION, AppState, ServeOptions, current_state

__all__ = ["MAX_BODY", "OPEN_ENDPOINTS", "ROUTE_SCOPES", "ServeOptions", "create_app"]

_log = logging.getLogger("flwd.http")



class _RunId(BaseConverter):
    # No ':' — "/runs/<id>:cancel" must not read ":cancel" as part of the id.
    regex = r"[A-Za-z0-9_.-]{1,128}"


class _SourceName(BaseConverter):
    # One word, no ':' ("/sources/<name>:refresh"), no '/' or '\\' (404, never a path).
    regex = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"


def create_app(engine: Engine, options: ServeOptions, authenticator: Authenticator,
               metrics: Metrics | None, command_lines: CommandLines | None = None) -> QuartTrio:
    """Build the application around a running ``engine`` (``command_lines``: what plans
    the thin client's command lines; see ``_command_line``)."""
    # No Quart static route: the UI's files are served by _ui, with their headers.
    app = QuartTrio("flwd", static_folder=None)
    state = app.extensions[EXTENSION] = AppState.build(engine, options, authenticator, metrics,
                                                       command_lines)
    # The hot requests (a run and its stream, /healthz) are answered before Quart's
    # machinery; everything else, refusals included, by the app (see _fast).
    app.asgi_app = FastPath(app.asgi_app, state)  # type: ignore[method-assign,assignment]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["runid"] = _RunId
    app.url_map.converters["source_name"] = _SourceName
    app.url_map.converters["kvpath"] = _kv.KvPath
    app.url_map.converters["kvkey"] = _kv.KvKey
    app.url_map.converters["hookname"] = _hooks.HookName
    app.url_map.converters["schedule_name"] = _schedules.ScheduleName
    app.url_map.strict_slashes = False

    app.before_request(_begin_request)
    app.before_websocket(_begin_websocket)
    if options.dev:
        # CORS for loopback origins only. quart-cors also checks WebSocket origins,
        # but refuses a handshake without Origin (every non-browser client) with
        # 400: run_ws is exempt, and _dev_gate checks its Origin instead (403).
        cors(app, allow_origin=DEV_ORIGIN,
             allow_headers=["Authorization", "Content-Type", "Idempotency-Key",
                            "Idempotency-SHA256", "Last-Event-ID", "X-Request-ID",
                            "X-CSRF-Token"],
             allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
             expose_headers=["Location", "X-Request-ID", "X-Total-Count", "Idempotent-Replay",
                             "X-Flwd-Discovery-Errors", "X-Flowd-Discovery-Errors",
                             "X-Flwd-Discovery-Warnings"],
             max_age=600)
    # After cors(): Quart runs after_request functions last registered first.
    app.after_request(_end_request)

    app.register_error_handler(HttpProblem, _on_http_problem)
    app.register_error_handler(FlwdError, _on_domain_error)
    app.register_error_handler(HTTPException, _on_http_exception)
    app.register_error_handler(Exception, _on_unexpected)

    # Within a blueprint, order matters where rules share a path: an OPTIONS
    # request is routed to the first (see _runs and _sources).
    for blueprint in (_jobs.blueprint, _runs.blueprint, _events.blueprint, _sources.blueprint,
                      _kv.blueprint, _session.blueprint, _hooks.blueprint, _schedules.blueprint,
                      ops_blueprint(with_metrics=options.metrics and metrics is not None)):
        app.register_blueprint(blueprint)
    if options.ui:
        app.register_blueprint(_ui.blueprint)
    return app


# -- cross-cutting: request ids, auth, CORS, metrics, logs ----------------------
async def _authorize(endpoint: str | None, headers: Any, method: str, *,
                     websocket: bool = False) -> Principal | None:
    if endpoint is None or endpoint in OPEN_ENDPOINTS:
        return None
    state = current_state()
    if endpoint == "ops.metrics" and state.options.metrics_open:
        return None
    # A bearer token, a session cookie (CSRF-checked), or --dev.
    principal = await _session.credentials(state, headers, method=method, websocket=websocket)
    if isinstance(principal, Refusal):
        raise unauthorized(principal.detail, principal.error)
    missing = principal.missing(ROUTE_SCOPES.get(endpoint, ()))
    if missing:
        raise forbidden(missing)
    return principal


def _dev_gate(headers: Any) -> None:
    """``--dev`` answers loopback callers only: the Host names a loopback server (DNS
    rebinding), and an Origin, when sent, is a loopback origin (see ``_origins``)."""
    state = current_state()
    if not state.options.dev:
        return
    host = headers.get("Host")
    if not state.host_check.allows(host):
        raise HttpProblem(
            421, "misdirected request",
            f"Host {quote(host or '')} is not this server: a --dev server answers only "
            "to localhost, 127.0.0.1, [::1] or its --bind address", code="host.not.allowed")
    origin = headers.get("Origin")
    if origin is not None and not is_dev_origin(origin):
        raise HttpProblem(
            403, "origin not allowed",
            f"requests from the origin {quote(origin)} are refused: a --dev server takes "
            "only http(s)://localhost, 127.0.0.1 or [::1] (any port)",
            code="origin.not.allowed")


async def _begin_request() -> None:
    g.started = time.perf_counter()
    # A client's id is echoed and logged only when it is a short token.
    g.request_id = request_id(request.headers.get("X-Request-ID", ""))
    g.principal = None
    if PEER_SCOPE_KEY in request.scope:
        # The local socket: its peer is the data dir's owner (checked as it connected).
        g.principal = LOCAL_PRINCIPAL
        return
    _dev_gate(request.headers)
    g.principal = await _authorize(request.endpoint, request.headers, request.method)


async def _begin_websocket() -> None:
    # Routing first: quart-cors' own WebSocket check (registered after this
    # one) would refuse an unknown route with 400 before it is found missing.
    if websocket.routing_exception is not None:
        raise websocket.routing_exception
    if PEER_SCOPE_KEY in websocket.scope:
        g.principal = LOCAL_PRINCIPAL
        return
    _dev_gate(websocket.headers)
    g.principal = await _authorize(websocket.endpoint, websocket.headers, "GET",
                                   websocket=True)


async def _end_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    if response.status_code in (204, 304):
        # No content, so no type for it (Quart gives every response one) nor a
        # length (RFC 9110 §8.6: a 204 carries no Content-Length).
        response.headers.pop("Content-Type", None)
        response.headers.pop("Content-Length", None)
    if not g.get("body_read") and (request.content_length or
                                   "transfer-encoding" in request.headers):
        # A body we never read (refused before it was needed, or sent to a
        # route without one) must not be parsed as the next request on a
        # kept-alive connection: close it (the client reconnects).
        response.headers["Connection"] = "close"
    # The matched rule, never the path: a label takes only known values.
    route = request.url_rule.rule if request.url_rule is not None else None
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    metrics = current_state().metrics
    if metrics is not None:
        metrics.observe_request(request.method, route, response.status_code, elapsed)
    principal: Principal | None = g.get("principal")
    log_request(request.method, route, response.status_code, elapsed, principal,
                g.get("request_id"))
    return response


# -- errors → problems -------------------------------------------------------------
def _problem(status: int, document: dict[str, Any],
             headers: Mapping[str, str] | None = None) -> Response:
    response = Response(json.dumps(document) + "\n", status=status, content_type=PROBLEM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


# Problems are rendered for HTTP requests and for refused WebSocket handshakes
# alike (Quart sends the response instead of accepting), so they never touch
# ``request`` directly: in a WebSocket's context that raised RuntimeError, and
# every refusal (401, 403, 404) became a 500.
def _target() -> tuple[str, str]:
    """(method, path) of the request or WebSocket handshake being answered."""
    if has_websocket_context():
        return "GET", websocket.path
    return request.method, request.path


async def _on_http_problem(error: HttpProblem) -> Response:
    return _problem(error.status, error.document(_target()[1]), error.headers)


async def _on_domain_error(error: FlwdError) -> Response:
    status, document = domain_problem(error, _target()[1])
    return _problem(status, document)


async def _on_http_exception(error: HTTPException) -> Response:
    method, path = _target()
    status = error.code or 500
    headers = {}
    if has_websocket_context() and (status in (404, 405)
                                    or isinstance(error, WebsocketMismatch)):
        # A handshake to a path with only HTTP routes (or none) has no
        # WebSocket route to reach: 404, never 405 with HTTP methods in Allow.
        return _problem(404, HttpProblem(404, "not found", f"no WebSocket route at {path}",
                                         code="route.not.found").document(path))
    if isinstance(error, WebsocketMismatch):
        # A plain request to a WebSocket route must upgrade (RFC 9110 §15.5.22).
        return _problem(426, HttpProblem(426, "upgrade required",
                                         f"{path} is a WebSocket: connect with ws://",
                                         code="upgrade.required").document(path),
                        {"Upgrade": "websocket", "Connection": "Upgrade"})
    titles = {404: ("not found", "route.not.found", f"no route {method} {path}"),
              405: ("method not allowed", "method.not.allowed",
                    f"{method} is not allowed on {path}"),
              413: ("request body too large", "body.too.large",
                    f"request bodies are limited to {MAX_BODY} bytes")}
    title, code, detail = titles.get(
        status, (error.name.lower(), error.name.lower().replace(" ", "-"),
                 error.description or error.name))
    valid = getattr(error, "valid_methods", None)
    if status == 405 and valid:
        headers["Allow"] = ", ".join(sorted(valid))  # RFC 9110 §15.5.6
    return _problem(status, HttpProblem(status, title, detail, code=code)
                    .document(path), headers)


async def _on_unexpected(error: Exception) -> Response:
    method, path = _target()
    _log.exception("unexpected error on %s %s", method, path)
    return _problem(500, HttpProblem(500, "internal error",
                                     "an unexpected error occurred; see the server log",
                                     code="internal").document(path))
