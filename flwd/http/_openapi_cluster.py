"""The OpenAPI path and schema of ``GET /cluster`` (``_ops.cluster``)."""

from __future__ import annotations

from typing import Any

from ._auth import AnyScope
from ._openapi_parts import json_response, operation, problem, problems

_TIME = {"type": "string", "format": "date-time"}
_COUNT = {"type": "integer", "minimum": 0}

#: One replica as ``GET /cluster`` lists it (flwd.store.cluster.Replica, plus ``alive``).
REPLICA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["id", "host", "pid", "labels", "max_concurrent_runs", "running", "queued",
                 "started_at", "heartbeat_at", "heartbeat_age_seconds", "stopped_at", "alive"],
    "properties": {
        "id": {"type": "string", "description": "host-pid-random: a restart is a new replica"},
        "host": {"type": "string"}, "pid": {"type": "integer"},
        "labels": {"type": "array", "items": {"type": "string"},
                   "description": ":serve --labels (a job's runs_on needs them)"},
        "max_concurrent_runs": {"type": ["integer", "null"]},
        "running": _COUNT, "queued": {**_COUNT, "description": "Waiting for a local slot"},
        "started_at": _TIME, "heartbeat_at": _TIME,
        "heartbeat_age_seconds": {"type": "number", "minimum": 0,
                                  "description": "On the Core DB's clock"},
        "stopped_at": {"type": ["string", "null"], "format": "date-time"},
        "alive": {"type": "boolean", "description":
                  "Not stopped, and heartbeated within the lease (lease_seconds)"}}}

CLUSTER: dict[str, Any] = {
    "type": "object", "required": ["mode", "replica_id", "replicas"],
    "properties": {
        "mode": {"type": "string", "enum": ["cluster", "single"], "description":
                 "cluster: servers sharing a PostgreSQL Core DB claim queued runs"},
        "replica_id": {"type": ["string", "null"], "description": "This server's id"},
        "heartbeat_seconds": {"type": "number"}, "lease_seconds": {"type": "number"},
        "replicas": {"type": "array", "items": REPLICA}}}


def cluster_paths() -> dict[str, Any]:
    return {"/cluster": {"get": operation(
        "The replicas of this server's cluster: labels, heartbeats, running counts",
        (AnyScope(("jobs:read", "metrics:read")),),
        {"200": json_response(CLUSTER), **problems(401, 403),
         "503": problem("storage-degraded: the Core DB cannot be read")})}}
