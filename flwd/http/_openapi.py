"""The OpenAPI 3.1 document of the HTTP API, generated from the same pydantic models."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from flwd import __version__

from ._auth import SCOPES, AnyScope
from ._models import (
    Event,
    JobSummary,
    KvEntry,
    KvPage,
    KvPutRequest,
    Plan,
    Problem,
    Run,
    RunRequest,
    StorageHealth,
)
from ._openapi_kv import kv_paths
from ._openapi_parts import json_response as _json
from ._openapi_parts import operation as _op
from ._openapi_parts import problem as _problem
from ._openapi_parts import problems as _problems
from ._openapi_parts import ref as _ref
from ._params import MAX_CURSOR, PAGE, PER_PAGE
from ._source_models import Source, SourceRequest

_REF = "#/components/schemas/{model}"


_SOURCE: list[dict[str, Any]] = [{
    "name": "name", "in": "path", "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}}]


_PAGING = [
    {"name": "page", "in": "query",
     "schema": {"type": "integer", "minimum": PAGE.low, "maximum": PAGE.high, "default": 1}},
    {"name": "per_page", "in": "query",
     "schema": {"type": "integer", "minimum": PER_PAGE.low, "maximum": PER_PAGE.high,
                "default": 50}},
]
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
}


def _run_response(description: str) -> dict[str, Any]:
    return {**_json(_ref("Run"), description), "links": _RUN_LINKS}


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


def _issues(level: str) -> dict[str, Any]:
    return {"type": "array", "items": {
        "type": "object", "required": ["path", level], "additionalProperties": False,
        "properties": {"path": {"type": "string", "description": "the file, as shown to users"},
                       level: {"type": "string"},
                       "code": {"type": "string", "examples": ["E_CONFIG", "config.too.large",
                                                               "job.id.duplicate"]}}}}


#: ``GET /discovery``: what kept each config out of ``GET /jobs``.
_DISCOVERY: dict[str, Any] = {
    "type": "object", "required": ["errors", "warnings"], "additionalProperties": False,
    "properties": {"errors": _issues("error"), "warnings": _issues("warning")}}


#: ``GET /server``: the web UI's status page (nothing secret).
_SERVER: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["version", "profile", "runtime", "ui", "dev", "workspace", "scripts_root",
                 "started_at", "uptime_seconds"],
    "properties": {
        "version": {"type": "string"}, "profile": {"type": ["string", "null"]},
        "runtime": {"type": "string", "enum": ["podman", "docker", "none"]},
        "ui": {"type": "boolean"}, "dev": {"type": "boolean"},
        "workspace": {"type": "string"}, "scripts_root": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "uptime_seconds": {"type": "number", "minimum": 0}}}


#: The body of ``POST /plans`` and ``POST /runs``.
_RUN_BODY = {"required": True, "content": {"application/json": {"schema": _ref("RunRequest")}}}
_SSE = {"description": "Server-Sent Events: `id` is the event seq, `data` an Event",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}}


def _job_paths() -> dict[str, Any]:
    return {
        "/jobs": {"get": _op("List jobs", ("jobs:read",),
                             {"200": _json({"type": "array", "items": _ref("JobSummary")}),
                              **_problems(400, 401, 403)}, parameters=_PAGING)},
        "/discovery": {"get": _op(
            "Why configs are not jobs: discovery errors and warnings", ("jobs:read",),
            {"200": _json(_DISCOVERY), **_problems(401, 403)})},
        "/jobs/{job_id}": {"get": _op(
            "One job with its argspec", ("jobs:read",),
            {"200": _json(_ref("JobSummary")), **_problems(401, 403, 404, 409)},
            parameters=[{"name": "job_id", "in": "path", "required": True,
                         "schema": {"type": "string"}}])},
        "/plans": {"post": _op("Preview a run", ("jobs:read",),
                               {"200": _json(_ref("Plan")),
                                **_problems(400, 401, 403, 404, 409, 413, 415, 422)},
                               requestBody=_RUN_BODY)},
    }


def _run_paths() -> dict[str, Any]:
    return {
        "/runs": {
            "post": _op("Start a run", ("runs:write",),
                        {"201": _run_response("Created (or replayed: Idempotent-Replay)"),
                         **_problems(400, 401, 403, 404, 409, 413, 415, 422, 501)},
                        requestBody=_RUN_BODY,
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
                       parameters=[*_PAGING,
                                   {"name": "job_id", "in": "query", "schema": {"type": "string"}},
                                   {"name": "status", "in": "query",
                                    "schema": {"type": "string",
                                               "enum": ["queued", "running", "completed",
                                                        "failed", "canceled", "interrupted"]}},
                                   {"name": "workspace", "in": "query",
                                    "description": "Only the runs of this workspace (a run's "
                                                   "`workspace`, exactly); absent: every "
                                                   "workspace",
                                    "schema": {"type": "string", "pattern": "^/[^\\x00]*$",
                                               "maxLength": 4096}}]),
        },
        "/runs/{run_id}": {"get": _op("One run", ("runs:read",),
                                      {"200": _json(_ref("Run")), **_problems(401, 403, 404)},
                                      parameters=[_RUN_ID])},
        "/runs/{run_id}:cancel": {"post": _op(
            "Cancel a run (TERM, grace, KILL of its whole process tree)", ("runs:write",),
            {"202": _run_response("Cancel requested"),
             "200": _run_response("Already finished"), **_problems(401, 403, 404, 409)},
            parameters=[_RUN_ID])},
    }


def _event_paths() -> dict[str, Any]:
    return {
        "/runs/{run_id}/events": {"get": _op(
            "The run's events: journal replay after the cursor, then live",
            ("runs:read", "events:read"),
            {"200": _SSE, "204": {"description": "The stream already ended for this cursor"},
             **_problems(400, 401, 403, 404, 410, 503)}, parameters=[_RUN_ID, *_CURSOR])},
        "/runs/{run_id}/events.ndjson": {"get": _op(
            "The run's journaled events as NDJSON", ("runs:read", "events:read"),
            {"200": {"description": "One Event per line",
                     "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
             **_problems(400, 401, 403, 404, 410, 503)}, parameters=[_RUN_ID, *_CURSOR])},
        "/events": {"get": _op("Every run's events, live (after the cursor); with run_id, "
                               "that run's events only", ("events:read",),
                               {"200": _SSE, **_problems(400, 401, 403, 404, 410, 503)},
                               parameters=[*_CURSOR, _RUN_FILTER])},
    }


def _source_paths() -> dict[str, Any]:
    return {
        "/sources": {
            "get": _op("List sources", ("sources:read",),
                       {"200": _json({"type": "array", "items": _ref("Source")}),
                        **_problems(400, 401, 403)}, parameters=_PAGING),
            "post": _op("Add a source (or update it: same name and location)", ("sources:write",),
                        {"201": _json(_ref("Source"), "Created"),
                         "200": _json(_ref("Source"), "Updated and checked out again"),
                         **_problems(400, 401, 403, 409, 413, 415, 422)},
                        requestBody={"required": True, "content": {
                            "application/json": {"schema": _ref("SourceRequest")}}}),
        },
        "/sources/{name}": {
            "get": _op("One source", ("sources:read",),
                       {"200": _json(_ref("Source")), **_problems(401, 403, 404)},
                       parameters=_SOURCE),
            "delete": _op("Remove a source (its jobs disappear)", ("sources:write",),
                          {"204": {"description": "Removed"}, **_problems(401, 403, 404)},
                          parameters=_SOURCE),
        },
        "/sources/{name}:refresh": {
            "post": _op("Fetch again and pin the ref's current commit", ("sources:write",),
                        {"200": _json(_ref("Source")), **_problems(400, 401, 403, 404, 422)},
                        parameters=_SOURCE),
        },
    }


def _paths() -> dict[str, Any]:
    """Every route, in the order the document lists them."""
    return {
        "/healthz": {"get": _op("Liveness", (), {"204": {"description": "Alive"}})},
        **_job_paths(),
        **_run_paths(),
        **_event_paths(),
        "/health/storage": {"get": _op(
            "Core DB usage and the retention limits", (AnyScope(("jobs:read", "metrics:read")),),
            {"200": _json(_ref("StorageHealth")), **_problems(401, 403),
             "503": _problem("storage-degraded: the Core DB cannot grow or cannot be read "
                             "(the StorageHealth keys as extensions)")})},
        "/server": {"get": _op("What this server is: version, profile, runtime, UI",
                               ("jobs:read",), {"200": _json(_SERVER), **_problems(401, 403)})},
        **_source_paths(),
        **kv_paths(),
        "/metrics": {"get": _op("Prometheus metrics (open on loopback binds)", ("metrics:read",),
                                {"200": {"description": "Prometheus text exposition",
                                         "content": {"text/plain": {"schema":
                                                                    {"type": "string"}}}},
                                 **_problems(401, 403)}, optional_auth=True)},
        "/openapi.json": {"get": _op("This document", (), {"200": _json({"type": "object"})})},
    }


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(model, "validation") for model in (RunRequest, JobSummary, Run, Event, Problem, Plan,
                                                    SourceRequest, Source, KvPutRequest,
                                                    KvEntry, KvPage, StorageHealth)],
        ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "flwd", "version": __version__,
                 "description": "Discover, plan and run jobs; stream their events.",
                 "license": {"name": "AGPL-3.0-or-later",
                             "identifier": "AGPL-3.0-or-later"}},
        "paths": _paths(),
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "Tokens with scopes: " + ", ".join(SCOPES)}},
        },
    }


if __name__ == "__main__":  # python -m flwd.http._openapi > docs/openapi.json
    import json
    import sys

    sys.stdout.write(json.dumps(openapi_document(), indent=2) + "\n")
