"""The OpenAPI paths of runs and their event streams (``GET|POST /runs``, ``/runs/{id}``,
its cancel, events, NDJSON and text exports, ``/events``)."""

from __future__ import annotations

from typing import Any

from flwd.store import (
    MAX_ARG_FILTERS,
    MAX_ARG_VALUE,
    MAX_JOB_ID,
    MAX_TRIGGER_NAME,
    MAX_WORKSPACE,
    STATUSES,
    TRIGGER_KINDS,
)

from ._openapi_parts import PAGING, RUN_BODY, SSE
from ._openapi_parts import json_response as _json
from ._openapi_parts import operation as _op
from ._openapi_parts import problems as _problems
from ._openapi_parts import ref as _ref
from ._params import MAX_CURSOR

_RUN_ID = {"name": "run_id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}}
#: OpenAPI links from a response carrying a Run to the operations on that run
#: (clients and schemathesis' stateful phase follow them). Not the SSE stream:
#: it stays open while the run runs.
_RUN_LINKS = {
    "GetRun": {"operationRef": "#/paths/~1runs~1{run_id}/get",
               "parameters": {"run_id": "$response.body#/id"}},
    "CancelRun": {"operationRef": "#/paths/~1runs~1{run_id}:cancel/post",
                  "parameters": {"run_id": "$response.body#/id"}},
    "RunEventsNdjson": {"operationRef": "#/paths/~1runs~1{run_id}~1events.ndjson/get",
                        "parameters": {"run_id": "$response.body#/id"}},
    "RunLogText": {"operationRef": "#/paths/~1runs~1{run_id}~1log.txt/get",
                   "parameters": {"run_id": "$response.body#/id"}},
}


def _run_response(description: str) -> dict[str, Any]:
    return {**_json(_ref("Run"), description), "links": _RUN_LINKS}


def _created_run() -> dict[str, Any]:
    """``POST /runs``' 201: the run, or (``Accept: text/event-stream``) its events."""
    answer = _run_response("Created (or replayed: Idempotent-Replay). With `Accept: "
                           "text/event-stream` (and runs:read, events:read), the run's "
                           "events as Server-Sent Events until it ends, as "
                           "`GET /runs/{run_id}/events` sends them; `Location` names the run")
    answer["content"] = {**answer["content"], **SSE["content"]}
    return answer


#: ``GET /events?run_id=``: one run's stream (as ``/runs/{id}/events``).
_RUN_FILTER = {"name": "run_id", "in": "query", "required": False,
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}}
_CURSOR = [{"name": "Last-Event-ID", "in": "header", "required": False,
            # The pattern is a subset (up to 18 digits): a regex for "at most 2**63 - 1"
            # would be unreadable, and every value it admits is valid.
            "description": f"An event seq, 0 to {MAX_CURSOR}",
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
           {"name": "after", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR}}]


_TIME = {"type": "string", "format": "date-time"}
#: ``GET /runs``' filters (``arg.<name>`` cannot be a named parameter: see _ARG_FILTERS).
_RUN_FILTERS: list[dict[str, Any]] = [
    {"name": "job_id", "in": "query",
     "schema": {"type": "string", "maxLength": MAX_JOB_ID}},
    {"name": "status", "in": "query", "style": "form", "explode": True,
     "description": "Any of these statuses (repeat it, or separate them with commas)",
     "schema": {"type": "array", "maxItems": len(STATUSES),
                "items": {"type": "string", "enum": list(STATUSES)}}},
    {"name": "workspace", "in": "query",
     "description": "Only the runs of this workspace (a run's `workspace`, exactly); "
                    "absent: every workspace",
     "schema": {"type": "string", "pattern": "^/[^\\x00]*$", "maxLength": MAX_WORKSPACE}},
    {"name": "since", "in": "query", "schema": _TIME,
     "description": "Only runs created at or after this time (RFC 3339; to the microsecond, "
                    "as runs show theirs)"},
    {"name": "until", "in": "query", "schema": _TIME,
     "description": "Only runs created before this time (RFC 3339)"},
    {"name": "trigger", "in": "query",
     "description": "Only runs started by a schedule (`schedule`) or a webhook (`hook`), or "
                    "by no trigger — the API or the CLI (`none`); `KIND:NAME`: by that "
                    "schedule or hook; empty: any run",
     "schema": {"type": "string", "maxLength": MAX_TRIGGER_NAME + 9,
                "pattern": f"^(({'|'.join(TRIGGER_KINDS)})(:[^\\x00]+)?)?$"}},
]
_ARG_FILTERS = (
    "Also `arg.<name>=<value>` (repeatable, at most "
    f"{MAX_ARG_FILTERS}, values up to {MAX_ARG_VALUE} characters; every filter must hold): "
    "runs whose argument `<name>` was `<value>` written as on the command line — a string "
    "as it is, a number in decimal, a boolean `true`/`false`; an array when one of its "
    "elements is; an object when one of its entries is `KEY=VALUE`. A secret argument's "
    "value is never stored, so it matches nothing; with `job_id`, a filter on an argument "
    "that job declares secret is a 400 naming it.")


_NULLABLE_INT = {"type": ["integer", "null"]}
#: ``GET /runs/{run_id}/notifications``: the run's delivery attempts (flwd.notify).
_NOTIFICATIONS = {
    "type": "object", "required": ["run_id", "deliveries"],
    "properties": {"run_id": {"type": "string"}, "deliveries": {"type": "array", "items": {
        "type": "object",
        "required": ["id", "run_id", "job_id", "sink", "event", "attempt", "outcome", "at"],
        "properties": {
            "id": {"type": "integer"}, "run_id": {"type": "string"},
            "job_id": {"type": "string"},
            "sink": {"type": "string", "description": "The rule's name, else where it is "
                                                      "written (`notify[0]`)"},
            "sink_kind": {"type": "string", "enum": ["webhook", "email", "command"]},
            "event": {"type": "string", "enum": ["failure", "recovery", "success", "canceled",
                                                 "running_longer_than"]},
            "delivery": {"type": "string",
                         "description": "The notification's id, the same for its attempts"},
            "attempt": {"type": "integer", "minimum": 0}, "attempts": _NULLABLE_INT,
            "outcome": {"type": "string", "enum": ["delivered", "retrying", "failed",
                                                   "dropped", "abandoned"]},
            "status": {**_NULLABLE_INT, "description": "HTTP status, SMTP reply code or "
                                                       "exit status"},
            "error": {"type": ["string", "null"]},
            "next_retry_in": {"type": ["number", "null"],
                              "description": "Seconds until the next attempt (retrying)"},
            "at": _TIME}}}}}
_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}


def run_paths() -> dict[str, Any]:
    return {
        "/runs": {
            "post": _op("Start a run", ("runs:write",),
                        {"201": _created_run(),
                         **_problems(400, 401, 403, 404, 409, 413, 415, 422, 501, 503)},
                        requestBody=RUN_BODY,
                        parameters=[{"name": "Idempotency-Key", "in": "header",
                                     "required": False,
                                     "schema": {"type": "string", "minLength": 1,
                                                "maxLength": 255, "pattern": "^[!-~]+$"}},
                                    {"name": "Idempotency-SHA256", "in": "header",
                                     "required": False,
                                     "description": "SHA-256 (hex, either case) of the body's "
                                                    "canonical JSON, as the Go reference "
                                                    "computes it; a mismatch is 409 "
                                                    "`idempotency hash mismatch` with "
                                                    "`incoming_sha256` and `computed_sha256`",
                                     "schema": {"type": "string",
                                                "pattern": "^[0-9A-Fa-f]{64}$"}}]),
            "get": _op("List runs, newest first", ("runs:read",),
                       {"200": _json({"type": "array", "items": _ref("Run")}),
                        **_problems(400, 401, 403)},
                       parameters=[*PAGING, *_RUN_FILTERS], description=_ARG_FILTERS),
        },
        "/runs/{run_id}": {"get": _op("One run", ("runs:read",),
                                      {"200": _json(_ref("Run")), **_problems(401, 403, 404)},
                                      parameters=[_RUN_ID])},
        "/runs/{run_id}:cancel": {"post": _op(
            "Cancel a run (TERM, grace, KILL of its whole process tree)", ("runs:write",),
            {"202": _run_response("Cancel requested"),
             "200": _run_response("Already finished"),
             **_problems(400, 401, 403, 404, 409, 415)},
            parameters=[_RUN_ID], requestBody={
                "required": False,
                "content": {"application/json": {"schema": _ref("CancelRequest")}}})},
        "/runs/{run_id}/notifications": {"get": _op(
            "The run's notification delivery attempts, oldest first", ("runs:read",),
            {"200": _json(_NOTIFICATIONS), **_problems(400, 401, 403, 404)},
            parameters=[_RUN_ID, _LIMIT])},
    }


def event_paths() -> dict[str, Any]:
    return {
        "/runs/{run_id}/events": {"get": _op(
            "The run's events: journal replay after the cursor, then live",
            ("runs:read", "events:read"),
            {"200": SSE, "204": {"description": "The stream already ended for this cursor"},
             **_problems(400, 401, 403, 404, 410, 503)}, parameters=[_RUN_ID, *_CURSOR])},
        "/runs/{run_id}/events.ndjson": {"get": _op(
            "The run's journaled events as NDJSON", ("runs:read", "events:read"),
            {"200": {"description": "One Event per line",
                     "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
             **_problems(400, 401, 403, 404, 410, 503)}, parameters=[_RUN_ID, *_CURSOR])},
        "/runs/{run_id}/log.txt": {"get": _op(
            "The run's output as plain text, as a terminal shows it (a download)",
            ("runs:read", "events:read"),
            {"200": {"description": "stdout and stderr lines in journal order, unmarked; "
                                    "`[step] ` before each line of a `composition: steps` "
                                    "job. `Content-Disposition: attachment; "
                                    "filename=\"<job>-<run id>.log\"`",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
             **_problems(401, 403, 404, 503)}, parameters=[_RUN_ID])},
        "/events": {"get": _op("Every run's events, live (after the cursor); with run_id, "
                               "that run's events only", ("events:read",),
                               {"200": SSE, **_problems(400, 401, 403, 404, 410, 503)},
                               parameters=[*_CURSOR, _RUN_FILTER])},
    }
