"""The building blocks of the OpenAPI document: references, JSON and problem responses,
operations with their bearer scopes, paging (used by ``_openapi``, ``_openapi_runs`` and
``_openapi_kv``)."""

from __future__ import annotations

from itertools import product
from typing import Any

from ._auth import AnyScope, Requirement
from ._params import PAGE, PER_PAGE


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def problems(*statuses: int) -> dict[str, Any]:
    texts = {400: "Invalid request (every failing field listed in `errors`)",
             401: "Missing or unknown bearer token", 403: "The token lacks a required scope",
             404: "Not found", 409: "Conflict", 413: "Body too large",
             410: "The cursor points into events evicted by retention",
             415: "Not JSON", 422: "Validation or policy failure",
             429: "storage-quota-exceeded: the KV namespace would exceed its quota",
             501: "Not implemented",
             503: "streams.busy: --max-streams event streams are open; retry after "
                  "Retry-After seconds"}
    return {str(status): problem(texts.get(status, "Problem")) for status in statuses}


def problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": ref("Problem")}}}


def operation(summary: str, scopes: tuple[Requirement, ...], responses: dict[str, Any], *,
              optional_auth: bool = False, authenticated: bool = False,
              **extra: Any) -> dict[str, Any]:
    """An operation needing ``scopes`` (none: an open one, unless ``authenticated``)."""
    document: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    # Alternatives are OpenAPI's list of requirement objects (any one suffices): each
    # choice of scopes, from a bearer token or a browser session.
    choices = list(product(*[need.scopes if isinstance(need, AnyScope) else (need,)
                             for need in scopes]))
    document["security"] = [{scheme: list(choice)} for choice in choices
                            for scheme in ("bearer", "session")
                            ] if scopes or authenticated else []
    if optional_auth:
        # An empty requirement: the route may answer without a token (loopback binds).
        document["security"].insert(0, {})
    return document


PAGING: list[dict[str, Any]] = [
    {"name": "page", "in": "query",
     "schema": {"type": "integer", "minimum": PAGE.low, "maximum": PAGE.high, "default": 1}},
    {"name": "per_page", "in": "query",
     "schema": {"type": "integer", "minimum": PER_PAGE.low, "maximum": PER_PAGE.high,
                "default": 50}},
]


#: The body of ``POST /plans`` and ``POST /runs``.
RUN_BODY: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": ref("RunRequest")}}}
SSE: dict[str, Any] = {"description": "Server-Sent Events: `id` is the event seq, `data` an Event",
       "content": {"text/event-stream": {"schema": {"type": "string"}}}}
