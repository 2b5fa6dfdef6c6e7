"""The Quart-Trio application: routes, authentication, problems, SSE, metrics.

Handlers hold no state of their own: they validate the request, then ask the
engine (messages to the root of the actor tree) and render the answer.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import trio
from pydantic import BaseModel, ValidationError
from quart import (
    Response,
    g,
    has_websocket_context,
    jsonify,
    make_response,
    request,
    websocket,
)
from quart_cors import cors, cors_exempt
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, WebsocketMismatch

from flwd.engine import Engine
from flwd.errors import FlwdError, RunNotFound
from flwd.events import TERMINAL_STATUSES, RunRow
from flwd.jobs import Job
from flwd.plan import PlanRequest
from flwd.sources import Entry, parse_request

from ._auth import Authenticator, Principal, Refusal
from ._metrics import Metrics
from ._models import RunRequest, SourceRequest
from ._origins import DEV_ORIGIN, HostCheck, is_dev_origin
from ._params import PAGE, PER_PAGE, parse_cursor, parse_int, quote
from ._problems import (
    PROBLEM_JSON,
    HttpProblem,
    bad_request,
    domain_problem,
    forbidden,
    unauthorized,
)
from ._sse import KEEP_ALIVE, PREAMBLE, frames, writes
from ._streams import MAX_STREAMS, RETRY_AFTER, StreamSlot, StreamSlots

_log = logging.getLogger("flwd.http")
T = TypeVar("T", bound=BaseModel)

#: Seconds between SSE keep-alive comments (also how fast a dead peer shows).
KEEP_ALIVE_INTERVAL = 15.0
#: An X-Request-ID a client may choose (anything else is replaced by one of ours).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class ServeOptions:
    dev: bool = False
    #: Serve /metrics at all, and without a token (loopback binds only).
    metrics: bool = True
    metrics_open: bool = True
    aliases_public: bool = False
    keep_alive: float = KEEP_ALIVE_INTERVAL
    #: The --bind host: with --dev, a Host header may name it (besides loopback names).
    bind_host: str = "127.0.0.1"
    #: Event streams open at once, process-wide (see flwd.http._streams).
    max_streams: int = MAX_STREAMS


class _RunId(BaseConverter):
    # No ':' — "/runs/<id>:cancel" must not read ":cancel" as part of the id.
    regex = r"[A-Za-z0-9_.-]{1,128}"


class _SourceName(BaseConverter):
    # One word, no ':' ("/sources/<name>:refresh"), no '/' or '\\' (404, never a path).
    regex = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"


#: Scopes each endpoint needs; endpoints not listed are open.
ROUTE_SCOPES: dict[str, tuple[str, ...]] = {
    "list_jobs": ("jobs:read",),
    "list_discovery_issues": ("jobs:read",),
    "get_job": ("jobs:read",),
    "create_plan": ("jobs:read",),
    "create_run": ("runs:write",),
    "list_runs": ("runs:read",),
    "get_run": ("runs:read",),
    "cancel_run": ("runs:write",),
    "run_events": ("runs:read", "events:read"),
    "run_events_ndjson": ("runs:read", "events:read"),
    "run_ws": ("runs:read", "events:read"),
    "all_events": ("events:read",),
    "list_sources": ("sources:read",),
    "get_source": ("sources:read",),
    "add_source": ("sources:write",),
    "delete_source": ("sources:write",),
    "refresh_source": ("sources:write",),
    "storage_health": ("metrics:read",),
    "metrics": ("metrics:read",),
}
OPEN_ENDPOINTS = frozenset({"healthz", "openapi"})


def _parse_json_body(raw: bytes) -> Any:
    if not raw.strip():
        raise bad_request("the request body is empty; send a JSON object",
                          code="invalid-request-body")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}",
                          code="invalid-request-body") from None


def validate_body(model: type[T], data: Any) -> T:
    """``model`` from decoded JSON; every failing field is listed in one 400 problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"arg": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
                  for e in exc.errors(include_url=False)]
        first = errors[0]
        raise bad_request(f"invalid request body: {first['arg']}: {first['message']}",
                          errors=errors, code="invalid-request-body") from None


def canonical_body(data: Any) -> bytes:
    """A decoded JSON body in one spelling (sorted keys, no spaces): what idempotency compares."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _page(args: Mapping[str, str]) -> tuple[int, int]:
    errors = []
    values = {}
    for name, default, accepted in (("page", 1, PAGE), ("per_page", 50, PER_PAGE)):
        text = args.get(name)
        if text is None:
            values[name] = default
            continue
        try:
            values[name] = parse_int(text, accepted)
        except ValueError as exc:
            errors.append({"arg": name, "message": str(exc)})
    if errors:
        raise bad_request(f"invalid pagination: {errors[0]['arg']} {errors[0]['message']}",
                          errors=errors, code="invalid-pagination")
    return values["page"], values["per_page"]


def job_json(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {"id": job.id, "name": job.name}
    if job.summary:
        out["summary"] = job.summary
    out["path"] = job.rel_dir
    out["args"] = [arg.to_json() for arg in job.config.args]
    if job.source:
        out["source"] = {"name": job.source,
                         "type": str((job.origin or {}).get("type", "local"))}
    return out


def run_json(run: RunRow) -> dict[str, Any]:
    return run.to_json()


def create_app(engine: Engine, options: ServeOptions, authenticator: Authenticator,
               metrics: Metrics | None) -> QuartTrio:
    """Build the application around a running ``engine``."""
    app = QuartTrio("flwd")
    host_check = HostCheck(options.bind_host)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["runid"] = _RunId
    app.url_map.converters["source_name"] = _SourceName
    app.url_map.strict_slashes = False

    # -- cross-cutting: request ids, auth, CORS, metrics, logs ------------------
    def _authorize(endpoint: str | None, headers: Any) -> Principal | None:
        if endpoint is None or endpoint in OPEN_ENDPOINTS:
            return None
        if endpoint == "metrics" and options.metrics_open:
            return None
        principal = authenticator.authenticate(headers.get("Authorization"))
        if isinstance(principal, Refusal):
            raise unauthorized(principal.detail, principal.error)
        missing = principal.missing(ROUTE_SCOPES.get(endpoint, ()))
        if missing:
            raise forbidden(missing)
        return principal

    def _dev_gate(headers: Any) -> None:
        """``--dev`` answers loopback callers only: the Host names a loopback server (DNS
        rebinding), and an Origin, when sent, is a loopback origin (see ``_origins``)."""
        if not options.dev:
            return
        host = headers.get("Host")
        if not host_check.allows(host):
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

    @app.before_request
    async def before() -> None:
        g.started = time.perf_counter()
        # A client's id is echoed and logged only when it is a short token.
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        g.principal = None
        _dev_gate(request.headers)
        g.principal = _authorize(request.endpoint, request.headers)

    @app.before_websocket
    async def before_ws() -> None:
        # Routing first: quart-cors' own WebSocket check (registered after this
        # one) would refuse an unknown route with 400 before it is found missing.
        if websocket.routing_exception is not None:
            raise websocket.routing_exception
        _dev_gate(websocket.headers)
        g.principal = _authorize(websocket.endpoint, websocket.headers)

    if options.dev:
        # CORS for loopback origins only. quart-cors also checks WebSocket origins,
        # but refuses a handshake without Origin (every non-browser client) with
        # 400: run_ws is exempt, and _dev_gate checks its Origin instead (403).
        cors(app, allow_origin=DEV_ORIGIN,
             allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID",
                            "X-Request-ID"],
             allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
             expose_headers=["Location", "X-Request-ID", "X-Total-Count", "Idempotent-Replay",
                             "X-Flwd-Discovery-Errors"],
             max_age=600)

    @app.after_request
    async def after(response: Response) -> Response:
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
        if metrics is not None:
            metrics.observe_request(request.method, route, response.status_code, elapsed)
        principal: Principal | None = g.get("principal")
        _log.info("request", extra={"fields": {
            "method": request.method, "route": route or "(unmatched)",
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 2),
            "subject": principal.name if principal else None,
            "request_id": g.get("request_id")}})
        return response

    # -- errors → problems -----------------------------------------------------
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

    @app.errorhandler(HttpProblem)
    async def on_http_problem(error: HttpProblem) -> Response:
        return _problem(error.status, error.document(_target()[1]), error.headers)

    @app.errorhandler(FlwdError)
    async def on_domain_error(error: FlwdError) -> Response:
        status, document = domain_problem(error, _target()[1])
        return _problem(status, document)

    @app.errorhandler(HTTPException)
    async def on_http_exception(error: HTTPException) -> Response:
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

    @app.errorhandler(Exception)
    async def on_unexpected(error: Exception) -> Response:
        method, path = _target()
        _log.exception("unexpected error on %s %s", method, path)
        return _problem(500, HttpProblem(500, "internal error",
                                         "an unexpected error occurred; see the server log",
                                         code="internal").document(path))

    async def _json_body(model: type[T]) -> tuple[T, Any]:
        # Only application/json: a cross-site form (urlencoded, multipart, text/plain)
        # or a fetch() without a Content-Type is sent without a CORS preflight, and
        # in --dev it needs no token either.
        content_type = request.headers.get("Content-Type")
        media = (content_type or "").split(";")[0].strip().lower()
        if media != "application/json":
            sent = f"not {quote(content_type)}" if content_type else "(the request had none)"
            raise HttpProblem(415, "unsupported media type",
                              f"send JSON with Content-Type: application/json {sent}",
                              code="unsupported-media-type",
                              headers={"Accept": "application/json"})  # RFC 9110 §15.5.16
        raw = await request.get_data(cache=False, as_text=False)
        g.body_read = True
        data = _parse_json_body(raw if isinstance(raw, bytes) else raw.encode())
        return validate_body(model, data), data

    def _plan_request(body: RunRequest) -> PlanRequest:
        return PlanRequest(body.job_id, args=body.args,
                           source=body.source.name if body.source is not None else None,
                           profile=body.requested_security_profile)

    # -- routes ------------------------------------------------------------------
    @app.get("/health/storage")
    async def storage_health() -> Response:
        response = jsonify(await engine.storage_health())
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("", status=204, headers={"Cache-Control": "no-store"})

    @app.get("/jobs")
    async def list_jobs() -> Response:
        page, per_page = _page(request.args)
        catalog = await engine.catalog()
        aliases = await engine.aliases()
        entries = [job_json(job) for job in catalog.jobs]
        principal: Principal | None = g.get("principal")
        # Alias metadata is for everyone only with --aliases-public; callers who
        # may change jobs or sources always see it.
        if options.aliases_public or (
                principal is not None and principal.scopes & {"jobs:write", "sources:write"}):
            for alias in aliases.listing():
                target = job_json(catalog.get(alias.target_id))
                entries.append({"id": alias.name, "name": alias.name,
                                **({"description": alias.description} if alias.description
                                   else {}),
                                "path": target["path"], "args": target["args"],
                                "alias_of": alias.target_id})
            entries.sort(key=lambda entry: entry["id"].casefold())
        page_entries = entries[(page - 1) * per_page: page * per_page]
        response = jsonify(page_entries)
        problems = len(catalog.errors) + len(aliases.errors) + len(aliases.invalid) + len(
            aliases.collisions)
        response.headers["X-Flwd-Discovery-Errors"] = str(problems)
        response.headers["X-Total-Count"] = str(len(entries))
        return response

    @app.get("/discovery")
    async def list_discovery_issues() -> Response:
        # GET /jobs is a page of jobs (its X-Flwd-Discovery-Errors counts these):
        # what kept a config out of it — and why a job id is ambiguous — is here.
        catalog = await engine.catalog()
        aliases = await engine.aliases()
        issues = catalog.errors + catalog.warnings + aliases.errors
        return jsonify({
            "errors": [issue.to_json() for issue in issues if issue.level == "error"],
            "warnings": [issue.to_json() for issue in issues if issue.level == "warning"],
        })

    @app.get("/jobs/<path:job_id>")
    async def get_job(job_id: str) -> Response:
        # Running through an alias needs no elevated scope, so neither does
        # resolving one name (listing them all does, see GET /jobs).
        job, alias = await engine.find_job(job_id)
        detail = job_json(job)
        if alias is not None:
            detail["alias"] = alias.to_json()
        detail["executor"] = job.config.executor
        detail["scripts"] = list(job.scripts)
        if job.config.timeout is not None:
            detail["timeout_seconds"] = job.config.timeout
        return jsonify(detail)

    @app.post("/plans")
    async def create_plan() -> Response:
        body, _ = await _json_body(RunRequest)
        plan = await engine.plan(_plan_request(body))
        return jsonify(plan.to_json())

    @app.post("/runs")
    async def create_run() -> Response:
        body, raw = await _json_body(RunRequest)
        key = request.headers.get("Idempotency-Key")
        # Visible ASCII only: header bytes beyond it reach us decoded as Latin-1,
        # i.e. as some other text than the client meant (RFC 9110 field values).
        if key is not None and not (1 <= len(key) <= 255 and key.isascii()
                                    and key.isprintable() and " " not in key):
            raise bad_request("invalid Idempotency-Key header: use 1-255 printable ASCII "
                              "characters without spaces", code="invalid-idempotency-key")
        principal: Principal | None = g.get("principal")
        # Scoped to the caller: two tokens choosing the same key are two requests.
        idempotency = (None if key is None else
                       (f"{principal.name if principal else '-'}:{key}", canonical_body(raw)))
        run, replayed = await engine.submit(_plan_request(body), idempotency=idempotency)
        response = jsonify(run_json(run))
        response.status_code = 201
        response.headers["Location"] = f"/runs/{run.id}"
        if replayed:
            response.headers["Idempotent-Replay"] = "true"
        return response

    @app.get("/runs")
    async def list_runs() -> Response:
        page, per_page = _page(request.args)
        status = request.args.get("status")
        statuses = ("queued", "running", *sorted(TERMINAL_STATUSES))
        if status is not None and status not in statuses:
            raise bad_request(f"invalid status filter {quote(status)}",
                              errors=[{"arg": "status",
                                       "message": f"use one of: {', '.join(statuses)}"}])
        job_id = request.args.get("job_id") or request.args.get("job")
        # A run's `workspace`, exactly as runs show it; absent: every workspace.
        workspace = request.args.get("workspace")
        if workspace is not None and not (workspace.startswith("/") and len(workspace) <= 4096
                                          and "\0" not in workspace):
            raise bad_request(f"invalid workspace filter {quote(workspace)}",
                              errors=[{"arg": "workspace",
                                       "message": "use an absolute path, as a run's "
                                                  "`workspace` shows it"}])

        runs, total = await engine.list_runs(job_id=job_id, status=status, workspace=workspace,
                                             limit=per_page, offset=(page - 1) * per_page)
        response = jsonify([run_json(run) for run in runs])
        response.headers["X-Total-Count"] = str(total)
        return response

    @app.get("/runs/<runid:run_id>")
    async def get_run(run_id: str) -> Response:
        return jsonify(run_json(await _exact_run(run_id)))

    async def _exact_run(run_id: str) -> RunRow:
        run = await engine.get_run(run_id)
        if run.id != run_id:  # the CLI's prefix matching is not part of the API
            raise RunNotFound(f"no run '{run_id}'")
        return run

    @app.post("/runs/<runid:run_id>:cancel")
    async def cancel_run(run_id: str) -> Response:
        await _exact_run(run_id)
        principal: Principal | None = g.get("principal")
        outcome, run = await engine.request_cancel(
            run_id, reason="canceled by request", by=f"api:{principal.name if principal else '-'}")
        response = jsonify(run_json(run))
        response.status_code = 202 if outcome == "requested" else 200
        return response

    def _cursor() -> int | None:
        # Every given cursor must be valid; the header wins over the query.
        values = []
        for name, label, text in (
                ("Last-Event-ID", "Last-Event-ID", request.headers.get("Last-Event-ID")),
                ("after", "?after=", request.args.get("after")),
                ("last_event_id", "?last_event_id=", request.args.get("last_event_id"))):
            try:
                values.append(parse_cursor(text))
            except ValueError as exc:
                raise HttpProblem(400, f"invalid {label}", f"{label} {exc}: an event seq, as "
                                  "in the id: line of an SSE frame", code="invalid-cursor",
                                  errors=[{"arg": name, "message": str(exc)}]) from None
        return next((value for value in values if value is not None), None)

    streams = StreamSlots(options.max_streams)

    def _stream_slot(kind: str) -> StreamSlot:
        """A slot for one more event stream, or 503 streams.busy (before any byte is sent)."""
        slot = streams.try_take()
        if slot is None:
            if metrics is not None:
                metrics.stream_refusals.labels(kind).inc()
            raise HttpProblem(503, "too many event streams",
                              f"this server has {streams.limit} event streams open "
                              "(flwd :serve --max-streams); retry shortly",
                              code="streams.busy", headers={"Retry-After": str(RETRY_AFTER)})
        return slot

    async def _sse(run_id: str | None, after: int) -> Any:
        slot = _stream_slot("sse")
        body = _event_stream(run_id, after, slot)
        slot.release_with(body)  # a body never started never runs its finally
        response = await _sse_response(body)
        response.timeout = None  # an event stream must not be cut at RESPONSE_TIMEOUT
        return response

    def _sse_response(body: AsyncGenerator[bytes, None]) -> Any:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                   "X-Accel-Buffering": "no"}
        return make_response(body, 200, headers)

    async def _event_stream(run_id: str | None, after: int,
                            slot: StreamSlot) -> AsyncGenerator[bytes, None]:
        if metrics is not None:
            metrics.sse_streams.inc()
        try:
            # A live run's replay comes from the hub's backlog without waiting:
            # the preamble then travels with it (one socket send, one client
            # wake-up less). Otherwise it goes first, on its own.
            preamble = PREAMBLE
            if run_id is None or not engine.has_backlog_after(run_id, after):
                yield PREAMBLE
                preamble = b""
            async with aclosing(engine.events(run_id, after=after,
                                              heartbeat=options.keep_alive)) as stream:
                async for batch in stream:
                    # Bounded writes, each awaited until the socket takes it:
                    # a slow reader paces its own replay (see engine._stream).
                    pieces = [frames(record) for record in batch] if batch else [KEEP_ALIVE]
                    for body in writes([preamble, *pieces] if preamble else pieces):
                        yield body
                    preamble = b""
        finally:
            slot.release()
            if metrics is not None:
                metrics.sse_streams.dec()

    async def _gone_if_evicted(run_id: str | None, cursor: int | None) -> None:
        """410 for a cursor that points into history retention has evicted."""
        if cursor is None:
            return
        if await engine.cursor_expired(run_id, cursor):
            raise HttpProblem(410, "cursor expired",
                              "the events after this cursor were evicted by retention; "
                              "start again without Last-Event-ID (GET /runs lists what is "
                              "kept)", code="cursor.expired")

    @app.get("/runs/<runid:run_id>/events")
    async def run_events(run_id: str) -> Any:
        if _cursor() is None and engine.is_live(run_id):
            # A live run of this process, streamed from its first event: it
            # exists and the answer cannot be 204, so no journal lookup.
            return await _sse(run_id, 0)
        try:
            run = await _exact_run(run_id)
        except RunNotFound:
            await _gone_if_evicted(run_id, _cursor())
            raise
        cursor = _cursor()
        if cursor is not None:
            if metrics is not None:
                metrics.sse_resumes.inc()
            if run.status in TERMINAL_STATUSES:
                last = await engine.last_seq(run.id)
                if cursor >= last:
                    # The stream already ended for this client: 204 stops EventSource.
                    return Response("", status=204)
        return await _sse(run.id, cursor or 0)

    @app.get("/events")
    async def all_events() -> Any:
        cursor = _cursor()
        await _gone_if_evicted(None, cursor)
        if cursor is None:
            # A new global subscriber starts at "now", not at the beginning of history.
            cursor = await engine.last_seq()
        return await _sse(None, cursor)

    @app.get("/runs/<runid:run_id>/events.ndjson")
    async def run_events_ndjson(run_id: str) -> Any:
        run = await _exact_run(run_id)
        after = _cursor() or 0

        async def body() -> AsyncGenerator[bytes, None]:
            try:
                async with aclosing(engine.events(run.id, after=after,
                                                  follow=False)) as stream:
                    async for batch in stream:
                        for piece in writes(record.ndjson() for record in batch):
                            yield piece
            finally:
                slot.release()

        slot = _stream_slot("ndjson")
        stream = body()
        slot.release_with(stream)
        response = await make_response(stream, 200, {"Content-Type": "application/x-ndjson",
                                                     "Cache-Control": "no-store"})
        response.timeout = None  # type: ignore[union-attr]
        return response

    @app.websocket("/runs/<runid:run_id>/ws")
    @cors_exempt  # _dev_gate checks the Origin (see the cors() call)
    async def run_ws(run_id: str) -> None:
        run = await _exact_run(run_id)
        slot = _stream_slot("websocket")
        try:
            await _ws_stream(run)
        finally:
            slot.release()

    async def _ws_stream(run: RunRow) -> None:
        await websocket.accept()
        principal: Principal | None = g.get("principal")
        if metrics is not None:
            metrics.websockets.inc()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ws_commands, run.id, principal)
                async with aclosing(engine.events(run.id, heartbeat=options.keep_alive)) as s:
                    async for batch in s:
                        for record in batch:
                            for event in record.iter_events():
                                await websocket.send(json.dumps(event))
                nursery.cancel_scope.cancel(reason="run finished")
            await websocket.close(1000, "run finished")
        finally:
            if metrics is not None:
                metrics.websockets.dec()

    async def _ws_commands(run_id: str, principal: Principal | None) -> None:
        while True:
            text = await websocket.receive()
            try:
                message = json.loads(text)
            except (TypeError, ValueError):
                message = None
            if isinstance(message, dict) and message.get("type") == "cancel":
                if principal is not None and principal.missing(["runs:write"]):
                    await websocket.send(json.dumps({"type": "error", "code": "forbidden",
                                                     "detail": "cancel needs runs:write"}))
                    continue
                await engine.request_cancel(
                    run_id, reason="canceled by request",
                    by=f"ws:{principal.name if principal else '-'}")
            else:
                await websocket.send(json.dumps({
                    "type": "error", "code": "invalid-message",
                    "detail": 'send {"type": "cancel"} to cancel the run'}))

    def _source_json(entry: Entry) -> dict[str, Any]:
        principal: Principal | None = g.get("principal")
        show_aliases = entry.source.spec.expose != "none" and (options.aliases_public or (
            principal is not None and principal.scopes & {"jobs:write", "sources:write"}))
        aliases: list[dict[str, Any]] | None = [
            {key: alias[key] for key in ("from", "to", "description") if key in alias}
            for alias in entry.index.alias_entries] if show_aliases else None
        return entry.source.to_json(jobs=len(entry.index.catalog.jobs), aliases=aliases)

    @app.get("/sources")
    async def list_sources() -> Response:
        page, per_page = _page(request.args)
        entries = engine.sources()
        response = jsonify([_source_json(entry)
                            for entry in entries[(page - 1) * per_page: page * per_page]])
        response.headers["X-Total-Count"] = str(len(entries))
        return response

    @app.get("/sources/<source_name:name>")
    async def get_source(name: str) -> Response:
        return jsonify(_source_json(engine.source(name)))

    @app.post("/sources")
    async def add_source() -> Response:
        body, _ = await _json_body(SourceRequest)
        spec = parse_request(body.root.model_dump(exclude_none=True))
        source, created = await engine.add_source(spec)
        response = jsonify(_source_json(engine.source(source.name)))
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/sources/{source.name}"
        return response

    @app.post("/sources/<source_name:name>:refresh")
    async def refresh_source(name: str) -> Response:
        await engine.refresh_source(name)
        return jsonify(_source_json(engine.source(name)))

    @app.delete("/sources/<source_name:name>")
    async def delete_source(name: str) -> Response:
        await engine.remove_source(name)
        return Response("", status=204)

    if options.metrics and metrics is not None:
        @app.get("/metrics", endpoint="metrics")
        async def metrics_endpoint() -> Response:
            return Response(metrics.render(), content_type=metrics.content_type)

    @app.get("/openapi.json")
    async def openapi() -> Response:
        from ._openapi import openapi_document

        return jsonify(openapi_document())

    return app
