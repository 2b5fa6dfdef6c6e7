"""Runs: ``POST /runs``, ``GET /runs``, ``GET /runs/<id>``, ``POST /runs/<id>:cancel``.

``POST /runs`` answers the run as JSON, or — asked for ``text/event-stream`` — the
run's events as SSE in the same response, until it ends: one request per run.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Blueprint, Response, jsonify, request

from flwd.errors import FlwdError, RunFilterInvalid, RunNotFound
from flwd.events import RunRow
from flwd.store import RunFilter, run_filter

from ._canonical import canonical_sha256
from ._command_line import is_command_line, run_command_line
from ._local_socket import local_peer
from ._models import CancelRequest, RunRequest
from ._params import IntRange, parse_int, quote
from ._problems import HttpProblem, bad_request, forbidden
from ._request import (
    caller_name,
    canonical_body,
    current_principal,
    json_data_and_bytes,
    page,
    plan_request,
    validate_body,
)
from ._state import current_state
from ._streaming import sse_response, take_stream_slot

blueprint = Blueprint("runs", __name__)


def run_json(run: RunRow) -> dict[str, Any]:
    return run.to_json()


async def exact_run(run_id: str) -> RunRow:
    """The run with exactly this id (the CLI's prefix matching is not part of the API).

    Raises:
        RunNotFound: no such run.

    Cancellation: nothing is left behind (it only reads).
    """
    run = await current_state().engine.get_run(run_id)
    if run.id != run_id:
        raise RunNotFound(f"no run '{run_id}'")
    return run


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    # Visible ASCII only: header bytes beyond it reach us decoded as Latin-1,
    # i.e. as some other text than the client meant (RFC 9110 field values).
    if key is not None and not (1 <= len(key) <= 255 and key.isascii()
                                and key.isprintable() and " " not in key):
        raise bad_request("invalid Idempotency-Key header: use 1-255 printable ASCII "
                          "characters without spaces", code="invalid-idempotency-key")
    return key


_SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")


def _check_body_sha256(raw: bytes) -> None:
    """A reference client's ``Idempotency-SHA256``: the SHA-256 of the body's canonical
    JSON (see ``_canonical``) must match it, or nothing is run."""
    sent = request.headers.get("Idempotency-SHA256")
    if sent is None:
        return
    if not _SHA256_HEX.fullmatch(sent):
        raise HttpProblem(400, "invalid Idempotency-SHA256 header",
                          f"Idempotency-SHA256 {quote(sent)} is not a SHA-256: send the "
                          "SHA-256 of the body's canonical JSON as 64 hex digits",
                          code="invalid-idempotency-sha256")
    try:
        computed = canonical_sha256(raw)
    except ValueError as exc:  # a body flwd reads (UTF-16, say) and the reference would not
        raise bad_request(f"the body has no canonical JSON for Idempotency-SHA256 ({exc}): "
                          "send UTF-8 JSON", code="invalid-request-body") from None
    if sent.lower() != computed:
        raise HttpProblem(409, "idempotency hash mismatch",
                          "Idempotency-SHA256 does not match the SHA-256 of the body's canonical "
                          "JSON (keys sorted by UTF-8 bytes, no whitespace, numbers as written, "
                          "strings escaped as Go's json.Marshal does)",
                          code="idempotency-key-conflict",
                          incoming_sha256=sent, computed_sha256=computed)


# Registered before GET /runs: an OPTIONS /runs is routed to the first rule.
@blueprint.post("/runs")
async def create_run() -> Response:
    """Plan and start a run (at most once per ``Idempotency-Key``); with ``Accept:
    text/event-stream``, answer its events until it ends (201, the run's SSE stream).

    Cancellation: as :meth:`Engine.submit <flwd.engine.Engine.submit>`: once the
    root has the request, the run starts all the same; only the answer is lost.
    """
    data, raw = await json_data_and_bytes()
    if is_command_line(data):  # the thin client's command line
        return await run_command_line(data)
    body = validate_body(RunRequest, data)
    _check_body_sha256(raw)
    key = _idempotency_key()
    # Scoped to the caller: two tokens choosing the same key are two requests.
    idempotency = (None if key is None
                   else (f"{caller_name()}:{key}", canonical_body(data)))
    # The stream's slot (and the right to read it) before the run: a refusal starts nothing.
    slot = take_stream_slot("sse") if wants_event_stream() else None
    try:
        run, replayed = await current_state().engine.submit(plan_request(body),
                                                            idempotency=idempotency)
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    headers = {"Location": f"/runs/{run.id}"}
    if replayed:
        headers["Idempotent-Replay"] = "true"
    if slot is not None:
        return await sse_response(run.id, 0, slot=slot, status=201, headers=headers)  # type: ignore[no-any-return]
    response = jsonify(run_json(run))
    response.status_code = 201
    response.headers.update(headers)
    return response


def wants_event_stream() -> bool:
    """The request prefers ``text/event-stream`` to JSON (``Accept``; JSON on a tie).

    Raises:
        HttpProblem: 403, the caller may not read what the stream carries (``runs:read``,
        ``events:read``, as ``GET /runs/<id>/events``).
    """
    best = request.accept_mimetypes.best_match(["application/json", "text/event-stream"])
    if best != "text/event-stream":
        return False
    principal = current_principal()
    missing = principal.missing(STREAM_SCOPES) if principal is not None else []
    if missing:
        raise forbidden(missing)
    return True


#: What reading a run's event stream needs besides ``runs:write``.
STREAM_SCOPES = ("runs:read", "events:read")


def _filters() -> RunFilter:
    """``GET /runs``'s filters: ``job_id`` (or ``job``), ``status`` (repeatable, or a comma
    list), ``workspace``, ``since`` and ``until`` (RFC 3339, on ``created_at``),
    ``arg.<name>=<value>`` (repeatable) and ``trigger`` (``KIND`` or ``KIND:NAME``), each
    checked and bounded (``run_filter``)."""
    query = request.args
    return run_filter(
        job_id=query.get("job_id") or query.get("job") or None,
        statuses=query.getlist("status"), workspace=query.get("workspace"),
        since=query.get("since"), until=query.get("until"),
        args=[(key[4:], value) for key, value in query.items(multi=True)
              if key.startswith("arg.")], trigger=query.get("trigger") or None)


async def _refuse_secret_filters(where: RunFilter) -> None:
    """A filter on an argument the job declares secret is refused, naming it: its value
    is never stored, so it could only ever match nothing (with no job given, or a job
    that no longer exists, such a filter simply matches nothing — see ``RunFilter``)."""
    if where.job_id is None or not where.args:
        return
    try:
        job, _ = await current_state().engine.find_job(where.job_id)
    except FlwdError:
        return  # the runs of a job that is gone (or ambiguous now) can still be listed
    secret = {arg.name for arg in job.config.args if arg.is_secret}
    errors = [{"arg": f"arg.{name}",
               "message": f"{name} is a secret argument of {job.id}: its value is never "
                          "stored, so runs cannot be filtered by it"}
              for name, _ in where.args if name in secret]
    if errors:
        raise RunFilterInvalid(f"invalid run filter {errors[0]['arg']}: "
                               f"{errors[0]['message']}", errors=errors)


@blueprint.get("/runs")
async def list_runs() -> Response:
    """A page of runs, newest first (``X-Total-Count``: how many match).

    Cancellation: nothing is left behind (here as in ``get_run``).
    """
    first, per_page = page(request.args)
    where = _filters()
    await _refuse_secret_filters(where)
    runs, total = await current_state().engine.list_runs(
        where, limit=per_page, offset=(first - 1) * per_page)
    response = jsonify([run_json(run) for run in runs])
    response.headers["X-Total-Count"] = str(total)
    return response


@blueprint.get("/runs/<runid:run_id>")
async def get_run(run_id: str) -> Response:
    return jsonify(run_json(await exact_run(run_id)))


@blueprint.post("/runs/<runid:run_id>:cancel")
async def cancel_run(run_id: str) -> Response:
    """Ask the run to stop: 202 while it stops, 200 if it had finished. An optional body
    ``{reason, force}`` says why (shown in ``run.canceled``) and kills it at once.

    Cancellation: the cancel may have been sent all the same (the run then stops).
    """
    reason, force = await _cancel_body()
    run = await exact_run(run_id)
    state = current_state()
    client, caller = state.command_line_clients.get(run_id), local_peer()
    if client is not None and (caller is None or caller.pid != client.pid) and client.signal():
        # A thin client's run is cancelled by its client, as a CLI's run by its CLI.
        response = jsonify(run_json(run))
        response.status_code = 202
        return response
    # Through the local socket it is the thin client's Ctrl-C: journaled as a CLI's.
    by = "cli" if caller is not None else f"api:{caller_name()}"
    outcome, run = await state.engine.request_cancel(
        run_id, reason=reason, by=by, force=force)
    response = jsonify(run_json(run))
    response.status_code = 202 if outcome == "requested" else 200
    return response


async def _cancel_body() -> tuple[str, bool]:
    """A cancel's ``{reason?, force?}`` (no body: ``canceled by request``, not forced)."""
    if not request.content_length and "transfer-encoding" not in request.headers:
        return "canceled by request", False
    body = validate_body(CancelRequest, (await json_data_and_bytes())[0])
    return body.reason or "canceled by request", body.force


#: How many delivery attempts ``GET /runs/<id>/notifications`` lists at most.
NOTIFICATIONS_LIMIT = IntRange(1, 1000)


@blueprint.get("/runs/<runid:run_id>/notifications")
async def list_notifications(run_id: str) -> Response:
    """The run's notification delivery attempts, oldest first (``?limit=``, default 100).

    Cancellation: nothing is left behind (it only reads).
    """
    text = request.args.get("limit")
    try:
        limit = 100 if text is None else parse_int(text, NOTIFICATIONS_LIMIT)
    except ValueError as exc:
        raise bad_request(f"invalid limit: {exc}", errors=[{"arg": "limit", "message": str(exc)}],
                          code="invalid-limit") from None
    run = await exact_run(run_id)
    deliveries = await current_state().engine.notify_deliveries(run.id, limit=limit)
    return jsonify({"run_id": run.id,
                    "deliveries": [delivery.to_json() for delivery in deliveries]})
