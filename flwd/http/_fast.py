"""The hot endpoints in raw ASGI, beside the Quart app: ``GET /healthz``, ``POST /runs``
answering the run's event stream (one request per run, what a load of API runs
sends) and ``GET /runs/<id>/events`` of a run live in this process, from its start.

Quart's machinery per request (a request object, its contexts, routing, the
before/after hooks, a response object) costs about as much server CPU as a trivial
run's own work. :class:`FastPath` sits in front of the app (its ``asgi_app``)
and answers the plain, well-formed form of these requests itself, with what
``_app`` does for every request done the same way: the request id, the --dev
gate, credentials and scopes, the stream cap, the metrics and the log line.

Anything else goes to the app, unchanged — so every refusal is the app's own
problem document. A request is handed over only before anything happened (its
body, if read, is replayed to the app as it came): whatever this path does not
recognise (another Accept, an Origin, cookies, idempotency headers, a body of the
thin client's command-line form, a body the model refuses, a missing scope, no
stream slot left…) is answered by the app as before. Once the run is submitted,
the answer is this path's: a failure to submit is rendered here, as the app's
error handlers render it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from flwd.errors import FlwdError

from ._asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    content_length,
    header,
    log_request,
    read_body,
    replay,
    request_id,
    send_stream,
)
from ._auth import LOCAL_PRINCIPAL, Principal, Requirement
from ._fast_ui import UI_PREFIX, serve_asset
from ._local_socket import PEER_SCOPE_KEY
from ._models import RunRequest
from ._problems import PROBLEM_JSON, HttpProblem, domain_problem
from ._request import plan_request
from ._scopes import ROUTE_SCOPES
from ._state import AppState
from ._streaming import SSE_HEADERS, event_stream
from ._streams import StreamSlot

__all__ = ["FastPath"]

_log = logging.getLogger("flwd.http")

#: What ``POST /runs`` needs, and reading its stream besides (``_runs.STREAM_SCOPES``).
_CREATE_SCOPES = (*ROUTE_SCOPES["runs.create_run"], "runs:read", "events:read")
_EVENTS_SCOPES = ROUTE_SCOPES["events.run_events"]
#: The rule ``GET /runs/<id>/events`` is logged and counted under (the app's).
_EVENTS_ROUTE = "/runs/<runid:run_id>/events"
#: ``/runs/<id>/events`` with an id the app's ``runid`` converter takes.
_EVENTS_PATH = re.compile(r"/runs/([A-Za-z0-9_.-]{1,128})/events")
#: Request headers whose presence hands ``POST /runs`` to the app: each asks for
#: something this path does not do (CORS, a browser session and its CSRF checks,
#: idempotency, chunked bodies).
_TO_THE_APP = frozenset({b"origin", b"cookie", b"idempotency-key", b"idempotency-sha256",
                         b"transfer-encoding"})


class FastPath:
    """An ASGI app answering the hot requests itself and handing the rest to ``app``."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Cancellation: as the app's (a cancelled stream releases its slot)."""
        if scope["type"] == "http" and not scope.get("query_string"):
            path, method = scope["path"], scope["method"]
            if path == "/runs" and method == "POST":
                await self._create_run(scope, receive, send)
                return
            if path == "/healthz" and method == "GET" and self._gate_passes(scope):
                await self._healthz(scope, send)
                return
            if method == "GET" and (match := _EVENTS_PATH.fullmatch(path)):
                await self._run_events(scope, receive, send, match.group(1))
                return
            if (method == "GET" and path.startswith(UI_PREFIX) and self.state.options.ui
                    and self._gate_passes(scope)):
                started = time.perf_counter()
                if await serve_asset(scope, send, self._finish_headers,
                                     lambda route, status, rid: self._observe(
                                         "GET", route, status, started, None, rid)):
                    return
        await self.app(scope, receive, send)

    # -- what every request goes through (as _app's hooks) ----------------------------

    def _gate_passes(self, scope: Scope) -> bool:
        """The --dev gate lets the request through (else the app refuses it)."""
        if not self.state.options.dev:
            return True
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value
        return origin is None and self.state.host_check.allows(host)

    def _finish_headers(self, headers: list[tuple[bytes, bytes]], rid: str
                        ) -> list[tuple[bytes, bytes]]:
        headers.append((b"x-request-id", rid.encode()))
        if self.state.options.dev:
            headers.append((b"vary", b"Origin"))  # quart-cors', on every answer in --dev
        return headers

    def _observe(self, method: str, route: str, status: int, started: float,
                 principal: Principal | None, rid: str) -> None:
        elapsed = time.perf_counter() - started
        metrics = self.state.metrics
        if metrics is not None:
            metrics.observe_request(method, route, status, elapsed)
        log_request(method, route, status, elapsed, principal, rid)

    # -- GET /healthz -----------------------------------------------------------------

    async def _healthz(self, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        rid = request_id(header(scope, b"x-request-id"))
        headers = self._finish_headers([(b"cache-control", b"no-store")], rid)
        self._observe("GET", "/healthz", 204, started, None, rid)
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # -- POST /runs with Accept: text/event-stream ------------------------------------

    def _principal(self, scope: Scope, headers: dict[bytes, bytes],
                   required: Sequence[Requirement]) -> Principal | None:
        """Who sent the request, holding the ``required`` scopes, or None: the app
        answers (a refusal, a browser session, --dev's gate)."""
        if PEER_SCOPE_KEY in scope:
            return LOCAL_PRINCIPAL  # the local socket's peer (checked as it connected)
        if not self._gate_passes(scope):
            return None
        header = headers.get(b"authorization")
        found = self.state.authenticator.authenticate(
            header.decode("latin-1") if header is not None else None)
        if not isinstance(found, Principal):
            return None
        return None if found.missing(required) else found

    async def _stream(self, scope: Scope, receive: Receive, send: Send, *, run_id: str,
                      slot: StreamSlot, principal: Principal, route: str, status: int,
                      headers: list[tuple[bytes, bytes]], started: float, rid: str) -> None:
        """Answer the run's events from its first (``_streaming.sse_response``'s body).

        Cancellation: the body is closed and its slot released.
        """
        stream = event_stream(self.state, run_id, 0, slot, principal)
        slot.release_with(stream)  # a body never started never runs its finally
        answer = [(key.lower().encode(), value.encode()) for key, value in SSE_HEADERS.items()]
        self._observe(scope["method"], route, status, started, principal, rid)
        await send({"type": "http.response.start", "status": status,
                    "headers": self._finish_headers([*answer, *headers], rid)})
        await send_stream(stream, receive, send)

    # -- GET /runs/<id>/events of a live run, from its start ---------------------------

    async def _run_events(self, scope: Scope, receive: Receive, send: Send,
                          run_id: str) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        if (len(headers) != len(scope["headers"]) or b"last-event-id" in headers
                or b"content-length" in headers or not _TO_THE_APP.isdisjoint(headers)
                or not self.state.engine.is_live(run_id)):
            await self.app(scope, receive, send)  # a cursor, a finished run, a 404…
            return
        principal = self._principal(scope, headers, _EVENTS_SCOPES)
        slot = self.state.streams.try_take() if principal is not None else None
        if principal is None or slot is None:
            await self.app(scope, receive, send)
            return
        rid = request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        await self._stream(scope, receive, send, run_id=run_id, slot=slot,
                           principal=principal, route=_EVENTS_ROUTE, status=200, headers=[],
                           started=started, rid=rid)

    async def _create_run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        if (len(headers) != len(scope["headers"])  # a repeated header: the app decides
                or headers.get(b"accept") != b"text/event-stream"
                or headers.get(b"content-type", b"").split(b";")[0].strip().lower()
                != b"application/json"
                or not _TO_THE_APP.isdisjoint(headers)):
            await self.app(scope, receive, send)
            return
        principal = self._principal(scope, headers, _CREATE_SCOPES)
        length = content_length(headers.get(b"content-length"))
        if principal is None or length is None:
            await self.app(scope, receive, send)
            return
        received, raw = await read_body(receive, length)
        body = _run_request(raw) if raw is not None else None
        slot = self.state.streams.try_take() if body is not None else None
        if body is None or slot is None:
            await self.app(scope, replay(received, receive), send)
            return
        rid = request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        try:
            run, _ = await self.state.engine.submit(plan_request(body), idempotency=None)
        except BaseException as exc:
            slot.release()
            if not isinstance(exc, Exception):
                raise
            status, document = _problem_of(exc, scope["path"])
            answer = (json.dumps(document) + "\n").encode()
            problem_headers = [(b"content-type", PROBLEM_JSON.encode()),
                               (b"content-length", str(len(answer)).encode())]
            if isinstance(exc, HttpProblem):
                problem_headers += [(key.lower().encode(), value.encode())
                                    for key, value in exc.headers.items()]
            self._observe("POST", "/runs", status, started, principal, rid)
            await send({"type": "http.response.start", "status": status,
                        "headers": self._finish_headers(problem_headers, rid)})
            await send({"type": "http.response.body", "body": answer, "more_body": False})
            return
        await self._stream(scope, receive, send, run_id=run.id, slot=slot,
                           principal=principal, route="/runs", status=201,
                           headers=[(b"location", f"/runs/{run.id}".encode())],
                           started=started, rid=rid)


def _run_request(raw: bytes) -> RunRequest | None:
    """The body as a run request, or None: the app answers (not JSON, the thin client's
    words form, a body the model refuses)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "words" in data:
        return None
    try:
        return RunRequest.model_validate(data)
    except ValidationError:
        return None


def _problem_of(error: Exception, path: str) -> tuple[int, dict[str, Any]]:
    """(status, document) of a failure to submit, as the app's error handlers give it."""
    if isinstance(error, HttpProblem):
        return error.status, error.document(path)
    if isinstance(error, FlwdError):
        return domain_problem(error, path)
    _log.exception("unexpected error on POST %s", path, exc_info=error)
    return 500, HttpProblem(500, "internal error",
                            "an unexpected error occurred; see the server log",
                            code="internal").document(path)
