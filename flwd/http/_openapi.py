"""The OpenAPI 3.1 document of the HTTP API, generated from the same pydantic models."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from flwd import __version__

from ._auth import SCOPES, AnyScope
from ._models import (
    CancelRequest,
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
from ._openapi_cluster import cluster_paths
from ._openapi_hooks import hook_paths
from ._openapi_kv import kv_paths
from ._openapi_parts import PAGING as _PAGING
from ._openapi_parts import RUN_BODY as _RUN_BODY
from ._openapi_parts import json_response as _json
from ._openapi_parts import operation as _op
from ._openapi_parts import problem as _problem
from ._openapi_parts import problems as _problems
from ._openapi_parts import ref as _ref
from ._openapi_runs import event_paths, run_paths
from ._openapi_schedules import SCHEDULE, schedule_paths
from ._openapi_session import SESSION_SCHEME, session_paths
from ._session import SessionInfo, SessionRequest
from ._source_models import Source, SourceRequest

_REF = "#/components/schemas/{model}"


_SOURCE: list[dict[str, Any]] = [{
    "name": "name", "in": "path", "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}}]


def _issues(level: str) -> dict[str, Any]:
    return {"type": "array", "items": {
        "type": "object", "required": ["path", level], "additionalProperties": False,
        "properties": {"path": {"type": "string", "description": "the file, as shown to users"},
                       level: {"type": "string"},
                       "code": {"type": "string", "examples": ["E_CONFIG", "config.too.large",
                                                               "job.id.duplicate"]}}}}


_ALIAS_INFO: dict[str, Any] = {
    "type": "object", "required": ["name", "target_path", "target_id"],
    "properties": {"name": {"type": "string"}, "target_path": {"type": "string"},
                   "target_id": {"type": "string"}, "source": {"type": "string"},
                   "description": {"type": "string"}}}

#: ``GET /discovery``: what kept each config out of ``GET /jobs``; the unusable aliases
#: by name only for who sees the aliases (as in ``GET /jobs``).
_DISCOVERY: dict[str, Any] = {
    "type": "object", "required": ["errors", "warnings"], "additionalProperties": False,
    "properties": {
        "errors": _issues("error"), "warnings": _issues("warning"),
        "alias_collisions": {
            "type": "object", "description": "alias name → its declarations",
            "additionalProperties": {"type": "array", "items": _ALIAS_INFO}},
        "alias_invalid": {
            "type": "object", "description": "lower-cased alias name → why it is unusable",
            "additionalProperties": {
                "type": "object", "required": ["code", "detail"],
                "properties": {"code": {"type": "string", "examples": ["alias.target.invalid"]},
                               "detail": {"type": "string"}}}}}}


#: ``GET /server``: the web UI's status page (nothing secret).
_SERVER: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["version", "profile", "runtime", "ui", "dev", "workspace", "scripts_root",
                 "started_at", "uptime_seconds", "grace_seconds"],
    "properties": {
        "version": {"type": "string"}, "profile": {"type": ["string", "null"]},
        "runtime": {"type": "string", "enum": ["podman", "docker", "none"]},
        "ui": {"type": "boolean"}, "dev": {"type": "boolean"},
        "workspace": {"type": "string"}, "scripts_root": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"},
        "uptime_seconds": {"type": "number", "minimum": 0},
        "grace_seconds": {"type": "number", "minimum": 0, "description":
                          "How long a cancelled step has between TERM and KILL (FLWD_GRACE)"},
        "public_url": {"type": ["string", "null"], "description":
                       "--public-url (FLWD_PUBLIC_URL): where people reach this server; "
                       "null when not set"}}}




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
        **run_paths(),
        **event_paths(),
        "/health/storage": {"get": _op(
            "Core DB usage and the retention limits", (AnyScope(("jobs:read", "metrics:read")),),
            {"200": _json(_ref("StorageHealth")), **_problems(401, 403),
             "503": _problem("storage-degraded: the Core DB cannot grow or cannot be read "
                             "(the StorageHealth keys as extensions)")})},
        "/server": {"get": _op("What this server is: version, profile, runtime, UI",
                               ("jobs:read",), {"200": _json(_SERVER), **_problems(401, 403)})},
        **cluster_paths(),
        **_source_paths(),
        **schedule_paths(),
        **kv_paths(),
        "/metrics": {"get": _op("Prometheus metrics (open on loopback binds)", ("metrics:read",),
                                {"200": {"description": "Prometheus text exposition",
                                         "content": {"text/plain": {"schema":
                                                                    {"type": "string"}}}},
                                 **_problems(401, 403)}, optional_auth=True)},
        "/openapi.json": {"get": _op("This document", (), {"200": _json({"type": "object"})})},
        **session_paths(),
        **hook_paths(),
    }


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(model, "validation") for model in (RunRequest, CancelRequest, JobSummary, Run, Event,
                                                    Problem, Plan,
                                                    SourceRequest, Source, KvPutRequest,
                                                    KvEntry, KvPage, StorageHealth,
                                                    SessionRequest, SessionInfo)],
        ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "flwd", "version": __version__,
                 "description": "Discover, plan and run jobs; stream their events.",
                 "license": {"name": "AGPL-3.0-or-later",
                             "identifier": "AGPL-3.0-or-later"}},
        "paths": _paths(),
        "components": {
            "schemas": {**schemas["$defs"], "Schedule": SCHEDULE},
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "Tokens with scopes: " + ", ".join(SCOPES)},
                "session": SESSION_SCHEME},
        },
    }


if __name__ == "__main__":  # python -m flwd.http._openapi > docs/openapi.json
    import json
    import sys

    sys.stdout.write(json.dumps(openapi_document(), indent=2) + "\n")
