"""Reading a request: its JSON body, pagination, event cursor and caller.

Every refusal here is a problem raised before the engine is asked anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from quart import g, request

from flwd.plan import PlanRequest

from ._auth import Principal
from ._models import RunRequest
from ._params import PAGE, PER_PAGE, parse_cursor, parse_int, quote
from ._problems import HttpProblem, bad_request

T = TypeVar("T", bound=BaseModel)


def parse_json_body(raw: bytes) -> Any:
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


async def json_body(model: type[T]) -> tuple[T, Any]:
    """The request's body as ``model``, and as decoded JSON.

    Raises:
        HttpProblem: as :func:`json_body_and_bytes`.

    Cancellation: as :func:`json_body_and_bytes`.
    """
    body, data, _ = await json_body_and_bytes(model)
    return body, data


async def json_body_and_bytes(model: type[T]) -> tuple[T, Any, bytes]:
    """The request's body as ``model``, as decoded JSON, and as the bytes received.

    Raises:
        HttpProblem: 415 (not ``application/json``), 400 (empty, not JSON, invalid).

    Cancellation: the body may be partly read; the connection is then unusable
    anyway (the client is gone or the server is stopping).
    """
    # Only application/json: a cross-site form (urlencoded, multipart, text/plain)
    # or a fetch() without a Content-Type is sent without a CORS preflight, and
    # in --dev it needs no token either.
    data, received = await json_data_and_bytes()
    return validate_body(model, data), data, received


async def json_data_and_bytes() -> tuple[Any, bytes]:
    """The request's body as decoded JSON, and as the bytes received (for a handler
    choosing the model by the body).

    Raises:
        HttpProblem: 415 (not ``application/json``), 400 (empty, not JSON).

    Cancellation: as :func:`json_body_and_bytes`.
    """
    content_type = request.headers.get("Content-Type")
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        sent = f"not {quote(content_type)}" if content_type else "(the request had none)"
        raise HttpProblem(415, "unsupported media type",
                          f"send JSON with Content-Type: application/json {sent}",
                          code="unsupported-media-type",
                          headers={"Accept": "application/json"})  # RFC 9110 §15.5.16
    raw = await request.get_data(cache=False, as_text=False)
    g.body_read = True  # the connection may be kept alive (see _app's after_request)
    received = raw if isinstance(raw, bytes) else raw.encode()
    return parse_json_body(received), received


def plan_request(body: RunRequest) -> PlanRequest:
    """What ``POST /plans`` and ``POST /runs`` ask the engine to plan."""
    return PlanRequest(body.job_id, args=body.args,
                       source=body.source.name if body.source is not None else None,
                       profile=body.requested_security_profile,
                       profile_from="requested_security_profile")


def page(args: Mapping[str, str]) -> tuple[int, int]:
    """``(page, per_page)`` of a listing; one 400 problem lists every invalid one."""
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


def cursor() -> int | None:
    """The event seq a stream resumes after (None: from the start, or from now)."""
    # Every given cursor must be valid; the header wins over the query. The
    # title is the reference's for its two spellings of the cursor (§7.1).
    values = []
    for name, label, title, text in (
            ("Last-Event-ID", "Last-Event-ID", "invalid Last-Event-ID",
             request.headers.get("Last-Event-ID")),
            ("after", "?after=", "invalid ?after=", request.args.get("after")),
            ("last_event_id", "?last_event_id=", "invalid Last-Event-ID",
             request.args.get("last_event_id"))):
        try:
            values.append(parse_cursor(text))
        except ValueError as exc:
            raise HttpProblem(400, title, f"{label} {exc}: an event seq, as "
                              "in the id: line of an SSE frame", code="invalid-cursor",
                              errors=[{"arg": name, "message": str(exc)}]) from None
    return next((value for value in values if value is not None), None)


def current_principal() -> Principal | None:
    """Who sent the request (None: an open endpoint)."""
    principal: Principal | None = g.get("principal")
    return principal


def caller_name() -> str:
    """The caller as a cancel's ``by`` and an idempotency key's scope name it."""
    principal = current_principal()
    return principal.name if principal else "-"


def sees_aliases(aliases_public: bool) -> bool:
    """Alias metadata is for everyone only with --aliases-public; callers who may
    change jobs or sources always see it."""
    principal = current_principal()
    return aliases_public or bool(
        principal is not None and principal.scopes & {"jobs:write", "sources:write"})
