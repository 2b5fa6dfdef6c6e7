"""The OpenAPI paths and schemas of schedules (``_schedules``)."""

from __future__ import annotations

from typing import Any

from flwd.schedule import MISFIRE_MODES, OVERLAP_MODES

from ._openapi_parts import json_response, operation, problems, ref

_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_NAME = [{
    "name": "name", "in": "path", "required": True,
    "description": "The schedule's name: its `name:`, else the job id (one schedule) or "
                   "`<job id>#<index>` (percent-encode the `#` as %23)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.#/-]{0,199}$"}}]

#: One schedule, as ``GET /schedules`` lists it (flwd.schedule.schedule_view).
SCHEDULE: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["name", "job_id", "kind", "cron", "at", "timezone", "timezone_source", "args",
                 "status", "enabled", "paused", "misfire", "catchup_window_seconds",
                 "overlap", "jitter_seconds", "next_fires", "last_fire", "watermark", "path"],
    "properties": {
        "name": _TEXT, "job_id": _TEXT,
        "kind": {"type": "string", "enum": ["cron", "every", "at", "reboot"]},
        "cron": {**_NULLABLE_TEXT, "description": "As written: 5 fields, @daily, @every 90s, "
                                                  "@reboot (null for at:)"},
        "at": {**_NULLABLE_TEXT, "description": "The one instant of an at: schedule"},
        "timezone": {"type": "string", "description": "The IANA zone its fields are read in"},
        "timezone_source": {"type": "string", "enum": ["config", "server"],
                            "description": "Written in the config, or the server's own zone"},
        "args": {"type": "object", "description": "Its runs' arguments (secrets as [secret])"},
        "status": {"type": "string", "enum": ["active", "paused", "disabled"]},
        "enabled": {"type": "boolean"}, "paused": {"type": "boolean"},
        "misfire": {"type": "string", "enum": list(MISFIRE_MODES)},
        "catchup_window_seconds": {"type": "number", "minimum": 0},
        "overlap": {"type": "string", "enum": list(OVERLAP_MODES)},
        "jitter_seconds": {"type": "number", "minimum": 0},
        "next_fires": {"type": "array", "maxItems": 3, "items": {
            "type": "object", "required": ["at", "utc"], "additionalProperties": False,
            "properties": {"at": {"type": "string", "description": "On the zone's clock, "
                                                                   "with its offset"},
                           "utc": _TEXT}}},
        "last_fire": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["fire_at", "at", "outcome", "run_id", "run_status"],
            "additionalProperties": False,
            "properties": {"fire_at": _NULLABLE_TEXT,
                           "at": {**_NULLABLE_TEXT, "description": "On the zone's clock"},
                           "outcome": {"type": "string", "description": "started, manual, "
                                       "already_started, skipped:<reason>"},
                           "run_id": _NULLABLE_TEXT, "run_status": _NULLABLE_TEXT}}]},
        "watermark": {**_NULLABLE_TEXT, "description": "The last fire time handled (UTC)"},
        "path": {"type": "string", "description": "The config file that declares it"},
    }}

_LISTING: dict[str, Any] = {
    "type": "object", "required": ["timezone", "schedules", "errors"],
    "additionalProperties": False,
    "properties": {
        "timezone": {"type": "string", "description": "The server's zone (of schedules "
                                                      "that name none)"},
        "schedules": {"type": "array", "items": ref("Schedule")},
        "errors": {"type": "array", "description": "Names claimed by several schedules: "
                                                   "none of them is scheduled",
                   "items": {"type": "object", "required": ["path", "name", "error"],
                             "additionalProperties": False,
                             "properties": {"path": _TEXT, "name": _TEXT, "error": _TEXT}}}}}


def schedule_paths() -> dict[str, Any]:
    change = {"200": json_response(ref("Schedule")), **problems(401, 403, 404)}
    return {
        "/schedules": {"get": operation(
            "Every schedule: its zone, next three fires, last fire and modes", ("jobs:read",),
            {"200": json_response(_LISTING), **problems(401, 403)})},
        "/schedules/{name}": {"get": operation(
            "One schedule", ("jobs:read",),
            {"200": json_response(ref("Schedule")), **problems(401, 403, 404)},
            parameters=_NAME)},
        "/schedules/{name}:pause": {"post": operation(
            "Pause a schedule (its fires are skipped, journaled; kept across restarts)",
            ("runs:write",), change, parameters=_NAME)},
        "/schedules/{name}:resume": {"post": operation(
            "Resume a schedule (fires that came while paused stay skipped)",
            ("runs:write",), change, parameters=_NAME)},
        "/schedules/{name}:trigger": {"post": operation(
            "Fire a schedule now, by hand (trigger: {kind: schedule, manual: true})",
            ("runs:write",),
            {"201": json_response(ref("Run"), "Created"), **problems(401, 403, 404, 422)},
            parameters=_NAME)},
    }
