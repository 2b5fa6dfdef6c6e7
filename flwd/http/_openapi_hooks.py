"""The OpenAPI paths of inbound webhooks (``_hooks``): ``POST /hooks/{name}``, ``GET /hooks``."""

from __future__ import annotations

from typing import Any

from flwd.hooks import NAME_PATTERN

from ._openapi_parts import json_response, operation, problem, problems

_ISSUES: dict[str, Any] = {"type": "array", "items": {
    "type": "object", "required": ["path"],
    "properties": {"path": {"type": "string"}, "error": {"type": "string"},
                   "warning": {"type": "string"},
                   "code": {"type": "string", "examples": ["hook.invalid", "hook.auth.none"]}}}}
_SOURCE: dict[str, Any] = {
    "type": "object", "minProperties": 1, "maxProperties": 1,
    "description": "Where the argument comes from: body (a JSON pointer or a dotted path), "
                   "query or header (a name), or a constant value ([secret] for a secret "
                   "argument)",
    "properties": {"body": {"type": "string"}, "query": {"type": "string"},
                   "header": {"type": "string"}, "value": {}}}
_HOOK: dict[str, Any] = {
    "type": "object", "required": ["name", "job", "url", "auth", "delivery_headers",
                                   "replay_window_seconds", "args", "declared_in"],
    "properties": {
        "name": {"type": "string"}, "job": {"type": "string"}, "url": {"type": "string"},
        "description": {"type": "string"},
        "auth": {"type": "array", "items": {
            "type": "string", "enum": ["hmac", "token", "bearer", "allow_ips", "none"]}},
        "hmac": {"type": "object", "description": "header, algorithm, format, "
                                                  "signed_payload, timestamp_header, "
                                                  "tolerance_seconds (never the secret)"},
        "token": {"type": "object", "description": "header (never the secret)"},
        "allow_ips": {"type": "array", "items": {"type": "string"}},
        "delivery_headers": {"type": "array", "items": {"type": "string"}},
        "replay_window_seconds": {"type": "number"},
        "args": {"type": "object", "additionalProperties": _SOURCE},
        "declared_in": {"type": "string"}}}
_LISTING: dict[str, Any] = {
    "type": "object", "required": ["hooks", "errors", "warnings"], "additionalProperties": False,
    "properties": {"hooks": {"type": "array", "items": _HOOK}, "errors": _ISSUES,
                   "warnings": _ISSUES}}
_STARTED: dict[str, Any] = {
    "type": "object", "required": ["run_id", "events_url", "run_url", "status"],
    "properties": {"run_id": {"type": "string"}, "events_url": {"type": "string"},
                   "run_url": {"type": "string"}, "status": {"type": "string"},
                   "exit_code": {"type": "integer"}}}


def hook_paths() -> dict[str, Any]:
    accepted = json_response(_STARTED, "The run is started (Location: /runs/{id})")
    finished = json_response(_STARTED, "With ?wait=: the run ended in time; status and "
                                       "exit_code are its outcome")
    return {
        "/hooks": {"get": operation(
            "The hooks served (no secret), and the declarations that are not", ("jobs:read",),
            {"200": json_response(_LISTING), **problems(401, 403)})},
        "/hooks/{name}": {"post": operation(
            "Inbound webhook: start the hook's job for an authenticated delivery. No token of "
            "the API: each hook checks its own (an HMAC signature, a shared token, a bearer "
            "token with hooks:trigger, the peer's address); docs/automation.md", (),
            {"202": accepted, "200": finished,
             "400": problem("hook.request.invalid: a malformed body, delivery id or wait"),
             "401": problem("hook.unauthorized: the signature, token or timestamp is missing, "
                            "wrong or too old (or a bearer token is missing or unknown)"),
             "403": problem("hook.forbidden (allow_ips), or forbidden (hooks:trigger)"),
             "404": problem("hook.not.found"),
             "408": problem("body.timeout: the body took longer than 10 s"),
             "409": problem("hook.replay: the delivery was received before (run_id)"),
             **problems(413, 422),
             "503": problem("hook.unavailable: the hook's secret cannot be read")},
            parameters=[
                {"name": "name", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": f"^{NAME_PATTERN}$"}},
                {"name": "wait", "in": "query", "description": "Seconds to wait for the run's "
                 "outcome", "schema": {"type": "number", "minimum": 0, "maximum": 300}}],
            requestBody={"required": False, "content": {
                "application/json": {"schema": {}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}})},
    }
